/**
 * NZ-HANDSHAKE-01 (spec/protocols/NZ-HANDSHAKE-01.md): the three-message
 * handshake that opens every connection between two nodes.
 * `Noise_XX_25519_ChaChaPoly_SHA256` with the prologue `NZ-HANDSHAKE-01`;
 * each side's payload binds its Noise static key to its Ed25519 identity by a
 * signature, and carries its protocol versions (the highest common one wins)
 * and features.
 *
 * {@linkcode performHandshake} runs one side over a {@linkcode FrameIO}. It
 * either resolves with the authenticated peer and the session keys, or aborts
 * the FrameIO and rejects with a {@linkcode HandshakeError} whose `reason`
 * names the failure (subclasses {@linkcode PeerMismatchError} and
 * {@linkcode VersionMismatchError}).
 *
 * @example A handshake over an in-memory pair of FrameIOs
 * ```ts
 * import { performHandshake } from "./handshake.ts";
 * import { Identity } from "../identity/identity.ts";
 * import type { FrameIO } from "./types.ts";
 *
 * // A minimal connected pair, one unbounded queue per direction.
 * function pair(): [FrameIO, FrameIO] {
 *   const queues: Uint8Array[][] = [[], []];
 *   const waiters: ((f: Uint8Array) => void)[][] = [[], []];
 *   const end = (me: number): FrameIO => ({
 *     maxFrameSize: 65_535,
 *     read: () => new Promise((resolve) => {
 *       const frame = queues[me].shift();
 *       if (frame) resolve(frame);
 *       else waiters[me].push(resolve);
 *     }),
 *     write: (frame) => {
 *       const waiter = waiters[1 - me].shift();
 *       if (waiter) waiter(frame);
 *       else queues[1 - me].push(frame);
 *       return Promise.resolve();
 *     },
 *     close: () => Promise.resolve(),
 *     abort: () => {},
 *   });
 *   return [end(0), end(1)];
 * }
 *
 * const alice = Identity.generate("alice"), bob = Identity.generate("bob");
 * const [a, b] = pair();
 * const [ra, rb] = await Promise.all([
 *   performHandshake(a, { role: "initiator", identity: alice, expectedPeer: bob.nodeId }),
 *   performHandshake(b, { role: "responder", identity: bob }),
 * ]);
 * if (ra.peer.nodeId !== bob.nodeId || rb.peer.did !== alice.did) throw new Error("Cannot authenticate");
 * if (ra.version !== 1) throw new Error("Cannot agree on a version");
 * ```
 *
 * @module
 */

import { abortable } from "../async.ts";
import { assertBytes, timingSafeEqual, utf8, wipe } from "../bytes.ts";
import { crypto as defaultCrypto } from "../crypto/default.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { randomBytes } from "../crypto/random.ts";
import { decodeDidKey, encodeDidKey } from "../identity/did.ts";
import { nodeIdOf } from "../identity/identity.ts";
import { HandshakeError, PeerMismatchError, VersionMismatchError } from "./errors.ts";
import {
  decodeAccept,
  decodeFinish,
  decodeOffer,
  encodeAccept,
  encodeFinish,
  encodeOffer,
  type IdentityBlock,
  normalizeFeatures,
  normalizeVersions,
} from "./handshake_payload.ts";
import {
  HandshakeState,
  type KeyPair,
  NOISE_SUITE,
  type NoiseSuite,
  PATTERN_XX,
  suite25519ChaChaPolySha256,
} from "./noise.ts";
import type { FrameIO, PeerIdentity, SessionKeys } from "./types.ts";

// --- Spec constants (NZ-HANDSHAKE-01) ---

/** The Noise protocol name (section 1). */
export const PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256";
/** The prologue: the 15 ASCII bytes `NZ-HANDSHAKE-01` (section 1). */
export const PROLOGUE: Uint8Array = utf8("NZ-HANDSHAKE-01");
/** What the identity signs, followed by the 32-byte static public key (section 4). */
export const SIGNATURE_PREFIX = "nz-handshake-01 static key:";
/** The largest handshake frame accepted, in bytes (section 2); the largest valid one is 1284. */
export const MAX_HANDSHAKE_MESSAGE = 4096;
/** The protocol versions this implementation speaks (section 5): 1 = NZ-CHANNEL-01. */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([1]);

