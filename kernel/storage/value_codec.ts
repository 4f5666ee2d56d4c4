/**
 * Encodes stored values and key parts to bytes: values as CBOR (RFC 8949,
 * through `cborg`), key parts with the tagged encoding of NZ-CRYPTO-01
 * section "Key part encoding".
 *
 * @module
 */

import { decode, encode } from "cborg";
import { bigIntDecoder, bigNegIntDecoder, negativeZeroEncoder, structBigIntEncoder } from "cborg/taglib";
import { concat, fromUtf8, utf8 } from "../bytes.ts";

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

const encoder = new TextEncoder();
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
 * for each part, so two different keys never encode alike. Written in one pass
 * into one buffer: it runs for every stored value.
 */
export function encodeKey(key: Key): Uint8Array {
  let size = 0;
  for (const part of key) size += 3 + partBodyMax(part);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const part of key) {
    const start = offset;
    offset += 3;
    switch (typeof part) {
      case "string":
        out[start + 2] = TYPE_STRING;
        offset += encoder.encodeInto(part, out.subarray(offset)).written;
        break;
      case "number":
        out[start + 2] = TYPE_NUMBER;
        view.setFloat64(offset, part, false);
        offset += 8;
        break;
      case "bigint":
        out[start + 2] = TYPE_BIGINT;
        offset += encoder.encodeInto(part.toString(10), out.subarray(offset)).written;
        break;
      case "boolean":
        out[start + 2] = TYPE_BOOLEAN;
        out[offset++] = part ? 1 : 0;
        break;
      default:
        if (!(part instanceof Uint8Array)) {
          throw new TypeError(`Invalid key part: expected string, number, bigint, boolean or Uint8Array`);
        }
        out[start + 2] = TYPE_BYTES;
        out.set(part, offset);
        offset += part.length;
    }
    const length = offset - start - 2;
    if (length > 0xffff) throw new RangeError(`Invalid key part: length is ${length}, expected <= 65535`);
    view.setUint16(start, length, false);
  }
  return out.subarray(0, offset);
}

/** An upper bound of the body length of a part (UTF-8 takes at most 3 bytes per UTF-16 unit). */
function partBodyMax(part: KeyPart): number {
  switch (typeof part) {
    case "string":
      return part.length * 3;
    case "number":
      return 8;
    case "bigint":
      return part.toString(10).length;
    case "boolean":
      return 1;
    default:
      return part instanceof Uint8Array ? part.length : 0;
  }
}

/**
 * Decodes what {@linkcode encodeKey} wrote.
 *
 * @throws {SyntaxError} on a truncated encoding or an unknown part type.
 */
export function decodeKey(bytes: Uint8Array): Key {
  const key: KeyPart[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 3 > bytes.length) throw new SyntaxError("Cannot decode key: truncated part header");
    const length = view.getUint16(offset, false);
    const end = offset + 2 + length;
    if (length === 0 || end > bytes.length) throw new SyntaxError("Cannot decode key: truncated part");
    const type = bytes[offset + 2];
    const body = bytes.subarray(offset + 3, end);
    switch (type) {
      case TYPE_STRING:
        key.push(fromUtf8(body));
        break;
      case TYPE_NUMBER:
        if (body.length !== 8) throw new SyntaxError("Cannot decode key: a number part is not 8 bytes");
        key.push(view.getFloat64(offset + 3, false));
        break;
      case TYPE_BIGINT:
        if (!/^-?\d+$/.test(fromUtf8(body))) throw new SyntaxError("Cannot decode key: malformed bigint part");
        key.push(BigInt(fromUtf8(body)));
        break;
      case TYPE_BOOLEAN:
        if (body.length !== 1 || body[0] > 1) throw new SyntaxError("Cannot decode key: malformed boolean part");
        key.push(body[0] === 1);
        break;
      case TYPE_BYTES:
        key.push(body.slice());
        break;
      default:
        throw new SyntaxError(`Cannot decode key: unknown part type ${type}`);
    }
    offset = end;
  }
  return key;
}
