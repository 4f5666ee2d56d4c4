/**
 * The datagram mode of the secure channel on the node's UDP socket
 * (NZ-DGRAM-01, spec/protocols/NZ-DGRAM-01.md): a {@linkcode DatagramEndpoint}
 * takes the NZ-DGRAM-01 packets of a {@linkcode PacketSocket} (the node's UDP
 * socket, or a TURN allocation), starts handshakes
 * ({@linkcode DatagramEndpoint.dial}) and answers them, and hands each data
 * packet to its session by the receiver's session index.
 *
 * A {@linkcode DatagramHandshake} is the {@linkcode FrameIO} that
 * `performHandshake` (NZ-HANDSHAKE-01) runs over: each handshake message
 * travels in one packet, sent again until the answer comes, so the very same
 * handshake works over a lossy network. Once the handshake is done,
 * {@linkcode DatagramHandshake.establish} turns it into a
 * {@linkcode DatagramSession}, the reliable byte stream the channel runs on.
 *
 * @module
 */

import { MAX_HANDSHAKE_MESSAGE } from "./handshake.ts";
import {
  DatagramError,
  decodeHandshakePacket,
  encodeHandshakePacket,
  type HandshakePacket,
  isDatagramPacket,
  PacketType,
} from "./datagram_packet.ts";
import { DatagramSession, type DatagramSessionOptions } from "./datagram_session.ts";
import type { FrameIO, SessionKeys } from "./types.ts";
import { TransportError } from "../../transport/errors.ts";
import { formatUdpAddr, type PacketSocket, type UdpAddr, udpAddrKey } from "../../transport/udp.ts";

/** The first resend of a handshake packet waits this long; each later one twice as long, up to the maximum. */
const RESEND_INITIAL_MS = 250;
const RESEND_MAX_MS = 2_000;
/** The initiator resends FINISH for at most this long, until a packet of the session confirms it. */
const FINISH_RESEND_FOR_MS = 10_000;

/** Options of a {@linkcode DatagramEndpoint}. */
export interface DatagramEndpointOptions {
  /** Called with each handshake a peer starts: run `performHandshake` as responder over it, then `establish()`. */
  onHandshake: (handshake: DatagramHandshake) => void;
  /** Options of every session. */
  session?: DatagramSessionOptions;
  /** Handshakes answered at once, in all (default 256); beyond it new ones are dropped. */
  maxPending?: number;
  /** ... and from one IP address (default 16). */
  maxPendingPerHost?: number;
  /**
   * New handshakes answered per second from one IP address (a token bucket, default 10 with a burst of 20): each
   * costs the responder a Diffie-Hellman and a signature, so a flood from one address is cut down before it costs CPU.
   */
  handshakesPerSecond?: number;
}

/** How many source addresses the handshake rate limit remembers; the oldest are forgotten first. */
const RATE_TABLE_SIZE = 4096;

/** Counters of a {@linkcode DatagramEndpoint}. */
export interface DatagramEndpointStats {
  /** Packets that named no session or handshake of this endpoint, or did not decode. */
  dropped: number;
  /** Handshakes refused because too many were pending, or their source went over its rate. */
  refused: number;
}

interface Slot {
  handshake?: DatagramHandshake;
  session?: DatagramSession;
}

/** The NZ-DGRAM-01 side of a UDP socket. Close it to drop every handshake and session. */
export class DatagramEndpoint {
  /** Counters, live. */
  readonly stats: DatagramEndpointStats = { dropped: 0, refused: 0 };
  readonly #socket: PacketSocket;
  readonly #options: DatagramEndpointOptions;
  readonly #slots = new Map<number, Slot>();
  /** Responders by `address|port/senderIndex`, so a resent INITIATION is answered, not started again. */
  readonly #responders = new Map<string, DatagramHandshake>();
  readonly #pendingByHost = new Map<string, number>();
  /** Token buckets of handshakes per source IP address: tokens left and when they were counted. */
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #pending = 0;
  #unroute: () => void;
  #closed = false;

  /** Registers on `socket` for NZ-DGRAM-01 packets. */
  constructor(socket: PacketSocket, options: DatagramEndpointOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#unroute = socket.route(isDatagramPacket, (data, from) => this.#receive(data, from));
  }

  /** The socket's address, as `udp://HOST:PORT`. */
  get localAddr(): string {
    return this.#socket.url;
  }

