import { deepStrictEqual as eql, throws } from "node:assert/strict";
import fc from "fast-check";
import { concat, fromHex as hex, toHex } from "../../../kernel/bytes.ts";
import { HandshakeError } from "../../../kernel/channel/errors.ts";
import {
  type Accept,
  decodeAccept,
  decodeFinish,
  decodeOffer,
  encodeAccept,
  encodeFinish,
  encodeOffer,
  type IdentityBlock,
  MAX_FEATURES,
  MAX_VERSIONS,
  normalizeFeatures,
  normalizeVersions,
} from "../../../kernel/channel/handshake_payload.ts";

const ID = new Uint8Array(32).fill(0x11);
const SIG = new Uint8Array(64).fill(0x22);

function malformed(pattern: RegExp) {
  return (e: unknown) => e instanceof HandshakeError && e.reason === "malformed" && pattern.test(e.message);
}

Deno.test("encodeOffer() writes a count and big-endian versions", () => {
  eql(toHex(encodeOffer([1])), "010001");
  eql(toHex(encodeOffer([1, 0x0203, 0xffff])), "0300010203ffff");
});

Deno.test("encodeAccept() and encodeFinish() follow the spec's layout byte for byte", () => {
  const block: IdentityBlock = { identity: ID, signature: SIG, features: ["dht/1", "relay"] };
  const features = "02" + "05" + toHex(new TextEncoder().encode("dht/1")) + "05" +
    toHex(new TextEncoder().encode("relay"));
  eql(toHex(encodeFinish(block)), toHex(ID) + toHex(SIG) + features);
  eql(
    toHex(encodeAccept({ chosen: 2, versions: [1, 2], ...block })),
    "0002" + "0200010002" + toHex(ID) + toHex(SIG) + features,
  );
  eql(toHex(encodeFinish({ identity: ID, signature: SIG, features: [] })), toHex(ID) + toHex(SIG) + "00");
});

Deno.test("encoders refuse values that have no exact encoding", () => {
  throws(() => encodeOffer([]), RangeError);
  throws(() => encodeOffer([2, 1]), /strictly ascending/);
  throws(() => encodeOffer([1, 1]), /strictly ascending/);
  throws(() => encodeOffer([0]), RangeError);
  throws(() => encodeOffer([65536]), RangeError);
  throws(() => encodeOffer([1.5]), TypeError);
  throws(() => encodeFinish({ identity: ID, signature: SIG, features: ["b", "a"] }), /strictly ascending/);
  throws(() => encodeFinish({ identity: ID.subarray(1), signature: SIG, features: [] }), RangeError);
  throws(() => encodeAccept({ chosen: -1, versions: [1], identity: ID, signature: SIG, features: [] }), RangeError);
});

Deno.test("normalizeVersions() and normalizeFeatures() sort, drop repeats and check every name", () => {
  eql(normalizeVersions([3, 1, 3, 2]), [1, 2, 3]);
  throws(() => normalizeVersions(Array.from({ length: MAX_VERSIONS + 1 }, (_, i) => i + 1)), RangeError);
  eql(normalizeFeatures(["relay", "dht/1", "relay"]), ["dht/1", "relay"]);
  for (const bad of ["", "Relay", "a b", "x".repeat(33), "é"]) throws(() => normalizeFeatures([bad]), RangeError, bad);
  throws(() => normalizeFeatures(Array.from({ length: MAX_FEATURES + 1 }, (_, i) => `f${i}`)), RangeError);
  throws(() => normalizeFeatures([1 as unknown as string]), TypeError);
});

Deno.test("decodeOffer() refuses every deviation with a message naming it", () => {
  throws(() => decodeOffer(new Uint8Array(0)), malformed(/expected a version list/));
  throws(() => decodeOffer(hex("00")), malformed(/version count is 0/));
  throws(() => decodeOffer(hex("11")), malformed(/version count is 17/));
  throws(() => decodeOffer(hex("020001")), malformed(/expected >= 5 for 2 versions/));
  throws(() => decodeOffer(hex("0100010000")), malformed(/length is 5, expected 3/));
});

Deno.test("decodeOffer() refuses version 0, repeats and descending versions", () => {
  throws(() => decodeOffer(hex("010000")), malformed(/version 0/));
  throws(() => decodeOffer(hex("0200010001")), malformed(/not above 1/));
  throws(() => decodeOffer(hex("0200020001")), malformed(/not above 2/));
});

