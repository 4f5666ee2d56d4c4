/**
 * The encrypted store on real Deno KV files: values of every type round-trip,
 * namespaces stay apart, and every raw-level change (move, copy, flip,
 * truncate, missing chunk) is reported as IntegrityError, never returned.
 */

import { deepStrictEqual as eql, equal, notDeepStrictEqual, ok, rejects } from "node:assert/strict";
import fc from "fast-check";
import { CHUNK_SIZE, type Key, type KeyPart } from "../../../kernel/storage/encrypted_kv.ts";
import { encodeKey, encodeValue } from "../../../kernel/storage/value_codec.ts";
import { IntegrityError } from "../../../kernel/errors.ts";
import { utf8 } from "../../../kernel/bytes.ts";
import { containsBytes, flipRawByte, keyId, MASTER_B, moveRaw, rawEntries, rawRecord, tempStore } from "./_helpers.ts";

function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

async function chunkEntries(kv: Deno.Kv): Promise<Deno.KvEntry<unknown>[]> {
  return await rawEntries(kv, ["c"]);
}

async function listAll<T>(iter: AsyncIterable<{ key: Key; value: T }>): Promise<{ key: Key; value: T }[]> {
  const out = [];
  for await (const entry of iter) out.push(entry);
  return out.sort((a, b) => keyId(a.key).localeCompare(keyId(b.key)));
}

const VALUES: [string, unknown][] = [
  ["a plain object", { name: "alice", age: 42, admin: false }],
  ["a nested structure", { a: [1, [2, [3, { b: "deep" }]]], m: { n: { o: null } } }],
  ["an empty object", {}],
  ["an empty array", []],
  ["a Uint8Array", Uint8Array.of(0, 1, 2, 254, 255)],
  ["an empty Uint8Array", new Uint8Array(0)],
  ["bytes inside an object", { blob: Uint8Array.of(9, 8, 7) }],
  ["a small bigint", 5n],
  ["zero as bigint", 0n],
  ["a negative bigint", -42n],
  ["a bigint past 64 bits", 2n ** 100n + 7n],
  ["a negative bigint past 64 bits", -(2n ** 90n)],
  ["a bigint in an array", [1n, 1, "1"]],
  ["an integer", 12345],
  ["a float", 3.25],
  ["negative zero", -0],
  ["NaN", NaN],
  ["Infinity", -Infinity],
  ["the largest safe integer", Number.MAX_SAFE_INTEGER],
  ["a string", "héllo wörld ✓ 𝄞"],
  ["an empty string", ""],
  ["true", true],
  ["false", false],
  ["null", null],
  ["undefined", undefined],
  ["undefined inside an array", [undefined, null, 0]],
  ["an object with an undefined field", { a: undefined, b: 1 }],
];

for (const [what, value] of VALUES) {
  Deno.test(`get() returns ${what} exactly as it was set`, async () => {
    await using t = await tempStore();
    const ns = t.store.namespace(["values"]);
    await ns.set(["v"], value);
    eql(await ns.get(["v"]), value);
  });
}

Deno.test("get() returns undefined for a key that holds nothing", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["values"]);
  equal(await ns.get(["missing"]), undefined);
  eql(await ns.getMany([["missing"], ["also", "missing"]]), [undefined, undefined]);
});

Deno.test("a stored undefined is read back as undefined, and the key still lists", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["values"]);
  await ns.set(["u"], undefined);
  const listed = await listAll(ns.list([]));
  eql(listed, [{ key: ["u"], value: undefined }]);
});

const KEYS: Key[] = [
  ["text"],
  [""],
  ["1"],
  [1],
  [1n],
  [true],
  ["true"],
  [false],
  [0],
  [-0],
  [0n],
  [1.5],
  [-7],
  [NaN],
  [Infinity],
  [2n ** 80n],
  [-(2n ** 70n)],
  [Uint8Array.of(1)],
  [Uint8Array.of(0x31)],
  [new Uint8Array(0)],
  ["a", "b"],
  ["a/b"],
  ["a", 1, 2n, true, Uint8Array.of(7, 7)],
  ["ünïcødé", "𝄞"],
];

Deno.test("keys of every part type address distinct values", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["keys"]);
  for (let i = 0; i < KEYS.length; i++) await ns.set(KEYS[i], i);
  for (let i = 0; i < KEYS.length; i++) equal(await ns.get(KEYS[i]), i, `key ${keyId(KEYS[i])}`);
  eql(await ns.getMany(KEYS), KEYS.map((_, i) => i));
  const kvKeys = new Set(KEYS.map((k) => keyId(ns.kvKey(k))));
  equal(kvKeys.size, KEYS.length);
});

