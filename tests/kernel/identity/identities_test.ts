/**
 * The identities of a node on a real Deno KV file: create, list, switch,
 * resolve, export and import between stores with different master keys, and
 * each identity's own sealed namespace.
 */

import { deepStrictEqual as eql, equal, notDeepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { assertIdentityName, IdentityStore } from "../../../kernel/identity/identities.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { exportIdentity } from "../../../kernel/identity/identity_file.ts";
import { ConflictError, IntegrityError, NotFoundError, WrongKeyError } from "../../../kernel/errors.ts";
import { utf8 } from "../../../kernel/bytes.ts";
import { containsBytes, FAST_SCRYPT, MASTER_B, rawEntries, rawRecord, tempStore } from "../storage/_helpers.ts";

const PASS = "move me between nodes";
const options = { scrypt: FAST_SCRYPT };

async function fixture(master?: Uint8Array) {
  const t = await tempStore(master);
  const ids = await IdentityStore.open(t.store);
  return {
    t,
    ids,
    async [Symbol.asyncDispose]() {
      ids.close();
      await t[Symbol.asyncDispose]();
    },
  };
}

Deno.test("a new node has no identity and no active one", async () => {
  await using f = await fixture();
  equal(f.ids.size, 0);
  eql(f.ids.list(), []);
  throws(() => f.ids.active(), NotFoundError);
  throws(() => f.ids.resolve("anything"), NotFoundError);
});

Deno.test("the first identity becomes active and later ones do not", async () => {
  await using f = await fixture();
  const first = await f.ids.create("first");
  const second = await f.ids.create("second");
  equal(f.ids.active(), first);
  equal(f.ids.size, 2);
  eql(f.ids.list().map((l) => [l.name, l.active]), [["first", true], ["second", false]]);
  eql(f.ids.list()[1], { ...second.info(), active: false });
});

Deno.test("create() with activate makes the new identity active, and without it the first stays", async () => {
  await using f = await fixture();
  await f.ids.create("one");
  const two = await f.ids.create("two", { activate: true });
  equal(f.ids.active(), two);
  await f.ids.create("three", { activate: false });
  equal(f.ids.active(), two);
});

Deno.test("create() with activate false on an empty node leaves it without an active identity", async () => {
  await using f = await fixture();
  await f.ids.create("quiet", { activate: false });
  throws(() => f.ids.active(), NotFoundError);
});

Deno.test("list() returns identities oldest first", async () => {
  await using f = await fixture();
  for (const name of ["c", "a", "b"]) {
    await f.ids.create(name);
    await new Promise((r) => setTimeout(r, 2));
  }
  eql(f.ids.list().map((l) => l.name), ["c", "a", "b"]);
});

Deno.test("resolve() finds an identity by name, did, node ID and a unique prefix of its node ID", async () => {
  await using f = await fixture();
  const alice = await f.ids.create("alice");
  const bob = await f.ids.create("bob");
  for (
    const ref of [
      alice.name,
      alice.did,
      alice.nodeId,
      alice.nodeId.slice(0, 12),
      alice.nodeId.slice(0, 12).toUpperCase(),
    ]
  ) {
    equal(f.ids.resolve(ref), alice, ref);
  }
  equal(f.ids.resolve(bob.nodeId.slice(0, 8)), bob);
  throws(() => f.ids.resolve(alice.nodeId.slice(0, 3)), NotFoundError);
  throws(() => f.ids.resolve("carol"), NotFoundError);
  throws(() => f.ids.resolve(""), NotFoundError);
  throws(() => f.ids.resolve("ffff" + "0".repeat(60)), NotFoundError);
});

Deno.test("resolve() rejects a prefix shared by two identities with ConflictError", async () => {
  await using f = await fixture();
  // generate in memory until two node IDs share their first four hex digits, then import both
  const seen = new Map<string, Identity>();
  let pair: [Identity, Identity] | undefined;
  for (let i = 0; !pair; i++) {
    const id = Identity.generate(`gen-${i}`);
    const other = seen.get(id.nodeId.slice(0, 4));
    if (other) pair = [other, id];
    else seen.set(id.nodeId.slice(0, 4), id);
  }
  for (const id of pair) await f.ids.import(await exportIdentity(id, PASS, options), PASS);
  for (const id of seen.values()) id.wipe();
  pair[1].wipe();
  const prefix = pair[0].nodeId.slice(0, 4);
  throws(() => f.ids.resolve(prefix), ConflictError);
  equal(f.ids.resolve(pair[0].nodeId.slice(0, 30)).nodeId, pair[0].nodeId);
});

Deno.test("switch() makes the referenced identity active", async () => {
  await using f = await fixture();
  const a = await f.ids.create("a");
  const b = await f.ids.create("b");
  equal(await f.ids.switch("b"), b);
  equal(f.ids.active(), b);
  await f.ids.switch(a.did);
  equal(f.ids.active(), a);
  await f.ids.switch(b.nodeId.slice(0, 10));
  equal(f.ids.active(), b);
  await rejects(f.ids.switch("nobody"), NotFoundError);
  equal(f.ids.active(), b);
});

Deno.test("create() rejects a duplicate name with ConflictError", async () => {
  await using f = await fixture();
  await f.ids.create("dup");
  await rejects(f.ids.create("dup"), ConflictError);
  equal(f.ids.size, 1);
  await f.ids.create("Dup");
  equal(f.ids.size, 2);
});

Deno.test("create() rejects an invalid name with RangeError", async () => {
  await using f = await fixture();
  for (const name of ["", "-lead", ".lead", "_lead", "has space", "a".repeat(65), "ünï", "a/b", "a\nb", "a:b"]) {
    await rejects(f.ids.create(name), RangeError, JSON.stringify(name));
    throws(() => assertIdentityName(name), RangeError);
  }
  equal(f.ids.size, 0);
  for (const name of ["a", "0", "A.b_c-1", "a".repeat(64)]) await f.ids.create(name);
  equal(f.ids.size, 4);
});

Deno.test("an identity exported from one store imports into another with a different master key", async () => {
  await using src = await fixture();
  await using dst = await fixture(MASTER_B);
  const original = await src.ids.create("nomad");
  const text = await src.ids.export("nomad", PASS, options);
  const imported = await dst.ids.import(text, PASS);
  eql(imported.info(), original.info());
  equal(dst.ids.active().nodeId, original.nodeId);
  const message = utf8("same key on both nodes");
  eql(imported.sign(message), original.sign(message));
  eql(imported.openSealed(Identity.sealTo(original.agreementKey, message)), message);
});

Deno.test("import() with a wrong passphrase rejects with WrongKeyError and adds nothing", async () => {
  await using src = await fixture();
  await using dst = await fixture(MASTER_B);
  await src.ids.create("locked");
  const text = await src.ids.export("locked", PASS, options);
  await rejects(dst.ids.import(text, "not it"), WrongKeyError);
  equal(dst.ids.size, 0);
});

Deno.test("importing the same identity twice rejects with ConflictError", async () => {
  await using src = await fixture();
  await using dst = await fixture(MASTER_B);
  await src.ids.create("twice");
  const text = await src.ids.export("twice", PASS, options);
  await dst.ids.import(text, PASS);
  await rejects(dst.ids.import(text, PASS), ConflictError);
  await rejects(dst.ids.import(text, PASS, { name: "another-name" }), ConflictError);
  await rejects(src.ids.import(text, PASS), ConflictError);
  equal(dst.ids.size, 1);
  equal(src.ids.size, 1);
});

Deno.test("import() can rename, refuses a taken or invalid name, and activates only when asked", async () => {
  await using src = await fixture();
  await using dst = await fixture(MASTER_B);
  await src.ids.create("shared");
  const text = await src.ids.export("shared", PASS, options);
  const local = await dst.ids.create("shared");
  await rejects(dst.ids.import(text, PASS), ConflictError);
  await rejects(dst.ids.import(text, PASS, { name: "bad name" }), RangeError);
  equal(dst.ids.size, 1);
  const renamed = await dst.ids.import(text, PASS, { name: "shared-2" });
  equal(renamed.name, "shared-2");
  equal(renamed.nodeId, src.ids.resolve("shared").nodeId);
  equal(dst.ids.active(), local);

  await src.ids.create("other");
  const other = await dst.ids.import(await src.ids.export("other", PASS, options), PASS, { activate: true });
  equal(dst.ids.active(), other);
});

Deno.test("each identity's data namespace is isolated", async () => {
  await using f = await fixture();
  const a = await f.ids.create("a");
  const b = await f.ids.create("b");
  const na = f.ids.dataNamespace(a), nb = f.ids.dataNamespace(b);
  equal(f.ids.dataNamespace(a), na);
  await na.set(["profile"], { owner: "a" });
  await nb.set(["profile"], { owner: "b" });
  eql(await na.get(["profile"]), { owner: "a" });
  eql(await nb.get(["profile"]), { owner: "b" });
  notDeepStrictEqual(na.kvKey(["profile"]), nb.kvKey(["profile"]));
  await na.set(["only-a"], 1);
  equal(await nb.get(["only-a"]), undefined);
  equal((await Array.fromAsync(nb.list([]))).length, 1);
  // b's record copied over a's fails to open in a's namespace
  await f.t.store.raw.set(na.kvKey(["profile"]), await rawRecord(f.t.store.raw, nb.kvKey(["profile"])));
  await rejects(na.get(["profile"]), IntegrityError);
  await rejects(Array.fromAsync(na.list([])), IntegrityError);
  // the identity records themselves live in neither data namespace
  const errors: Error[] = [];
  eql((await Array.fromAsync(na.list([], { onError: (e) => errors.push(e) }))).map((e) => e.key), [["only-a"]]);
  equal(errors.length, 1);
});

Deno.test("identities, the active one and their data persist across reopening the store", async () => {
  await using f = await fixture();
  await f.ids.create("one");
  const two = await f.ids.create("two");
  await f.ids.create("three");
  await f.ids.switch("two");
  await f.ids.dataNamespace(two).set(["note"], "kept");
  const listed = f.ids.list();
  const signature = two.sign(utf8("m"));
  f.ids.close();
  f.t.store.close();

  const store = await f.t.reopen();
  const again = await IdentityStore.open(store);
  try {
    eql(again.list(), listed);
    equal(again.active().name, "two");
    eql(again.active().sign(utf8("m")), signature);
    equal(await again.dataNamespace(again.active()).get(["note"]), "kept");
  } finally {
    again.close();
  }
});

Deno.test("a store reopened with another master key loads no identities", async () => {
  await using f = await fixture();
  await f.ids.create("hidden");
  f.ids.close();
  f.t.store.close();
  const wrong = await f.t.reopen(MASTER_B);
  const ids = await IdentityStore.open(wrong);
  equal(ids.size, 0);
  throws(() => ids.active(), NotFoundError);
  ids.close();
});

Deno.test("identity records are sealed: neither names nor secrets appear in the raw KV file", async () => {
  await using f = await fixture();
  const id = await f.ids.create("very-distinctive-name");
  const record = id.toRecord();
  for (const { key, value } of await rawEntries(f.t.store.raw)) {
    for (const needle of [utf8("very-distinctive-name"), utf8(id.nodeId), record.seed, record.x25519Secret]) {
      ok(!containsBytes(value as Uint8Array, needle));
      for (const part of key) ok(!(part instanceof Uint8Array) || !containsBytes(part, needle.subarray(0, 16)));
    }
  }
});

Deno.test("close() wipes the secrets of every loaded identity", async () => {
  await using f = await fixture();
  const id = await f.ids.create("wiped");
  f.ids.close();
  eql(id.toRecord().seed, new Uint8Array(32));
  equal(f.ids.size, 0);
});

Deno.test("two creations of one name at once leave one identity and a ConflictError", async () => {
  await using t = await tempStore();
  const ids = await IdentityStore.open(t.store);
  const results = await Promise.allSettled([ids.create("twin"), ids.create("twin")]);
  equal(results.filter((r) => r.status === "fulfilled").length, 1);
  const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
  ok(rejected.reason instanceof ConflictError);
  equal(ids.list().filter((i) => i.name === "twin").length, 1);
});
