/**
 * One direction of an NZ-CHANNEL-01 channel: a ChaCha20-Poly1305 key and an
 * implicit 64-bit frame counter (spec/protocols/NZ-CHANNEL-01.md sections
 * "Sealed frames" and "Rekey"). The nonce is `0x00000000 || LE64(counter)`,
 * the associated data is empty, and the counter goes up by one per frame and
 * is never reset, not even by a rekey, exactly as a Noise transport
 * CipherState (Noise sections 5.1, 11.3, 12.3).
 *
 * With the native provider this is the hot path: it calls node:crypto
 * directly, sealing a frame from several parts (record headers, the caller's
 * payload bytes) in one AEAD pass without first copying them together. With
 * any other provider it goes through {@linkcode CryptoProvider}.
 *
 * @module
 */

import { createCipheriv } from "node:crypto";
import { concat, wipe } from "../bytes.ts";
import { crypto as defaultCrypto } from "../crypto/default.ts";
import { nativeProvider } from "../crypto/native.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { IntegrityError } from "../errors.ts";
import { NONCE_LEN, TAG_LEN } from "./constants.ts";

const KEY_LEN = 32;
const EMPTY = new Uint8Array(0);
/** The Rekey() nonce: counter 2^64 - 1, which frames never use (Noise section 11.3). */
const REKEY_NONCE = new Uint8Array([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZEROS_32 = new Uint8Array(KEY_LEN);

/** Options of {@linkcode ChannelCipher}. */
export interface ChannelCipherOptions {
  /** The AEAD provider (default: the kernel's `crypto`); the native one takes the direct node:crypto path. */
  provider?: CryptoProvider;
  /** The first counter (default 0); for test vectors and exhaustion tests. */
  counter?: number;
}

/**
 * Noise Rekey(k): the first 32 bytes of ENCRYPT(k, 2^64 - 1, empty, 32 zero
 * bytes) (Noise section 4.2).
 *
 * @param key The current 32-byte key (left as it is).
 * @param provider The AEAD provider.
 * @returns The next key.
 *
 * @example Two rekeys of one key agree
 * ```ts
 * import { rekeyKey } from "./cipher.ts";
 *
 * const a = rekeyKey(new Uint8Array(32)), b = rekeyKey(new Uint8Array(32));
 * if (a.length !== 32 || a.some((x, i) => x !== b[i])) throw new Error("Cannot rekey");
 * ```
 */
export function rekeyKey(key: Uint8Array, provider: CryptoProvider = defaultCrypto): Uint8Array {
  const sealed = provider.chachaSeal(key, REKEY_NONCE, ZEROS_32, EMPTY);
  const next = sealed.slice(0, KEY_LEN);
  wipe(sealed);
  return next;
}

/**
 * The sealing or opening half of a channel: a key and the counter of the
 * next frame. Not safe to share between directions.
 */
export class ChannelCipher {
  #key: Uint8Array;
  #counter: number;
  #provider: CryptoProvider;
  #native: boolean;
  #nonce = new Uint8Array(NONCE_LEN);
  #nonceView = new DataView(this.#nonce.buffer);

  /**
   * Creates a cipher that takes over `key` (no copy): {@linkcode rekey} and
   * {@linkcode wipe} overwrite it.
   *
   * @param key The 32-byte ChaCha20-Poly1305 key.
   * @param options Provider and first counter.
   * @throws {RangeError} for a key that is not 32 bytes or a counter that is not a safe integer.
   */
  constructor(key: Uint8Array, options: ChannelCipherOptions = {}) {
    if (!(key instanceof Uint8Array)) throw new TypeError("Invalid key: expected Uint8Array");
    if (key.length !== KEY_LEN) throw new RangeError(`Invalid key: length is ${key.length}, expected ${KEY_LEN}`);
    const counter = options.counter ?? 0;
    if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`Invalid counter: ${counter}`);
    this.#key = key;
    this.#counter = counter;
    this.#provider = options.provider ?? defaultCrypto;
    this.#native = this.#provider === nativeProvider;
  }

  /** The counter of the next frame. */
  get counter(): number {
    return this.#counter;
  }

  /** The nonce of the next frame: 4 zero bytes || LE64(counter). */
  #nextNonce(): Uint8Array {
    const n = this.#counter;
    if (n >= Number.MAX_SAFE_INTEGER) throw new RangeError("Cannot seal or open: the frame counter is exhausted");
    this.#nonceView.setUint32(4, n >>> 0, true);
    this.#nonceView.setUint32(8, Math.floor(n / 0x1_0000_0000), true);
    return this.#nonce;
  }

  /**
   * Seals the concatenation of `parts` as the next frame: ciphertext || tag,
   * empty associated data. The parts are read, not kept; the counter moves on.
   *
   * @param parts The plaintext, in pieces (record headers, payloads).
   * @param length The sum of the parts' lengths.
   * @returns The sealed frame, `length + 16` bytes.
   */
  seal(parts: readonly Uint8Array[], length: number): Uint8Array {
    const pieces = this.sealParts(parts, length);
    // node:crypto hands out Buffers: the native pieces are joined into one plain Uint8Array.
    return this.#native ? concat(...pieces) : pieces[0];
  }

  /**
   * As {@linkcode seal}, without joining the result: the sealed frame is the
   * concatenation of the returned pieces (the ciphertext of each nonempty
   * part, then the tag), which a writer copies straight into its own buffer.
   *
   * @param parts The plaintext, in pieces (record headers, payloads).
   * @param length The sum of the parts' lengths.
   * @returns The pieces of the sealed frame, `length + 16` bytes in all.
   */
  sealParts(parts: readonly Uint8Array[], length: number): Uint8Array[] {
    const nonce = this.#nextNonce();
    let out: Uint8Array[];
    if (this.#native) {
      out = [];
      const cipher = createCipheriv("chacha20-poly1305", this.#key, nonce, { authTagLength: TAG_LEN });
      cipher.setAAD(EMPTY, { plaintextLength: length });
      for (const part of parts) {
        if (part.length > 0) out.push(cipher.update(part));
      }
      cipher.final();
      out.push(cipher.getAuthTag());
    } else {
      const plaintext = parts.length === 1 ? parts[0] : concat(...parts);
      out = [this.#provider.chachaSeal(this.#key, nonce, plaintext, EMPTY)];
    }
    this.#counter++;
    return out;
  }

  /**
   * Opens the next frame. The tag is checked before any plaintext is
   * returned; on failure the counter stays where it was.
   *
   * @param frame ciphertext || tag, at least 16 bytes.
   * @returns The plaintext, a fresh array the caller owns.
   * @throws {IntegrityError} when the tag does not verify (tampered, truncated, replayed, reordered, wrong key).
   */
  open(frame: Uint8Array): Uint8Array {
    if (frame.length < TAG_LEN) {
      throw new IntegrityError(`Cannot open frame: length is ${frame.length}, expected >= ${TAG_LEN}`);
    }
    const nonce = this.#nextNonce();
    let plaintext: Uint8Array;
    try {
      plaintext = this.#provider.chachaOpen(this.#key, nonce, frame, EMPTY);
    } catch (cause) {
      throw new IntegrityError(`Cannot open frame ${this.#counter}: authentication tag does not verify`, { cause });
    }
    this.#counter++;
    return plaintext;
  }

  /** Replaces the key by Rekey(key) and wipes the old one; the counter goes on. */
  rekey(): void {
    const next = rekeyKey(this.#key, this.#provider);
    wipe(this.#key);
    this.#key = next;
  }

  /** Wipes the key; the cipher is unusable afterwards. */
  wipe(): void {
    wipe(this.#key);
  }
}
