/**
 * The pure-JavaScript provider, built on @noble/curves, @noble/ciphers and
 * @noble/hashes. It is the reference the differential test compares the native
 * provider against, and the fallback when the native self-test fails.
 *
 * @module
 */

import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { scryptAsync } from "@noble/hashes/scrypt.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { assertBytes } from "../bytes.ts";
import { IntegrityError } from "../errors.ts";
import type { CryptoProvider, ScryptParams } from "./provider.ts";
import {
  checkAead,
  checkHkdfLength,
  checkScryptParams,
  checkSealed,
  isAllZero,
  lowOrderError,
  NONCE_LENGTH,
  XNONCE_LENGTH,
} from "./_validate.ts";

type Aead = typeof chacha20poly1305 | typeof xchacha20poly1305;

function seal(
  aead: Aead,
  nonceLength: number,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad?: Uint8Array,
): Uint8Array {
  const data = checkAead(key, nonce, nonceLength, ad);
  assertBytes(plaintext, undefined, "plaintext");
  return aead(key, nonce, data).encrypt(plaintext);
}

function open(
  aead: Aead,
  nonceLength: number,
  algorithm: string,
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  ad?: Uint8Array,
): Uint8Array {
  const data = checkAead(key, nonce, nonceLength, ad);
  checkSealed(sealed, algorithm);
  try {
    // noble checks the tag in constant time before it decrypts anything (noble-ciphers chacha.ts).
    return aead(key, nonce, data).decrypt(sealed);
  } catch (cause) {
    throw new IntegrityError(`Cannot open ${algorithm}: authentication tag does not verify`, { cause });
  }
}

/**
 * The @noble/* implementation of {@linkcode CryptoProvider}.
 *
 * Ed25519 verification uses noble's strict RFC 8032 mode (`zip215: false`):
 * non-canonical encodings and small-order public keys are rejected, and the
 * cofactored equation [8][S]B = [8]R + [8][k]A is checked (RFC 8032 section
 * 5.1.7); see `native.ts` for the one case where the providers differ.
 *
 * @example Sign and verify
 * ```ts
 * import { nobleProvider } from "./noble.ts";
 *
 * const seed = new Uint8Array(32).fill(7);
 * const message = new TextEncoder().encode("hello");
 * const signature = nobleProvider.ed25519Sign(seed, message);
 * const ok = nobleProvider.ed25519Verify(nobleProvider.ed25519PublicKey(seed), message, signature);
 * if (!ok) throw new Error("Cannot verify signature");
 * ```
 */
export const nobleProvider: CryptoProvider = Object.freeze({
  name: "noble",

  sha256(data: Uint8Array): Uint8Array {
    assertBytes(data, undefined, "data");
    return sha256(data);
  },

  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    assertBytes(key, undefined, "key");
    assertBytes(data, undefined, "data");
    return hmac(sha256, key, data);
  },

  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
    assertBytes(ikm, undefined, "ikm");
    assertBytes(salt, undefined, "salt");
    assertBytes(info, undefined, "info");
    checkHkdfLength(length);
    return hkdf(sha256, ikm, salt, info, length);
  },

  ed25519PublicKey(seed: Uint8Array): Uint8Array {
    assertBytes(seed, 32, "seed");
    return ed25519.getPublicKey(seed);
  },

  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    assertBytes(seed, 32, "seed");
    assertBytes(message, undefined, "message");
    return ed25519.sign(message, seed);
  },

  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    assertBytes(publicKey, undefined, "publicKey");
    assertBytes(message, undefined, "message");
    assertBytes(signature, undefined, "signature");
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },

  x25519PublicKey(secret: Uint8Array): Uint8Array {
    assertBytes(secret, 32, "secret");
    return x25519.getPublicKey(secret);
  },

  x25519(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
    assertBytes(secret, 32, "secret");
    assertBytes(publicKey, 32, "publicKey");
    let shared: Uint8Array;
    try {
      // noble itself throws on an all-zero result; any failure here is that case.
      shared = x25519.getSharedSecret(secret, publicKey);
    } catch (cause) {
      throw lowOrderError(cause);
    }
    // RFC 7748 section 6.1: check for the all-zero value and abort if so.
    if (isAllZero(shared)) throw lowOrderError();
    return shared;
  },

  chachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
    return seal(chacha20poly1305, NONCE_LENGTH, key, nonce, plaintext, ad);
  },

  chachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Uint8Array {
    return open(chacha20poly1305, NONCE_LENGTH, "ChaCha20-Poly1305 box", key, nonce, sealed, ad);
  },

  xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
    return seal(xchacha20poly1305, XNONCE_LENGTH, key, nonce, plaintext, ad);
  },

  xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Uint8Array {
    return open(xchacha20poly1305, XNONCE_LENGTH, "XChaCha20-Poly1305 box", key, nonce, sealed, ad);
  },

  async scrypt(passphrase: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
    assertBytes(passphrase, undefined, "passphrase");
    assertBytes(salt, undefined, "salt");
    const memory = checkScryptParams(params);
    const { N, r, p, dkLen } = params;
    return await scryptAsync(passphrase, salt, { N, r, p, dkLen, maxmem: memory + 1024 * 1024 });
  },
});
