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
 * Words are read and written little-endian byte by byte, so the result does
 * not depend on the host's byte order. The caller wipes the result.
 */
export function hchacha20(key: Uint8Array, input: Uint8Array): Uint8Array {
  for (let i = 0; i < 8; i++) K[i] = readLE(key, i * 4);
  for (let i = 0; i < 4; i++) N[i] = readLE(input, i * 4);
  hchacha(SIGMA, K, N, OUT);
  const subkey = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const w = OUT[i];
    subkey[i * 4] = w & 0xff;
    subkey[i * 4 + 1] = (w >>> 8) & 0xff;
    subkey[i * 4 + 2] = (w >>> 16) & 0xff;
    subkey[i * 4 + 3] = w >>> 24;
  }
  K.fill(0);
  OUT.fill(0);
  return subkey;
}

// Scratch words, reused: the function is synchronous and wipes them before returning.
const K = new Uint32Array(8);
const N = new Uint32Array(4);
const OUT = new Uint32Array(8);

function readLE(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16) | (bytes[offset + 3] << 24)) >>> 0;
}