Deno.test("list() returns the original keys of every part type, and each addresses its value", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["keys"]);
  for (let i = 0; i < KEYS.length; i++) await ns.set(KEYS[i], i);
  const listed = await listAll(ns.list([]));
  eql(listed.map((e) => keyId(e.key)).sort(), KEYS.map(keyId).sort());
  for (const { key, value } of listed) {
    equal(value, KEYS.findIndex((k) => keyId(k) === keyId(key)));
    equal(await ns.get(key), value, `get(${keyId(key)}) with the listed key`);
  }
});

Deno.test("list() by prefix returns only the entries under that prefix", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["people"]);
  const users: [Key, unknown][] = [
    [["users", "alice"], { n: 1 }],
    [["users", "bob"], { n: 2 }],
    [["users", 7n], { n: 3 }],
    [["users", 3, "deep"], { n: 4 }],
    [["users", Uint8Array.of(1, 2)], { n: 5 }],
  ];
  for (const [key, value] of users) await ns.set(key, value);
  await ns.set(["groups", "admins"], ["alice"]);
  await ns.set(["users"], "the prefix itself");
  await ns.set(["usersX", "carol"], "a longer first part");
  await t.store.namespace(["other"]).set(["users", "mallory"], "another namespace");

  const listed = await listAll(ns.list(["users"]));
  eql(listed, users.map(([key, value]) => ({ key, value })).sort((a, b) => keyId(a.key).localeCompare(keyId(b.key))));
  eql((await listAll(ns.list(["users", 3]))).map((e) => e.key), [["users", 3, "deep"]]);
  equal((await listAll(ns.list([]))).length, users.length + 3);
  equal((await listAll(ns.list(["users"], { limit: 2 }))).length, 2);
  eql(await listAll(ns.list(["nobody"])), []);
});

Deno.test("the same key in two namespaces has different Deno KV keys and different ciphertext", async () => {
  await using t = await tempStore();
  const a = t.store.namespace(["a"]), b = t.store.namespace(["b"]);
  await a.set(["k"], "same value");
  await b.set(["k"], "same value");
  notDeepStrictEqual(a.kvKey(["k"]), b.kvKey(["k"]));
  const ra = await rawRecord(t.store.raw, a.kvKey(["k"])), rb = await rawRecord(t.store.raw, b.kvKey(["k"]));
  notDeepStrictEqual(ra.subarray(2), rb.subarray(2));
  await a.set(["k"], "a's value");
  equal(await a.get(["k"]), "a's value");
  equal(await b.get(["k"]), "same value");
  await a.delete(["k"]);
  equal(await b.get(["k"]), "same value");
});

Deno.test("namespaces whose names share a prefix stay apart", async () => {
  await using t = await tempStore();
  const a = t.store.namespace(["app"]), ab = t.store.namespace(["app", "sub"]), s = t.store.namespace(["app/sub"]);
  await a.set(["sub", "k"], 1);
  await ab.set(["k"], 2);
  await s.set(["k"], 3);
  eql([await a.get(["sub", "k"]), await ab.get(["k"]), await s.get(["k"])], [1, 2, 3]);
  equal((await listAll(a.list([]))).length, 1);
});

Deno.test("get() rejects a value copied raw from one namespace to the same key of another", async () => {
  await using t = await tempStore();
  const a = t.store.namespace(["a"]), b = t.store.namespace(["b"]);
  await a.set(["k"], "written in a");
  await b.set(["k"], "written in b");
  await t.store.raw.set(b.kvKey(["k"]), await rawRecord(t.store.raw, a.kvKey(["k"])));
  await rejects(b.get(["k"]), IntegrityError);
  await rejects(listAll(b.list([])), IntegrityError);
  equal(await a.get(["k"]), "written in a");
});

Deno.test("get() rejects a value moved to another key", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  await ns.set(["balance", "alice"], 100);
  await ns.set(["balance", "bob"], 5);
  await moveRaw(t.store.raw, ns.kvKey(["balance", "alice"]), ns.kvKey(["balance", "bob"]));
  await rejects(ns.get(["balance", "bob"]), IntegrityError);
  equal(await ns.get(["balance", "alice"]), undefined);
});

