/**
 * The Noise core against the spec and against two independent Noise
 * implementations from npm, message for message:
 *
 * - `@chainsafe/libp2p-noise` (js-libp2p's Noise, `XXHandshakeState` on its
 *   pure-JS crypto): the exact suite NZ-HANDSHAKE-01 uses,
 *   `Noise_XX_25519_ChaChaPoly_SHA256`.
 * - `noise-handshake` (Holepunch, on libsodium through sodium-native): it
 *   hard-wires BLAKE2b, so our core runs with a BLAKE2b suite
 *   (`Noise_XX_25519_ChaChaPoly_BLAKE2b`, HASHLEN 64) for this comparison;
 *   the state machine, HKDF, nonces and Split() are the same code either way.
 *   It also covers IK.
 * - The cacophony vector of `Noise_XX_25519_ChaChaPoly_SHA256`
 *   (spec/vectors/noise_cacophony_xx.json).
 *
 * Same static keys, ephemerals, prologue and payloads must give identical
 * messages, identical Split() keys and an identical handshake hash.
 */

import { deepStrictEqual as eql, throws } from "node:assert/strict";
import fc from "fast-check";
import NoiseHandshake from "noise-handshake";
import { pureJsCrypto } from "@chainsafe/libp2p-noise";
import { blake2b } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { concat, fromHex as hex, utf8 } from "../../../kernel/bytes.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import { randomBytes } from "../../../kernel/crypto/random.ts";
import { HandshakeError } from "../../../kernel/channel/errors.ts";
import {
  CipherState,
  HandshakeState,
  type KeyPair,
  NOISE_SUITE,
  noiseHkdf,
  type NoiseSuite,
  PATTERN_IK,
  PATTERN_XX,
  suite25519ChaChaPolySha256,
  SymmetricState,
} from "../../../kernel/channel/noise.ts";
import cacophony from "../../../spec/vectors/noise_cacophony_xx.json" with { type: "json" };

const EMPTY = new Uint8Array(0);

function keyPair(secretKey: Uint8Array = randomBytes(32)): KeyPair {
  return { secretKey, publicKey: nobleProvider.x25519PublicKey(secretKey) };
}

// --- The cacophony vector ---

for (const provider of [nativeProvider, nobleProvider]) {
  Deno.test(`${provider.name}: the core reproduces the cacophony Noise_XX_25519_ChaChaPoly_SHA256 vector`, () => {
    const suite = suite25519ChaChaPolySha256(provider);
    for (const v of cacophony.vectors) {
      const init = new HandshakeState({
        pattern: PATTERN_XX,
        initiator: true,
        prologue: hex(v.init_prologue),
        s: keyPair(hex(v.init_static)),
        e: keyPair(hex(v.init_ephemeral)),
        suite,
      });
      const resp = new HandshakeState({
        pattern: PATTERN_XX,
        initiator: false,
        prologue: hex(v.resp_prologue),
        s: keyPair(hex(v.resp_static)),
        e: keyPair(hex(v.resp_ephemeral)),
        suite,
      });
      eql(init.protocolName, v.name);
      // Handshake: initiator, responder, initiator.
      for (const [index, [writer, reader]] of [[init, resp], [resp, init], [init, resp]].entries()) {
        const m = v.messages[index];
        const message = writer.writeMessage(hex(m.payload));
        eql(message, hex(m.ciphertext), `message ${index + 1}`);
        eql(reader.readMessage(message), hex(m.payload), `message ${index + 1}`);
      }
      eql(init.handshakeHash, resp.handshakeHash);
      // Transport: responder, initiator, responder; c1 carries the initiator's messages, c2 the responder's.
      const [init1, init2] = init.split();
      const [resp1, resp2] = resp.split();
      for (const [index, [send, receive]] of [[resp2, init2], [init1, resp1], [resp2, init2]].entries()) {
        const m = v.messages[3 + index];
        const sealed = send.encryptWithAd(EMPTY, hex(m.payload));
        eql(sealed, hex(m.ciphertext), `message ${4 + index}`);
        eql(receive.decryptWithAd(EMPTY, sealed), hex(m.payload), `message ${4 + index}`);
      }
    }
  });
}

// --- Unit checks of the spec's functions ---

Deno.test("noiseHkdf() is Noise's HKDF: HMAC outputs chained with 0x01, 0x02, 0x03", () => {
  const ck = randomBytes(32), ikm = randomBytes(32);
  const temp = nativeProvider.hmacSha256(ck, ikm);
  const o1 = nativeProvider.hmacSha256(temp, Uint8Array.of(1));
  const o2 = nativeProvider.hmacSha256(temp, concat(o1, Uint8Array.of(2)));
  const o3 = nativeProvider.hmacSha256(temp, concat(o2, Uint8Array.of(3)));
  eql(noiseHkdf(NOISE_SUITE, ck, ikm, 3), [o1, o2, o3]);
  eql(noiseHkdf(NOISE_SUITE, ck, ikm, 2), [o1, o2]);
});

