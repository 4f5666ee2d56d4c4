/**
 * The hash-chained, signed event log on a real Deno KV file: appends chain,
 * checkpoints are signed, and verify() reports (never throws on) tampered,
 * reordered, missing and extra entries and bad checkpoints.
 */

import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import {
  type Checkpoint,
  checkpointMessage,
  EventLog,
  type EventLogOptions,
  hashEntry,
  type LogEntry,
  type VerifyReport,
} from "../../../kernel/storage/event_log.ts";
import type { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { IntegrityError } from "../../../kernel/errors.ts";
import { flipRawByte, rawRecord, tempStore } from "./_helpers.ts";

const NAME = "audit";

function fakeClock(start = 1_700_000_000_000): () => number {
  let now = start;
  return () => now++;
}

async function openLog(store: EncryptedStore, signer: Identity, options: EventLogOptions = {}): Promise<EventLog> {
  return await EventLog.open(store, NAME, signer, { now: fakeClock(), ...options });
}

async function readAll(log: EventLog): Promise<LogEntry[]> {
  const out = [];
  for await (const entry of log.read()) out.push(entry);
  return out;
}

/** A store with a log of `count` entries; raw keys of the log's records come from `kv()`. */
async function logWith(count: number, options: EventLogOptions = {}) {
  const t = await tempStore();
  const signer = Identity.generate("signer", 1);
  const log = await openLog(t.store, signer, options);
  for (let i = 0; i < count; i++) await log.append("test", { i });
  const ns = t.store.namespace(["log", NAME]);
  return {
    t,
    log,
    signer,
    ns,
    kv: (key: (string | number)[]) => ns.kvKey(key),
    async [Symbol.asyncDispose]() {
      signer.wipe();
      await t[Symbol.asyncDispose]();
    },
  };
}

function assertProblem(report: VerifyReport, pattern: RegExp): void {
  equal(report.ok, false, "verify() reported ok");
  ok(report.problems.some((p) => pattern.test(p)), `no problem matches ${pattern}: ${JSON.stringify(report.problems)}`);
}

Deno.test("append() chains each entry to the hash of the previous one, and verify() reports ok", async () => {
  await using f = await logWith(0);
  const appended = [];
  for (let i = 0; i < 10; i++) appended.push(await f.log.append(i % 2 ? "odd" : "even", { i, big: 2n ** 70n }));
  equal(f.log.length, 10);
  const entries = await readAll(f.log);
  eql(entries, appended);
  eql(entries[0].prev, new Uint8Array(32));
  for (let i = 0; i < entries.length; i++) {
    equal(entries[i].seq, i);
    if (i > 0) eql(entries[i].prev, hashEntry(entries[i - 1]));
  }
  eql(await f.log.verify(), { ok: true, entries: 10, checkpoints: 0, problems: [] });
});

Deno.test("an empty log has length 0, reads nothing and verifies", async () => {
  await using f = await logWith(0);
  equal(f.log.length, 0);
  eql(await readAll(f.log), []);
  eql(await f.log.verify(), { ok: true, entries: 0, checkpoints: 0, problems: [] });
  equal(await f.log.checkpoint(), undefined);
});

Deno.test("read() returns a range of entries in order", async () => {
  await using f = await logWith(25);
  const some = [];
  for await (const e of f.log.read(7, 19)) some.push(e.seq);
  eql(some, Array.from({ length: 12 }, (_, i) => i + 7));
});

Deno.test("a checkpoint is signed every N entries over the chain's hash", async () => {
  await using f = await logWith(10, { checkpointEvery: 4 });
  const entries = await readAll(f.log);
  for (const seq of [3, 7]) {
    const cp = await f.ns.get<Checkpoint>(["cp", seq]);
    ok(cp, `checkpoint at ${seq}`);
    equal(cp.seq, seq);
    eql(cp.hash, hashEntry(entries[seq]));
    eql(cp.publicKey, f.signer.publicKey);
    ok(Identity.verify(f.signer.publicKey, checkpointMessage(NAME, seq, cp.hash), cp.signature));
  }
  for (const seq of [0, 1, 2, 4, 5, 6, 8, 9]) equal(await f.ns.get(["cp", seq]), undefined);
  const report = await f.log.verify();
  eql(report, { ok: true, entries: 10, checkpoints: 2, problems: [] });
});

Deno.test("checkpoint() signs the current head once", async () => {
  await using f = await logWith(5, { checkpointEvery: 100 });
  const cp = await f.log.checkpoint();
  ok(cp);
  equal(cp.seq, 4);
  eql(cp.hash, hashEntry((await readAll(f.log))[4]));
  eql(await f.log.checkpoint(), cp);
  eql(await f.log.verify(), { ok: true, entries: 5, checkpoints: 1, problems: [] });
});

Deno.test("the log reopens with its length and continues the chain", async () => {
  await using f = await logWith(6, { checkpointEvery: 4 });
  f.t.store.close();
  const store = await f.t.reopen();
  const log = await openLog(store, f.signer, { checkpointEvery: 4 });
  equal(log.length, 6);
  const next = await log.append("after-reopen", null);
  equal(next.seq, 6);
  await log.append("more", null);
  eql(await log.verify(), { ok: true, entries: 8, checkpoints: 2, problems: [] });
});

Deno.test("concurrent appends are serialised into contiguous entries", async () => {
  await using f = await logWith(0, { checkpointEvery: 10 });
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => f.log.append("burst", { i })));
  eql(results.map((e) => e.seq), Array.from({ length: 50 }, (_, i) => i));
  eql(results.map((e) => (e.data as { i: number }).i), Array.from({ length: 50 }, (_, i) => i));
  equal(f.log.length, 50);
  const entries = await readAll(f.log);
  eql(entries.map((e) => e.seq), Array.from({ length: 50 }, (_, i) => i));
  eql(await f.log.verify(), { ok: true, entries: 50, checkpoints: 5, problems: [] });
});

