/**
 * Node-to-node relay (NZ-RELAY-01, spec/protocols/NZ-RELAY-01.md), protocol
 * `nz/relay/1`. A node A connected to a relay R asks R for a way to a node B
 * that is also connected to R; R opens a stream to B announcing A, and once B
 * accepts, R pipes the two streams into each other without reading them. A
 * and B then run NZ-HANDSHAKE-01 and NZ-CHANNEL-01 end to end inside the
 * piped streams, so R forwards sealed frames it cannot read.
 *
 * - {@linkcode RelayService} (made by {@linkcode serveRelay}) serves the
 *   protocol on a node: the relay role when enabled (with limits on sessions,
 *   bandwidth, duration and bytes), and the target role (accepting relayed
 *   sessions) always, unless turned off.
 * - {@linkcode relayConnect} is the client: a session with B through R.
 *
 * @module
 */

import { abortable, sleep } from "../async.ts";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { NotFoundError } from "../errors.ts";
import type { Stream } from "../channel/stream.ts";
import { createFrameIO } from "../../transport/framing.ts";
import type { Link, PeerManager, Session } from "./manager.ts";
import { validNodeId } from "../identity/identity.ts";
import { streamDuplex } from "./stream_duplex.ts";

/** The stream protocol of NZ-RELAY-01. */
export const RELAY_PROTOCOL = "nz/relay/1";

// --- Spec constants (NZ-RELAY-01 section "Messages") ---
/** CONNECT: `0x01 || target node ID (32 bytes)`, from the requesting node to the relay. */
export const RELAY_CONNECT = 0x01;
/** INCOMING: `0x02 || source node ID (32 bytes)`, from the relay to the target. */
export const RELAY_INCOMING = 0x02;
/** STATUS: `0x03 || code (1 byte) || reason (UTF-8, at most 256 bytes)`, the answer to either. */
export const RELAY_STATUS = 0x03;
/** The longest reason of a STATUS, in bytes. */
export const MAX_RELAY_REASON = 256;
const NODE_ID_LEN = 32;

/** STATUS codes (NZ-RELAY-01 section "Status codes"). */
export const RelayStatus = {
  /** Accepted: from now on the stream carries the end-to-end bytes. */
  OK: 0,
  /** The node does not relay. */
  DISABLED: 1,
  /** The target is not connected to the relay. */
  NOT_CONNECTED: 2,
  /** A limit of the relay (sessions in all, or per peer) is reached. */
  LIMIT: 3,
  /** The target refused the relayed session. */
  REFUSED: 4,
  /** The request did not decode, or names the requester or the relay itself. */
  BAD_REQUEST: 5,
  /** The target did not answer (in time, or its stream failed). */
  UNREACHABLE: 6,
} as const;

/** A STATUS code's name. */
export type RelayStatusName = keyof typeof RelayStatus;

// --- Implementation constants ---
/** How long a side waits for the next message of the opening exchange. */
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** The token bucket holds at most this much (or one second of the rate, if smaller): the largest burst. */
const BUCKET_BURST = 64 * 1024;

/** A relay refused, or the relayed stream failed before the handshake. */
export class RelayError extends Error {
  /** The STATUS code's name. */
  readonly code: RelayStatusName;
  /** Creates the error for `code`, with the relay's reason in the message. */
  constructor(code: RelayStatusName, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RelayError";
    this.code = code;
  }
}

/** Options of the relay role. */
export interface RelayOptions {
  /** Whether this node relays for others (default false). */
  enabled?: boolean;
  /** Relayed sessions at once, in all (default 64). */
  maxSessions?: number;
  /** Relayed sessions at once in which one node takes part, as requester or target (default 8). */
  maxPerPeer?: number;
  /** Bytes per second each direction of a relayed session may carry (token bucket; default 1 MiB/s). */
  maxBytesPerSecond?: number;
  /** How long a relayed session may last before it is cut (default 10 min). */
  maxDurationMs?: number;
  /** Bytes a relayed session may carry in both directions together before it is cut (default 1 GiB). */
  maxBytes?: number;
}

