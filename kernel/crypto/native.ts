/**
 * The native provider: node:crypto for every primitive, which Deno backs with
 * Rust crates. XChaCha20 has no native form, so its HChaCha20 subkey step uses
 * noble's core (see `_hchacha.ts`) and the AEAD itself runs natively.
 *
 * KeyObjects are cached (`_key_cache.ts`): rebuilding one from DER for every
 * call halves Ed25519 signing throughput. Secret keys are cached under the hex
 * of their SHA-256, so no string copy of a secret stays on the heap.
 *
 * @module
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
  scrypt as nodeScrypt,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { assertBytes, concat, fromHex, toHex, wipe } from "../bytes.ts";
import { IntegrityError } from "../errors.ts";
import type { CryptoProvider, ScryptParams } from "./provider.ts";
import { hchacha20 } from "./_hchacha.ts";
import { KeyCache } from "./_key_cache.ts";
import {
  checkAead,
  checkHkdfLength,
  checkScryptParams,
  checkSealed,
  isAllZero,
  lowOrderError,
  NONCE_LENGTH,
  TAG_LENGTH,
  XNONCE_LENGTH,
} from "./_validate.ts";

// DER prefixes that wrap a raw 32-byte key (RFC 8410 sections 7 and 10).
const ED25519_PKCS8 = fromHex("302e020100300506032b657004220420");
const ED25519_SPKI = fromHex("302a300506032b6570032100");
const X25519_PKCS8 = fromHex("302e020100300506032b656e04220420");
const X25519_SPKI = fromHex("302a300506032b656e032100");

/** Secret-key entries per curve: a node holds few long-lived secrets. */
const SECRET_CACHE_SIZE = 64;
/** Ed25519 public-key entries: the identities a node verifies again and again. */
const ED_PUBLIC_CACHE_SIZE = 256;
/**
 * X25519 public-key entries: few, since a handshake uses each remote key once (an ephemeral key, a per-process
 * static key); a large cache would only hold a busy node's dead keys (KeyObjects cost native memory).
 */
const X_PUBLIC_CACHE_SIZE = 64;

interface SecretEntry {
  privateKey: KeyObject;
  publicKey: Uint8Array;
}

const edSecrets = new KeyCache<SecretEntry>(SECRET_CACHE_SIZE);
const edPublics = new KeyCache<KeyObject | null>(ED_PUBLIC_CACHE_SIZE);
const xSecrets = new KeyCache<SecretEntry>(SECRET_CACHE_SIZE);
const xPublics = new KeyCache<KeyObject>(X_PUBLIC_CACHE_SIZE);

/**
 * Returns the bytes of a node:crypto result as a plain Uint8Array. A Buffer
 * that owns its whole ArrayBuffer is viewed without copying; one cut from a
 * shared pool is copied and the pooled bytes are wiped.
 */
function own(buffer: Uint8Array): Uint8Array {
  if (buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.length) {
    return new Uint8Array(buffer.buffer, 0, buffer.length);
  }
  const copy = Uint8Array.from(buffer);
  buffer.fill(0);
  return copy;
}

/** A Buffer view over `bytes` (no copy), for node:crypto options typed as Buffer. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

function fingerprint(secret: Uint8Array): string {
  return createHash("sha256").update(secret).digest("hex");
}

function secretEntry(cache: KeyCache<SecretEntry>, pkcs8: Uint8Array, secret: Uint8Array): SecretEntry {
  return cache.get(fingerprint(secret), () => {
    const der = concat(pkcs8, secret);
    try {
      const privateKey = createPrivateKey({ key: asBuffer(der), format: "der", type: "pkcs8" });
      const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
      return { privateKey, publicKey: Uint8Array.from(spki.subarray(spki.length - 32)) };
    } finally {
      wipe(der);
    }
  });
}

/**
 * Encodings (sign bit cleared) of the points of the 8-torsion subgroup of
 * edwards25519, as in libsodium's blocklist; `tests/kernel/crypto/native_test.ts`
 * checks this list against noble's `ED25519_TORSION_SUBGROUP`.
 */
export const SMALL_ORDER_ENCODINGS: readonly string[] = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];
const SMALL_ORDER = new Set(SMALL_ORDER_ENCODINGS);

/**
 * Whether an Ed25519 public key encoding is refused before verification: a
 * non-canonical y (y >= p = 2^255 - 19, RFC 8032 section 5.1.3) or a
 * small-order point, under which the all-identity signature verifies for
 * every message (node:crypto would accept it; noble's strict mode does not).
 */