Deno.test("get() rejects a value moved to a key that held nothing", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  await ns.set(["x"], "value of x");
  await moveRaw(t.store.raw, ns.kvKey(["x"]), ns.kvKey(["y"]));
  await rejects(ns.get(["y"]), IntegrityError);
  await rejects(ns.getMany([["y"]]), IntegrityError);
  await rejects(listAll(ns.list([])), IntegrityError);
});

Deno.test("get() rejects a record with a flipped bit at any byte", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  await ns.set(["k"], { secret: "flip me" });
  const kvKey = ns.kvKey(["k"]);
  const original = await rawRecord(t.store.raw, kvKey);
  for (let i = 0; i < original.length; i++) {
    await flipRawByte(t.store.raw, kvKey, i);
    await rejects(ns.get(["k"]), IntegrityError, `flipped byte ${i} of ${original.length}`);
    await t.store.raw.set(kvKey, original);
  }
  eql(await ns.get(["k"]), { secret: "flip me" });
});

Deno.test("get() rejects a truncated record of any length", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  await ns.set(["k"], "truncate me");
  const kvKey = ns.kvKey(["k"]);
  const original = await rawRecord(t.store.raw, kvKey);
  for (let length = 0; length < original.length; length++) {
    await t.store.raw.set(kvKey, original.slice(0, length));
    await rejects(ns.get(["k"]), IntegrityError, `truncated to ${length} of ${original.length}`);
  }
  await t.store.raw.set(kvKey, original);
  equal(await ns.get(["k"]), "truncate me");
});

Deno.test("get(), getMany() and list() reject a raw value that is not a byte record", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  for (const raw of ["a string", 12, { length: 100 }, [1, 0]]) {
    await t.store.raw.set(ns.kvKey(["k"]), raw);
    await rejects(ns.get(["k"]), IntegrityError, JSON.stringify(raw));
    await rejects(ns.getMany([["k"]]), IntegrityError, JSON.stringify(raw));
    await rejects(listAll(ns.list([])), IntegrityError, JSON.stringify(raw));
  }
});

Deno.test("list() with onError skips and reports each entry that fails authentication", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  for (const k of ["a", "b", "c", "d"]) await ns.set([k], k.toUpperCase());
  await flipRawByte(t.store.raw, ns.kvKey(["b"]), -1);
  await t.store.raw.set(ns.kvKey(["d"]), "not a record");
  const errors: Error[] = [];
  const listed = await listAll(ns.list([], { onError: (e) => errors.push(e) }));
  eql(listed, [{ key: ["a"], value: "A" }, { key: ["c"], value: "C" }]);
  equal(errors.length, 2);
  ok(errors.every((e) => e instanceof IntegrityError));
  await rejects(listAll(ns.list([])), IntegrityError);
});

Deno.test("get() rejects a record with an appended byte", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  await ns.set(["k"], "extend me");
  const kvKey = ns.kvKey(["k"]);
  const original = await rawRecord(t.store.raw, kvKey);
  await t.store.raw.set(kvKey, Uint8Array.of(...original, 0));
  await rejects(ns.get(["k"]), IntegrityError);
});

for (const [label, size] of [["200 KiB", 200 * 1024], ["2 MiB", 2 * 1024 * 1024]] as const) {
  Deno.test(`a ${label} value round-trips and is stored in chunks`, async () => {
    await using t = await tempStore();
    const ns = t.store.namespace(["big"]);
    const value = randomBytes(size);
    await ns.set(["blob"], value);
    eql(await ns.get(["blob"]), value);
    const expected = Math.ceil(encodeValue(value).length / CHUNK_SIZE);
    const chunks = await chunkEntries(t.store.raw);
    equal(chunks.length, expected);
    for (const c of chunks) ok((c.value as Uint8Array).length <= 65_536);
    eql(await listAll(ns.list([])), [{ key: ["blob"], value }]);
    eql(await ns.getMany([["blob"], ["none"]]), [value, undefined]);
  });
}

Deno.test("a large object with a long string round-trips after reopening", async () => {
  await using t = await tempStore();
  const value = { text: "nzcore ".repeat(40_000), list: Array.from({ length: 5000 }, (_, i) => i) };
  await t.store.namespace(["big"]).set(["doc"], value);
  t.store.close();
  const again = await t.reopen();
  eql(await again.namespace(["big"]).get(["doc"]), value);
});