Deno.test("a failed append leaves the chain intact for the next one", async () => {
  await using f = await logWith(2);
  await rejects(f.log.append("bad", { fn: () => 1 }));
  equal(f.log.length, 2);
  equal((await f.log.append("good", 1)).seq, 2);
  eql(await f.log.verify(), { ok: true, entries: 3, checkpoints: 0, problems: [] });
});

Deno.test("verify() detects an entry with a flipped byte", async () => {
  await using f = await logWith(8);
  await flipRawByte(f.t.store.raw, f.kv(["e", 3]), 40);
  const report = await f.log.verify();
  assertProblem(report, /^entry 3: .*tampered/);
  equal(report.entries, 3);
  await rejects(readAll(f.log), IntegrityError);
});

Deno.test("verify() detects every single-byte flip of an entry record", async () => {
  await using f = await logWith(3);
  const kvKey = f.kv(["e", 1]);
  const original = await rawRecord(f.t.store.raw, kvKey);
  for (let i = 0; i < original.length; i++) {
    await flipRawByte(f.t.store.raw, kvKey, i);
    assertProblem(await f.log.verify(), /^entry 1: /);
    await f.t.store.raw.set(kvKey, original);
  }
  equal((await f.log.verify()).ok, true);
});

Deno.test("verify() detects two entries swapped at the raw level", async () => {
  await using f = await logWith(8);
  const [a, b] = [f.kv(["e", 2]), f.kv(["e", 5])];
  const [ra, rb] = [await rawRecord(f.t.store.raw, a), await rawRecord(f.t.store.raw, b)];
  await f.t.store.raw.atomic().set(a, rb).set(b, ra).commit();
  const report = await f.log.verify();
  assertProblem(report, /^entry 2: /);
  equal(report.entries, 2);
});

Deno.test("verify() detects entries re-sealed in another order by a holder of the store key", async () => {
  await using f = await logWith(6);
  const [e2, e3] = [await f.ns.get<LogEntry>(["e", 2]), await f.ns.get<LogEntry>(["e", 3])];
  await f.ns.set(["e", 2], e3);
  await f.ns.set(["e", 3], e2);
  assertProblem(await f.log.verify(), /^entry 2 carries sequence number 3: entries were reordered/);
});

Deno.test("verify() detects an entry replaced with different content by a holder of the store key", async () => {
  await using f = await logWith(6);
  const e2 = (await f.ns.get<LogEntry>(["e", 2]))!;
  await f.ns.set(["e", 2], { ...e2, data: { i: 999 } });
  assertProblem(await f.log.verify(), /^entry 3 does not chain to entry 2/);

  await using g = await logWith(6);
  const last = (await g.ns.get<LogEntry>(["e", 5]))!;
  await g.ns.set(["e", 5], { ...last, type: "forged" });
  assertProblem(await g.log.verify(), /head does not match the last entry/);
});

Deno.test("verify() detects a deleted middle entry", async () => {
  await using f = await logWith(8);
  await f.t.store.raw.delete(f.kv(["e", 4]));
  const report = await f.log.verify();
  assertProblem(report, /^entry 4 is missing/);
  equal(report.entries, 4);
  await rejects(readAll(f.log), (e: Error) => e instanceof IntegrityError && /entry 4 is missing/.test(e.message));
});

Deno.test("verify() detects a deleted tail entry (truncation)", async () => {
  await using f = await logWith(8);
  await f.t.store.raw.delete(f.kv(["e", 7]));
  assertProblem(await f.log.verify(), /^entry 7 is missing: the log was truncated/);
});

Deno.test("verify() detects the head rolled back to an older raw value", async () => {
  await using f = await logWith(5);
  const oldHead = await rawRecord(f.t.store.raw, f.kv(["head"]));
  for (let i = 0; i < 3; i++) await f.log.append("later", { i });
  await f.t.store.raw.set(f.kv(["head"]), oldHead);
  const report = await f.log.verify();
  assertProblem(report, /^3 entries lie past the head: the head was rolled back/);
  equal(report.entries, 5);
});

