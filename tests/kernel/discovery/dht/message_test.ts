import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { crypto } from "../../../../kernel/crypto/mod.ts";
import { Identity } from "../../../../kernel/identity/identity.ts";
import {
  decodeMessage,
  type DhtMessage,
  encodeMessage,
  FLAG_READ_ONLY,
  FLAG_SIGNED,
  FLAG_WANT_SIGNATURE,
  MAX_MESSAGE_SIZE,
  signedMessage,
} from "../../../../kernel/discovery/dht/message.ts";

const identity = Identity.generate("codec");
const txid = Uint8Array.from({ length: 8 }, (_, i) => i + 1);
const publicKey = identity.publicKey;
const id = (n: number) => new Uint8Array(32).fill(n);
const v4 = { hostname: "192.0.2.7", port: 7475 };
const v6 = { hostname: "2001:db8::7", port: 65535 };

/** One message of every type, with both address families where addresses appear. */
export function everyMessage(): DhtMessage[] {
  const h = { txid, publicKey };
  return [
    { type: "ping", flags: FLAG_WANT_SIGNATURE | FLAG_READ_ONLY, ...h },
    { type: "pong", flags: 0, ...h, observed: v6 },
    { type: "find_node", flags: 0, ...h, target: id(9) },
    {
      type: "nodes",
      flags: 0,
      ...h,
      token: id(3).subarray(0, 8),
      contacts: [{ id: id(1), addr: v4 }, { id: id(2), addr: v6 }],
    },
    { type: "find_value", flags: FLAG_WANT_SIGNATURE, ...h, key: id(4), offset: 513 },
    {
      type: "values",
      flags: 0,
      ...h,
      token: id(5).subarray(0, 8),
      total: 3,
      records: [new Uint8Array([1, 2, 3]), new Uint8Array(1080).fill(7).subarray(0, 40)],
      contacts: [{ id: id(6), addr: v4 }],
    },
    { type: "store", flags: 0, ...h, token: id(8).subarray(0, 8), key: id(7), record: new Uint8Array(100).fill(2) },
    { type: "stored", flags: 0, ...h },
    { type: "error", flags: 0, ...h, code: 4, reason: "stale record: seq 1, the kept one has seq 2" },
  ];
}

function normal(m: DhtMessage): unknown {
  return JSON.parse(JSON.stringify(m, (_, v) => v instanceof Uint8Array ? Array.from(v) : v));
}

Deno.test("encodeMessage() and decodeMessage() round-trip a message of every type", () => {
  for (const m of everyMessage()) {
    const bytes = encodeMessage(m);
    ok(bytes.length <= MAX_MESSAGE_SIZE);
    eql(normal(decodeMessage(bytes).message), normal(m), m.type);
  }
});

Deno.test("a signed response carries an Ed25519 signature over the domain and every byte before it", () => {
  const m: DhtMessage = { type: "stored", flags: FLAG_SIGNED, txid, publicKey };
  const bytes = encodeMessage(m, (x) => identity.sign(x));
  equal(bytes.length, 42 + 64);
  const decoded = decodeMessage(bytes);
  ok(decoded.signature && decoded.signed);
  ok(crypto.ed25519Verify(publicKey, signedMessage(decoded.signed), decoded.signature));
  eql(decoded.signed, bytes.subarray(0, 42));
});

Deno.test("encodeMessage() refuses flags a type may not carry and a signed message without a signer", () => {
  throws(() => encodeMessage({ type: "ping", flags: FLAG_SIGNED, txid, publicKey }), TypeError);
  throws(() => encodeMessage({ type: "stored", flags: FLAG_WANT_SIGNATURE, txid, publicKey }), TypeError);
  throws(() => encodeMessage({ type: "stored", flags: FLAG_SIGNED, txid, publicKey }), TypeError);
});

Deno.test("encodeMessage() refuses a datagram over 1200 bytes and fields of the wrong length", () => {
  const h = { flags: 0, txid, publicKey };
  const big = new Uint8Array(1080);
  throws(
    () =>
      encodeMessage({ type: "values", ...h, token: new Uint8Array(8), total: 2, records: [big, big], contacts: [] }),
    RangeError,
  );
  throws(() => encodeMessage({ type: "find_node", ...h, target: new Uint8Array(31) }), RangeError);
  throws(() => encodeMessage({ type: "nodes", ...h, token: new Uint8Array(7), contacts: [] }), RangeError);
  throws(() => encodeMessage({ type: "pong", ...h, observed: { hostname: "example.com", port: 1 } }), SyntaxError);
  throws(() => encodeMessage({ type: "pong", ...h, observed: { hostname: "192.0.2.1", port: 0 } }), RangeError);
});

Deno.test("the largest VALUES (one 1080-byte record, signed) fits one datagram exactly", () => {
  const m: DhtMessage = {
    type: "values",
    flags: FLAG_SIGNED,
    txid,
    publicKey,
    token: new Uint8Array(8),
    total: 1,
    records: [new Uint8Array(1080).fill(1)],
    contacts: [],
  };
  equal(encodeMessage(m, (x) => identity.sign(x)).length, 1200);
});

Deno.test("decodeMessage() refuses what the layout does not allow, naming it", () => {
  const ping = encodeMessage({ type: "ping", flags: 0, txid, publicKey });
  const cases: [Uint8Array, RegExp][] = [
    [ping.subarray(0, 41), /length is 41/],
    [Uint8Array.of(0x98, ...ping.subarray(1)), /unassigned/],
    [Uint8Array.of(0x80, ...ping.subarray(1)), /not 0x90-0x9f/],
    [Uint8Array.of(0x90, 0x04, ...ping.subarray(2)), /flag/],
    [Uint8Array.of(0x90, 0x08, ...ping.subarray(2)), /flag/],
    [Uint8Array.of(...ping, 0), /1 bytes after the ping body/],
    [new Uint8Array(1201).fill(0x90), /1201 bytes/],
  ];
  const nodes = encodeMessage(everyMessage()[3]);
  cases.push([nodes.subarray(0, nodes.length - 1), /truncated/]);
  const badFamily = nodes.slice();
  badFamily[42 + 8 + 1 + 32] = 5;
  cases.push([badFamily, /family 5/]);
  const error = encodeMessage({ type: "error", flags: 0, txid, publicKey, code: 1, reason: "ab" });
  const badUtf8 = error.slice();
  badUtf8[badUtf8.length - 1] = 0xff;
  cases.push([badUtf8, /UTF-8/]);
  for (const [bytes, message] of cases) throws(() => decodeMessage(bytes), { name: "SyntaxError", message });
});

Deno.test("decodeMessage() throws only SyntaxError on random bytes, truncations and bit flips (fast-check)", () => {
  const valid = everyMessage().map((m) => encodeMessage(m));
  const onlySyntaxErrors = (bytes: Uint8Array) => {
    try {
      decodeMessage(bytes);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
    }
  };
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 1300 }),
      (b) => onlySyntaxErrors(Uint8Array.of(0x90 | (b[0] ?? 0) & 15, ...b)),
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: valid.length - 1 }),
      fc.nat(),
      (i, cut) => onlySyntaxErrors(valid[i].subarray(0, cut % valid[i].length)),
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: valid.length - 1 }),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      (i, at, bit) => {
        const bytes = valid[i].slice();
        bytes[at % bytes.length] ^= 1 << bit;
        onlySyntaxErrors(bytes);
      },
    ),
    { numRuns: 4000 },
  );
});
