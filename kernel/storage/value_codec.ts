/**
 * Encodes stored values and key parts to bytes: values as CBOR (RFC 8949,
 * through `cborg`), key parts with the tagged encoding of NZ-CRYPTO-01
 * section "Key part encoding".
 *
 * @module
 */

import { decode, encode } from "cborg";
import { bigIntDecoder, bigNegIntDecoder, negativeZeroEncoder, structBigIntEncoder } from "cborg/taglib";
import { concat, utf8 } from "../bytes.ts";

/** One part of a storage key, as in Deno KV. */
export type KeyPart = string | number | bigint | boolean | Uint8Array;
/** A storage key: a non-empty list of parts. */
export type Key = readonly KeyPart[];

/** Refuses a Map whose keys cborg could write but not read back (it decodes maps with string keys only). */
function stringKeyedMap(map: Map<unknown, unknown>): null {
  for (const key of map.keys()) {
    if (typeof key !== "string") {
      throw new TypeError(`Cannot encode value: a Map key is ${typeof key}, expected string`);
    }
  }
  return null;
}

// A bigint is always a bignum (RFC 8949 section 3.4.3, tags 2 and 3) and -0 a
// float, so both decode as what was stored: by default cborg writes 5n as the
// integer 5 and -0 as 0, and a key listed back would then address another key.
const ENCODE_OPTIONS = {
  typeEncoders: { bigint: structBigIntEncoder, number: negativeZeroEncoder, Map: stringKeyedMap },
};
const DECODE_OPTIONS = { tags: { 2: bigIntDecoder, 3: bigNegIntDecoder } };

/** Encodes any CBOR-representable value. */
export function encodeValue(value: unknown): Uint8Array {
  return encode(value, ENCODE_OPTIONS);
}

/**
 * Decodes a CBOR value.
 *
 * @throws {SyntaxError} when the bytes are not one well-formed CBOR item.
 */
export function decodeValue<T = unknown>(bytes: Uint8Array): T {
  try {
    return decode(bytes, DECODE_OPTIONS) as T;
  } catch (error) {
    throw new SyntaxError(`Cannot decode stored value: ${(error as Error).message}`);
  }
}

const TYPE_STRING = 0x01;
const TYPE_NUMBER = 0x02;
const TYPE_BIGINT = 0x03;
const TYPE_BOOLEAN = 0x04;
const TYPE_BYTES = 0x05;

/**
 * Encodes one key part as `type (1 byte) || body`: string = UTF-8, number =
 * IEEE 754 float64 big-endian, bigint = decimal ASCII, boolean = 0x00/0x01,
 * bytes = as is.
 */
export function encodeKeyPart(part: KeyPart): Uint8Array {
  switch (typeof part) {
    case "string":
      return concat(Uint8Array.of(TYPE_STRING), utf8(part));
    case "number": {
      const out = new Uint8Array(9);
      out[0] = TYPE_NUMBER;
      new DataView(out.buffer).setFloat64(1, part, false);
      return out;
    }
    case "bigint":
      return concat(Uint8Array.of(TYPE_BIGINT), utf8(part.toString(10)));
    case "boolean":
      return Uint8Array.of(TYPE_BOOLEAN, part ? 1 : 0);
    default:
      if (part instanceof Uint8Array) return concat(Uint8Array.of(TYPE_BYTES), part);
      throw new TypeError(`Invalid key part: expected string, number, bigint, boolean or Uint8Array`);
  }
}

/**
 * Encodes a whole key as the concatenation of `u16be(len) || encodeKeyPart(part)`
 * for each part, so two different keys never encode alike.
 */
export function encodeKey(key: Key): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const part of key) {
    const body = encodeKeyPart(part);
    if (body.length > 0xffff) throw new RangeError(`Invalid key part: length is ${body.length}, expected <= 65535`);
    parts.push(Uint8Array.of(body.length >> 8, body.length & 0xff), body);
  }
  return concat(...parts);
}