Deno.test("values on both sides of the inline size limit round-trip", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["edge"]);
  const key: Key = ["edge"];
  // find the largest byte value that stays inline, then test around it
  let inlineMax = 0;
  for (let n = 65_400; n < 65_600; n++) {
    // plaintext = u16 key length || encodeKey(key) || CBOR(value); record = 2-byte header, 24-byte nonce, tag
    const inline = 2 + encodeKey(key).length + encodeValue(new Uint8Array(n)).length + 2 + 24 + 16;
    if (inline <= 65_536) inlineMax = n;
  }
  ok(inlineMax > 0);
  for (const n of [inlineMax - 1, inlineMax, inlineMax + 1, inlineMax + 2]) {
    const value = randomBytes(n);
    await ns.set(key, value);
    eql(await ns.get(key), value, `size ${n}`);
    equal((await chunkEntries(t.store.raw)).length > 0, n > inlineMax, `size ${n} chunked`);
  }
});

async function bigValueStore() {
  const t = await tempStore();
  const ns = t.store.namespace(["big"]);
  const value = randomBytes(300_000);
  await ns.set(["blob"], value);
  const chunks = await chunkEntries(t.store.raw);
  ok(chunks.length >= 4);
  return { t, ns, value, chunks };
}

Deno.test("get() rejects a large value with a missing chunk", async () => {
  const { t, ns, chunks } = await bigValueStore();
  await using _ = t;
  for (const index of [0, 2, chunks.length - 1]) {
    const chunk = chunks.find((c) => c.key.at(-1) === index)!;
    await t.store.raw.delete(chunk.key);
    await rejects(ns.get(["blob"]), IntegrityError, `chunk ${index} deleted`);
    await t.store.raw.set(chunk.key, chunk.value);
  }
});

Deno.test("get() rejects a large value with a tampered chunk", async () => {
  const { t, ns, value, chunks } = await bigValueStore();
  await using _ = t;
  for (const chunk of chunks) {
    for (const index of [0, 1, 2, 20, 40, 1000, -17, -1]) {
      await flipRawByte(t.store.raw, chunk.key, index);
      await rejects(ns.get(["blob"]), IntegrityError, `chunk ${String(chunk.key.at(-1))} byte ${index}`);
      await t.store.raw.set(chunk.key, chunk.value);
    }
  }
  eql(await ns.get(["blob"]), value);
});

Deno.test("get() rejects a large value whose chunks were swapped or truncated", async () => {
  const { t, ns, chunks } = await bigValueStore();
  await using _ = t;
  const [c0, c1] = [chunks.find((c) => c.key.at(-1) === 0)!, chunks.find((c) => c.key.at(-1) === 1)!];
  await t.store.raw.atomic().set(c0.key, c1.value).set(c1.key, c0.value).commit();
  await rejects(ns.get(["blob"]), IntegrityError);
  await t.store.raw.atomic().set(c0.key, c0.value).set(c1.key, c1.value).commit();
  await t.store.raw.set(c1.key, (c1.value as Uint8Array).slice(0, 1000));
  await rejects(ns.get(["blob"]), IntegrityError);
});

Deno.test("get() rejects a large value whose manifest has a flipped bit at any byte", async () => {
  const { t, ns, value } = await bigValueStore();
  await using _ = t;
  const kvKey = ns.kvKey(["blob"]);
  const original = await rawRecord(t.store.raw, kvKey);
  for (let i = 0; i < original.length; i++) {
    await flipRawByte(t.store.raw, kvKey, i);
    await rejects(ns.get(["blob"]), IntegrityError, `flipped manifest byte ${i}`);
    await t.store.raw.set(kvKey, original);
  }
  eql(await ns.get(["blob"]), value);
});

Deno.test("get() rejects a large value whose chunks were replaced by another value's chunks", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["big"]);
  await ns.set(["one"], randomBytes(150_000));
  await ns.set(["two"], randomBytes(150_000));
  const chunks = await chunkEntries(t.store.raw);
  const oneKey = ns.kvKey(["one"]);
  const ofOne = chunks.filter((c) => keyId(c.key.slice(1, oneKey.length)) === keyId(oneKey.slice(1)));
  const ofTwo = chunks.filter((c) => !ofOne.includes(c));
  equal(ofOne.length, ofTwo.length);
  for (let i = 0; i < ofOne.length; i++) await t.store.raw.set(ofOne[i].key, ofTwo[i].value);
  await rejects(ns.get(["one"]), IntegrityError);
});