export function isWeakEd25519Key(publicKey: Uint8Array): boolean {
  const y = publicKey.slice();
  y[31] &= 0x7f;
  let nonCanonical = y[31] === 0x7f && y[0] >= 0xed;
  for (let i = 1; nonCanonical && i < 31; i++) nonCanonical = y[i] === 0xff;
  return nonCanonical || SMALL_ORDER.has(toHex(y));
}

/** The verification key for `publicKey`, or null when {@linkcode isWeakEd25519Key} refuses it. */
function verifyKey(publicKey: Uint8Array): KeyObject | null {
  return edPublics.get(toHex(publicKey), () => {
    try {
      if (isWeakEd25519Key(publicKey)) return null;
      return createPublicKey({ key: asBuffer(concat(ED25519_SPKI, publicKey)), format: "der", type: "spki" });
    } catch {
      return null;
    }
  });
}

function x25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  return xPublics.get(
    toHex(publicKey),
    () => createPublicKey({ key: asBuffer(concat(X25519_SPKI, publicKey)), format: "der", type: "spki" }),
  );
}

/** RFC 8439 section 2.8 with validated arguments. */
function chachaSealRaw(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(ad, { plaintextLength: plaintext.length });
  const out = new Uint8Array(plaintext.length + TAG_LENGTH);
  out.set(cipher.update(plaintext), 0);
  cipher.final();
  out.set(cipher.getAuthTag(), plaintext.length);
  return out;
}

/**
 * Opens ciphertext || tag with validated arguments. node:crypto decrypts in
 * `update()` and checks the tag in `final()`, so the decrypted bytes are held
 * back until `final()` succeeds and wiped when it fails.
 */
function chachaOpenRaw(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  ad: Uint8Array,
  algorithm: string,
): Uint8Array {
  const length = sealed.length - TAG_LENGTH;
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_LENGTH });
  decipher.setAAD(ad, { plaintextLength: length });
  decipher.setAuthTag(sealed.subarray(length));
  const unverified = decipher.update(sealed.subarray(0, length));
  try {
    decipher.final();
  } catch (cause) {
    unverified.fill(0);
    throw new IntegrityError(`Cannot open ${algorithm}: authentication tag does not verify`, { cause });
  }
  return own(unverified);
}

/**
 * Runs `body` with the XChaCha20 subkey and ChaCha20 nonce of
 * draft-irtf-cfrg-xchacha-03 section 2.3: subkey = HChaCha20(key, nonce[0..16]),
 * nonce' = 4 zero bytes || nonce[16..24]. The subkey is wiped afterwards.
 */
function withXChaCha<T>(key: Uint8Array, nonce: Uint8Array, body: (subkey: Uint8Array, n: Uint8Array) => T): T {
  const subkey = hchacha20(key, nonce.subarray(0, 16));
  const inner = new Uint8Array(NONCE_LENGTH);
  inner.set(nonce.subarray(16, XNONCE_LENGTH), 4);
  try {
    return body(subkey, inner);
  } finally {
    wipe(subkey);
  }
}

/** HKDF-SHA-256 from HMAC (RFC 5869 section 2), for `info` longer than node:crypto's 1024-byte limit. */
function hkdfFromHmac(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  // Section 2.2: an empty salt acts as HashLen zeros, which HMAC pads to the same block.
  const prk = createHmac("sha256", salt).update(ikm).digest();
  const okm = new Uint8Array(length);
  let previous = new Uint8Array(0);
  // Section 2.3: T(i) = HMAC(PRK, T(i-1) || info || i).
  for (let i = 1, offset = 0; offset < length; i++) {
    const block = createHmac("sha256", prk).update(previous).update(info).update(new Uint8Array([i])).digest();
    okm.set(block.subarray(0, Math.min(block.length, length - offset)), offset);
    offset += block.length;
    wipe(previous);
    previous = Uint8Array.from(block);
    wipe(block);
  }
  wipe(prk, previous);
  return okm;
}

/** node:crypto's `hkdfSync` rejects `info` longer than this. */
const NODE_HKDF_MAX_INFO = 1024;

/**
 * The node:crypto implementation of {@linkcode CryptoProvider}.
 *
 * Ed25519 verification first checks the public key as noble's strict mode
 * does (canonical, on the curve, not small order), then verifies natively with
 * the cofactorless equation [S]B = R + [k]A. noble checks the cofactored one,
 * so the providers differ only on signatures that the key's owner built with a
 * small-order component (spec/crypto.md, section "Ed25519").
 *
 * @example Agree on an X25519 secret
 * ```ts
 * import { nativeProvider } from "./native.ts";
 *
 * const a = new Uint8Array(32).fill(1);
 * const b = new Uint8Array(32).fill(2);
 * const ab = nativeProvider.x25519(a, nativeProvider.x25519PublicKey(b));
 * const ba = nativeProvider.x25519(b, nativeProvider.x25519PublicKey(a));
 * if (ab.join() !== ba.join()) throw new Error("Cannot agree on a shared secret");
 * ```
 */