Deno.test("CipherState nonces are 4 zero bytes then the counter as LE64, beyond 2^32 too", () => {
  const key = randomBytes(32);
  const cs = new CipherState(NOISE_SUITE, key.slice());
  const n = 2 ** 32 + 5;
  cs.setNonce(n);
  const nonce = Uint8Array.of(0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0);
  const ad = utf8("ad"), plaintext = utf8("plaintext");
  eql(cs.encryptWithAd(ad, plaintext), nobleProvider.chachaSeal(key, nonce, plaintext, ad));
  eql(cs.nonce, n + 1);
});

Deno.test("CipherState without a key passes data through; a failed decryption leaves the nonce alone", () => {
  const bare = new CipherState();
  eql(bare.encryptWithAd(EMPTY, utf8("x")), utf8("x"));
  const cs = new CipherState(NOISE_SUITE, randomBytes(32));
  throws(() => cs.decryptWithAd(EMPTY, new Uint8Array(20)), { name: "IntegrityError" });
  eql(cs.nonce, 0);
});

Deno.test("SymmetricState pads a short protocol name and hashes a long one", () => {
  const short = new SymmetricState("Noise_XX_25519_ChaChaPoly_SHA256");
  eql(short.getHandshakeHash(), utf8("Noise_XX_25519_ChaChaPoly_SHA256"));
  const name = "Noise_XXfallback+psk0_25519_ChaChaPoly_SHA256";
  eql(new SymmetricState(name).getHandshakeHash(), nativeProvider.sha256(utf8(name)));
});

Deno.test("HandshakeState refuses a low-order ephemeral key with low_order_key", () => {
  const resp = new HandshakeState({ pattern: PATTERN_XX, initiator: false, prologue: EMPTY, s: keyPair() });
  resp.readMessage(new Uint8Array(32)); // e = 0: accepted as bytes, refused at the first DH
  throws(() => resp.writeMessage(EMPTY), (e) => e instanceof HandshakeError && e.reason === "low_order_key");
});

Deno.test("HandshakeState refuses short and oversized messages, and calls out of turn", () => {
  const init = new HandshakeState({ pattern: PATTERN_XX, initiator: true, prologue: EMPTY, s: keyPair() });
  throws(() => init.readMessage(new Uint8Array(100)), /it is the local turn/);
  const m1 = init.writeMessage(EMPTY);
  throws(() => init.writeMessage(EMPTY), /peer's turn/);
  throws(
    () => init.readMessage(new Uint8Array(95)),
    (e) => e instanceof HandshakeError && e.reason === "malformed" && /expected >= 96/.test(e.message),
  );
  throws(() => init.readMessage(new Uint8Array(65536)), (e) => e instanceof HandshakeError && e.reason === "oversized");
  const resp = new HandshakeState({ pattern: PATTERN_XX, initiator: false, prologue: EMPTY, s: keyPair() });
  resp.readMessage(m1);
  throws(() => init.splitKeys(), /not complete/);
});

Deno.test("HandshakeState gives the keys once and wipes the injected ephemeral copy, not the caller's", () => {
  const e = keyPair(), copy = e.secretKey.slice();
  const init = new HandshakeState({ pattern: PATTERN_XX, initiator: true, prologue: EMPTY, s: keyPair(), e });
  const resp = new HandshakeState({ pattern: PATTERN_XX, initiator: false, prologue: EMPTY, s: keyPair() });
  resp.readMessage(init.writeMessage(EMPTY));
  init.readMessage(resp.writeMessage(EMPTY));
  resp.readMessage(init.writeMessage(EMPTY));
  eql(e.secretKey, copy);
  eql(init.splitKeys(), resp.splitKeys());
  throws(() => init.splitKeys(), /already taken/);
});

// --- Cross-check with @chainsafe/libp2p-noise (SHA-256) ---

interface Libp2pKeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}
interface Libp2pCipherState {
  k?: Uint8Array;
}
interface Libp2pXX {
  ss: { h: Uint8Array; split(): [Libp2pCipherState, Libp2pCipherState] };
  writeMessageA(payload: Uint8Array): { subarray(): Uint8Array };
  writeMessageB(payload: Uint8Array): { subarray(): Uint8Array };
  writeMessageC(payload: Uint8Array): { subarray(): Uint8Array };
  readMessageA(message: unknown): { subarray(): Uint8Array };
  readMessageB(message: unknown): { subarray(): Uint8Array };
  readMessageC(message: unknown): { subarray(): Uint8Array };
}
type Libp2pXXConstructor = new (init: {
  crypto: unknown;
  protocolName: string;
  initiator: boolean;
  prologue: Uint8Array;
  s: Libp2pKeyPair;
}) => Libp2pXX;