/** Options of {@linkcode serveRelay}. */
export interface RelayServiceOptions {
  /** The relay role and its limits (off by default). */
  relay?: RelayOptions;
  /** Whether sessions relayed to this node are accepted (default true). */
  acceptRelayed?: boolean;
  /** How long each side waits for the opening exchange, in milliseconds (default 10 s). */
  requestTimeoutMs?: number;
}

/** Counters of a {@linkcode RelayService}. */
export interface RelayStats {
  /** Relayed sessions running now. */
  active: number;
  /** Relayed sessions started. */
  started: number;
  /** Requests refused (any code but OK). */
  refused: number;
  /** Sessions cut by a limit (bytes, duration). */
  cut: number;
  /** Bytes forwarded, both directions. */
  bytes: number;
}

/** One relayed session, as the relay sees it. */
interface Piped {
  a: string;
  b: string;
  cut: AbortController;
  bytes: number;
}

/**
 * Serves `nz/relay/1` on a node: relays for others when `relay.enabled`,
 * and accepts sessions relayed to it.
 */
export class RelayService {
  /** Counters, live. */
  readonly stats: RelayStats = { active: 0, started: 0, refused: 0, cut: 0, bytes: 0 };
  #manager: PeerManager;
  #relay: Required<RelayOptions>;
  #acceptRelayed: boolean;
  #timeoutMs: number;
  #piped = new Set<Piped>();
  #perPeer = new Map<string, number>();
  #closed = false;

  /** Registers the `nz/relay/1` handler on `manager`. */
  constructor(manager: PeerManager, options: RelayServiceOptions = {}) {
    const relay = options.relay ?? {};
    this.#relay = {
      enabled: relay.enabled ?? false,
      maxSessions: positive(relay.maxSessions, 64, "relay.maxSessions"),
      maxPerPeer: positive(relay.maxPerPeer, 8, "relay.maxPerPeer"),
      maxBytesPerSecond: positive(relay.maxBytesPerSecond, 1024 * 1024, "relay.maxBytesPerSecond"),
      maxDurationMs: positive(relay.maxDurationMs, 10 * 60_000, "relay.maxDurationMs"),
      maxBytes: positive(relay.maxBytes, 1024 ** 3, "relay.maxBytes"),
    };
    this.#acceptRelayed = options.acceptRelayed ?? true;
    this.#timeoutMs = positive(options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS, "requestTimeoutMs");
    this.#manager = manager;
    manager.handle(RELAY_PROTOCOL, (stream, session) => this.#serve(stream, session));
  }

