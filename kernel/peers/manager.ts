/**
 * The peer manager: listens on transport addresses, dials peers, runs the
 * NZ-HANDSHAKE-01 handshake and opens an NZ-CHANNEL-01 channel on each
 * connection, and keeps one session per peer in a registry.
 *
 * - Two nodes that dial each other at once end with one session: both keep
 *   the session initiated by the node with the smaller node ID.
 * - Peer policy: `any` accepts every peer; `tofu` (trust on first use) pins
 *   each dialed address to the identity that first answered there and
 *   refuses another identity at it later; `known` accepts inbound sessions
 *   only from peers in the address book.
 * - Peers connected with `autoConnect` are dialed again after a lost session
 *   (exponential backoff with jitter) and at start.
 * - Pending handshakes are limited in total and per remote host; a stalled
 *   handshake times out.
 * - Streams carry a protocol: the first message of every stream is its
 *   protocol name (UTF-8, at most {@linkcode MAX_PROTOCOL_LEN} bytes), and
 *   the manager hands the stream to the handler registered for it. The
 *   built-in {@linkcode MESSAGE_PROTOCOL} turns each message into a
 *   `peer.message` event.
 *
 * @module
 */

import { abortable, sleep } from "../async.ts";
import { fromUtf8, textOrUndefined, toHex, utf8 } from "../bytes.ts";
import { base64 } from "@scure/base";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { Identity } from "../identity/identity.ts";
import { type Channel, openChannel } from "../channel/channel.ts";
import type { ChannelOptions } from "../channel/channel.ts";
import { ChannelError } from "../channel/errors.ts";
import { performHandshake } from "../channel/handshake.ts";
import type { Stream } from "../channel/stream.ts";
import type { FrameIO, PeerIdentity, SessionKeys } from "../channel/types.ts";
import { DatagramEndpoint, type DatagramHandshake } from "../channel/datagram_endpoint.ts";
import type { DatagramSession, DatagramSessionOptions } from "../channel/datagram_session.ts";
import { createFrameIO } from "../../transport/framing.ts";
import type { Duplex, Listener, Transport } from "../../transport/types.ts";
import {
  formatUdpAddr,
  type PacketSocket,
  parseUdpAddr,
  type UdpAddr,
  udpAddrKey,
  UdpSocket,
} from "../../transport/udp.ts";
import { type AddressBook, resolvePeerName } from "./address_book.ts";

/** The protocol of plain messages between nodes (`nzcore send`). */
export const MESSAGE_PROTOCOL = "nz/message/1";
/** The longest protocol name a stream may start with, in bytes. */
export const MAX_PROTOCOL_LEN = 256;
/**
 * The protocol of the handover marker: a side opens one such stream, empty, on a session that another session with
 * the same peer replaced, after everything it sent there (spec/protocols/README.md, "Sessions").
 */
export const HANDOVER_PROTOCOL = "nz/handover/1";
/** A replaced session is closed at the latest this long after the replacement, handed over or not. */
const HANDOVER_TIMEOUT_MS = 5_000;

/** Which peers the node accepts. */
export type PeerPolicy = "any" | "tofu" | "known";
/** The policies, for validation. */
export const PEER_POLICIES: readonly PeerPolicy[] = ["any", "tofu", "known"];

/** Limits on connections that have not finished their handshake. */
export interface HandshakeLimits {
  /** Pending inbound handshakes in total (default 128). */
  pendingTotal: number;
  /** Pending inbound handshakes from one remote host (default 8). */
  pendingPerHost: number;
  /** How long a handshake may take, in milliseconds (default 10 s). */
  timeoutMs: number;
}

const DEFAULT_LIMITS: HandshakeLimits = { pendingTotal: 128, pendingPerHost: 8, timeoutMs: 10_000 };

/** Delays of redials after a lost session. */
export interface ReconnectOptions {
  /** The first delay, in milliseconds (default 1 s). */
  baseDelayMs: number;
  /** The longest delay (default 60 s). */
  maxDelayMs: number;
}

const DEFAULT_RECONNECT: ReconnectOptions = { baseDelayMs: 1_000, maxDelayMs: 60_000 };

/** Options of {@linkcode PeerManager}. */
export interface PeerManagerOptions {
  /** The identity sessions authenticate with (read at each handshake: the active identity). */
  identity: () => Identity;
  /** Known peers. */
  book: AddressBook;
  /** The transports addresses are dialed and listened on with. */
  transports: readonly Transport[];
  /** Which peers to accept (default `tofu`). */
  policy?: PeerPolicy;
  /** Receives every session event (`peer.connected`, `peer.disconnected`, `peer.refused`, `peer.message`). */
  events?: (type: string, data: Record<string, unknown>) => void;
  /** Limits on pending handshakes. */
  limits?: Partial<HandshakeLimits>;
  /** Redial delays. */
  reconnect?: Partial<ReconnectOptions>;
  /** Options of every channel (keep-alive, windows, rekey bounds). */
  channel?: Partial<ChannelOptions>;
  /** The largest frame on the wire, in bytes (default: the transport framing's). */
  maxFrameSize?: number;
  /** Options of sessions over UDP (datagram size, keep-alive, idle timeout). */
  datagram?: DatagramSessionOptions;
  /** Random numbers in [0, 1) for the jitter (default `Math.random`). */
  random?: () => number;
}