Deno.test("overwriting a large value with a small one, then collectGarbage(), removes the old chunks", async () => {
  const { t, ns } = await bigValueStore();
  await using _ = t;
  await ns.set(["blob"], "small now");
  const before = (await chunkEntries(t.store.raw)).length;
  equal(await t.store.collectGarbage(), before);
  eql(await chunkEntries(t.store.raw), []);
  equal(await ns.get(["blob"]), "small now");
});

Deno.test("overwriting a large value with another large value keeps only the new chunks", async () => {
  const { t, ns } = await bigValueStore();
  await using _ = t;
  const next = randomBytes(130_000);
  await ns.set(["blob"], next);
  equal((await chunkEntries(t.store.raw)).length, Math.ceil(encodeValue(next).length / CHUNK_SIZE));
  equal(await t.store.collectGarbage(), 0);
  eql(await ns.get(["blob"]), next);
});

Deno.test("collectGarbage() keeps the chunks of live values", async () => {
  const { t, ns, value, chunks } = await bigValueStore();
  await using _ = t;
  await t.store.namespace(["other"]).set(["blob"], randomBytes(100_000));
  equal(await t.store.collectGarbage(), 0);
  equal((await chunkEntries(t.store.raw)).length, chunks.length + 2);
  eql(await ns.get(["blob"]), value);
});

Deno.test("collectGarbage() removes chunks whose manifest was never committed", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["big"]);
  await ns.set(["kept"], randomBytes(100_000));
  const live = (await chunkEntries(t.store.raw)).length;
  const sealed = ns.seal(["crashed"], randomBytes(200_000));
  await t.store.writeChunks(sealed.chunks);
  equal((await chunkEntries(t.store.raw)).length, live + sealed.chunks.length);
  equal(await ns.get(["crashed"]), undefined);
  equal(await t.store.collectGarbage(), sealed.chunks.length);
  equal((await chunkEntries(t.store.raw)).length, live);
  ok(await ns.get(["kept"]));
});

Deno.test("delete() removes a large value and all of its chunks", async () => {
  const { t, ns } = await bigValueStore();
  await using _ = t;
  await ns.delete(["blob"]);
  equal(await ns.get(["blob"]), undefined);
  eql(await rawEntries(t.store.raw), []);
  await ns.delete(["blob"]);
  await ns.delete(["never", "existed"]);
});

Deno.test("an atomic batch across namespaces commits every write and delete", async () => {
  await using t = await tempStore();
  const a = t.store.namespace(["a"]), b = t.store.namespace(["b"]);
  await a.set(["gone"], "delete me");
  const big = randomBytes(180_000);
  await t.store.atomic()
    .set(a, ["x"], 1)
    .set(b, ["y"], { two: 2 })
    .set(b, ["big"], big)
    .delete(a, ["gone"])
    .commit();
  equal(await a.get(["x"]), 1);
  eql(await b.get(["y"]), { two: 2 });
  eql(await b.get(["big"]), big);
  equal(await a.get(["gone"]), undefined);
  equal(await b.get(["x"]), undefined);
});

Deno.test("an atomic batch that Deno KV rejects changes no value", async () => {
  await using t = await tempStore();
  const a = t.store.namespace(["a"]);
  await a.set(["x"], "before");
  // 1001 mutations exceed Deno KV's limit of 1000 per atomic operation
  const batch = t.store.atomic().set(a, ["x"], "after");
  for (let i = 0; i < 1000; i++) batch.set(a, ["n", i], i);
  await rejects(batch.commit());
  equal(await a.get(["x"]), "before");
  equal(await a.get(["n", 0]), undefined);
});

Deno.test("the raw KV file holds no plaintext of a known value or key string", async () => {
  await using t = await tempStore();
  const markers = ["namespace-marker-7d1f", "key-marker-b4c2e9", "value-marker-9a0e63", "chunked-marker-55ce1a"];
  const ns = t.store.namespace(["tenant", markers[0]]);
  await ns.set(["users", markers[1]], { text: markers[2], bytes: utf8(markers[2]) });
  await ns.set(["files", markers[1], "big"], markers[3].repeat(20_000));
  await ns.set([utf8(markers[1])], markers[2]);
  const needles = [...markers, "users", "files", "tenant"].map(utf8);

  const entries = await rawEntries(t.store.raw);
  ok(entries.length > 3);
  for (const { key, value } of entries) {
    for (const part of key) {
      const bytes = part instanceof Uint8Array ? part : utf8(String(part));
      for (const needle of needles) {
        ok(!containsBytes(bytes, needle), `key part holds ${new TextDecoder().decode(needle)}`);
      }
      if (typeof part === "string") ok(["v", "c", "g"].includes(part), `clear key part "${part}"`);
    }
    ok(value instanceof Uint8Array);
    for (const needle of needles) ok(!containsBytes(value, needle), `value holds ${new TextDecoder().decode(needle)}`);
  }

  t.store.close();
  let scanned = 0;
  for (const suffix of ["", "-wal", "-shm"]) {
    let file: Uint8Array;
    try {
      file = await Deno.readFile(t.path + suffix);
    } catch {
      continue;
    }
    scanned += file.length;
    for (const needle of needles) {
      ok(!containsBytes(file, needle), `${suffix || "db"} file holds ${new TextDecoder().decode(needle)}`);
    }
  }
  ok(scanned > 100_000);
});