  /** Sessions established and open. */
  get sessions(): DatagramSession[] {
    return [...this.#slots.values()].flatMap((s) => (s.session ? [s.session] : []));
  }

  /**
   * Starts a handshake with `to`: run `performHandshake` as initiator over the
   * result, then `establish()` it.
   */
  dial(to: UdpAddr): DatagramHandshake {
    if (this.#closed) throw new TransportError("Cannot dial: the datagram endpoint is closed");
    const index = this.#newIndex();
    const handshake = new DatagramHandshake(this, true, index, { hostname: to.hostname, port: to.port }, 0);
    this.#slots.set(index, { handshake });
    return handshake;
  }

  /** Aborts every handshake and session, and stops taking packets. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unroute();
    for (const slot of [...this.#slots.values()]) {
      slot.handshake?.abort(new TransportError("The datagram endpoint is closing"));
      slot.session?.abort(new TransportError("The node is stopping"));
    }
    this.#slots.clear();
  }

  /** @internal Sends a packet (errors are the socket's to count: UDP is lossy anyway). */
  _send(packet: Uint8Array, to: UdpAddr): void {
    if (this.#closed) return;
    this.#socket.send(packet, to).catch(() => {});
  }

  /** @internal A handshake is over: its slot goes (unless a session took it). */
  _handshakeEnded(handshake: DatagramHandshake): void {
    const slot = this.#slots.get(handshake.localIndex);
    if (slot?.handshake === handshake && !slot.session) this.#slots.delete(handshake.localIndex);
    if (!handshake.initiator) {
      const key = this.#responderKey(handshake.remote, handshake.remoteIndex);
      if (this.#responders.get(key) === handshake) this.#responders.delete(key);
      this.#pending--;
      const host = handshake.remote.hostname;
      const left = (this.#pendingByHost.get(host) ?? 1) - 1;
      if (left <= 0) this.#pendingByHost.delete(host);
      else this.#pendingByHost.set(host, left);
    }
  }

  /** @internal Makes the session of a finished handshake. */
  _establish(handshake: DatagramHandshake, keys: SessionKeys, onFirstPacket?: () => void): DatagramSession {
    if (this.#closed) throw new TransportError("Cannot establish: the datagram endpoint is closed");
    const session = new DatagramSession({
      localIndex: handshake.localIndex,
      remoteIndex: handshake.remoteIndex,
      remote: handshake.remote,
      localAddr: this.#socket.url,
      keys,
      initiator: handshake.initiator,
      send: (packet, to) => this._send(packet, to),
      onClose: (s) => {
        const slot = this.#slots.get(s.localIndex);
        if (slot?.session === s) this.#slots.delete(s.localIndex);
      },
      onFirstPacket,
      options: this.#options.session,
    });
    this.#slots.set(handshake.localIndex, { handshake, session });
    return session;
  }

  /** Takes a token from the source's bucket; false when it has none left. */
  #admit(host: string): boolean {
    const rate = this.#options.handshakesPerSecond ?? 10;
    const now = performance.now();
    let bucket = this.#buckets.get(host);
    if (bucket) {
      this.#buckets.delete(host); // re-inserted below: the map stays in least-recently-used order
      bucket.tokens = Math.min(rate * 2, bucket.tokens + ((now - bucket.at) / 1000) * rate);
      bucket.at = now;
    } else {
      bucket = { tokens: rate * 2, at: now };
      if (this.#buckets.size >= RATE_TABLE_SIZE) this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    this.#buckets.set(host, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #responderKey(addr: UdpAddr, index: number): string {
    return `${udpAddrKey(addr)}/${index}`;
  }

  #newIndex(): number {
    const buf = new Uint32Array(1);
    for (;;) {
      globalThis.crypto.getRandomValues(buf);
      if (buf[0] !== 0 && !this.#slots.has(buf[0])) return buf[0];
    }
  }

  #receive(data: Uint8Array, from: UdpAddr): void {
    const type = data[0];
    if (type === PacketType.DATA_PHASE_0 || type === PacketType.DATA_PHASE_1) {
      const receiver = (data[1] << 24 | data[2] << 16 | data[3] << 8 | data[4]) >>> 0;
      const session = this.#slots.get(receiver)?.session;
      if (session) session.receive(data, from);
      else this.stats.dropped++;
      return;
    }
    let packet: HandshakePacket;
    try {
      packet = decodeHandshakePacket(data);
      if (packet.message.length > MAX_HANDSHAKE_MESSAGE) throw new DatagramError("handshake message too long");
    } catch {
      this.stats.dropped++;
      return;
    }
    if (packet.number === 1) {
      this.#initiation(packet, from);
      return;
    }
    const slot = this.#slots.get(packet.receiver);
    if (!slot?.handshake) {
      this.stats.dropped++;
      return;
    }
    slot.handshake._packet(packet, from);
  }

  #initiation(packet: HandshakePacket, from: UdpAddr): void {
    const key = this.#responderKey(from, packet.sender);
    const known = this.#responders.get(key);
    if (known) {
      known._packet(packet, from);
      return;
    }
    const fromHost = this.#pendingByHost.get(from.hostname) ?? 0;
    if (
      this.#closed || this.#pending >= (this.#options.maxPending ?? 256) ||
      fromHost >= (this.#options.maxPendingPerHost ?? 16) || !this.#admit(from.hostname)
    ) {
      this.stats.refused++;
      return;
    }
    this.#pending++;
    this.#pendingByHost.set(from.hostname, fromHost + 1);
    const index = this.#newIndex();
    const handshake = new DatagramHandshake(
      this,
      false,
      index,
      { hostname: from.hostname, port: from.port },
      packet.sender,
    );
    this.#slots.set(index, { handshake });
    this.#responders.set(key, handshake);
    handshake._packet(packet, from);
    try {
      this.#options.onHandshake(handshake);
    } catch (error) {
      handshake.abort(error);
    }
  }
}

/**
 * One handshake over datagrams, as the {@linkcode FrameIO} of
 * `performHandshake`: message 1 in an INITIATION packet, 2 in a RESPONSE, 3 in
 * a FINISH. The initiator sends INITIATION again until a RESPONSE comes, and
 * FINISH again until the first packet of the session (or a resent RESPONSE)
 * shows whether it arrived; the responder answers a resent INITIATION with the
 * same RESPONSE.
 */
export class DatagramHandshake implements FrameIO {
  /** Handshake messages are far below it; it is what `performHandshake` asks for. */
  readonly maxFrameSize: number = MAX_HANDSHAKE_MESSAGE;
  /** Whether this side started the handshake. */
  readonly initiator: boolean;
  /** This side's session index. */
  readonly localIndex: number;
  #remoteIndex: number;
  #remote: UdpAddr;
  #endpoint: DatagramEndpoint;
  #inbox: Uint8Array[] = [];
  #pendingRead: PromiseWithResolvers<Uint8Array | null> | null = null;
  /** The messages received so far, by number (a duplicate is not delivered twice). */
  #received = 0;
  /** The last packet this side sent, resent on a timer (initiator) or on a duplicate (responder). */
  #lastSent: Uint8Array | null = null;
  #resendTimer: ReturnType<typeof setTimeout> | undefined;
  #resendDelay = RESEND_INITIAL_MS;
  #resendUntil = Infinity;
  #ended: unknown = undefined;
  #established = false;
  #released = false;

  /** @internal Made by {@linkcode DatagramEndpoint}. */
  constructor(
    endpoint: DatagramEndpoint,
    initiator: boolean,
    localIndex: number,
    remote: UdpAddr,
    remoteIndex: number,
  ) {
    this.#endpoint = endpoint;
    this.initiator = initiator;
    this.localIndex = localIndex;
    this.#remote = remote;
    this.#remoteIndex = remoteIndex;
  }

  /** The peer's endpoint (the address its packets came from, once one did). */
  get remote(): UdpAddr {
    return this.#remote;
  }

  /** The peer's address as `udp://HOST:PORT`. */
  get remoteAddr(): string {
    return formatUdpAddr(this.#remote);
  }

  /** The peer's session index (0 until its RESPONSE arrived, for the initiator). */
  get remoteIndex(): number {
    return this.#remoteIndex;
  }

  /** The next handshake message from the peer. */
  read(): Promise<Uint8Array | null> {
    if (this.#pendingRead) return Promise.reject(new TypeError("Cannot read: a read is already pending"));
    const message = this.#inbox.shift();
    if (message) return Promise.resolve(message);
    if (this.#ended !== undefined) return Promise.reject(this.#ended);
    this.#pendingRead = Promise.withResolvers();
    return this.#pendingRead.promise;
  }

  /** Sends the next handshake message (1 and 3 for the initiator, 2 for the responder). */
  write(frame: Uint8Array): Promise<void> {
    if (this.#ended !== undefined) return Promise.reject(this.#ended);
    const number = this.initiator ? (this.#lastSent === null ? 1 : 3) : 2;
    const packet = encodeHandshakePacket({
      number,
      sender: this.localIndex,
      receiver: this.#remoteIndex,
      message: frame,
    });
    this.#lastSent = packet;
    this.#endpoint._send(packet, this.#remote);
    if (this.initiator) {
      this.#resendDelay = RESEND_INITIAL_MS;
      if (number === 3) this.#resendUntil = performance.now() + FINISH_RESEND_FOR_MS;
      this.#armResend();
    }
    return Promise.resolve();
  }

  /** Nothing to flush: a datagram handshake has no stream to end. Ends it unless established. */
  close(): Promise<void> {
    if (!this.#established) this.#end(new TransportError("The handshake was closed"));
    return Promise.resolve();
  }

  /** Ends the handshake; a pending read rejects with `reason`. */
  abort(reason?: unknown): void {
    this.#end(reason ?? new TransportError("The handshake was aborted"));
  }

  /**
   * Turns the finished handshake into its session, with the keys
   * `performHandshake` returned.
   */
  establish(keys: SessionKeys): DatagramSession {
    if (this.#ended !== undefined) throw this.#ended;
    if (this.#remoteIndex === 0) throw new TransportError("Cannot establish: the handshake is not finished");
    this.#established = true;
    const session = this.#endpoint._establish(this, keys, () => this.#stopResending());
    if (!this.initiator) this.#stopResending();
    // The handshake's part is over (it no longer counts as pending); the slot now holds the session, and a resent
    // RESPONSE still finds this object.
    this.#inbox.length = 0;
    this.#release();
    session.closed.then(() => this.#end(new TransportError("The session ended")));
    return session;
  }

  /** @internal A handshake packet for this handshake. */
  _packet(packet: HandshakePacket, from: UdpAddr): void {
    if (this.#ended !== undefined || (this.#established && !this.initiator)) return;
    const expected = this.initiator ? 2 : (this.#received === 0 ? 1 : 3);
    if (packet.number !== expected) {
      // A resent message: answer it with what this side sent last, if that is the answer to it.
      if (packet.number === (this.initiator ? 2 : 1) && this.#lastSent) {
        this.#endpoint._send(this.#lastSent, this.#remote);
      }
      return;
    }
    if (this.initiator) {
      if (this.#received >= 1) {
        // A resent RESPONSE: our FINISH was lost.
        if (packet.sender === this.#remoteIndex && this.#lastSent) this.#endpoint._send(this.#lastSent, this.#remote);
        return;
      }
      this.#remoteIndex = packet.sender;
      this.#remote = { hostname: from.hostname, port: from.port };
      this.#stopResending();
    } else if (packet.number === 3) {
      if (packet.sender !== this.#remoteIndex) return;
      this.#stopResending();
    }
    this.#received++;
    const message = packet.message.slice();
    const pending = this.#pendingRead;
    if (pending) {
      this.#pendingRead = null;
      pending.resolve(message);
    } else {
      this.#inbox.push(message);
    }
  }

  #armResend(): void {
    if (this.#resendTimer !== undefined) clearTimeout(this.#resendTimer);
    this.#resendTimer = setTimeout(() => {
      this.#resendTimer = undefined;
      if (this.#ended !== undefined || !this.#lastSent || performance.now() > this.#resendUntil) return;
      this.#endpoint._send(this.#lastSent, this.#remote);
      this.#resendDelay = Math.min(this.#resendDelay * 2, RESEND_MAX_MS);
      this.#armResend();
    }, this.#resendDelay);
  }

  #stopResending(): void {
    if (this.#resendTimer !== undefined) clearTimeout(this.#resendTimer);
    this.#resendTimer = undefined;
    this.#resendUntil = 0;
  }

  #end(reason: unknown): void {
    if (this.#ended !== undefined) return;
    this.#ended = reason;
    this.#stopResending();
    const pending = this.#pendingRead;
    this.#pendingRead = null;
    pending?.reject(reason);
    this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#endpoint._handshakeEnded(this);
  }
}