/** The path a session runs on, as `peers` shows it. */
export interface SessionPath {
  /** `direct`: the two nodes exchange packets themselves; `relayed`: a relay (a node or a TURN server) forwards them. */
  kind: "direct" | "relayed";
  /** `tcp`, `udp`, `ws`, `wss`, or for relayed paths `relay` (a node) or `turn`. */
  transport: string;
  /** The peer's address on this path (its current one, for UDP). */
  remoteAddr: string;
  /** For a relayed path: the relay (a node ID, or the TURN server's address). */
  via?: string;
  /** Smoothed round-trip time in milliseconds, or null before the first sample. */
  rttMs: number | null;
}

/**
 * A way to a peer before the handshake: the {@linkcode FrameIO} the handshake
 * runs on, and the one the channel runs on after it (the same one over a
 * stream transport; a datagram session over UDP). Made by the manager for
 * each transport, and by the relay and hole-punching code for their paths.
 */
export interface Link {
  /** The peer's address, for logs, the address book and `peers`. */
  readonly remoteAddr: string;
  /** The handshake runs on this. */
  readonly handshakeIo: FrameIO;
  /** Given the handshake's keys, the FrameIO of the channel. */
  establish(keys: SessionKeys): FrameIO;
  /** The path, live (`rttMs` is read from the channel when the link does not know it). */
  path(): Omit<SessionPath, "rttMs"> & { rttMs?: number | null };
}

/** Handles a stream that a peer opened with a protocol. */
export type StreamHandler = (stream: Stream, session: Session) => void | Promise<void>;

/** What may be shown of a session. */
export interface SessionInfo {
  /** The peer's node ID. */
  nodeId: string;
  /** The peer's DID. */
  did: string;
  /** Who dialed: `outbound` when this node did. */
  direction: "inbound" | "outbound";
  /** The peer's transport address. */
  address: string;
  /** The negotiated protocol version. */
  version: number;
  /** The features the peer supports. */
  features: string[];
  /** When the session opened, in milliseconds since the Unix epoch. */
  openedAt: number;
  /** The path the session runs on. */
  path: SessionPath;
}

/** An authenticated, encrypted session with one peer. */
export class Session {
  /** The authenticated peer. */
  readonly peer: PeerIdentity;
  /** Who dialed. */
  readonly direction: "inbound" | "outbound";
  /** The peer's transport address. */
  readonly address: string;
  /** The negotiated protocol version. */
  readonly version: number;
  /** The features the peer supports. */
  readonly features: string[];
  /** When the session opened. */
  readonly openedAt: number = Date.now();
  /** The channel under the session. */
  readonly channel: Channel;
  /** @internal Set when another session with the same peer replaced this one. */
  replaced = false;
  /** @internal Resolves when the peer's handover marker arrived on this session. */
  readonly peerHandedOver: PromiseWithResolvers<void> = Promise.withResolvers();
  /** @internal The loops delivering the peer's messages on this session. */
  readonly deliveries: Set<Promise<void>> = new Set();
  /** @internal Message delivery waits for this first: the hand-over of the session this one replaced. */
  deliverAfter: Promise<void> | null = null;
  #messages: Promise<Stream> | undefined;
  #handingOver = false;
  #link: Link;

  /** @internal Sessions are made by {@linkcode PeerManager}. */
  constructor(init: {
    peer: PeerIdentity;
    direction: "inbound" | "outbound";
    address: string;
    version: number;
    features: string[];
    channel: Channel;
    link: Link;
  }) {
    this.#link = init.link;
    this.peer = init.peer;
    this.direction = init.direction;
    this.address = init.address;
    this.version = init.version;
    this.features = init.features;
    this.channel = init.channel;
  }

  /** The peer's node ID. */
  get nodeId(): string {
    return this.peer.nodeId;
  }

  /** The peer's DID. */
  get did(): string {
    return this.peer.did;
  }

  /** Opens a stream for `protocol`; the peer hands it to its handler for that protocol. */
  async openStream(protocol: string): Promise<Stream> {
    const name = utf8(protocol);
    if (name.length === 0 || name.length > MAX_PROTOCOL_LEN) {
      throw new RangeError(`Invalid protocol name: length is ${name.length}, expected 1..${MAX_PROTOCOL_LEN}`);
    }
    const stream = await this.channel.openStream();
    await stream.send(name);
    return stream;
  }

