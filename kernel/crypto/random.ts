/**
 * Cryptographically secure random bytes from the runtime's CSPRNG.
 *
 * @module
 */

/** The most bytes `crypto.getRandomValues` fills in one call (WebCrypto's quota). */
const GET_RANDOM_VALUES_MAX = 65536;

/**
 * Returns `length` random bytes from `crypto.getRandomValues`, filled in
 * chunks of 65536 bytes, the most one call may ask for.
 *
 * @param length The number of bytes, a non-negative integer.
 * @returns A new Uint8Array of `length` random bytes.
 * @throws {TypeError} when `length` is not a number.
 * @throws {RangeError} when `length` is negative or not a safe integer.
 *
 * @example Make a 24-byte XChaCha nonce
 * ```ts
 * import { randomBytes } from "./random.ts";
 *
 * const nonce = randomBytes(24);
 * if (nonce.length !== 24) throw new Error("Cannot make nonce");
 * ```
 */
export function randomBytes(length: number): Uint8Array {
  if (typeof length !== "number") throw new TypeError(`Invalid length: expected number, got ${typeof length}`);
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Invalid length: ${length}, expected a non-negative integer`);
  }
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += GET_RANDOM_VALUES_MAX) {
    globalThis.crypto.getRandomValues(out.subarray(offset, Math.min(offset + GET_RANDOM_VALUES_MAX, length)));
  }
  return out;
}