// --- Implementation constants ---

/** How long a whole handshake may take by default, in milliseconds (section 8). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const SIGNATURE_PREFIX_BYTES = utf8(SIGNATURE_PREFIX);

/** What a handshake needs of an identity: its Ed25519 public key and signing. `Identity` is one. */
export interface HandshakeIdentity {
  /** The Ed25519 public key (32 bytes). */
  readonly publicKey: Uint8Array;
  /** Signs a message with the identity's Ed25519 key. */
  sign(message: Uint8Array): Uint8Array;
}

/** A Noise static key pair with its identity's signature over the public key (section 4). */
export interface StaticKey extends KeyPair {
  /** The Ed25519 public key that signed. */
  readonly identityKey: Uint8Array;
  /** Ed25519 signature of {@linkcode staticKeyMessage}(publicKey). */
  readonly signature: Uint8Array;
}

/** Options of {@linkcode createStaticKey}. */
export interface CreateStaticKeyOptions {
  /** The X25519 secret (copied); default 32 fresh random bytes. */
  secretKey?: Uint8Array;
  /** The crypto provider; default the kernel's `crypto`. */
  provider?: CryptoProvider;
}

/**
 * The message an identity signs to bind a Noise static key to itself:
 * `"nz-handshake-01 static key:" || staticPublic` (59 bytes, section 4).
 *
 * @param staticPublic The 32-byte X25519 static public key.
 * @returns The message to sign or verify.
 * @throws {RangeError} when `staticPublic` is not 32 bytes.
 */
export function staticKeyMessage(staticPublic: Uint8Array): Uint8Array {
  assertBytes(staticPublic, 32, "staticPublic");
  const message = new Uint8Array(SIGNATURE_PREFIX_BYTES.length + 32);
  message.set(SIGNATURE_PREFIX_BYTES, 0);
  message.set(staticPublic, SIGNATURE_PREFIX_BYTES.length);
  return message;
}

/**
 * Creates a Noise static key for `identity` and signs it once; pass it as
 * `staticKey` to many handshakes.
 *
 * @param identity The identity that signs.
 * @param options The secret (default random) and provider.
 * @returns The key pair, the identity key and the signature.
 * @throws {TypeError} when the identity's signature does not verify under its own public key (a wiped identity).
 *
 * @example Sign one static key for every handshake of a node
 * ```ts
 * import { createStaticKey } from "./handshake.ts";
 * import { Identity } from "../identity/identity.ts";
 *
 * const identity = Identity.generate("node");
 * const staticKey = createStaticKey(identity);
 * if (staticKey.signature.length !== 64) throw new Error("Cannot sign the static key");
 * ```
 */
export function createStaticKey(identity: HandshakeIdentity, options: CreateStaticKeyOptions = {}): StaticKey {
  const provider = options.provider ?? defaultCrypto;
  assertBytes(identity.publicKey, 32, "identity.publicKey");
  if (options.secretKey !== undefined) assertBytes(options.secretKey, 32, "secretKey");
  const secretKey = options.secretKey?.slice() ?? randomBytes(32);
  const publicKey = provider.x25519PublicKey(secretKey);
  const message = staticKeyMessage(publicKey);
  const signature = identity.sign(message);
  if (!provider.ed25519Verify(identity.publicKey, message, signature)) {
    throw new TypeError("Invalid identity: its signature does not verify under its public key");
  }
  return Object.freeze({ secretKey, publicKey, identityKey: identity.publicKey.slice(), signature });
}

// One static key per identity object for the life of the process (spec section 8), signed once.
const staticKeys = new WeakMap<HandshakeIdentity, StaticKey>();