Deno.test("a store reopened with a different master key finds nothing and cannot open the old records", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  await ns.set(["k"], "secret");
  await ns.set(["big"], randomBytes(100_000));
  const oldKvKey = ns.kvKey(["k"]);
  const record = await rawRecord(t.store.raw, oldKvKey);
  t.store.close();

  const wrong = await t.reopen(MASTER_B);
  const wns = wrong.namespace(["ns"]);
  equal(await wns.get(["k"]), undefined);
  eql(await listAll(wns.list([])), []);
  // the old record placed where the wrong key looks for it does not open
  await wrong.raw.set(wns.kvKey(["k"]), record);
  await rejects(wns.get(["k"]), IntegrityError);
  await wrong.raw.delete(wns.kvKey(["k"]));
  // garbage collection under the wrong key still recognises the live manifest
  equal(await wrong.collectGarbage(), 0);
  wrong.close();

  const right = await t.reopen();
  equal(await right.namespace(["ns"]).get(["k"]), "secret");
  equal(((await right.namespace(["ns"]).get(["big"])) as Uint8Array).length, 100_000);
});

Deno.test("open() rejects a master key of the wrong length", async () => {
  const { EncryptedStore } = await import("../../../kernel/storage/encrypted_kv.ts");
  await rejects(EncryptedStore.open(undefined, new Uint8Array(16)), RangeError);
});

Deno.test("kvKey() rejects an empty key", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["ns"]);
  await rejects(ns.set([], 1), RangeError);
  await rejects(ns.get([]), RangeError);
});

Deno.test("stats() reports the path and a positive size of a file store", async () => {
  await using t = await tempStore();
  await t.store.namespace(["ns"]).set(["k"], "v");
  const stats = await t.store.stats();
  equal(stats.path, t.path);
  ok(stats.bytes > 0);
});

const keyPart: fc.Arbitrary<KeyPart> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.double(),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }),
  fc.boolean(),
  fc.uint8Array({ maxLength: 12 }),
);

const { value: valueArb } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.uint8Array({ maxLength: 64 }),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("value"), { maxKeys: 4, noNullPrototype: true }),
  ),
}));

Deno.test("property: random keys and values round-trip through set(), get(), getMany() and list()", async () => {
  await using t = await tempStore();
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(keyPart, { minLength: 1, maxLength: 4 }), valueArb, async (key, value) => {
      const ns = t.store.namespace(["prop", run++]);
      await ns.set(key, value);
      eql(await ns.get(key), value);
      eql(await ns.getMany([key]), [value]);
      const listed = await listAll(ns.list(key.slice(0, -1)));
      equal(listed.length, 1);
      equal(keyId(listed[0].key), keyId(key));
      eql(listed[0].value, value);
    }),
    { numRuns: 150 },
  );
});

Deno.test("concurrent writes and deletes of one large value never leave it without its chunks", async () => {
  await using t = await tempStore();
  const ns = t.store.namespace(["race"]);
  for (let round = 0; round < 10; round++) {
    const a = new Uint8Array(150_000).fill(1), b = new Uint8Array(150_000).fill(2);
    await Promise.all([ns.set(["k"], a), ns.set(["k"], b)]);
    const v = await ns.get<Uint8Array>(["k"]);
    ok(v && (v[0] === 1 || v[0] === 2) && v.every((x) => x === v[0]), "one of the two whole values");
    await Promise.all([ns.set(["k"], a), ns.delete(["k"])]);
    const after = await ns.get<Uint8Array>(["k"]);
    ok(after === undefined || after[0] === 1);
  }
  equal(await t.store.collectGarbage(), 0, "no chunk was left behind");
});
