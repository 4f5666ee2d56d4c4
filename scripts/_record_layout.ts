/**
 * NZ-RECORD-01 records built byte by byte from the spec's layout (not through
 * the codec) and signed with the noble reference, for the vector generators
 * of the specs that carry records (NZ-RECORD-01, NZ-INTRODUCE-01).
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { concat, utf8 } from "../kernel/bytes.ts";

/** One byte. */
export const u8 = (n: number): Uint8Array => Uint8Array.of(n);
/** A big-endian u16. */
export const u16 = (n: number): Uint8Array => Uint8Array.of(n >> 8, n & 0xff);
/** A big-endian u64. */
export function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}
/** `length (u8) || UTF-8`. */
export const string8 = (s: string): Uint8Array => concat(u8(utf8(s).length), utf8(s));
/** A peer record's or an introduction's value: `count (u8) || string8{count}`. */
export const addressList = (list: string[]): Uint8Array => concat(u8(list.length), ...list.map(string8));

/** The fields of a record; `seed` is the signer's RFC 8032 private key. */
export interface RecordFields {
  kind: number;
  seed: Uint8Array;
  seq: number;
  expires: number;
  name: Uint8Array;
  value: Uint8Array;
}

/** NZ-RECORD-01 section 1: the signed message ("nzcore/v1/record" || 0x00 || body) and the record (body || signature). */
export function signedRecord(f: RecordFields): { message: Uint8Array; bytes: Uint8Array } {
  const body = concat(
    u8(f.kind),
    ed25519.getPublicKey(f.seed),
    u64(f.seq),
    u64(f.expires),
    u8(f.name.length),
    f.name,
    u16(f.value.length),
    f.value,
  );
  const message = concat(utf8("nzcore/v1/record"), u8(0), body);
  return { message, bytes: concat(body, ed25519.sign(message, f.seed)) };
}