function staticKeyFor(identity: HandshakeIdentity, provider: CryptoProvider): StaticKey {
  let key = staticKeys.get(identity);
  if (key === undefined) {
    key = createStaticKey(identity, { provider });
    staticKeys.set(identity, key);
  }
  return key;
}

/** Options of {@linkcode performHandshake}. */
export interface HandshakeOptions {
  /** `initiator` (this side dialed) or `responder` (this side accepted). */
  role: "initiator" | "responder";
  /** This node's identity. */
  identity: HandshakeIdentity;
  /**
   * The Noise static key, from {@linkcode createStaticKey} with the same
   * identity. Default: one made for `identity` on first use and kept with it.
   */
  staticKey?: StaticKey;
  /** The versions this side speaks (default {@linkcode SUPPORTED_VERSIONS}). */
  versions?: readonly number[];
  /** This side's features (default none). */
  features?: readonly string[];
  /**
   * The peer this side means to reach: its node ID (hex), `did:key`, or
   * Ed25519 public key. Another identity fails with {@linkcode PeerMismatchError};
   * an initiator checks before it sends its own identity.
   */
  expectedPeer?: string | Uint8Array;
  /** Aborts the handshake (`aborted`). */
  signal?: AbortSignal;
  /** The time limit for the whole handshake in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Receives one line for a failed handshake, e.g. to log it. */
  log?: (message: string) => void;
  /**
   * A fixed ephemeral X25519 secret, for test vectors only: reusing one
   * breaks forward secrecy and more. Default: fresh random bytes.
   */
  ephemeralSecret?: Uint8Array;
  /** The crypto provider; default the kernel's `crypto`. */
  provider?: CryptoProvider;
}

/** What a finished handshake yields. */
export interface HandshakeResult {
  /** The authenticated peer. */
  peer: PeerIdentity;
  /** The version both sides speak: the highest in common. */
  version: number;
  /** The peer's features, ascending. */
  features: string[];
  /** The transport keys and the handshake hash. */
  keys: SessionKeys;
  /** The peer's Noise static public key (32 bytes). */
  remoteStaticKey: Uint8Array;
}

interface Config {
  role: "initiator" | "responder";
  identity: HandshakeIdentity;
  staticKey: StaticKey;
  versions: number[];
  features: string[];
  expectedPeer: Uint8Array | string | undefined;
  provider: CryptoProvider;
  suite: NoiseSuite;
  ephemeral: KeyPair | undefined;
}

/**
 * Runs one side of an NZ-HANDSHAKE-01 handshake over `io`: exactly three
 * frames, then `io` carries the channel.
 *
 * @param io The connection's frames; nothing else may read or write it during the handshake.
 * @param options Role, identity, versions, features, the expected peer, signal and time limit.
 * @returns The peer, the chosen version, the peer's features and the session keys.
 * @throws {TypeError} or {RangeError} for invalid options, before any I/O.
 * @throws {HandshakeError} on any failure, after aborting `io` with it as the reason
 *   ({@linkcode PeerMismatchError}, {@linkcode VersionMismatchError} for those two reasons).
 */