  /** Cuts every relayed session and refuses new requests. */
  close(): void {
    this.#closed = true;
    for (const piped of this.#piped) piped.cut.abort(new RelayError("DISABLED", "The relay is stopping"));
  }

  async #serve(stream: Stream, session: Session): Promise<void> {
    const first = await abortable(stream.receive(), AbortSignal.timeout(this.#timeoutMs)).catch(() => null);
    if (first === null) {
      stream.reset();
      return;
    }
    if (first.length === 1 + NODE_ID_LEN && first[0] === RELAY_CONNECT) {
      await this.#relayFor(stream, session, toHex(first.subarray(1)));
    } else if (first.length === 1 + NODE_ID_LEN && first[0] === RELAY_INCOMING) {
      await this.#accept(stream, session, toHex(first.subarray(1)));
    } else {
      await this.#refuse(stream, "BAD_REQUEST", `Cannot decode the request: ${describeMessage(first)}`);
    }
  }

  /** The target role: a relay announces `source`. */
  async #accept(stream: Stream, relay: Session, source: string): Promise<void> {
    if (!this.#acceptRelayed) {
      await this.#refuse(stream, "REFUSED", "This node accepts no relayed sessions");
      return;
    }
    await stream.send(encodeRelayStatus(RelayStatus.OK, ""));
    const link = relayLink(stream, relay.nodeId, source);
    const session = await this.#manager.acceptLink(link);
    if (session && session.nodeId !== source) {
      // The handshake authenticates the peer; a relay that announced someone else is not believed.
      await session.close(`the relay announced ${source.slice(0, 12)}, the handshake authenticated another node`);
    }
  }

  /** The relay role: `requester` asks for a way to `target`. */
  async #relayFor(stream: Stream, requester: Session, target: string): Promise<void> {
    const limits = this.#relay;
    if (!limits.enabled || this.#closed) return this.#refuse(stream, "DISABLED", "This node does not relay");
    if (target === requester.nodeId) return this.#refuse(stream, "BAD_REQUEST", "The target is the requester itself");
    if (this.#piped.size >= limits.maxSessions) {
      return this.#refuse(stream, "LIMIT", `The relay carries ${limits.maxSessions} sessions already (maxSessions)`);
    }
    for (const node of [requester.nodeId, target]) {
      if ((this.#perPeer.get(node) ?? 0) >= limits.maxPerPeer) {
        return this.#refuse(
          stream,
          "LIMIT",
          `Node ${node.slice(0, 12)} takes part in ${limits.maxPerPeer} relayed sessions already (maxPerPeer)`,
        );
      }
    }
    const targetSession = this.#manager.sessions().find((s) => s.nodeId === target);
    if (!targetSession) {
      return this.#refuse(stream, "NOT_CONNECTED", `Node ${target.slice(0, 12)} is not connected to this relay`);
    }
    // The slot is taken before the target is asked, so that requests arriving meanwhile count it.
    const piped: Piped = { a: requester.nodeId, b: target, cut: new AbortController(), bytes: 0 };
    this.#add(piped);
    let onward: Stream | null = null;
    try {
      const answer = await abortable(
        (async () => {
          onward = await targetSession.openStream(RELAY_PROTOCOL);
          await onward.send(encodeRelayRequest(RELAY_INCOMING, requester.nodeId));
          return await onward.receive();
        })(),
        AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), piped.cut.signal]),
      ).catch(() => null);
      const status = answer === null ? null : tryDecodeStatus(answer);
      if (status === null) {
        (onward as Stream | null)?.reset();
        const why = answer === null ? "did not answer" : "answered with a malformed STATUS";
        return await this.#refuse(stream, "UNREACHABLE", `Node ${target.slice(0, 12)} ${why}`);
      }
      if (status.code !== RelayStatus.OK) {
        (onward as Stream | null)?.reset();
        return await this.#refuse(stream, "REFUSED", `Node ${target.slice(0, 12)} refused: ${status.reason}`);
      }
      await stream.send(encodeRelayStatus(RelayStatus.OK, ""));
      this.stats.started++;
      await this.#pipe(piped, stream, onward!);
    } finally {
      this.#remove(piped);
    }
  }

  async #pipe(piped: Piped, a: Stream, b: Stream): Promise<void> {
    const limits = this.#relay;
    const timer = setTimeout(() => {
      this.stats.cut++;
      piped.cut.abort(new RelayError("LIMIT", `The relayed session lasted ${limits.maxDurationMs} ms (maxDurationMs)`));
    }, limits.maxDurationMs);
    const forward = async (from: Stream, to: Stream) => {
      const bucket = new TokenBucket(limits.maxBytesPerSecond);
      for (;;) {
        const message = await from.receive({ signal: piped.cut.signal });
        if (message === null) {
          await to.close();
          return;
        }
        piped.bytes += message.length;
        this.stats.bytes += message.length;
        if (piped.bytes > limits.maxBytes) {
          this.stats.cut++;
          throw new RelayError("LIMIT", `The relayed session carried more than ${limits.maxBytes} bytes (maxBytes)`);
        }
        await bucket.take(message.length, piped.cut.signal);
        await to.send(message, { signal: piped.cut.signal });
      }
    };
    try {
      await Promise.all([forward(a, b), forward(b, a)]);
    } catch (error) {
      // Either side failed, or a limit cut the session: both streams end at once.
      if (!piped.cut.signal.aborted) piped.cut.abort(error);
      a.reset();
      b.reset();
    } finally {
      clearTimeout(timer);
    }
  }

  async #refuse(stream: Stream, code: RelayStatusName, reason: string): Promise<void> {
    this.stats.refused++;
    try {
      await stream.send(encodeRelayStatus(RelayStatus[code], reason));
      await stream.close();
    } catch {
      stream.reset();
    }
  }

  #add(piped: Piped): void {
    this.#piped.add(piped);
    this.stats.active = this.#piped.size;
    for (const node of [piped.a, piped.b]) this.#perPeer.set(node, (this.#perPeer.get(node) ?? 0) + 1);
  }

  #remove(piped: Piped): void {
    if (!this.#piped.delete(piped)) return;
    this.stats.active = this.#piped.size;
    for (const node of [piped.a, piped.b]) {
      const left = (this.#perPeer.get(node) ?? 1) - 1;
      if (left <= 0) this.#perPeer.delete(node);
      else this.#perPeer.set(node, left);
    }
  }
}

