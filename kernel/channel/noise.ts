/**
 * The Noise Protocol Framework core (revision 34, https://noiseprotocol.org/noise.html),
 * with the spec's names: {@linkcode CipherState} (section 5.1),
 * {@linkcode SymmetricState} (5.2) and {@linkcode HandshakeState} (5.3).
 * Patterns are data ({@linkcode PATTERN_XX}, {@linkcode PATTERN_IK}), so
 * adding one is a constant, not code. NZ-HANDSHAKE-01 uses
 * `Noise_XX_25519_ChaChaPoly_SHA256` on the kernel's crypto provider.
 *
 * The core knows nothing of identities or payload formats; a message that
 * does not decode or authenticate throws {@linkcode HandshakeError}
 * (`malformed`, `decrypt`, `low_order_key`, `oversized`). Calling a method
 * out of turn is a programming error and throws a plain `Error`.
 *
 * @example An XX handshake between two in-process parties
 * ```ts
 * import { HandshakeState, PATTERN_XX } from "./noise.ts";
 * import { crypto, randomBytes } from "../crypto/mod.ts";
 *
 * const keyPair = () => {
 *   const secretKey = randomBytes(32);
 *   return { secretKey, publicKey: crypto.x25519PublicKey(secretKey) };
 * };
 * const prologue = new TextEncoder().encode("example");
 * const alice = new HandshakeState({ pattern: PATTERN_XX, initiator: true, prologue, s: keyPair() });
 * const bob = new HandshakeState({ pattern: PATTERN_XX, initiator: false, prologue, s: keyPair() });
 * bob.readMessage(alice.writeMessage(new Uint8Array(0)));
 * alice.readMessage(bob.writeMessage(new Uint8Array(0)));
 * bob.readMessage(alice.writeMessage(new Uint8Array(0)));
 * // Split() gives [c1, c2] to both sides: c1 carries the initiator's messages.
 * const [aliceSend] = alice.split();
 * const [bobReceive] = bob.split();
 * const sealed = aliceSend.encryptWithAd(new Uint8Array(0), new TextEncoder().encode("hi"));
 * if (new TextDecoder().decode(bobReceive.decryptWithAd(new Uint8Array(0), sealed)) !== "hi") {
 *   throw new Error("Cannot talk over the channel");
 * }
 * ```
 *
 * @module
 */

import { assertBytes, utf8, wipe } from "../bytes.ts";
import { crypto as defaultCrypto } from "../crypto/default.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { randomBytes } from "../crypto/random.ts";
import { IntegrityError } from "../errors.ts";
import { HandshakeError } from "./errors.ts";

/** DHLEN of Curve25519 (Noise section 12.1). */
export const DH_LEN = 32;
/** Length of the ChaCha20-Poly1305 tag that every encrypted field carries (Noise section 12.3). */
export const TAG_LEN = 16;
/** The longest Noise message, in bytes (Noise section 3). */
export const MAX_NOISE_MESSAGE = 65535;
/**
 * The highest nonce a CipherState uses. Noise allows up to 2^64 - 2 (section
 * 5.1); JavaScript numbers are exact only to 2^53 - 1, which no handshake or
 * channel reaches (the channel rekeys far earlier), so we stop there.
 */
export const MAX_NONCE: number = Number.MAX_SAFE_INTEGER;

/**
 * The DH, cipher and hash functions a Noise protocol is instantiated with
 * (Noise section 4). The DH is always Curve25519 (32-byte keys); the hash may
 * have a HASHLEN of 32 or 64.
 */