export async function performHandshake(io: FrameIO, options: HandshakeOptions): Promise<HandshakeResult> {
  const config = configure(io, options);
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`Invalid timeoutMs: ${timeoutMs}`);
  const hs = new HandshakeState({
    pattern: PATTERN_XX,
    initiator: config.role === "initiator",
    prologue: PROLOGUE,
    s: config.staticKey,
    e: config.ephemeral,
    suite: config.suite,
  });
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new HandshakeError("timeout", `Handshake timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  const onAbort = () => {
    const reason = options.signal?.reason;
    const detail = reason instanceof Error ? reason.message : String(reason);
    controller.abort(new HandshakeError("aborted", `Handshake aborted: ${detail}`, { cause: reason }));
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return config.role === "initiator"
      ? await runInitiator(io, hs, config, controller.signal)
      : await runResponder(io, hs, config, controller.signal);
  } catch (error) {
    if (error instanceof HandshakeError) {
      options.log?.(`nzcore: handshake as ${config.role} failed (${error.reason}): ${error.message}`);
    }
    io.abort(error);
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    hs.wipe();
    if (config.ephemeral) wipe(config.ephemeral.secretKey);
  }
}

function configure(io: FrameIO, options: HandshakeOptions): Config {
  if (options.role !== "initiator" && options.role !== "responder") {
    throw new TypeError(`Invalid role: ${options.role}, expected "initiator" or "responder"`);
  }
  if (!(io.maxFrameSize >= MAX_HANDSHAKE_MESSAGE)) {
    throw new RangeError(`Invalid io: maxFrameSize is ${io.maxFrameSize}, expected >= ${MAX_HANDSHAKE_MESSAGE}`);
  }
  const provider = options.provider ?? defaultCrypto;
  const identity = options.identity;
  assertBytes(identity?.publicKey, 32, "identity.publicKey");
  const staticKey = options.staticKey ?? staticKeyFor(identity, provider);
  if (!timingSafeEqual(staticKey.identityKey, identity.publicKey)) {
    throw new TypeError("Invalid staticKey: it was signed by another identity");
  }
  const expectedPeer = options.expectedPeer;
  if (typeof expectedPeer === "string") {
    if (expectedPeer.startsWith("did:key:")) decodeDidKey(expectedPeer);
    else if (!/^[0-9a-fA-F]{64}$/.test(expectedPeer)) {
      throw new SyntaxError(`Invalid expectedPeer: "${expectedPeer}" is neither a node ID nor a did:key`);
    }
  } else if (expectedPeer !== undefined) {
    assertBytes(expectedPeer, 32, "expectedPeer");
  }
  let ephemeral: KeyPair | undefined;
  if (options.ephemeralSecret !== undefined) {
    assertBytes(options.ephemeralSecret, 32, "ephemeralSecret");
    const secretKey = options.ephemeralSecret.slice();
    ephemeral = { secretKey, publicKey: provider.x25519PublicKey(secretKey) };
  }
  return {
    role: options.role,
    identity,
    staticKey,
    versions: normalizeVersions(options.versions ?? SUPPORTED_VERSIONS),
    features: normalizeFeatures(options.features ?? []),
    expectedPeer,
    provider,
    suite: options.provider ? suite25519ChaChaPolySha256(options.provider) : NOISE_SUITE,
    ephemeral,
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function readMessage(io: FrameIO, signal: AbortSignal, number: number): Promise<Uint8Array> {
  let frame: Uint8Array | null;
  try {
    frame = await abortable(io.read(), signal);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new HandshakeError("io", `Cannot read handshake message ${number}: ${describe(error)}`, { cause: error });
  }
  if (frame === null) {
    throw new HandshakeError("closed", `The peer closed the connection before handshake message ${number}`);
  }
  if (frame.length > MAX_HANDSHAKE_MESSAGE) {
    throw new HandshakeError(
      "oversized",
      `Cannot read handshake message ${number}: length is ${frame.length}, expected <= ${MAX_HANDSHAKE_MESSAGE}`,
    );
  }
  return frame;
}

async function writeMessage(io: FrameIO, signal: AbortSignal, number: number, message: Uint8Array): Promise<void> {
  try {
    await abortable(io.write(message), signal);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new HandshakeError("io", `Cannot write handshake message ${number}: ${describe(error)}`, { cause: error });
  }
}

/** Verifies an IdentityBlock against the static key of the same message, then the expected peer (section 4). */
function authenticate(config: Config, block: IdentityBlock, remoteStatic: Uint8Array, number: number): PeerIdentity {
  if (!config.provider.ed25519Verify(block.identity, staticKeyMessage(remoteStatic), block.signature)) {
    throw new HandshakeError(
      "bad_signature",
      `Cannot authenticate the peer: the identity signature in handshake message ${number} does not verify over its static key`,
    );
  }
  const nodeId = nodeIdOf(block.identity);
  const expected = config.expectedPeer;
  if (expected !== undefined) {
    let matches: boolean;
    if (typeof expected === "string") {
      matches = expected.startsWith("did:key:")
        ? timingSafeEqual(decodeDidKey(expected), block.identity)
        : expected.toLowerCase() === nodeId;
    } else {
      matches = timingSafeEqual(expected, block.identity);
    }
    if (!matches) {
      const wanted = typeof expected === "string" ? expected : nodeIdOf(expected);
      throw new PeerMismatchError(`The peer is ${nodeId}, not the expected ${wanted}`, nodeId);
    }
  }
  return { publicKey: block.identity, nodeId, did: encodeDidKey(block.identity) };
}

function highestCommon(a: readonly number[], b: readonly number[]): number {
  let best = 0;
  for (const v of a) if (v > best && b.includes(v)) best = v;
  return best;
}

function noCommonVersion(local: readonly number[], remote: readonly number[]): VersionMismatchError {
  return new VersionMismatchError(
    `No protocol version in common: this node speaks ${local.join(", ")}, the peer ${remote.join(", ")}`,
    local,
    remote,
  );
}

function finish(
  hs: HandshakeState,
  config: Config,
  peer: PeerIdentity,
  version: number,
  features: string[],
): HandshakeResult {
  const [k1, k2] = hs.splitKeys();
  const initiator = config.role === "initiator";
  return {
    peer,
    version,
    features,
    keys: { initiator, sendKey: initiator ? k1 : k2, recvKey: initiator ? k2 : k1, handshakeHash: hs.handshakeHash },
    remoteStaticKey: hs.remoteStatic!,
  };
}

function ownBlock(config: Config): IdentityBlock {
  return { identity: config.identity.publicKey, signature: config.staticKey.signature, features: config.features };
}

async function runInitiator(
  io: FrameIO,
  hs: HandshakeState,
  config: Config,
  signal: AbortSignal,
): Promise<HandshakeResult> {
  // -> e; Offer in clear, bound into h.
  await writeMessage(io, signal, 1, hs.writeMessage(encodeOffer(config.versions)));
  // <- e, ee, s, es; Accept.
  const accept = decodeAccept(hs.readMessage(await readMessage(io, signal, 2)));
  const peer = authenticate(config, accept, hs.remoteStatic!, 2);
  if (accept.chosen === 0) throw noCommonVersion(config.versions, accept.versions);
  const expected = highestCommon(config.versions, accept.versions);
  if (accept.chosen !== expected) {
    throw new HandshakeError(
      "bad_version",
      `The peer chose version ${accept.chosen}, but the highest in common is ${expected || "none"}`,
    );
  }
  // -> s, se; Finish. Sent only now that the responder is authenticated (and the expected one).
  await writeMessage(io, signal, 3, hs.writeMessage(encodeFinish(ownBlock(config))));
  return finish(hs, config, peer, accept.chosen, accept.features);
}

async function runResponder(
  io: FrameIO,
  hs: HandshakeState,
  config: Config,
  signal: AbortSignal,
): Promise<HandshakeResult> {
  // -> e; Offer.
  const offered = decodeOffer(hs.readMessage(await readMessage(io, signal, 1)));
  const chosen = highestCommon(config.versions, offered);
  // <- e, ee, s, es; Accept, sent even without a common version so the initiator learns why.
  const accept = encodeAccept({ chosen, versions: config.versions, ...ownBlock(config) });
  await writeMessage(io, signal, 2, hs.writeMessage(accept));
  if (chosen === 0) {
    // Let message 2 reach the peer before the connection goes.
    await abortable(io.close(), signal).catch(() => {});
    throw noCommonVersion(config.versions, offered);
  }
  // -> s, se; Finish.
  const block = decodeFinish(hs.readMessage(await readMessage(io, signal, 3)));
  const peer = authenticate(config, block, hs.remoteStatic!, 3);
  return finish(hs, config, peer, chosen, block.features);
}
