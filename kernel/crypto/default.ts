/**
 * The provider the kernel uses by default, and thin helpers over it.
 *
 * `crypto` is the native provider when its known-answer self-test passes at
 * module load, and the noble provider otherwise; `crypto.name` says which.
 *
 * @module
 */

import { nativeProvider } from "./native.ts";
import type { CryptoProvider } from "./provider.ts";
import { selfTest } from "./self_test.ts";

/**
 * The default provider: native (node:crypto) when it passes the self-test,
 * otherwise noble (pure JavaScript, about ten times slower for signatures).
 *
 * @example Check which provider is in use
 * ```ts
 * import { crypto } from "./default.ts";
 *
 * if (crypto.name !== "native" && crypto.name !== "noble") throw new Error("Cannot identify provider");
 * ```
 */
export const crypto: CryptoProvider = selfTest(nativeProvider)
  ? nativeProvider
  // Loaded only when needed: noble's curves and hashes cost memory an idle node should not pay.
  : (await import("./noble.ts")).nobleProvider;

/**
 * SHA-256 (FIPS 180-4) with the default provider.
 *
 * @param data The bytes to hash.
 * @returns The 32-byte digest.
 * @throws {TypeError} when `data` is not a Uint8Array.
 *
 * @example Hash "abc"
 * ```ts
 * import { sha256 } from "./default.ts";
 * import { toHex } from "../bytes.ts";
 *
 * const digest = toHex(sha256(new TextEncoder().encode("abc")));
 * if (!digest.startsWith("ba7816bf")) throw new Error("Cannot hash");
 * ```
 */
export function sha256(data: Uint8Array): Uint8Array {
  return crypto.sha256(data);
}

/**
 * HMAC-SHA-256 (RFC 2104) with the default provider.
 *
 * @param key The MAC key, any length.
 * @param data The message.
 * @returns The 32-byte MAC.
 * @throws {TypeError} when an argument is not a Uint8Array.
 *
 * @example MAC a message
 * ```ts
 * import { hmacSha256 } from "./default.ts";
 *
 * const mac = hmacSha256(new Uint8Array(32), new TextEncoder().encode("message"));
 * if (mac.length !== 32) throw new Error("Cannot compute MAC");
 * ```
 */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return crypto.hmacSha256(key, data);
}

/**
 * HKDF-SHA-256 extract-and-expand (RFC 5869) with the default provider.
 * For subkeys of the master key prefer `deriveKey`, which fixes the salt and
 * info encoding.
 *
 * @param ikm Input keying material.
 * @param salt Salt; empty means HashLen zero bytes (RFC 5869 section 2.2).
 * @param info Context and application specific information.
 * @param length Output length in bytes, 1..8160.
 * @returns `length` bytes of output keying material.
 * @throws {TypeError} when an argument has the wrong type.
 * @throws {RangeError} when `length` is out of range.
 *
 * @example Expand a key
 * ```ts
 * import { hkdf } from "./default.ts";
 *
 * const okm = hkdf(new Uint8Array(32), new Uint8Array(0), new TextEncoder().encode("example"), 64);
 * if (okm.length !== 64) throw new Error("Cannot derive");
 * ```
 */
export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return crypto.hkdf(ikm, salt, info, length);
}