export interface NoiseSuite {
  /** The function names of the protocol name, e.g. `25519_ChaChaPoly_SHA256`. */
  readonly name: string;
  /** HASHLEN in bytes: 32 or 64. */
  readonly hashLen: 32 | 64;
  /** HASH(data). */
  hash(data: Uint8Array): Uint8Array;
  /** HMAC-HASH(key, data) (RFC 2104). */
  hmac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** A fresh 32-byte X25519 secret key. */
  generateSecret(): Uint8Array;
  /** The X25519 public key of a secret key. */
  publicKey(secretKey: Uint8Array): Uint8Array;
  /** X25519(secret, public); throws RangeError when the result is all zero. */
  dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** AEAD encryption with a 12-byte nonce; returns ciphertext || 16-byte tag. */
  encrypt(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** AEAD decryption; throws IntegrityError when the tag does not verify. */
  decrypt(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
}

/**
 * `25519_ChaChaPoly_SHA256` on a crypto provider: X25519 (RFC 7748),
 * ChaCha20-Poly1305 (RFC 8439) and SHA-256, all from the provider.
 *
 * @param provider The crypto provider; default the kernel's `crypto` (native when it passed its self-test).
 * @returns The suite.
 *
 * @example Use the pure JavaScript provider
 * ```ts
 * import { suite25519ChaChaPolySha256 } from "./noise.ts";
 * import { nobleProvider } from "../crypto/noble.ts";
 *
 * const suite = suite25519ChaChaPolySha256(nobleProvider);
 * if (suite.name !== "25519_ChaChaPoly_SHA256") throw new Error("Cannot name the suite");
 * ```
 */
export function suite25519ChaChaPolySha256(provider: CryptoProvider = defaultCrypto): NoiseSuite {
  return {
    name: "25519_ChaChaPoly_SHA256",
    hashLen: 32,
    hash: (data) => provider.sha256(data),
    hmac: (key, data) => provider.hmacSha256(key, data),
    generateSecret: () => randomBytes(32),
    publicKey: (secretKey) => provider.x25519PublicKey(secretKey),
    dh: (secretKey, publicKey) => provider.x25519(secretKey, publicKey),
    encrypt: (key, nonce, ad, plaintext) => provider.chachaSeal(key, nonce, plaintext, ad),
    decrypt: (key, nonce, ad, ciphertext) => provider.chachaOpen(key, nonce, ciphertext, ad),
  };
}

/** `25519_ChaChaPoly_SHA256` on the kernel's default provider. */
export const NOISE_SUITE: NoiseSuite = suite25519ChaChaPolySha256();

const EMPTY = new Uint8Array(0);
const BYTE_1 = Uint8Array.of(0x01);

/**
 * Noise's HKDF (section 4.3): HMAC-based, with the chaining key as the HMAC
 * key and no `info`; not RFC 5869's HKDF with an info string.
 *
 * ```
 * temp_key = HMAC(chaining_key, input_key_material)
 * output1  = HMAC(temp_key, 0x01)
 * output2  = HMAC(temp_key, output1 || 0x02)
 * output3  = HMAC(temp_key, output2 || 0x03)
 * ```
 *
 * @param suite The hash functions.
 * @param chainingKey HASHLEN bytes.
 * @param ikm Input key material: empty or DHLEN bytes.
 * @param outputs How many outputs, 2 or 3.
 * @returns `outputs` fresh arrays of HASHLEN bytes; `temp_key` is wiped.
 */
export function noiseHkdf(
  suite: NoiseSuite,
  chainingKey: Uint8Array,
  ikm: Uint8Array,
  outputs: 2 | 3,
): Uint8Array[] {
  const tempKey = suite.hmac(chainingKey, ikm);
  try {
    const out = [suite.hmac(tempKey, BYTE_1)];
    const input = new Uint8Array(suite.hashLen + 1);
    for (let i = 2; i <= outputs; i++) {
      input.set(out[i - 2], 0);
      input[suite.hashLen] = i;
      out.push(suite.hmac(tempKey, input));
    }
    wipe(input);
    return out;
  } finally {
    wipe(tempKey);
  }
}

/** Keeps the first 32 bytes of a HASHLEN output as a cipher key, wiping the rest (Noise section 5.2). */
function cipherKey(output: Uint8Array): Uint8Array {
  if (output.length === 32) return output;
  const key = output.slice(0, 32);
  wipe(output);
  return key;
}

/** A cipher key `k` and nonce `n` (Noise section 5.1). */
export class CipherState {
  #suite: NoiseSuite;
  #k: Uint8Array | null = null;
  #n = 0;
  // 4 zero bytes, then the nonce as a little-endian 64-bit integer (Noise section 12.3).
  #nonce = new Uint8Array(12);
  #nonceView = new DataView(this.#nonce.buffer);

  /** Creates a CipherState; `key` (32 bytes) is taken over, not copied. */
  constructor(suite: NoiseSuite = NOISE_SUITE, key: Uint8Array | null = null) {
    this.#suite = suite;
    this.initializeKey(key);
  }

  /** InitializeKey(key): sets `k` (taken over, not copied; the old key is wiped) and `n = 0`. */
  initializeKey(key: Uint8Array | null): void {
    if (key !== null) assertBytes(key, 32, "key");
    if (this.#k !== null && this.#k !== key) wipe(this.#k);
    this.#k = key;
    this.#n = 0;
  }

  /** HasKey(). */
  hasKey(): boolean {
    return this.#k !== null;
  }

  /** The next nonce `n`. */
  get nonce(): number {
    return this.#n;
  }

  /** SetNonce(nonce). */
  setNonce(nonce: number): void {
    if (!Number.isSafeInteger(nonce) || nonce < 0) throw new RangeError(`Invalid nonce: ${nonce}`);
    this.#n = nonce;
  }

  #nonceBytes(): Uint8Array {
    if (this.#n >= MAX_NONCE) throw new RangeError("Cannot use CipherState: nonce exhausted, rekey first");
    this.#nonceView.setUint32(4, this.#n >>> 0, true);
    this.#nonceView.setUint32(8, Math.floor(this.#n / 0x1_0000_0000), true);
    return this.#nonce;
  }

  /** EncryptWithAd(ad, plaintext): ENCRYPT(k, n++, ad, plaintext), or the plaintext itself without a key. */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.#k === null) return plaintext;
    const out = this.#suite.encrypt(this.#k, this.#nonceBytes(), ad, plaintext);
    this.#n++;
    return out;
  }

  /**
   * DecryptWithAd(ad, ciphertext): DECRYPT(k, n++, ad, ciphertext), or the
   * ciphertext itself without a key. On a failed tag `n` stays as it was.
   *
   * @throws {IntegrityError} when the tag does not verify.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.#k === null) return ciphertext;
    const out = this.#suite.decrypt(this.#k, this.#nonceBytes(), ad, ciphertext);
    this.#n++;
    return out;
  }

  /** Hands the key over (for a transport that keeps its own state) and forgets it here. */
  takeKey(): Uint8Array | null {
    const k = this.#k;
    this.#k = null;
    return k;
  }

  /** Wipes the key. */
  wipe(): void {
    wipe(this.#k ?? undefined);
    this.#k = null;
  }
}

/** The chaining key `ck`, the handshake hash `h` and a CipherState (Noise section 5.2). */
export class SymmetricState {
  #suite: NoiseSuite;
  #ck: Uint8Array;
  #h: Uint8Array;
  #cs: CipherState;

  /** InitializeSymmetric(protocol_name). */
  constructor(protocolName: string, suite: NoiseSuite = NOISE_SUITE) {
    this.#suite = suite;
    const name = utf8(protocolName);
    if (name.length <= suite.hashLen) {
      this.#h = new Uint8Array(suite.hashLen);
      this.#h.set(name);
    } else {
      this.#h = suite.hash(name);
    }
    this.#ck = this.#h.slice();
    this.#cs = new CipherState(suite);
  }

  /** MixKey(input_key_material). */
  mixKey(ikm: Uint8Array): void {
    const [ck, tempK] = noiseHkdf(this.#suite, this.#ck, ikm, 2);
    wipe(this.#ck);
    this.#ck = ck;
    this.#cs.initializeKey(cipherKey(tempK));
  }

  /** MixHash(data): h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    const input = new Uint8Array(this.#h.length + data.length);
    input.set(this.#h, 0);
    input.set(data, this.#h.length);
    this.#h = this.#suite.hash(input);
  }

  /** Whether the CipherState has a key (fields are encrypted from then on). */
  hasKey(): boolean {
    return this.#cs.hasKey();
  }

  /** EncryptAndHash(plaintext). */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cs.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /**
   * DecryptAndHash(ciphertext).
   *
   * @throws {IntegrityError} when the tag does not verify.
   */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cs.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** GetHandshakeHash(): a copy of `h`. */
  getHandshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /**
   * Split(): the two transport keys `k1` (initiator to responder) and `k2`
   * (responder to initiator); wipes `ck` and the handshake CipherState.
   */
  splitKeys(): [Uint8Array, Uint8Array] {
    const [k1, k2] = noiseHkdf(this.#suite, this.#ck, EMPTY, 2);
    this.wipe();
    return [cipherKey(k1), cipherKey(k2)];
  }

  /** Split(): CipherStates for `k1` and `k2`. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = this.splitKeys();
    return [new CipherState(this.#suite, k1), new CipherState(this.#suite, k2)];
  }

  /** Wipes `ck` and the CipherState's key. */
  wipe(): void {
    wipe(this.#ck);
    this.#cs.wipe();
  }
}

/** A token of a message pattern (Noise section 7.1). */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss";

/** A handshake pattern (Noise section 7): pre-messages and message patterns. */
export interface HandshakePattern {
  /** The pattern's name in the protocol name, e.g. `XX`. */
  readonly name: string;
  /** Keys the responder knows of the initiator before the handshake (`e`, `s`). */
  readonly initiatorPreMessage: readonly ("e" | "s")[];
  /** Keys the initiator knows of the responder before the handshake. */
  readonly responderPreMessage: readonly ("e" | "s")[];
  /** The message patterns, alternating from the initiator. */
  readonly messages: readonly (readonly Token[])[];
}

/** XX (Noise section 7.5): mutual authentication, each static key sent encrypted. */
export const PATTERN_XX: HandshakePattern = Object.freeze<HandshakePattern>({
  name: "XX",
  initiatorPreMessage: [],
  responderPreMessage: [],
  messages: [["e"], ["e", "ee", "s", "es"], ["s", "se"]],
});

/** IK (Noise section 7.5): the initiator knows the responder's static key; two messages. */
export const PATTERN_IK: HandshakePattern = Object.freeze<HandshakePattern>({
  name: "IK",
  initiatorPreMessage: [],
  responderPreMessage: ["s"],
  messages: [["e", "es", "s", "ss"], ["e", "ee", "se"]],
});

/** An X25519 key pair. */
export interface KeyPair {
  /** The 32-byte secret key. */
  secretKey: Uint8Array;
  /** The 32-byte public key. */
  publicKey: Uint8Array;
}

/** What a {@linkcode HandshakeState} starts from (Noise section 5.3, Initialize()). */
export interface HandshakeInit {
  /** The handshake pattern. */
  pattern: HandshakePattern;
  /** Whether this side is the initiator. */
  initiator: boolean;
  /** The prologue both sides must agree on; it is hashed into `h`. */
  prologue: Uint8Array;
  /** This side's static key pair (kept by reference, never wiped here). */
  s?: KeyPair;
  /**
   * This side's ephemeral key pair, for test vectors only: reusing one breaks
   * every guarantee. It is copied; default a fresh one, made at the `e` token.
   */
  e?: KeyPair;
  /** The peer's static public key, when a pre-message names it. */
  rs?: Uint8Array;
  /** The peer's ephemeral public key, when a pre-message names it. */
  re?: Uint8Array;
  /** The functions; default {@linkcode NOISE_SUITE}. */
  suite?: NoiseSuite;
}

/** One side of a Noise handshake (Noise section 5.3). */
export class HandshakeState {
  #suite: NoiseSuite;
  #ss: SymmetricState;
  #pattern: HandshakePattern;
  #initiator: boolean;
  #s: KeyPair | undefined;
  #e: KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #index = 0;
  #split: [Uint8Array, Uint8Array] | undefined;
  #hash: Uint8Array | undefined;
  /** The protocol name, e.g. `Noise_XX_25519_ChaChaPoly_SHA256`. */
  readonly protocolName: string;

  /** Initialize(): hashes the protocol name, the prologue and the pre-message keys. */
  constructor(init: HandshakeInit) {
    const suite = init.suite ?? NOISE_SUITE;
    assertBytes(init.prologue, undefined, "prologue");
    if (init.s) checkKeyPair(init.s, "s");
    if (init.e) checkKeyPair(init.e, "e");
    if (init.rs !== undefined) assertBytes(init.rs, DH_LEN, "rs");
    if (init.re !== undefined) assertBytes(init.re, DH_LEN, "re");
    this.#suite = suite;
    this.#pattern = init.pattern;
    this.#initiator = init.initiator;
    this.#s = init.s;
    this.#e = init.e ? { secretKey: init.e.secretKey.slice(), publicKey: init.e.publicKey.slice() } : undefined;
    this.#rs = init.rs?.slice();
    this.#re = init.re?.slice();
    this.protocolName = `Noise_${init.pattern.name}_${suite.name}`;
    this.#ss = new SymmetricState(this.protocolName, suite);
    this.#ss.mixHash(init.prologue);
    // Pre-messages: the initiator's keys first, then the responder's (section 7.1).
    for (
      const [owner, tokens] of [[true, init.pattern.initiatorPreMessage], [
        false,
        init.pattern.responderPreMessage,
      ]] as const
    ) {
      for (const token of tokens) {
        const mine = owner === this.#initiator;
        const key = token === "s" ? (mine ? this.#s?.publicKey : this.#rs) : (mine ? this.#e?.publicKey : this.#re);
        if (key === undefined) {
          throw new TypeError(
            `Invalid handshake init: pattern ${init.pattern.name} needs the ${mine ? "local" : "remote"} ${token} key`,
          );
        }
        this.#ss.mixHash(key);
      }
    }
  }

  /** Whether this side writes the next message. */
  get isMyTurn(): boolean {
    return !this.complete && (this.#index % 2 === 0) === this.#initiator;
  }

  /** Whether every message of the pattern has been written or read. */
  get complete(): boolean {
    return this.#index >= this.#pattern.messages.length;
  }

  /** The number of messages processed so far. */
  get messageIndex(): number {
    return this.#index;
  }

  /** The peer's static public key, once received (a copy). */
  get remoteStatic(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /** The peer's ephemeral public key, once received (a copy). */
  get remoteEphemeral(): Uint8Array | undefined {
    return this.#re?.slice();
  }

  /** The handshake hash `h`: the transcript so far, or the final one once complete (a copy). */
  get handshakeHash(): Uint8Array {
    return this.#hash?.slice() ?? this.#ss.getHandshakeHash();
  }

  #checkTurn(write: boolean): void {
    const verb = write ? "write" : "read";
    if (this.complete) throw new Error(`Cannot ${verb} handshake message: the handshake is complete`);
    if (this.isMyTurn !== write) {
      throw new Error(
        `Cannot ${verb} handshake message ${this.#index + 1}: it is the ${write ? "peer's" : "local"} turn`,
      );
    }
  }

  /** DH(local, remote) mixed into the chaining key; the DH result is wiped. */
  #mixDh(local: KeyPair | undefined, remote: Uint8Array | undefined, token: Token): void {
    if (local === undefined || remote === undefined) {
      throw new Error(`Cannot process token ${token}: a key is missing`);
    }
    let shared: Uint8Array;
    try {
      shared = this.#suite.dh(local.secretKey, remote);
    } catch (error) {
      if (error instanceof RangeError) {
        throw new HandshakeError(
          "low_order_key",
          `Cannot complete handshake: the peer's ${remote === this.#rs ? "static" : "ephemeral"} key has low order`,
          { cause: error },
        );
      }
      throw error;
    }
    this.#ss.mixKey(shared);
    wipe(shared);
  }

  #dhToken(token: Token): void {
    const i = this.#initiator;
    switch (token) {
      case "ee":
        return this.#mixDh(this.#e, this.#re, token);
      case "es":
        return i ? this.#mixDh(this.#e, this.#rs, token) : this.#mixDh(this.#s, this.#re, token);
      case "se":
        return i ? this.#mixDh(this.#s, this.#re, token) : this.#mixDh(this.#e, this.#rs, token);
      case "ss":
        return this.#mixDh(this.#s, this.#rs, token);
    }
  }

  /**
   * WriteMessage(payload): the next handshake message.
   *
   * @param payload The payload; sent in clear before the first DH, encrypted after.
   * @returns The message bytes.
   * @throws {HandshakeError} `low_order_key` when the peer's key has low order; `oversized` when the message exceeds 65535 bytes.
   */
  writeMessage(payload: Uint8Array): Uint8Array {
    assertBytes(payload, undefined, "payload");
    this.#checkTurn(true);
    const parts: Uint8Array[] = [];
    for (const token of this.#pattern.messages[this.#index]) {
      if (token === "e") {
        if (this.#e === undefined) {
          const secretKey = this.#suite.generateSecret();
          this.#e = { secretKey, publicKey: this.#suite.publicKey(secretKey) };
        }
        parts.push(this.#e.publicKey);
        this.#ss.mixHash(this.#e.publicKey);
      } else if (token === "s") {
        if (this.#s === undefined) throw new Error("Cannot write token s: no static key");
        parts.push(this.#ss.encryptAndHash(this.#s.publicKey));
      } else {
        this.#dhToken(token);
      }
    }
    parts.push(this.#ss.encryptAndHash(payload));
    let length = 0;
    for (const p of parts) length += p.length;
    if (length > MAX_NOISE_MESSAGE) {
      throw new HandshakeError(
        "oversized",
        `Cannot write handshake message: length is ${length}, expected <= ${MAX_NOISE_MESSAGE}`,
      );
    }
    const message = new Uint8Array(length);
    let offset = 0;
    for (const p of parts) {
      message.set(p, offset);
      offset += p.length;
    }
    this.#advance();
    return message;
  }

  /**
   * ReadMessage(message): processes the peer's next handshake message.
   *
   * @param message The message bytes.
   * @returns The payload.
   * @throws {HandshakeError} `oversized`, `malformed` (too short), `decrypt` (a field does not authenticate) or `low_order_key`.
   */
  readMessage(message: Uint8Array): Uint8Array {
    assertBytes(message, undefined, "message");
    this.#checkTurn(false);
    // A Buffer's slice() is a view: work on a plain copy so nothing kept here aliases the caller's bytes.
    if (message.constructor !== Uint8Array) message = new Uint8Array(message);
    const number = this.#index + 1;
    if (message.length > MAX_NOISE_MESSAGE) {
      throw new HandshakeError(
        "oversized",
        `Cannot read handshake message ${number}: length is ${message.length}, expected <= ${MAX_NOISE_MESSAGE}`,
      );
    }
    const tokens = this.#pattern.messages[this.#index];
    // Check the length up front: every key field has a fixed size, and the payload field needs its tag once keyed.
    let minimum = 0, keyed = this.#ss.hasKey();
    for (const token of tokens) {
      if (token === "e") minimum += DH_LEN;
      else if (token === "s") minimum += DH_LEN + (keyed ? TAG_LEN : 0);
      else keyed = true;
    }
    if (keyed) minimum += TAG_LEN;
    if (message.length < minimum) {
      throw new HandshakeError(
        "malformed",
        `Cannot read handshake message ${number}: length is ${message.length}, expected >= ${minimum}`,
      );
    }
    let offset = 0;
    try {
      for (const token of tokens) {
        if (token === "e") {
          this.#re = message.slice(offset, offset + DH_LEN);
          offset += DH_LEN;
          this.#ss.mixHash(this.#re);
        } else if (token === "s") {
          const length = DH_LEN + (this.#ss.hasKey() ? TAG_LEN : 0);
          this.#rs = this.#ss.decryptAndHash(message.subarray(offset, offset + length)).slice();
          offset += length;
        } else {
          this.#dhToken(token);
        }
      }
      const field = message.subarray(offset);
      // Before the first DH the payload is in clear: hand out a copy, not a view of the message.
      const payload = this.#ss.hasKey() ? this.#ss.decryptAndHash(field) : this.#ss.decryptAndHash(field).slice();
      this.#advance();
      return payload;
    } catch (error) {
      if (error instanceof IntegrityError) {
        throw new HandshakeError(
          "decrypt",
          `Cannot read handshake message ${number}: it does not authenticate (tampered, replayed, out of order, or another protocol or prologue)`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  #advance(): void {
    this.#index++;
    if (this.complete) {
      this.#hash = this.#ss.getHandshakeHash();
      this.#split = this.#ss.splitKeys();
      if (this.#e) wipe(this.#e.secretKey);
    }
  }

  /**
   * Split() of the finished handshake: `[k1, k2]` as raw keys, `k1` for
   * messages from the initiator and `k2` for messages from the responder.
   * Can be taken once; the caller owns (and wipes) them.
   */
  splitKeys(): [Uint8Array, Uint8Array] {
    if (this.#split === undefined) {
      throw new Error(
        this.complete ? "Cannot split: keys already taken" : "Cannot split: the handshake is not complete",
      );
    }
    const keys = this.#split;
    this.#split = undefined;
    return keys;
  }

  /** Split() as CipherStates: `[c1, c2]`, `c1` for messages from the initiator. Can be taken once. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = this.splitKeys();
    return [new CipherState(this.#suite, k1), new CipherState(this.#suite, k2)];
  }

  /** Wipes every secret this state holds: the chaining key, cipher keys, the ephemeral secret, untaken split keys. */
  wipe(): void {
    this.#ss.wipe();
    if (this.#e) wipe(this.#e.secretKey);
    if (this.#split) wipe(...this.#split);
    this.#split = undefined;
  }
}

function checkKeyPair(pair: KeyPair, name: string): void {
  assertBytes(pair.secretKey, 32, `${name}.secretKey`);
  assertBytes(pair.publicKey, 32, `${name}.publicKey`);
}
