/**
 * HChaCha20 (draft-irtf-cfrg-xchacha-03 section 2.2), the step that turns a
 * key and the first 16 bytes of an XChaCha20 nonce into a ChaCha20 subkey.
 * node:crypto has no XChaCha20, so the native provider derives the subkey here
 * with noble's core and runs ChaCha20-Poly1305 natively.
 *
 * @module
 */

import { hchacha } from "@noble/ciphers/chacha.js";

/** "expand 32-byte k" as four little-endian words (RFC 8439 section 2.3). */
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

/**
 * Derives the 32-byte HChaCha20 subkey of `key` and a 16-byte `input`.
 * Words are read and written little-endian explicitly, so the result does not
 * depend on the host's byte order. The caller wipes the result.
 */
export function hchacha20(key: Uint8Array, input: Uint8Array): Uint8Array {
  const k = new Uint32Array(8);
  const n = new Uint32Array(4);
  const out = new Uint32Array(8);
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(input.buffer, input.byteOffset, 16);
  for (let i = 0; i < 8; i++) k[i] = kv.getUint32(i * 4, true);
  for (let i = 0; i < 4; i++) n[i] = nv.getUint32(i * 4, true);
  hchacha(SIGMA, k, n, out);
  const subkey = new Uint8Array(32);
  const sv = new DataView(subkey.buffer);
  for (let i = 0; i < 8; i++) sv.setUint32(i * 4, out[i], true);
  k.fill(0);
  out.fill(0);
  return subkey;
}
