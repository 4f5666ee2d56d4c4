import { deepEqual, equal, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex, utf8 } from "../../../kernel/bytes.ts";
import { crypto } from "../../../kernel/crypto/default.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import {
  compareRecords,
  decodeAddresses,
  decodeRecord,
  decodeService,
  introduction,
  MAX_RECORD_SIZE,
  mutableKey,
  openRecord,
  peerRecord,
  RecordError,
  recordKeys,
  type RecordKind,
  type RecordSigner,
  sameSlot,
  serviceKey,
  serviceRecord,
  signRecord,
} from "../../../kernel/discovery/record.ts";

interface Vectors {
  now: number;
  signers: Record<string, { seed: string; publicKey: string }>;
  records: {
    name: string;
    kind: RecordKind;
    signer: string;
    seq: number;
    expires: number;
    nameHex: string;
    value: string;
    signedMessage: string;
    bytes: string;
    keys: string[];
    addresses?: string[];
    service?: { name: string; tags: string[]; protocol: string };
  }[];
  refused: { name: string; bytes: string; reason: string }[];
}

const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("../../../spec/vectors/nz_record_01.json", import.meta.url)),
);

/** A signer from a fixed seed through the node's native provider, as an Identity signs. */
function seedSigner(seedHex: string): RecordSigner {
  const seed = fromHex(seedHex);
  return { publicKey: crypto.ed25519PublicKey(seed), sign: (message) => crypto.ed25519Sign(seed, message) };
}

for (const v of vectors.records) {
  Deno.test(`record vector: ${v.name} signs, decodes and opens to the same bytes and keys`, () => {
    const signer = seedSigner(vectors.signers[v.signer].seed);
    equal(toHex(signer.publicKey), vectors.signers[v.signer].publicKey);
    const made = signRecord(signer, {
      kind: v.kind,
      seq: v.seq,
      expires: v.expires,
      name: fromHex(v.nameHex),
      value: fromHex(v.value),
    });
    equal(toHex(made.bytes), v.bytes);
    const opened = openRecord(fromHex(v.bytes), vectors.now);
    equal(opened.kind, v.kind);
    equal(opened.seq, v.seq);
    equal(opened.expires, v.expires);
    equal(toHex(opened.name), v.nameHex);
    equal(toHex(opened.value), v.value);
    deepEqual(recordKeys(opened).map(toHex), v.keys);
    ok(crypto.ed25519Verify(opened.publicKey, fromHex(v.signedMessage), opened.signature));
    if (v.addresses) deepEqual(decodeAddresses(opened.value), v.addresses);
    if (v.service) deepEqual(decodeService(opened), v.service);
  });
}

for (const v of vectors.refused) {
  Deno.test(`record vector: refuses ${v.name} as ${v.reason}`, () => {
    throws(() => openRecord(fromHex(v.bytes), vectors.now), (e: unknown) => {
      ok(e instanceof RecordError, `expected a RecordError, got ${e}`);
      equal(e.reason, v.reason);
      return true;
    });
  });
}

Deno.test("record: a peer record made by an identity opens with its addresses under its node ID", () => {
  const me = Identity.generate("me");
  const record = peerRecord(me, ["udp://203.0.113.7:7475", "tcp://203.0.113.7:7475"], { ttlMs: 60_000 });
  const opened = openRecord(record.bytes);
  deepEqual(decodeAddresses(opened.value), ["udp://203.0.113.7:7475", "tcp://203.0.113.7:7475"]);
  deepEqual(recordKeys(opened).map(toHex), [me.nodeId]);
  ok(opened.expires - opened.seq === 60_000);
});

Deno.test("record: a service record is found under the key of each of its tags", () => {
  const me = Identity.generate("me");
  const record = serviceRecord(me, { name: "printer", tags: ["print", "ipp"], protocol: "" });
  deepEqual(recordKeys(record).map(toHex), [toHex(serviceKey("print")), toHex(serviceKey("ipp"))]);
  deepEqual(decodeService(openRecord(record.bytes)), { name: "printer", tags: ["print", "ipp"], protocol: "" });
});

Deno.test("record: an introduction names the introduced key and is stored under no DHT key", () => {
  const a = Identity.generate("a"), b = Identity.generate("b");
  const intro = openRecord(introduction(a, b.publicKey, ["udp://10.0.0.2:7475"]).bytes);
  deepEqual(intro.name, b.publicKey);
  deepEqual(recordKeys(intro), []);
  ok(intro.expires - intro.seq === 10 * 60_000);
});

Deno.test("record: the newer of one slot wins, the stale and the equal-seq impostor are refused, a republish is equal", () => {
  const me = Identity.generate("me");
  const fields = { kind: "mutable" as const, name: utf8("n"), expires: Date.now() + 60_000 };
  const v1 = signRecord(me, { ...fields, seq: 1, value: utf8("one") });
  const v2 = signRecord(me, { ...fields, seq: 2, value: utf8("two") });
  const v2b = signRecord(me, { ...fields, seq: 2, value: utf8("other") });
  ok(sameSlot(v1, v2));
  equal(compareRecords(v2, v1), 1);
  equal(compareRecords(v1, v2), -1);
  equal(compareRecords(v2b, v2), -1);
  equal(compareRecords(decodeRecord(v2.bytes), v2), 0);
  ok(!sameSlot(v1, signRecord(me, { ...fields, name: utf8("m"), seq: 1, value: utf8("one") })));
  deepEqual(recordKeys(v1), [mutableKey(me.publicKey, utf8("n"))]);
});

Deno.test("record: signing refuses what receivers would refuse, naming the field", () => {
  const me = Identity.generate("me");
  throws(() => peerRecord(me, []), /addresses: 0/);
  throws(() => peerRecord(me, ["no-scheme"]), /address "no-scheme"/);
  throws(() => peerRecord(me, ["udp://x:1"], { ttlMs: 25 * 3600_000 }), /ttlMs/);
  throws(() => serviceRecord(me, { name: "s", tags: ["UPPER"], protocol: "" }), /tag "UPPER"/);
  throws(() => serviceRecord(me, { name: "s", tags: ["a", "a"], protocol: "" }), /appears twice/);
  throws(() => signRecord(me, { kind: "mutable", seq: -1, expires: 1, name: utf8("n"), value: utf8("") }), /seq/);
  throws(() => signRecord(me, { kind: "mutable", seq: 1, expires: 1, value: new Uint8Array(901) }), /value/);
  throws(() => serviceKey(""), /tag/);
});

Deno.test("record: decoding arbitrary bytes either gives a record or a RecordError, never anything else", () => {
  const me = Identity.generate("me");
  const good = serviceRecord(me, { name: "s", tags: ["t"], protocol: "p/1" }).bytes;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: MAX_RECORD_SIZE + 10 }),
        fc.tuple(fc.nat(good.length - 1), fc.nat(255)).map(([i, x]) => {
          const b = good.slice();
          b[i] ^= x || 1;
          return b;
        }),
        fc.nat(good.length).map((n) => good.subarray(0, n)),
      ),
      (bytes) => {
        try {
          openRecord(bytes);
        } catch (error) {
          ok(error instanceof RecordError, `${error}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});