  /**
   * Sends one message with {@linkcode MESSAGE_PROTOCOL}, on a stream kept for the session. Messages go out in call
   * order.
   */
  sendMessage(message: Uint8Array): Promise<void> {
    if (this.#handingOver) {
      return Promise.reject(new ChannelError("closed", "Cannot send: another session with the peer replaced this one"));
    }
    const messages = this.#messages ??= this.openStream(MESSAGE_PROTOCOL);
    // Chained on the stream's promise in call order, so sends (and the FIN of a hand-over) keep that order.
    const sent = messages.then((stream) => stream.send(message));
    sent.catch(() => {
      if (this.#messages === messages) this.#messages = undefined;
    });
    return sent;
  }

  /**
   * @internal Hands the session over (another one with the peer replaced it): after every message passed to
   * `sendMessage`, ends the message stream, then sends the handover marker. Nothing is sent here afterwards.
   */
  async handOver(): Promise<void> {
    this.#handingOver = true;
    const messages = this.#messages;
    if (messages) await messages.then((stream) => stream.close()).catch(() => {});
    const marker = await this.openStream(HANDOVER_PROTOCOL);
    await marker.close();
  }

  /** Closes the session gracefully. */
  async close(reason = "closed"): Promise<void> {
    await this.channel.close(reason);
  }

  /** The path the session runs on, now. */
  path(): SessionPath {
    const path = this.#link.path();
    return { ...path, rttMs: path.rttMs ?? this.channel.rttMs };
  }

  /** Whether a relay forwards the session's packets. */
  get relayed(): boolean {
    return this.#link.path().kind === "relayed";
  }

  /** What may be shown of the session. */
  info(): SessionInfo {
    return {
      nodeId: this.peer.nodeId,
      did: this.peer.did,
      direction: this.direction,
      address: this.address,
      version: this.version,
      features: this.features,
      openedAt: this.openedAt,
      path: this.path(),
    };
  }
}

/** Listens, dials, authenticates and keeps one session per peer. */
export class PeerManager {
  #options: PeerManagerOptions;
  #policy: PeerPolicy;
  #limits: HandshakeLimits;
  #reconnect: ReconnectOptions;
  #random: () => number;
  #events: (type: string, data: Record<string, unknown>) => void;
  #sessions = new Map<string, Session>();
  #listeners: Listener[] = [];
  #handlers = new Map<string, StreamHandler>();
  #pendingTotal = 0;
  #pendingByHost = new Map<string, number>();
  #redials = new Map<string, AbortController>();
  #closing = new AbortController();
  #tracked = new Set<Promise<unknown>>();
  #logBudget = { left: 20, since: 0 };
  #udp: { socket: UdpSocket; endpoint: DatagramEndpoint } | null = null;
  /** Packet sockets besides the UDP socket (TURN allocations), each with its endpoint and the relay it names. */
  #relays = new Map<PacketSocket, { endpoint: DatagramEndpoint; via: string }>();
  /** Peers' relayed addresses (TURN), by `udpAddrKey`, with the relay to name in paths. */
  #relayedAddrs = new Map<string, string>();
  #udpListening = false;
  #handingOver = new Set<Session>();

