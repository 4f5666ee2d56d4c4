/**
 * The one crypto interface the kernel uses. Two providers implement it:
 * `native.ts` (node:crypto and WebCrypto, the hot path) and `noble.ts`
 * (@noble/*, the reference and fallback). A differential test runs every
 * vector through both and compares the bytes.
 *
 * All inputs and outputs are raw bytes; lengths are checked with
 * `assertBytes` and wrong lengths throw RangeError. A failed AEAD open throws
 * `IntegrityError` and never returns plaintext.
 *
 * @module
 */

/** Parameters of the scrypt passphrase KDF (RFC 7914). */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
  /** Output length in bytes. */
  dkLen: number;
}

/** Every primitive of NZ-CRYPTO-01. */
export interface CryptoProvider {
  /** A name for reports: "native" or "noble". */
  readonly name: string;
  /** SHA-256 (FIPS 180-4). */
  sha256(data: Uint8Array): Uint8Array;
  /** HMAC-SHA-256 (RFC 2104). */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HKDF-SHA-256 extract-and-expand (RFC 5869). */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /** Ed25519 public key (32 bytes) of a 32-byte seed (RFC 8032 section 5.1.5). */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** Ed25519 signature (64 bytes) of `message` by the 32-byte seed (RFC 8032 section 5.1.6). */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** Verifies an Ed25519 signature; false on any malformed input, never throws for bad signatures. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** X25519 public key of a 32-byte secret (RFC 7748 section 6.1). */
  x25519PublicKey(secret: Uint8Array): Uint8Array;
  /** X25519 shared secret; throws RangeError when the result is all zero (low-order point). */
  x25519(secret: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** ChaCha20-Poly1305 (RFC 8439): returns ciphertext || 16-byte tag. `nonce` is 12 bytes. */
  chachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array;
  /** Opens ciphertext || tag; throws IntegrityError when the tag does not verify. */
  chachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Uint8Array;
  /** XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03): 24-byte nonce, returns ciphertext || tag. */
  xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array;
  /** Opens XChaCha20-Poly1305; throws IntegrityError when the tag does not verify. */
  xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Uint8Array;
  /** scrypt (RFC 7914) of a passphrase. */
  scrypt(passphrase: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array>;
}