/**
 * Serves NZ-RELAY-01 on `manager` (see {@linkcode RelayService}).
 *
 * @param manager The node's peer manager.
 * @param options The relay role's limits (off unless `relay.enabled`), and whether relayed sessions are accepted.
 * @returns The service (its counters, and `close()`).
 * @throws {RangeError} when a limit is not a positive number.
 */
export function serveRelay(manager: PeerManager, options: RelayServiceOptions = {}): RelayService {
  return new RelayService(manager, options);
}

/** Options of {@linkcode relayConnect}. */
export interface RelayConnectOptions {
  /** Aborts the request and the handshake (default: a timeout of 20 s). */
  signal?: AbortSignal;
}

/**
 * Opens a session with `targetNodeId` through the relay `relayNodeId`, which
 * this node must be connected to: asks the relay (CONNECT), then runs the
 * handshake end to end with the target inside the relayed stream. The
 * session's path is `relayed` via the relay.
 *
 * @param manager The node's peer manager.
 * @param relayNodeId The relay's node ID (a session with it must be open).
 * @param targetNodeId The node to reach (connected to the relay).
 * @param options `signal` to give up.
 * @returns The session with the target (an existing one if the target is connected already).
 * @throws {NotFoundError} when there is no session with the relay.
 * @throws {RelayError} when the relay refuses (the relay's reason in the message, the code in `code`).
 * @throws {PeerMismatchError} when another node than the target answers the handshake.
 *
 * @example
 * ```ts ignore
 * const session = await relayConnect(manager, relay.nodeId, target.nodeId);
 * session.path(); // { kind: "relayed", transport: "relay", via: relay.nodeId, ... }
 * ```
 */
export async function relayConnect(
  manager: PeerManager,
  relayNodeId: string,
  targetNodeId: string,
  options: RelayConnectOptions = {},
): Promise<Session> {
  const target = validNodeId(targetNodeId, "targetNodeId");
  const existing = manager.sessions().find((s) => s.nodeId === target);
  if (existing) return existing;
  const relay = manager.sessions().find((s) => s.nodeId === validNodeId(relayNodeId, "relayNodeId"));
  if (!relay) throw new NotFoundError(`No session with the relay ${relayNodeId.slice(0, 12)}`);
  const signal = options.signal ?? AbortSignal.timeout(2 * DEFAULT_REQUEST_TIMEOUT_MS);
  const stream = await relay.openStream(RELAY_PROTOCOL);
  let answer: Uint8Array | null;
  try {
    await stream.send(encodeRelayRequest(RELAY_CONNECT, target));
    answer = await stream.receive({ signal });
  } catch (error) {
    stream.reset();
    throw new RelayError("UNREACHABLE", `The relay ${relay.nodeId.slice(0, 12)} did not answer`, { cause: error });
  }
  const status = answer === null ? null : tryDecodeStatus(answer);
  if (status === null) {
    stream.reset();
    throw new RelayError("BAD_REQUEST", `The relay ${relay.nodeId.slice(0, 12)} answered with a malformed STATUS`);
  }
  if (status.code !== RelayStatus.OK) {
    stream.reset();
    const name = statusName(status.code);
    throw new RelayError(name, `The relay ${relay.nodeId.slice(0, 12)} refused (${name}): ${status.reason}`);
  }
  return await manager.connectLink(relayLink(stream, relay.nodeId, target), { expectedPeer: target, signal });
}

