/**
 * Value and key encodings: CBOR values decode as what was stored (bigint and
 * -0 included, pinned by RFC 8949 Appendix A bytes), and `encodeKey` never
 * maps two different keys to the same bytes.
 */

import { deepStrictEqual as eql, equal, notDeepStrictEqual, throws } from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex, utf8 } from "../../../kernel/bytes.ts";
import {
  decodeKey,
  decodeValue,
  encodeKey,
  encodeKeyPart,
  encodeValue,
  type Key,
  type KeyPart,
} from "../../../kernel/storage/value_codec.ts";
import { keyId } from "./_helpers.ts";

Deno.test("encodeValue() writes bignums and -0 as RFC 8949 Appendix A does", () => {
  // RFC 8949 Appendix A: 18446744073709551616, -18446744073709551617 and -0.0
  equal(toHex(encodeValue(18446744073709551616n)), "c249010000000000000000");
  equal(toHex(encodeValue(-18446744073709551617n)), "c349010000000000000000");
  equal(toHex(encodeValue(-0)), "f98000");
  equal(toHex(encodeValue(0)), "00");
  // a small bigint stays a bignum, so it cannot decode as a number
  equal(toHex(encodeValue(5n)), "c24105");
  equal(toHex(encodeValue(-1n)), "c34100");
});

Deno.test("decodeValue() reads RFC 8949 Appendix A bignums, integers and floats", () => {
  equal(decodeValue(fromHex("c249010000000000000000")), 18446744073709551616n);
  equal(decodeValue(fromHex("c349010000000000000000")), -18446744073709551617n);
  equal(decodeValue(fromHex("1bffffffffffffffff")), 18446744073709551615n);
  equal(decodeValue(fromHex("3bffffffffffffffff")), -18446744073709551616n);
  equal(decodeValue(fromHex("f98000")), -0);
  equal(decodeValue(fromHex("fb3ff199999999999a")), 1.1);
  eql(decodeValue(fromHex("a26161016162820203")), { a: 1, b: [2, 3] });
});

Deno.test("encodeValue() and decodeValue() round-trip bigints, -0 and nested values", () => {
  const values = [0n, 1n, -1n, 2n ** 64n, -(2n ** 64n) - 1n, 2n ** 200n, -0, [-0, 0, 0n], {
    n: 7n,
    b: Uint8Array.of(1),
  }];
  for (const v of values) eql(decodeValue(encodeValue(v)), v);
});

Deno.test("property: encodeValue() and decodeValue() round-trip bigints and doubles", () => {
  fc.assert(fc.property(fc.bigInt(), (n) => decodeValue(encodeValue(n)) === n));
  fc.assert(fc.property(fc.double(), (x) => Object.is(decodeValue(encodeValue(x)), x)));
});

Deno.test("encodeValue() refuses a Map it could not read back", () => {
  throws(() => encodeValue(new Map<unknown, unknown>([[1, "one"]])), TypeError);
  throws(() => encodeValue({ inner: new Map<unknown, unknown>([[Uint8Array.of(1), "x"]]) }), TypeError);
  eql(decodeValue(encodeValue(new Map([["a", 1]]))), { a: 1 });
});

Deno.test("encodeValue() refuses types CBOR has no form for", () => {
  throws(() => encodeValue(new Date(0)));
  throws(() => encodeValue(() => 1));
  throws(() => encodeValue(Symbol("s")));
});

Deno.test("decodeValue() rejects bytes that are not one well-formed CBOR item with SyntaxError", () => {
  for (const hex of ["", "18", "62ff", "c2", "9f01", "a1", "0102", "1c", "ff"]) {
    throws(() => decodeValue(fromHex(hex)), SyntaxError, `bytes ${hex}`);
  }
});

Deno.test("encodeKeyPart() tags each type so equal-looking parts differ", () => {
  const parts: KeyPart[] = ["1", 1, 1n, true, Uint8Array.of(0x31), "", new Uint8Array(0), false, 0, -0, 0n];
  const encoded = new Set(parts.map((p) => toHex(encodeKeyPart(p))));
  equal(encoded.size, parts.length);
  equal(toHex(encodeKeyPart("a")), "0161");
  equal(toHex(encodeKeyPart(1)), "023ff0000000000000");
  equal(toHex(encodeKeyPart(-0)), "028000000000000000");
  equal(toHex(encodeKeyPart(-12n)), "032d3132");
  equal(toHex(encodeKeyPart(true)), "0401");
  equal(toHex(encodeKeyPart(Uint8Array.of(0xff))), "05ff");
});