Deno.test("verify() detects a rolled-back head with the tail deleted by a checkpoint past the head", async () => {
  await using f = await logWith(5, { checkpointEvery: 4 });
  const oldHead = await rawRecord(f.t.store.raw, f.kv(["head"]));
  for (let i = 0; i < 4; i++) await f.log.append("later", { i });
  await f.t.store.raw.set(f.kv(["head"]), oldHead);
  for (const seq of [5, 6, 7, 8]) await f.t.store.raw.delete(f.kv(["e", seq]));
  assertProblem(await f.log.verify(), /^checkpoint at entry 7 lies past the head: the log was truncated/);
});

Deno.test("verify() detects a deleted head", async () => {
  await using f = await logWith(4);
  await f.t.store.raw.delete(f.kv(["head"]));
  assertProblem(await f.log.verify(), /entries lie past the head/);
});

Deno.test("verify() detects a tampered head", async () => {
  await using f = await logWith(4);
  await flipRawByte(f.t.store.raw, f.kv(["head"]), -3);
  assertProblem(await f.log.verify(), /^head: /);
});

Deno.test("verify() detects a checkpoint signed by an untrusted key", async () => {
  await using f = await logWith(6, { checkpointEvery: 100 });
  const stranger = Identity.generate("stranger", 2);
  try {
    const impostor = await openLog(f.t.store, stranger, { checkpointEvery: 100 });
    const cp = await impostor.checkpoint();
    ok(cp);
    assertProblem(await f.log.verify(), /^checkpoint at entry 5 is signed by an untrusted key/);
    // trusting the stranger's key as well makes the same checkpoint acceptable
    const trusted = await f.log.verify({ publicKeys: [f.signer.publicKey, stranger.publicKey] });
    eql(trusted, { ok: true, entries: 6, checkpoints: 1, problems: [] });
    // and trusting only some other key rejects even the signer's own checkpoints
    assertProblem(await impostor.verify({ publicKeys: [f.signer.publicKey] }), /untrusted key/);
  } finally {
    stranger.wipe();
  }
});

Deno.test("verify() detects a checkpoint with a bad signature", async () => {
  await using f = await logWith(4, { checkpointEvery: 4 });
  const cp = (await f.ns.get<Checkpoint>(["cp", 3]))!;
  const signature = cp.signature.slice();
  signature[10] ^= 1;
  await f.ns.set(["cp", 3], { ...cp, signature });
  assertProblem(await f.log.verify(), /^checkpoint at entry 3 has a bad signature/);
});

Deno.test("verify() detects a correctly signed checkpoint over a hash the chain does not reproduce", async () => {
  await using f = await logWith(4, { checkpointEvery: 100 });
  const hash = new Uint8Array(32).fill(7);
  const signature = f.signer.sign(checkpointMessage(NAME, 2, hash));
  await f.ns.set(["cp", 2], { seq: 2, hash, time: 0, publicKey: f.signer.publicKey, signature });
  assertProblem(await f.log.verify(), /^checkpoint at entry 2 does not match the chain/);
});

Deno.test("verify() detects a checkpoint of another log moved into this one", async () => {
  await using f = await logWith(4, { checkpointEvery: 4 });
  const other = await EventLog.open(f.t.store, "other", f.signer, { now: fakeClock(), checkpointEvery: 4 });
  for (let i = 0; i < 4; i++) await other.append("test", { i });
  const cp = (await f.t.store.namespace(["log", "other"]).get<Checkpoint>(["cp", 3]))!;
  await f.ns.set(["cp", 3], cp);
  assertProblem(await f.log.verify(), /^checkpoint at entry 3 (has a bad signature|does not match the chain)/);
});

Deno.test("verify() reports a tampered checkpoint record", async () => {
  await using f = await logWith(4, { checkpointEvery: 4 });
  await flipRawByte(f.t.store.raw, f.kv(["cp", 3]), 50);
  const report = await f.log.verify();
  assertProblem(report, /^a checkpoint: .*failed authentication/);
  equal(report.entries, 4);
});

Deno.test("appendMany() writes entries in one commit that chain and checkpoint like single appends", async () => {
  await using temp = await tempStore();
  const signer = Identity.generate("log");
  const log = await openLog(temp.store, signer, { checkpointEvery: 3 });
  await log.append("one", { i: 0 });
  const written = await log.appendMany([{ type: "two", data: { i: 1 } }, { type: "three", data: { i: 2 } }]);
  eql(written.map((e) => e.seq), [1, 2]);
  eql(await log.appendMany([]), []);
  equal(log.length, 3);
  const report = await log.verify();
  ok(report.ok, report.problems.join("; "));
  equal(report.checkpoints, 1);
  eql((await readAll(log)).map((e) => e.type), ["one", "two", "three"]);
  await rejects(
    async () => await log.appendMany(Array.from({ length: 257 }, () => ({ type: "x", data: {} }))),
    RangeError,
  );
});