// js-libp2p-noise exports only its libp2p transport; its Noise core (protocol.js) sits beside the entry point.
const libp2pProtocol = await import(new URL("./protocol.js", import.meta.resolve("@chainsafe/libp2p-noise")).href);
const Libp2pXXHandshakeState: Libp2pXXConstructor = libp2pProtocol.XXHandshakeState;

/** libp2p-noise's ICrypto on its own pure-JS primitives, with the ephemeral key fixed. */
function libp2pCrypto(ephemeral: KeyPair) {
  return {
    generateKeypair: (): Libp2pKeyPair => ({
      publicKey: ephemeral.publicKey.slice(),
      privateKey: ephemeral.secretKey.slice(),
    }),
    dh: (kp: Libp2pKeyPair, pub: Uint8Array) =>
      pureJsCrypto.generateX25519SharedKey(kp.privateKey, pub).subarray(0, 32),
    encrypt: pureJsCrypto.chaCha20Poly1305Encrypt,
    decrypt: pureJsCrypto.chaCha20Poly1305Decrypt,
    hash: pureJsCrypto.hashSHA256,
    hkdf: pureJsCrypto.getHKDF,
  };
}

function libp2pState(initiator: boolean, prologue: Uint8Array, s: KeyPair, e: KeyPair): Libp2pXX {
  return new Libp2pXXHandshakeState({
    crypto: libp2pCrypto(e),
    protocolName: "Noise_XX_25519_ChaChaPoly_SHA256",
    initiator,
    prologue,
    s: { publicKey: s.publicKey, privateKey: s.secretKey },
  });
}

// Its readers take a Uint8ArrayList; borrow the class from one of its own messages.
const Uint8ArrayList = (libp2pState(true, EMPTY, keyPair(), keyPair()).writeMessageA(EMPTY) as object)
  .constructor as new (...bufs: Uint8Array[]) => unknown;

const handshakeInputs = fc.record({
  prologue: fc.uint8Array({ maxLength: 64 }),
  payloads: fc.tuple(
    fc.uint8Array({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }),
  ),
  secrets: fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 4, maxLength: 4 }),
});

Deno.test("XX: our initiator and libp2p-noise's responder write identical messages and split identical keys", () => {
  fc.assert(
    fc.property(handshakeInputs, ({ prologue, payloads, secrets }) => {
      const [is, ie, rs, re] = secrets.map((s) => keyPair(s));
      const ours = new HandshakeState({ pattern: PATTERN_XX, initiator: true, prologue, s: is, e: ie });
      const ref = libp2pState(true, prologue, is, ie);
      const theirResponder = libp2pState(false, prologue, rs, re);
      // Message 1: ours and theirs must agree byte for byte; their responder reads ours.
      const m1 = ours.writeMessage(payloads[0]);
      eql(m1, ref.writeMessageA(payloads[0]).subarray());
      eql(theirResponder.readMessageA(new Uint8ArrayList(m1)).subarray(), payloads[0]);
      // Message 2 from their responder.
      const m2 = theirResponder.writeMessageB(payloads[1]).subarray();
      eql(ours.readMessage(m2), payloads[1]);
      ref.readMessageB(new Uint8ArrayList(m2));
      // Message 3.
      const m3 = ours.writeMessage(payloads[2]);
      eql(m3, ref.writeMessageC(payloads[2]).subarray());
      eql(theirResponder.readMessageC(new Uint8ArrayList(m3)).subarray(), payloads[2]);
      eql(ours.handshakeHash, theirResponder.ss.h);
      const [k1, k2] = ours.splitKeys();
      const [c1, c2] = theirResponder.ss.split();
      eql([k1, k2], [c1.k, c2.k]);
    }),
    { numRuns: 50 },
  );
});