Deno.test("encodeKey() keeps part boundaries: tricky keys never encode alike", () => {
  const tricky: Key[] = [
    [],
    [""],
    ["", ""],
    [new Uint8Array(0)],
    ["ab"],
    ["a", "b"],
    ["a", "", "b"],
    ["a\u0000b"],
    // a single part holding the bytes of the two-part encoding of ["a", "b"]
    ["a\u0000\u0002\u0001b"],
    [utf8("\u0000\u0002\u0001a\u0000\u0002\u0001b")],
    [Uint8Array.of(0x01, 0x61)],
    ["a"],
    [Uint8Array.of(0x61)],
    [1],
    [1n],
    ["1"],
    [true],
    [1, 1],
    [11],
    [11n],
    [1n, 1n],
    [0],
    [-0],
    [0n],
    [false],
    [NaN],
    [Infinity],
    [-Infinity],
    ["x".repeat(300)],
    ["x".repeat(300), ""],
    ["x".repeat(299), "x"],
  ];
  const seen = new Map<string, Key>();
  for (const key of tricky) {
    const hex = toHex(encodeKey(key));
    const clash = seen.get(hex);
    equal(clash, undefined, `${keyId(key)} encodes like ${clash && keyId(clash)}`);
    seen.set(hex, key);
  }
  equal(toHex(encodeKey(["a", "b"])), "0002016100020162");
});

Deno.test("encodeKey() is deterministic", () => {
  const key: Key = ["users", 42, 7n, false, Uint8Array.of(1, 2, 3), -0.5];
  eql(encodeKey(key), encodeKey([...key]));
});

Deno.test("encodeKeyPart() rejects a part that is not a key part type with TypeError", () => {
  for (const bad of [null, undefined, {}, [], Symbol("s"), new Uint16Array(2), new Date()]) {
    throws(() => encodeKeyPart(bad as unknown as KeyPart), TypeError, String(typeof bad));
  }
});

Deno.test("encodeKey() rejects a part longer than 65535 bytes with RangeError", () => {
  encodeKey([new Uint8Array(65_534)]);
  throws(() => encodeKey([new Uint8Array(65_535)]), RangeError);
  throws(() => encodeKey(["x".repeat(70_000)]), RangeError);
});

const keyPart: fc.Arbitrary<KeyPart> = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.string({ unit: "binary", maxLength: 4 }),
  fc.double({ noNaN: true }),
  fc.integer({ min: -3, max: 3 }),
  fc.bigInt({ min: -1000n, max: 1000n }),
  fc.boolean(),
  fc.uint8Array({ maxLength: 6 }),
);
const key = fc.array(keyPart, { maxLength: 4 });

Deno.test("property: encodeKey() is injective", () => {
  fc.assert(
    fc.property(key, key, (a, b) => {
      if (keyId(a) === keyId(b)) eql(encodeKey(a), encodeKey(b));
      else notDeepStrictEqual(encodeKey(a), encodeKey(b));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("property: a key's encoding is the concatenation of its parts' encodings", () => {
  fc.assert(
    fc.property(key, key, (a, b) => {
      const joined = new Uint8Array([...encodeKey(a), ...encodeKey(b)]);
      eql(joined, encodeKey([...a, ...b]));
    }),
  );
});

Deno.test("decodeKey() inverts encodeKey() for every part type", () => {
  const keys: Key[] = [
    ["a"],
    ["", 0, -0.5, 1n, -(2n ** 70n), true, false, new Uint8Array([0, 255])],
    ["ünïcødé", Number.MAX_VALUE, Number.NEGATIVE_INFINITY],
  ];
  for (const key of keys) eql(decodeKey(encodeKey(key)), key);
});

Deno.test("decodeKey() refuses truncated and unknown encodings", () => {
  const good = encodeKey(["abc", 1]);
  const boundary = encodeKey(["abc"]).length;
  for (let n = 1; n < good.length; n++) {
    if (n === boundary) eql(decodeKey(good.subarray(0, n)), ["abc"]);
    else throws(() => decodeKey(good.subarray(0, n)), SyntaxError, `length ${n}`);
  }
  throws(() => decodeKey(Uint8Array.of(0, 1, 9)), SyntaxError);
});
