import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import { concat } from "../../../../kernel/bytes.ts";
import { Identity } from "../../../../kernel/identity/identity.ts";
import {
  introduction,
  MAX_RECORD_SIZE,
  mutableKey,
  peerKey,
  peerRecord,
  serviceKey,
  serviceRecord,
  signRecord,
} from "../../../../kernel/discovery/record.ts";
import { ERROR_CODES } from "../../../../kernel/discovery/dht/message.ts";
import { RecordStore } from "../../../../kernel/discovery/dht/record_store.ts";

const alice = Identity.generate("alice");
const now = 1_800_000_000_000;
const name = new TextEncoder().encode("profile");
const mutable = (seq: number, value = "v", expires = now + 3600_000) =>
  signRecord(alice, { kind: "mutable", seq, expires, name, value: new TextEncoder().encode(value) });
const key = mutableKey(alice.publicKey, name);

Deno.test("put() keeps the newest record of a slot: a higher seq replaces it, the same bytes refresh it", () => {
  const store = new RecordStore();
  eql(store.put(key, mutable(1).bytes, now), { ok: true, result: "added" });
  eql(store.put(key, mutable(2, "w").bytes, now), { ok: true, result: "replaced" });
  eql(store.put(key, mutable(2, "w").bytes, now + 1), { ok: true, result: "refreshed" });
  equal(store.size, 1);
  equal(store.get(key, now)[0].seq, 2);
});

Deno.test("put() refuses a stale record, and one of equal seq with other bytes, naming why", () => {
  const store = new RecordStore();
  store.put(key, mutable(5).bytes, now);
  const stale = store.put(key, mutable(4).bytes, now);
  ok(!stale.ok && stale.code === ERROR_CODES.stale && /seq 4.*seq 5/.test(stale.reason));
  const conflict = store.put(key, mutable(5, "other").bytes, now);
  ok(!conflict.ok && conflict.code === ERROR_CODES.stale);
});

Deno.test("put() refuses forged, expired, too long-lived, oversized and introduction records and a foreign key", () => {
  const store = new RecordStore();
  const forged = mutable(1).bytes.slice();
  forged[forged.length - 1] ^= 1;
  const refusals: [Uint8Array, Uint8Array, number, RegExp][] = [
    [key, forged, ERROR_CODES.refusedRecord, /forged/],
    [key, mutable(1, "v", now - 1).bytes, ERROR_CODES.refusedRecord, /expired/],
    [key, mutable(1, "v", now + 25 * 3600_000).bytes, ERROR_CODES.refusedRecord, /too-long-lived/],
    [key, concat(mutable(1).bytes, new Uint8Array(MAX_RECORD_SIZE)), ERROR_CODES.tooLarge, /limit is 1080/],
    [key, new Uint8Array([1, 2, 3]), ERROR_CODES.refusedRecord, /malformed/],
    [peerKey(alice.publicKey), mutable(1).bytes, ERROR_CODES.refusedRecord, /not stored under this key/],
  ];
  const intro = introduction(alice, Identity.generate("bob").publicKey, ["udp://192.0.2.1:1"], { now });
  refusals.push([key, intro.bytes, ERROR_CODES.refusedRecord, /introduction/]);
  for (const [k, bytes, code, reason] of refusals) {
    const outcome = store.put(k, bytes, now);
    ok(!outcome.ok, String(reason));
    equal(outcome.code, code, String(reason));
    ok(reason.test(outcome.reason), `${outcome.reason} ~ ${reason}`);
  }
  equal(store.size, 0);
});

Deno.test("a service record is stored under each of its tags' keys, and a key holds at most maxPerKey slots", () => {
  const store = new RecordStore({ maxPerKey: 3 });
  const tag = "storage:blob";
  for (let i = 0; i < 3; i++) {
    const r = serviceRecord(Identity.generate(`s${i}`), { name: "blobs", tags: [tag, "x"], protocol: "nz/blob/1" }, {
      now,
    });
    ok(store.put(serviceKey(tag), r.bytes, now).ok);
    ok(store.put(serviceKey("x"), r.bytes, now).ok);
  }
  const fourth = serviceRecord(Identity.generate("s3"), { name: "blobs", tags: [tag], protocol: "" }, { now });
  const full = store.put(serviceKey(tag), fourth.bytes, now);
  ok(!full.ok && full.code === ERROR_CODES.full);
  equal(store.get(serviceKey(tag), now).length, 3);
});

Deno.test("the byte cap refuses a record that would pass it, and expired records are dropped", () => {
  const peer = peerRecord(alice, ["udp://192.0.2.1:7475"], { now, ttlMs: 1000 });
  const store = new RecordStore({ maxBytes: peer.bytes.length });
  ok(store.put(peerKey(alice.publicKey), peer.bytes, now).ok);
  const other = peerRecord(Identity.generate("b"), ["udp://192.0.2.2:7475"], { now });
  const full = store.put(peerKey(other.publicKey), other.bytes, now);
  ok(!full.ok && full.code === ERROR_CODES.full);
  equal(store.get(peerKey(alice.publicKey), now + 999).length, 1);
  equal(store.get(peerKey(alice.publicKey), now + 1000).length, 0, "expired at its expiry");
  equal(store.bytes, 0);
  ok(store.put(peerKey(other.publicKey), other.bytes, now + 1000).ok, "its bytes are free again");
});
