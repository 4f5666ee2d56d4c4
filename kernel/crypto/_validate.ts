/**
 * Argument checks shared by both providers, so that native and noble reject
 * the same inputs with the same error classes and messages.
 *
 * @module
 */

import { assertBytes } from "../bytes.ts";
import { IntegrityError } from "../errors.ts";
import type { ScryptParams } from "./provider.ts";

/** Length of a ChaCha20-Poly1305 / XChaCha20-Poly1305 key (RFC 8439 section 2.8). */
export const KEY_LENGTH = 32;
/** Length of a ChaCha20-Poly1305 nonce (RFC 8439 section 2.8). */
export const NONCE_LENGTH = 12;
/** Length of an XChaCha20-Poly1305 nonce (draft-irtf-cfrg-xchacha-03 section 2). */
export const XNONCE_LENGTH = 24;
/** Length of a Poly1305 tag (RFC 8439 section 2.5). */
export const TAG_LENGTH = 16;
/** Largest HKDF-SHA-256 output: 255 * HashLen (RFC 5869 section 2.3). */
export const HKDF_MAX_LENGTH = 255 * 32;
/** Most memory one scrypt call may use (128 * r * (N + p) bytes): 1 GiB, noble's own default cap. */
export const SCRYPT_MAX_MEMORY = 2 ** 30;
/** Longest scrypt output accepted; far above any key length, it only bounds mistakes. */
export const SCRYPT_MAX_DKLEN = 1024;

const EMPTY = new Uint8Array(0);

/** Checks an AEAD key, nonce, and optional associated data; returns the associated data or an empty array. */
export function checkAead(key: unknown, nonce: unknown, nonceLength: number, ad: unknown): Uint8Array {
  assertBytes(key, KEY_LENGTH, "key");
  assertBytes(nonce, nonceLength, "nonce");
  if (ad === undefined) return EMPTY;
  assertBytes(ad, undefined, "ad");
  return ad;
}

/**
 * Checks that a sealed AEAD input is at least one tag long.
 *
 * @throws {IntegrityError} when it is shorter than the tag: the input was truncated.
 */
export function checkSealed(sealed: unknown, algorithm: string): asserts sealed is Uint8Array {
  assertBytes(sealed, undefined, "sealed");
  if (sealed.length < TAG_LENGTH) {
    throw new IntegrityError(
      `Cannot open ${algorithm}: length is ${sealed.length}, expected >= ${TAG_LENGTH}`,
    );
  }
}

/** Checks an HKDF output length against RFC 5869 section 2.3. */
export function checkHkdfLength(length: unknown): asserts length is number {
  if (typeof length !== "number" || !Number.isInteger(length)) {
    throw new TypeError(`Invalid length: expected an integer, got ${String(length)}`);
  }
  if (length < 1 || length > HKDF_MAX_LENGTH) {
    throw new RangeError(`Invalid length: ${length}, expected 1..${HKDF_MAX_LENGTH}`);
  }
}

/**
 * Checks scrypt parameters (RFC 7914 section 2) and returns the memory the
 * call needs, 128 * r * (N + p) bytes, for the providers' `maxmem` options.
 */
export function checkScryptParams(params: ScryptParams): number {
  if (typeof params !== "object" || params === null) {
    throw new TypeError(`Invalid params: expected an object, got ${params === null ? "null" : typeof params}`);
  }
  const { N, r, p, dkLen } = params;
  for (const [name, value] of [["N", N], ["r", r], ["p", p], ["dkLen", dkLen]] as const) {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Invalid params.${name}: ${String(value)}, expected a positive integer`);
    }
  }
  // RFC 7914 section 2: N is a power of two greater than 1.
  if (N < 2 || (N & (N - 1)) !== 0 || N > 2 ** 30) {
    throw new RangeError(`Invalid params.N: ${N}, expected a power of two in 2..2^30`);
  }
  if (dkLen > SCRYPT_MAX_DKLEN) {
    throw new RangeError(`Invalid params.dkLen: ${dkLen}, expected 1..${SCRYPT_MAX_DKLEN}`);
  }
  const memory = 128 * r * (N + p);
  if (memory > SCRYPT_MAX_MEMORY) {
    throw new RangeError(`Invalid params: scrypt needs ${memory} bytes, expected <= ${SCRYPT_MAX_MEMORY}`);
  }
  return memory;
}

/** True when every byte is zero, read in time that depends only on the length. */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i];
  return acc === 0;
}

/** The RangeError both providers throw for an all-zero X25519 result (RFC 7748 section 6.1). */
export function lowOrderError(cause?: unknown): RangeError {
  return new RangeError(
    "Cannot compute X25519 shared secret: result is all zero, the public key has low order",
    cause === undefined ? undefined : { cause },
  );
}