/** A {@linkcode Link} over a relayed stream: the handshake and the channel run inside it, end to end. */
function relayLink(stream: Stream, relayNodeId: string, peerNodeId: string): Link {
  const remoteAddr = `relay://${relayNodeId}/${peerNodeId}`;
  const io = createFrameIO(streamDuplex(stream, { localAddr: `relay://${relayNodeId}`, remoteAddr }));
  return {
    remoteAddr,
    handshakeIo: io,
    establish: () => io,
    path: () => ({ kind: "relayed", transport: "relay", via: relayNodeId, remoteAddr }),
  };
}

/** Encodes a CONNECT or INCOMING message naming `nodeId` (64 hex digits). */
export function encodeRelayRequest(type: typeof RELAY_CONNECT | typeof RELAY_INCOMING, nodeId: string): Uint8Array {
  const out = new Uint8Array(1 + NODE_ID_LEN);
  out[0] = type;
  out.set(fromHex(validNodeId(nodeId, "nodeId")), 1);
  return out;
}

/** Encodes a STATUS message; the reason is cut to {@linkcode MAX_RELAY_REASON} bytes on a character boundary. */
export function encodeRelayStatus(code: number, reason: string): Uint8Array {
  let text = utf8(reason);
  if (text.length > MAX_RELAY_REASON) {
    let end = MAX_RELAY_REASON;
    while (end > 0 && (text[end] & 0xc0) === 0x80) end--;
    text = text.subarray(0, end);
  }
  const out = new Uint8Array(2 + text.length);
  out[0] = RELAY_STATUS;
  out[1] = code;
  out.set(text, 2);
  return out;
}

/**
 * Decodes a STATUS message.
 *
 * @throws {RangeError} for a wrong type or length, `SyntaxError` for a reason that is not UTF-8.
 */
export function decodeRelayStatus(message: Uint8Array): { code: number; reason: string } {
  if (message.length < 2 || message.length > 2 + MAX_RELAY_REASON) {
    throw new RangeError(`Cannot decode STATUS: length is ${message.length}, expected 2..${2 + MAX_RELAY_REASON}`);
  }
  if (message[0] !== RELAY_STATUS) throw new RangeError(`Cannot decode STATUS: type is ${message[0]}, expected 3`);
  let reason: string;
  try {
    reason = new TextDecoder("utf-8", { fatal: true }).decode(message.subarray(2));
  } catch (cause) {
    throw new SyntaxError("Cannot decode STATUS: the reason is not UTF-8", { cause });
  }
  return { code: message[1], reason };
}

function tryDecodeStatus(message: Uint8Array): { code: number; reason: string } | null {
  try {
    return decodeRelayStatus(message);
  } catch {
    return null;
  }
}

function statusName(code: number): RelayStatusName {
  const found = (Object.keys(RelayStatus) as RelayStatusName[]).find((name) => RelayStatus[name] === code);
  return found ?? "REFUSED";
}

function describeMessage(message: Uint8Array): string {
  return `type ${message[0] ?? "(none)"}, length ${message.length}, expected CONNECT or INCOMING of 33 bytes`;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0)) throw new RangeError(`Invalid ${name}: ${value}, expected > 0`);
  return value;
}

/**
 * A token bucket of `rate` bytes per second holding at most a burst: a take
 * larger than what is there runs the bucket into debt and waits it off, so a
 * message of any size passes and the average rate holds.
 */
class TokenBucket {
  #rate: number;
  #capacity: number;
  #tokens: number;
  #at = performance.now();

  constructor(rate: number) {
    this.#rate = rate;
    this.#capacity = Math.min(BUCKET_BURST, rate);
    this.#tokens = this.#capacity;
  }

  async take(bytes: number, signal: AbortSignal): Promise<void> {
    const now = performance.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#at) / 1000 * this.#rate);
    this.#at = now;
    this.#tokens -= bytes;
    if (this.#tokens >= 0) return;
    const waitMs = -this.#tokens / this.#rate * 1000;
    await sleep(waitMs, signal);
  }
}