  /** Creates a manager; nothing listens until {@linkcode PeerManager.listen}. */
  constructor(options: PeerManagerOptions) {
    this.#options = options;
    this.#policy = options.policy ?? "tofu";
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#reconnect = { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.#random = options.random ?? Math.random;
    this.#events = options.events ?? (() => {});
    this.handle(MESSAGE_PROTOCOL, (stream, session) => this.#receiveMessages(stream, session));
    this.handle(HANDOVER_PROTOCOL, (stream, session) => {
      session.peerHandedOver.resolve();
      stream.reset();
    });
  }

  /** The peer policy in force. */
  get policy(): PeerPolicy {
    return this.#policy;
  }

  /** The addresses the node listens on (ports resolved). */
  get listening(): string[] {
    const bound = this.#listeners.map((l) => l.addr);
    if (this.#udp && this.#udpListening) bound.push(this.#udp.socket.url);
    return bound;
  }

  /** The node's UDP socket, once it listens on `udp://` or dialed a `udp://` address; null before. */
  get udpSocket(): UdpSocket | null {
    return this.#udp?.socket ?? null;
  }

  /**
   * The node's UDP socket, bound now on an ephemeral port of every interface if there is none yet: the socket that
   * UDP sessions, STUN and hole punching share, so that what STUN learns is the mapping sessions use.
   */
  async ensureUdpSocket(): Promise<UdpSocket> {
    return (await this.#udpEndpoint()).socket;
  }

  /**
   * Starts an NZ-DGRAM-01 handshake with `to` from the node's UDP socket and
   * registers the session (hole punching dials each candidate of a peer with
   * this). Unlike {@linkcode PeerManager.connect}, it writes nothing to the
   * address book and returns no existing session.
   *
   * `signal` stops the handshake only: once it completed, the session stands (a punch that another attempt won
   * aborts the rest, and a session that came up meanwhile may be the very one the peer keeps).
   *
   * @throws {PeerMismatchError} when `expectedPeer` does not answer.
   * `via` dials from an attached packet socket (a TURN allocation) instead: the session's path is relayed.
   *
   * @throws {HandshakeError} when the handshake fails or `signal` aborts it.
   */
  async dialUdp(
    to: UdpAddr,
    options: { expectedPeer?: string; signal?: AbortSignal; via?: PacketSocket } = {},
  ): Promise<Session> {
    const relay = options.via ? this.#relays.get(options.via) : undefined;
    if (options.via && !relay) throw new NotFoundError("Cannot dial through a packet socket that is not attached");
    const endpoint = relay?.endpoint ?? (await this.#udpEndpoint()).endpoint;
    options.signal?.throwIfAborted();
    const handshake = endpoint.dial(to);
    const link = this.#datagramLink(handshake, relay?.via);
    let established = false;
    const onAbort = () => established || handshake.abort(options.signal!.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await this.connectLink({
        get remoteAddr() {
          return link.remoteAddr;
        },
        handshakeIo: handshake,
        establish: (keys) => (established = true, link.establish(keys)),
        path: () => link.path(),
      }, { expectedPeer: options.expectedPeer });
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** The open sessions, one per peer. */
  sessions(): Session[] {
    return [...this.#sessions.values()];
  }

  /** Registers the handler of streams that peers open with `protocol`. */
  handle(protocol: string, handler: StreamHandler): void {
    this.#handlers.set(protocol, handler);
  }

  /**
   * Listens on each of `addresses` (`tcp://HOST:PORT`, `ws://HOST:PORT/PATH`).
   *
   * @returns the addresses bound, ports resolved.
   */
  async listen(addresses: readonly string[]): Promise<string[]> {
    const bound: string[] = [];
    for (const address of addresses) {
      if (/^udp:\/\//i.test(address)) {
        if (this.#udpListening) throw new ConflictError(`The node listens on UDP already (${this.#udp!.socket.url})`);
        const udp = await this.#udpEndpoint(address);
        this.#udpListening = true;
        bound.push(udp.socket.url);
        continue;
      }
      const transport = this.#transportOf(address);
      const listener = await transport.listen(address, {
        onConnection: (conn) => this.#track(this.#accept(conn)),
        signal: this.#closing.signal,
      });
      this.#listeners.push(listener);
      bound.push(listener.addr);
    }
    return bound;
  }

  /** Stops listening; sessions stay open, and `listen()` may be called again. */
  async unlisten(): Promise<void> {
    const listeners = this.#listeners;
    this.#listeners = [];
    await Promise.allSettled(listeners.map((l) => l.close()));
    if (this.#udp && this.#udpListening) {
      // UDP sessions live on the socket: it stays for them, and stops answering new handshakes.
      this.#udpListening = false;
    }
  }

  /** Dials every peer marked `autoConnect`, in the background. */
  reconnectKnown(): void {
    for (const peer of this.#options.book.list()) {
      if (peer.autoConnect && !this.#sessions.has(peer.nodeId)) this.#scheduleRedial(peer.nodeId, 0);
    }
  }

  /**
   * Dials `address`, authenticates the peer there and returns the session
   * with it (an existing one when the peer is already connected).
   *
   * @throws {PeerMismatchError} when `expectedPeer` or, under `tofu`, the identity pinned to the address does not answer.
   * @throws {HandshakeError} when the handshake fails.
   */
  async connect(
    address: string,
    options: { expectedPeer?: string; autoConnect?: boolean; signal?: AbortSignal } = {},
  ): Promise<Session> {
    const pinned = this.#policy === "any" ? undefined : this.#options.book.pinned(address);
    const expected = options.expectedPeer ?? pinned;
    const existing = expected ? this.#sessions.get(expected) : undefined;
    if (existing) {
      if (options.autoConnect) await this.#options.book.setAutoConnect(existing.nodeId, true);
      return existing;
    }
    const signal = AbortSignal.any([
      this.#closing.signal,
      options.signal ?? AbortSignal.timeout(this.#limits.timeoutMs * 2),
    ]);
    const link = await this.#dial(address, signal);
    const session = await this.connectLink(link, { expectedPeer: expected, signal });
    await this.#options.book.seen(session.peer, { dialed: address });
    if (options.autoConnect) await this.#options.book.setAutoConnect(session.nodeId, true);
    return session;
  }

  /**
   * Runs the handshake as initiator over `link` and registers the session,
   * which replaces a relayed one with the same peer when `link` is direct.
   * The hole-punching and relay code dial through this.
   *
   * @throws {PeerMismatchError} when `expectedPeer` does not answer.
   * @throws {HandshakeError} when the handshake fails.
   */
  async connectLink(link: Link, options: { expectedPeer?: string; signal?: AbortSignal } = {}): Promise<Session> {
    const signal = AbortSignal.any([
      this.#closing.signal,
      options.signal ?? AbortSignal.timeout(this.#limits.timeoutMs * 2),
    ]);
    const address = link.remoteAddr;
    let io: FrameIO = link.handshakeIo;
    try {
      const result = await performHandshake(link.handshakeIo, {
        role: "initiator",
        identity: this.#options.identity(),
        expectedPeer: options.expectedPeer,
        timeoutMs: this.#limits.timeoutMs,
        signal,
      });
      io = link.establish(result.keys);
      if (result.peer.nodeId === this.#options.identity().nodeId) {
        throw new ConflictError(`${address} is this node itself`);
      }
      const session = this.#register(io, link, result, "outbound");
      // In Noise XX the dialer is done before the responder has judged it: one round trip on the channel proves
      // that the peer accepted the session (a refusal arrives as its GOAWAY reason instead).
      let kept = session;
      try {
        await abortable(session.channel.ping(), signal);
      } catch (error) {
        // A session that lost a simultaneous dial to the peer's own was closed for the winner: use that one.
        const winner = session.replaced ? this.#sessions.get(result.peer.nodeId) : undefined;
        if (!winner) throw error;
        kept = winner;
      }
      // A session replaced meanwhile is being handed over: the winner is the one to use.
      if (kept.replaced) kept = this.#sessions.get(result.peer.nodeId) ?? kept;
      return kept;
    } catch (error) {
      io.abort(error);
      link.handshakeIo.abort(error);
      this.#refused(address, error);
      throw error;
    }
  }

  /**
   * Answers a handshake over `link` (as responder) and registers the session
   * if the policy accepts the peer. The relay code hands the links it
   * receives to this.
   */
  async acceptLink(link: Link): Promise<Session | null> {
    const io = link.handshakeIo;
    try {
      const result = await performHandshake(io, {
        role: "responder",
        identity: this.#options.identity(),
        timeoutMs: this.#limits.timeoutMs,
        signal: this.#closing.signal,
      }).catch((error) => {
        io.abort(error);
        throw error;
      });
      const channelIo = link.establish(result.keys);
      const refusal = this.#refusal(result.peer.nodeId);
      if (refusal) {
        // The dialer finished its handshake already: tell it why over the channel (a GOAWAY), then hang up.
        const channel = openChannel(channelIo, result.keys, { keepAliveMs: 0, idleTimeoutMs: 0, log: () => {} });
        await withTimeout(channel.close(refusal), 2_000, () => channel.abort(refusal));
        throw new ConflictError(refusal);
      }
      const session = this.#register(channelIo, link, result, "inbound");
      // Only peers the node already knows are refreshed: a stranger's inbound session is not written down, so a
      // flood of throwaway identities cannot grow the address book (their ephemeral ports are useless for redials).
      if (this.#options.book.get(result.peer.nodeId)) await this.#options.book.seen(result.peer);
      return session;
    } catch (error) {
      this.#refused(link.remoteAddr, error);
      return null;
    }
  }

  /** The session with the peer named by `name` (DID, node ID, or a unique prefix of either). */
  session(name: string): Session {
    return resolvePeerName(name, this.#sessions.values());
  }

  /** Sends `message` to the peer named by `name` with {@linkcode MESSAGE_PROTOCOL}. */
  async send(name: string, message: Uint8Array): Promise<Session> {
    const session = this.session(name);
    await session.sendMessage(message);
    return session;
  }

  /**
   * Closes the session with the peer named by `name` and stops redialing it.
   *
   * @returns the peer's node ID.
   */
  async disconnect(name: string): Promise<string> {
    const candidates = [...this.#sessions.values(), ...this.#options.book.list()];
    const { nodeId } = resolvePeerName(name, candidates);
    this.#redials.get(nodeId)?.abort();
    await this.#options.book.setAutoConnect(nodeId, false);
    const session = this.#sessions.get(nodeId);
    if (!session) {
      if (!this.#options.book.get(nodeId)) throw new NotFoundError(`No session with ${name}`);
      return nodeId;
    }
    await session.close("disconnected by this node");
    return nodeId;
  }

  /** Stops listening, stops redials and closes every session. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new Error("The node is stopping"));
    for (const redial of this.#redials.values()) redial.abort();
    await Promise.allSettled(this.#listeners.map((l) => l.close()));
    const sessions = [...this.#sessions.values()];
    sessions.push(...this.#handingOver);
    await Promise.allSettled(
      sessions.map((s) => withTimeout(s.close("node stopping"), 2_000, () => s.channel.abort())),
    );
    await Promise.allSettled([...this.#tracked]);
    for (const { endpoint } of this.#relays.values()) endpoint.close();
    this.#relays.clear();
    if (this.#udp) {
      this.#udp.endpoint.close();
      await this.#udp.socket.close();
      this.#udp = null;
    }
  }

  #transportOf(address: string): Transport {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(address)?.[1]?.toLowerCase();
    if (!scheme) throw new SyntaxError(`Cannot parse address "${address}": expected SCHEME://HOST:PORT`);
    const transport = this.#options.transports.find((t) => t.schemes.includes(scheme));
    if (!transport) {
      const known = this.#options.transports.flatMap((t) => t.schemes).join(", ");
      throw new SyntaxError(`Cannot use address "${address}": unknown scheme "${scheme}", expected one of ${known}`);
    }
    return transport;
  }

  #frames(conn: Duplex): FrameIO {
    return createFrameIO(conn, this.#options.maxFrameSize ? { maxFrameSize: this.#options.maxFrameSize } : {});
  }

  /** Opens a link to `address`: a connection of its transport, or a datagram handshake on the UDP socket. */
  async #dial(address: string, signal: AbortSignal): Promise<Link> {
    if (/^udp:\/\//i.test(address)) {
      const to = parseUdpAddr(address);
      const { endpoint } = await this.#udpEndpoint();
      return this.#datagramLink(endpoint.dial(to));
    }
    const conn = await this.#transportOf(address).dial(address, { signal });
    return this.#streamLink(conn);
  }

  #streamLink(conn: Duplex): Link {
    const io = this.#frames(conn);
    const transport = /^([a-z]+):/i.exec(conn.remoteAddr)?.[1]?.toLowerCase() ?? "tcp";
    return {
      remoteAddr: conn.remoteAddr,
      handshakeIo: io,
      establish: () => io,
      path: () => ({ kind: "direct", transport, remoteAddr: conn.remoteAddr }),
    };
  }

  /**
   * A link over a datagram handshake. Its path is relayed when it runs on an attached packet socket (`via`, this
   * node's TURN allocation) or when the peer's address is a relayed address it was told of (the peer's allocation).
   */
  #datagramLink(handshake: DatagramHandshake, via?: string): Link {
    let session: DatagramSession | null = null;
    const relays = this.#relayedAddrs;
    return {
      get remoteAddr() {
        return session?.remoteAddr ?? handshake.remoteAddr;
      },
      handshakeIo: handshake,
      establish: (keys) => this.#frames(session = handshake.establish(keys)),
      path: () => {
        const remote = session?.remote ?? handshake.remote;
        const relay = via ?? relays.get(udpAddrKey(remote));
        return {
          kind: relay ? "relayed" : "direct",
          transport: relay ? "turn" : "udp",
          remoteAddr: formatUdpAddr(remote),
          ...(relay ? { via: relay } : {}),
          rttMs: session?.rttMs ?? null,
        };
      },
    };
  }

  /**
   * Notes that `addr` is a relayed address (a peer's TURN allocation, learned from its candidates), so that a
   * session with it shows a relayed path, via `relay`. The most recent 1,024 are kept.
   */
  noteRelayedAddress(addr: UdpAddr, relay: string): void {
    const key = udpAddrKey(addr);
    this.#relayedAddrs.delete(key);
    this.#relayedAddrs.set(key, relay);
    if (this.#relayedAddrs.size > 1024) this.#relayedAddrs.delete(this.#relayedAddrs.keys().next().value!);
  }

  /**
   * Runs sessions on `socket` too, a TURN allocation: a peer that sends a handshake to its (relayed) address gets a
   * session whose path is relayed via `via` (the TURN server), and {@linkcode PeerManager.dialUdp} with `via: socket`
   * dials from it. Returns a function that detaches it (its sessions are aborted).
   */
  attachPacketSocket(socket: PacketSocket, via: string): () => void {
    if (this.#relays.has(socket)) throw new ConflictError(`${socket.url} is attached already`);
    const endpoint = new DatagramEndpoint(socket, {
      session: this.#options.datagram,
      maxPending: this.#limits.pendingTotal,
      maxPendingPerHost: this.#limits.pendingPerHost,
      onHandshake: (handshake) => {
        if (this.#closing.signal.aborted) return handshake.abort(new Error("The node is stopping"));
        this.#track(this.acceptLink(this.#datagramLink(handshake, via)));
      },
    });
    this.#relays.set(socket, { endpoint, via });
    return () => {
      if (this.#relays.get(socket)?.endpoint !== endpoint) return;
      this.#relays.delete(socket);
      endpoint.close();
    };
  }

  /** The packet sockets attached with {@linkcode PeerManager.attachPacketSocket}. */
  get packetSockets(): PacketSocket[] {
    return [...this.#relays.keys()];
  }

  /** The UDP socket and its datagram endpoint, bound at `address` (or an ephemeral port) the first time. */
  async #udpEndpoint(address = "udp://0.0.0.0:0"): Promise<{ socket: UdpSocket; endpoint: DatagramEndpoint }> {
    if (this.#udp) {
      if (address !== "udp://0.0.0.0:0" && !this.#udpListening) {
        throw new ConflictError(
          `The node's UDP socket is bound at ${this.#udp.socket.url} already (it dialed before listening)`,
        );
      }
      return this.#udp;
    }
    const socket = await UdpSocket.bind(address);
    const endpoint = new DatagramEndpoint(socket, {
      session: this.#options.datagram,
      maxPending: this.#limits.pendingTotal,
      maxPendingPerHost: this.#limits.pendingPerHost,
      onHandshake: (handshake) => {
        if (!this.#udpListening || this.#closing.signal.aborted) {
          handshake.abort(new Error("not listening on UDP"));
          return;
        }
        this.#track(this.acceptLink(this.#datagramLink(handshake)));
      },
    });
    this.#udp = { socket, endpoint };
    return this.#udp;
  }

  #track(promise: Promise<unknown>): void {
    this.#tracked.add(promise);
    promise.finally(() => this.#tracked.delete(promise));
  }

  async #accept(conn: Duplex): Promise<void> {
    const host = hostOf(conn.remoteAddr);
    const fromHost = this.#pendingByHost.get(host) ?? 0;
    if (this.#pendingTotal >= this.#limits.pendingTotal || fromHost >= this.#limits.pendingPerHost) {
      conn.abort(new Error("too many pending handshakes"));
      this.#refused(conn.remoteAddr, new Error("too many pending handshakes"));
      return;
    }
    this.#pendingTotal++;
    this.#pendingByHost.set(host, fromHost + 1);
    try {
      await this.acceptLink(this.#streamLink(conn));
    } finally {
      this.#pendingTotal--;
      const left = (this.#pendingByHost.get(host) ?? 1) - 1;
      if (left === 0) this.#pendingByHost.delete(host);
      else this.#pendingByHost.set(host, left);
    }
  }

  /** Why the policy refuses an inbound session with `nodeId`, if it does. */
  #refusal(nodeId: string): string | undefined {
    if (nodeId === this.#options.identity().nodeId) return "the peer is this node itself";
    if (this.#policy === "known" && !this.#options.book.get(nodeId)) {
      return `peer ${nodeId} is not known, and the policy accepts known peers only`;
    }
    return undefined;
  }

  #register(
    io: FrameIO,
    link: Link,
    result: { peer: PeerIdentity; version: number; features: string[]; keys: Parameters<typeof openChannel>[1] },
    direction: "inbound" | "outbound",
  ): Session {
    // The channel reads only after this returns, so every stream it hands over finds the session set.
    const ref: { session?: Session } = {};
    const channel = openChannel(io, result.keys, {
      peer: result.peer.nodeId.slice(0, 12),
      ...this.#options.channel,
      onStream: (stream: Stream) => this.#track(this.#dispatch(stream, ref.session!)),
    });
    const session = ref.session = new Session({
      peer: result.peer,
      direction,
      address: link.remoteAddr,
      link,
      version: result.version,
      features: result.features,
      channel,
    });
    const nodeId = result.peer.nodeId;
    const existing = this.#sessions.get(nodeId);
    let kept = session;
    if (existing) {
      kept = this.#prefer(session, existing);
      const dropped = kept === session ? existing : session;
      dropped.replaced = true;
      this.#handOver(dropped, kept);
    }
    this.#sessions.set(nodeId, kept);
    channel.closed.then(({ reason }) => this.#closed(session, reason));
    if (kept === session) {
      // A redial under way finds the session at its next attempt and stops (aborting it here would abort the
      // very dial that may have made this session).
      this.#events("peer.connected", { ...session.info(), stats: undefined });
    }
    return kept;
  }

  /**
   * Of two sessions with one peer, both sides keep a direct one over a relayed one, and otherwise the one whose
   * initiator has the smaller node ID.
   */
  #prefer(a: Session, b: Session): Session {
    if (a.relayed !== b.relayed) return a.relayed ? b : a;
    const self = this.#options.identity().nodeId;
    const initiator = (s: Session) => (s.direction === "outbound" ? self : s.nodeId);
    const ia = initiator(a), ib = initiator(b);
    if (ia === ib) return a; // the same side dialed again: the newer session wins
    return ia < ib ? a : b;
  }

  /**
   * Hands `dropped` over to `kept` without losing a message: both sides end their message streams on `dropped` and
   * send the handover marker behind everything they sent there; a side closes `dropped` once it sent its marker and
   * received the peer's, so every message sent on `dropped` arrives. Messages of `kept` are delivered only after
   * those of `dropped`, so the peer's messages stay in order across the switch.
   */
  #handOver(dropped: Session, kept: Session): void {
    this.#handingOver.add(dropped);
    const ended = dropped.channel.closed.then(() => {});
    const handedOver = dropped.peerHandedOver.promise.then(() => Promise.allSettled([...dropped.deliveries]));
    // Whichever session is older here: the peer may have sent on `dropped` before it switched to `kept` (the two
    // sides can register crossing sessions in opposite orders). After `dropped`'s messages, and after those of the
    // sessions `dropped` itself replaced.
    const previous = [kept.deliverAfter, dropped.deliverAfter];
    kept.deliverAfter = withTimeout(
      Promise.all([...previous, Promise.race([handedOver, ended])]),
      HANDOVER_TIMEOUT_MS,
      () => {},
    );
    this.#track((async () => {
      await withTimeout(
        Promise.race([Promise.all([dropped.handOver(), dropped.peerHandedOver.promise]), ended]),
        HANDOVER_TIMEOUT_MS,
        () => {},
      ).catch(() => {});
      await withTimeout(dropped.close("duplicate session"), 2_000, () => dropped.channel.abort());
      this.#handingOver.delete(dropped);
    })());
  }

  #closed(session: Session, reason: string): void {
    const nodeId = session.nodeId;
    if (this.#sessions.get(nodeId) !== session) return;
    this.#sessions.delete(nodeId);
    this.#events("peer.disconnected", { nodeId, did: session.did, reason });
    if (!this.#closing.signal.aborted && this.#options.book.get(nodeId)?.autoConnect) {
      this.#scheduleRedial(nodeId, this.#reconnect.baseDelayMs);
    }
  }

  #scheduleRedial(nodeId: string, firstDelayMs: number): void {
    if (this.#redials.has(nodeId)) return;
    const abort = new AbortController();
    this.#redials.set(nodeId, abort);
    const signal = AbortSignal.any([abort.signal, this.#closing.signal]);
    this.#track((async () => {
      try {
        for (let attempt = 0;; attempt++) {
          const delay = attempt === 0
            ? firstDelayMs
            : Math.min(this.#reconnect.maxDelayMs, this.#reconnect.baseDelayMs * 2 ** (attempt - 1));
          // Full jitter on half the delay: redials of many nodes spread out instead of arriving together.
          await sleep(delay * (0.5 + this.#random() / 2), signal);
          if (signal.aborted || this.#sessions.has(nodeId)) return;
          const record = this.#options.book.get(nodeId);
          if (!record?.autoConnect) return;
          for (const address of record.addresses) {
            try {
              await this.connect(address, { expectedPeer: nodeId, signal });
              return;
            } catch {
              if (signal.aborted) return;
            }
          }
        }
      } catch {
        // aborted
      } finally {
        if (this.#redials.get(nodeId) === abort) this.#redials.delete(nodeId);
      }
    })());
  }

  async #dispatch(stream: Stream, session: Session): Promise<void> {
    try {
      const first = await stream.receive();
      if (first === null) return;
      const protocol = first.length <= MAX_PROTOCOL_LEN ? fromUtf8(first) : undefined;
      const handler = protocol === undefined ? undefined : this.#handlers.get(protocol);
      if (!handler) {
        stream.reset();
        return;
      }
      await handler(stream, session);
    } catch (error) {
      stream.reset();
      // A stream that ends with its channel is not a failure of its own: the channel's end is logged once.
      const code = error instanceof ChannelError ? error.code : undefined;
      if (code !== "closed" && code !== "aborted" && code !== "connection_lost") {
        this.#log(`stream from ${session.nodeId.slice(0, 12)} failed: ${(error as Error).message}`);
      }
    }
  }

  #receiveMessages(stream: Stream, session: Session): Promise<void> {
    const delivery = this.#deliverMessages(stream, session);
    session.deliveries.add(delivery);
    delivery.catch(() => {}).finally(() => session.deliveries.delete(delivery));
    return delivery;
  }

  async #deliverMessages(stream: Stream, session: Session): Promise<void> {
    for (;;) {
      const message = await stream.receive();
      if (message === null) return;
      if (session.deliverAfter) {
        await session.deliverAfter;
        session.deliverAfter = null;
      }
      const data: Record<string, unknown> = { nodeId: session.nodeId, did: session.did, bytes: message.length };
      const text = textOrUndefined(message);
      if (text !== undefined) data.text = text;
      else data.base64 = base64.encode(message);
      this.#events("peer.message", data);
    }
  }

  #refused(address: string, error: unknown): void {
    const reason = (error as Error)?.message ?? String(error);
    this.#events("peer.refused", { address, reason });
    this.#log(`connection with ${address} ended: ${reason}`);
  }

  /** Logs at most 20 lines a minute, so a flood of bad connections cannot flood the log. */
  #log(line: string): void {
    const now = Date.now();
    if (now - this.#logBudget.since > 60_000) this.#logBudget = { left: 20, since: now };
    if (this.#logBudget.left-- > 0) console.warn(`nzcore: ${line}`);
  }
}

function hostOf(address: string): string {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(\[[^\]]+\]|[^:/]+)/i.exec(address);
  return match?.[1] ?? address;
}

async function withTimeout(promise: Promise<unknown>, ms: number, onTimeout: () => void): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(() => (onTimeout(), resolve()), ms)));
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** @internal For logs: a short form of a node ID. */
export function shortId(nodeId: string | Uint8Array): string {
  return (typeof nodeId === "string" ? nodeId : toHex(nodeId)).slice(0, 12);
}