export const nativeProvider: CryptoProvider = Object.freeze({
  name: "native",

  sha256(data: Uint8Array): Uint8Array {
    assertBytes(data, undefined, "data");
    return own(createHash("sha256").update(data).digest());
  },

  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    assertBytes(key, undefined, "key");
    assertBytes(data, undefined, "data");
    return own(createHmac("sha256", key).update(data).digest());
  },

  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
    assertBytes(ikm, undefined, "ikm");
    assertBytes(salt, undefined, "salt");
    assertBytes(info, undefined, "info");
    checkHkdfLength(length);
    if (info.length > NODE_HKDF_MAX_INFO) return hkdfFromHmac(ikm, salt, info, length);
    return new Uint8Array(hkdfSync("sha256", ikm, salt, info, length));
  },

  ed25519PublicKey(seed: Uint8Array): Uint8Array {
    assertBytes(seed, 32, "seed");
    return secretEntry(edSecrets, ED25519_PKCS8, seed).publicKey.slice();
  },

  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    assertBytes(seed, 32, "seed");
    assertBytes(message, undefined, "message");
    const { privateKey } = secretEntry(edSecrets, ED25519_PKCS8, seed);
    return own(nodeSign(null, message, privateKey));
  },

  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    assertBytes(publicKey, undefined, "publicKey");
    assertBytes(message, undefined, "message");
    assertBytes(signature, undefined, "signature");
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    const key = verifyKey(publicKey);
    if (key === null) return false;
    try {
      return nodeVerify(null, message, key, signature);
    } catch {
      return false;
    }
  },

  x25519PublicKey(secret: Uint8Array): Uint8Array {
    assertBytes(secret, 32, "secret");
    return secretEntry(xSecrets, X25519_PKCS8, secret).publicKey.slice();
  },

  x25519(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
    assertBytes(secret, 32, "secret");
    assertBytes(publicKey, 32, "publicKey");
    const { privateKey } = secretEntry(xSecrets, X25519_PKCS8, secret);
    let shared: Uint8Array;
    try {
      // node:crypto refuses an all-zero result ("failed during derivation").
      shared = own(diffieHellman({ privateKey, publicKey: x25519PublicKeyObject(publicKey) }));
    } catch (cause) {
      throw lowOrderError(cause);
    }
    // RFC 7748 section 6.1: check for the all-zero value and abort if so.
    if (isAllZero(shared)) throw lowOrderError();
    return shared;
  },

  chachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
    const data = checkAead(key, nonce, NONCE_LENGTH, ad);
    assertBytes(plaintext, undefined, "plaintext");
    return chachaSealRaw(key, nonce, plaintext, data);
  },

  chachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Uint8Array {
    const data = checkAead(key, nonce, NONCE_LENGTH, ad);
    checkSealed(sealed, "ChaCha20-Poly1305 box");
    return chachaOpenRaw(key, nonce, sealed, data, "ChaCha20-Poly1305 box");
  },

  xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
    const data = checkAead(key, nonce, XNONCE_LENGTH, ad);
    assertBytes(plaintext, undefined, "plaintext");
    return withXChaCha(key, nonce, (subkey, inner) => chachaSealRaw(subkey, inner, plaintext, data));
  },

  xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Uint8Array {
    const data = checkAead(key, nonce, XNONCE_LENGTH, ad);
    checkSealed(sealed, "XChaCha20-Poly1305 box");
    return withXChaCha(
      key,
      nonce,
      (subkey, inner) => chachaOpenRaw(subkey, inner, sealed, data, "XChaCha20-Poly1305 box"),
    );
  },

  async scrypt(passphrase: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
    assertBytes(passphrase, undefined, "passphrase");
    assertBytes(salt, undefined, "salt");
    const memory = checkScryptParams(params);
    const { N, r, p, dkLen } = params;
    return await new Promise((resolve, reject) => {
      nodeScrypt(passphrase, salt, dkLen, { N, r, p, maxmem: memory + 1024 * 1024 }, (error, key) => {
        if (error) reject(error);
        else resolve(own(key));
      });
    });
  },
});
