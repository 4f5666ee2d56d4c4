/**
 * Sealed boxes: anonymous public-key encryption to an X25519 key, for data a
 * sender seals once and only the recipient's secret opens (spec/crypto.md,
 * "Sealed box"). The sender is not authenticated.
 *
 * Format: `ephemeral public (32) || ChaCha20-Poly1305 ciphertext || tag (16)`.
 *
 * @module
 */

import { assertBytes, concat, utf8, wipe } from "../bytes.ts";
import { IntegrityError } from "../errors.ts";
import { crypto } from "./default.ts";
import { LABEL_SEALED_BOX } from "./labels.ts";
import type { CryptoProvider } from "./provider.ts";
import { randomBytes } from "./random.ts";

/** Bytes a sealed box adds to its plaintext: the ephemeral public key and the tag. */
export const SEALED_BOX_OVERHEAD: number = 32 + 16;

const PUBLIC_LENGTH = 32;
// The key is used for exactly one message, so a fixed all-zero nonce is safe.
const ZERO_NONCE = new Uint8Array(12);
const INFO = utf8(LABEL_SEALED_BOX);

/** Options of {@linkcode sealTo}. */
export interface SealToOptions {
  /** The provider to use; default the kernel's `crypto`. */
  provider?: CryptoProvider;
  /**
   * A fixed ephemeral X25519 secret, for test vectors only: reusing one breaks
   * the scheme. Default: 32 fresh random bytes, wiped after use.
   */
  ephemeralSecret?: Uint8Array;
}

/** Options of {@linkcode openSealed}. */
export interface OpenSealedOptions {
  /** The provider to use; default the kernel's `crypto`. */
  provider?: CryptoProvider;
}

/** The single-use box key: HKDF-SHA-256(shared, salt = ephemeral public || recipient public, info = label, 32). */
function boxKey(
  provider: CryptoProvider,
  shared: Uint8Array,
  ephemeralPublic: Uint8Array,
  recipientPublic: Uint8Array,
): Uint8Array {
  return provider.hkdf(shared, concat(ephemeralPublic, recipientPublic), INFO, 32);
}

/**
 * Seals `plaintext` to the holder of an X25519 secret key.
 *
 * @param recipientPublic The recipient's 32-byte X25519 public key.
 * @param plaintext The bytes to seal.
 * @param options Provider and, for test vectors, the ephemeral secret.
 * @returns `ephemeral public || ciphertext || tag`, 48 bytes longer than `plaintext`.
 * @throws {TypeError} when an argument is not a Uint8Array.
 * @throws {RangeError} when a key has the wrong length, or `recipientPublic` has low order (all-zero shared secret).
 *
 * @example Seal and open
 * ```ts
 * import { openSealed, sealTo } from "./sealed_box.ts";
 * import { crypto } from "./default.ts";
 * import { randomBytes } from "./random.ts";
 *
 * const secret = randomBytes(32);
 * const sealed = sealTo(crypto.x25519PublicKey(secret), new TextEncoder().encode("hi"));
 * const opened = new TextDecoder().decode(openSealed(secret, sealed));
 * if (opened !== "hi") throw new Error("Cannot open sealed box");
 * ```
 */
export function sealTo(recipientPublic: Uint8Array, plaintext: Uint8Array, options: SealToOptions = {}): Uint8Array {
  const provider = options.provider ?? crypto;
  assertBytes(recipientPublic, PUBLIC_LENGTH, "recipientPublic");
  assertBytes(plaintext, undefined, "plaintext");
  if (options.ephemeralSecret !== undefined) assertBytes(options.ephemeralSecret, 32, "ephemeralSecret");
  const ephemeralSecret = options.ephemeralSecret ?? randomBytes(32);
  let shared: Uint8Array | undefined;
  let key: Uint8Array | undefined;
  try {
    const ephemeralPublic = provider.x25519PublicKey(ephemeralSecret);
    // Throws RangeError on an all-zero result (RFC 7748 section 6.1).
    shared = provider.x25519(ephemeralSecret, recipientPublic);
    key = boxKey(provider, shared, ephemeralPublic, recipientPublic);
    const box = provider.chachaSeal(key, ZERO_NONCE, plaintext);
    return concat(ephemeralPublic, box);
  } finally {
    wipe(shared, key);
    if (options.ephemeralSecret === undefined) wipe(ephemeralSecret);
  }
}

/**
 * Opens a sealed box with the recipient's X25519 secret key.
 *
 * @param recipientSecret The recipient's 32-byte X25519 secret key.
 * @param sealed `ephemeral public || ciphertext || tag`.
 * @param options The provider to use.
 * @returns The plaintext.
 * @throws {TypeError} when an argument is not a Uint8Array.
 * @throws {RangeError} when `recipientSecret` is not 32 bytes.
 * @throws {IntegrityError} when the box is shorter than 48 bytes, its ephemeral key has low order, or the tag does not verify (tampered, truncated, or sealed to another key).
 *
 * @example Open a box sealed to us
 * ```ts
 * import { openSealed, sealTo } from "./sealed_box.ts";
 * import { crypto } from "./default.ts";
 *
 * const secret = new Uint8Array(32).fill(5);
 * const sealed = sealTo(crypto.x25519PublicKey(secret), new Uint8Array([1, 2, 3]));
 * if (openSealed(secret, sealed).length !== 3) throw new Error("Cannot open sealed box");
 * ```
 */
export function openSealed(
  recipientSecret: Uint8Array,
  sealed: Uint8Array,
  options: OpenSealedOptions = {},
): Uint8Array {
  const provider = options.provider ?? crypto;
  assertBytes(recipientSecret, 32, "recipientSecret");
  assertBytes(sealed, undefined, "sealed");
  if (sealed.length < SEALED_BOX_OVERHEAD) {
    throw new IntegrityError(`Cannot open sealed box: length is ${sealed.length}, expected >= ${SEALED_BOX_OVERHEAD}`);
  }
  const ephemeralPublic = sealed.subarray(0, PUBLIC_LENGTH);
  let shared: Uint8Array | undefined;
  let key: Uint8Array | undefined;
  try {
    try {
      shared = provider.x25519(recipientSecret, ephemeralPublic);
    } catch (cause) {
      if (!(cause instanceof RangeError)) throw cause;
      // A low-order ephemeral key is malformed input, not a caller mistake.
      throw new IntegrityError("Cannot open sealed box: ephemeral public key has low order", { cause });
    }
    key = boxKey(provider, shared, ephemeralPublic, provider.x25519PublicKey(recipientSecret));
    try {
      return provider.chachaOpen(key, ZERO_NONCE, sealed.subarray(PUBLIC_LENGTH));
    } catch (cause) {
      if (!(cause instanceof IntegrityError)) throw cause;
      throw new IntegrityError("Cannot open sealed box: authentication tag does not verify", { cause });
    }
  } finally {
    wipe(shared, key);
  }
}