Deno.test("XX: libp2p-noise's initiator and our responder agree on every message, the hash and the keys", () => {
  fc.assert(
    fc.property(handshakeInputs, ({ prologue, payloads, secrets }) => {
      const [is, ie, rs, re] = secrets.map((s) => keyPair(s));
      const theirInitiator = libp2pState(true, prologue, is, ie);
      const ours = new HandshakeState({ pattern: PATTERN_XX, initiator: false, prologue, s: rs, e: re });
      const ref = libp2pState(false, prologue, rs, re);
      const m1 = theirInitiator.writeMessageA(payloads[0]).subarray();
      eql(ours.readMessage(m1), payloads[0]);
      ref.readMessageA(new Uint8ArrayList(m1));
      const m2 = ours.writeMessage(payloads[1]);
      eql(m2, ref.writeMessageB(payloads[1]).subarray());
      eql(theirInitiator.readMessageB(new Uint8ArrayList(m2)).subarray(), payloads[1]);
      const m3 = theirInitiator.writeMessageC(payloads[2]).subarray();
      eql(ours.readMessage(m3), payloads[2]);
      eql(ours.handshakeHash, theirInitiator.ss.h);
      const [c1, c2] = theirInitiator.ss.split();
      eql(ours.splitKeys(), [c1.k, c2.k]);
    }),
    { numRuns: 50 },
  );
});

// --- Cross-check with noise-handshake (BLAKE2b) ---

/** Our core with BLAKE2b (HASHLEN 64), noise-handshake's only hash. */
const BLAKE2B_SUITE: NoiseSuite = {
  ...NOISE_SUITE,
  name: "25519_ChaChaPoly_BLAKE2b",
  hashLen: 64,
  hash: (data) => blake2b(data),
  hmac: (key, data) => hmac(blake2b, key, data),
};

interface HolepunchKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}
interface HolepunchNoise {
  e: HolepunchKeyPair | null;
  tx: Uint8Array;
  rx: Uint8Array;
  hash: Uint8Array;
  complete: boolean;
  initialise(prologue: Uint8Array, remoteStatic?: Uint8Array): void;
  send(payload?: Uint8Array): Uint8Array;
  recv(message: Uint8Array): Uint8Array;
}
const Holepunch = NoiseHandshake as unknown as new (
  pattern: string,
  initiator: boolean,
  staticKeyPair: HolepunchKeyPair,
) => HolepunchNoise;

/** A Buffer as a plain Uint8Array, for deepStrictEqual. */
function plain(bytes: Uint8Array): Uint8Array {
  return Uint8Array.from(bytes);
}

/** noise-handshake wipes its keys when done: give it copies. */
function holepunch(pattern: string, initiator: boolean, s: KeyPair, e: KeyPair, prologue: Uint8Array, rs?: Uint8Array) {
  const noise = new Holepunch(pattern, initiator, { publicKey: s.publicKey.slice(), secretKey: s.secretKey.slice() });
  noise.initialise(prologue, rs?.slice());
  noise.e = { publicKey: e.publicKey.slice(), secretKey: e.secretKey.slice() };
  return noise;
}

for (const [name, pattern] of [["XX", PATTERN_XX], ["IK", PATTERN_IK]] as const) {
  for (const ourRole of ["initiator", "responder"] as const) {
    Deno.test(`${name}: our ${ourRole} and noise-handshake agree on every message, the hash and the transport keys (BLAKE2b)`, () => {
      fc.assert(
        fc.property(handshakeInputs, ({ prologue, payloads, secrets }) => {
          const [is, ie, rs, re] = secrets.map((s) => keyPair(s));
          const weInitiate = ourRole === "initiator";
          // IK: the initiator knows the responder's static key before it starts.
          const preRs = pattern === PATTERN_IK ? rs.publicKey : undefined;
          const ours = new HandshakeState({
            pattern,
            initiator: weInitiate,
            prologue,
            s: weInitiate ? is : rs,
            e: weInitiate ? ie : re,
            rs: weInitiate ? preRs : undefined,
            suite: BLAKE2B_SUITE,
          });
          const theirs = weInitiate
            ? holepunch(name, false, rs, re, prologue)
            : holepunch(name, true, is, ie, prologue, preRs);
          // A second copy of our side in noise-handshake, to compare what we write.
          const mirror = weInitiate
            ? holepunch(name, true, is, ie, prologue, preRs)
            : holepunch(name, false, rs, re, prologue);
          for (let i = 0; i < pattern.messages.length; i++) {
            const oursWrites = (i % 2 === 0) === weInitiate;
            if (oursWrites) {
              const message = ours.writeMessage(payloads[i]);
              eql(message, plain(mirror.send(payloads[i])), `message ${i + 1}`);
              eql(plain(theirs.recv(message)), payloads[i]);
            } else {
              const message = theirs.send(payloads[i]);
              eql(ours.readMessage(message), payloads[i], `message ${i + 1}`);
              mirror.recv(message);
            }
          }
          eql(theirs.complete, true);
          eql(ours.handshakeHash, plain(theirs.hash));
          const [k1, k2] = ours.splitKeys();
          // noise-handshake's tx/rx are its own send and receive keys.
          eql(weInitiate ? [k1, k2] : [k2, k1], [plain(theirs.rx), plain(theirs.tx)]);
        }),
        { numRuns: 30 },
      );
    });
  }
}