Deno.test("decodeFinish() refuses bad features: count, length, bytes, order and trailing data", () => {
  const head = concat(ID, SIG);
  const f = (...parts: string[]) => concat(head, hex(parts.join("")));
  eql(decodeFinish(f("00")).features, []);
  throws(() => decodeFinish(head), malformed(/expected >= 97/));
  throws(() => decodeFinish(f("21")), malformed(/feature count is 33/));
  throws(() => decodeFinish(f("01")), malformed(/expected feature 1 of 1/));
  throws(() => decodeFinish(f("0100")), malformed(/length 0/));
  throws(() => decodeFinish(f("0121")), malformed(/length 33/));
  throws(() => decodeFinish(f("010261")), malformed(/expected >= 100 for feature 1/));
  throws(() => decodeFinish(f("010141")), malformed(/byte 0x41/));
  throws(() => decodeFinish(f("02", "0162", "0161")), malformed(/strictly ascending/));
  throws(() => decodeFinish(f("02", "0161", "0161")), malformed(/strictly ascending/));
  throws(() => decodeFinish(f("02", "026161", "0161")), malformed(/strictly ascending/));
  eql(decodeFinish(f("02", "0161", "026161")).features, ["a", "aa"]);
  throws(() => decodeFinish(f("00", "00")), malformed(/length is 98, expected 97/));
});

Deno.test("decodeAccept() reads chosen, the responder's versions and its identity block", () => {
  const accept: Accept = { chosen: 7, versions: [1, 7], identity: ID, signature: SIG, features: ["x"] };
  eql(decodeAccept(encodeAccept(accept)), accept);
  throws(() => decodeAccept(hex("00")), malformed(/expected >= 2/));
  throws(() => decodeAccept(hex("0001")), malformed(/expected a version list at 2/));
});

// --- Properties: every decoder is exact and total ---

const versionsArb = fc.uniqueArray(fc.integer({ min: 1, max: 0xffff }), { minLength: 1, maxLength: MAX_VERSIONS })
  .map((v) => v.sort((a, b) => a - b));
const featureArb = fc.stringMatching(/^[a-z0-9./-]{1,32}$/);
const featuresArb = fc.uniqueArray(featureArb, { maxLength: MAX_FEATURES }).map((f) => f.sort());
const blockArb = fc.record({
  identity: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
  features: featuresArb,
});
const acceptArb = fc.record({ chosen: fc.integer({ min: 0, max: 0xffff }), versions: versionsArb })
  .chain((head) => blockArb.map((block) => ({ ...head, ...block })));

const codecs = [
  { name: "Offer", arb: versionsArb, encode: encodeOffer, decode: decodeOffer },
  { name: "Accept", arb: acceptArb, encode: encodeAccept, decode: decodeAccept },
  { name: "Finish", arb: blockArb, encode: encodeFinish, decode: decodeFinish },
] as const;

/** A valid encoding, then truncated, extended, bit-flipped or overwritten. */
function mutated(bytes: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return bytes.chain((b) =>
    fc.oneof(
      fc.integer({ min: 0, max: Math.max(0, b.length - 1) }).map((n) => b.slice(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 40 }).map((tail) => concat(b, tail)),
      fc.integer({ min: 0, max: b.length * 8 - 1 }).map((bit) => {
        const out = b.slice();
        out[bit >> 3] ^= 1 << (bit & 7);
        return out;
      }),
      fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, bytes]) => {
        const out = b.slice();
        out.set(bytes.subarray(0, Math.max(0, out.length - (at % out.length))), at % out.length);
        return out;
      }),
    )
  );
}

for (const codec of codecs) {
  const { name } = codec;
  const encode = codec.encode as (value: unknown) => Uint8Array;
  const decode = codec.decode as (bytes: Uint8Array) => unknown;

  Deno.test(`decode${name}() inverts encode${name}() for every valid value`, () => {
    // structuredClone: fast-check's records have a null prototype, decoded values a plain one.
    fc.assert(
      fc.property(codec.arb as fc.Arbitrary<unknown>, (value) => eql(decode(encode(value)), structuredClone(value))),
    );
  });

  Deno.test(`decode${name}() of any bytes either fails with HandshakeError malformed or is canonical`, () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      mutated((codec.arb as fc.Arbitrary<unknown>).map(encode)),
    );
    fc.assert(
      fc.property(input, (bytes) => {
        let value: unknown;
        try {
          value = decode(bytes);
        } catch (error) {
          if (!(error instanceof HandshakeError) || error.reason !== "malformed") throw error;
          return;
        }
        // Whatever decodes has exactly one encoding: these very bytes.
        eql(encode(value), bytes);
      }),
      { numRuns: 500 },
    );
  });
}
