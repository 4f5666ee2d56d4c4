/**
 * The data phase of NZ-DGRAM-01 (spec/protocols/NZ-DGRAM-01.md): after the
 * handshake, a {@linkcode DatagramSession} turns lossy, reordering datagrams
 * into a reliable, ordered byte stream in each direction (a transport
 * {@linkcode Duplex}), on which the NZ-CHANNEL-01 channel runs as it does over
 * TCP.
 *
 * Every data packet is sealed on its own: the counter travels in the clear,
 * is the AEAD nonce, and is never reused; the receiver accepts each counter
 * once (a sliding replay window). The counter is also the packet number that
 * acknowledgements name, as in QUIC: lost stream bytes are sent again in new
 * packets, under new counters. Loss detection and congestion control follow
 * RFC 9002 in a reduced form (packet and time thresholds, a probe timeout,
 * NewReno). Stream bytes are cut into packets of at most the path's datagram
 * size and put together again by offset, so a message of any size crosses a
 * path with a small MTU. An idle session sends a PING now and then, which
 * holds NAT bindings open; a packet that authenticates from a new address
 * moves the session there (a NAT that rebinds, a roaming peer).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { crypto as defaultCrypto } from "../crypto/default.ts";
import { deriveKey } from "../crypto/kdf.ts";
import { nativeProvider } from "../crypto/native.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { wipe } from "../bytes.ts";
import { rekeyKey } from "./cipher.ts";
import {
  DATA_HEADER_LEN,
  DatagramError,
  type DataHeader,
  decodeRecords,
  MAX_ACK_RANGES,
  PacketType,
  readDataHeader,
  RecordWriter,
  STREAM_RECORD_HEADER,
  TAG_LEN,
} from "./datagram_packet.ts";
import { ReplayWindow } from "./replay_window.ts";
import type { Duplex } from "../../transport/types.ts";
import { formatUdpAddr, type UdpAddr } from "../../transport/udp.ts";
import { TransportError } from "../../transport/errors.ts";

/** The datagram size used unless told otherwise: fits the IPv6 minimum MTU with room for tunnels. */
export const DEFAULT_DATAGRAM_SIZE = 1200;
/** The label of the packet keys, derived from the handshake's channel keys (NZ-DGRAM-01 "Keys"). */
export const PACKET_KEY_LABEL = "nz-dgram-01 packet key";
/** Flip the key phase after this many packets under one key. */
export const REKEY_AFTER_PACKETS = 2 ** 20;
/** ... or after a key has been used this long. */
export const REKEY_AFTER_MS = 120_000;
/** The receive window: stream bytes the peer may send beyond what this side has read. */
export const RECEIVE_WINDOW = 8 * 1024 * 1024;
/** Packet threshold of loss detection (RFC 9002 section 6.1.1). */
const PACKET_THRESHOLD = 3;
/** Time threshold, as a fraction of the RTT (RFC 9002 section 6.1.2). */
const TIME_THRESHOLD = 9 / 8;
/** The longest this side waits before acknowledging (advertised to no one: a local choice). */
const MAX_ACK_DELAY_MS = 5;
/** The granularity of timers (RFC 9002 section 6.1.2 kGranularity). */
const TIMER_GRANULARITY_MS = 1;
/** Acknowledge at once after this many ack-eliciting packets. */
const ACK_EVERY = 8;
/** RTT assumed before the first sample (RFC 9002 section 6.2.2). */
const INITIAL_RTT_MS = 100;
/** NewReno's initial and minimum windows, in datagrams (RFC 9002 section 7.2). */
const INITIAL_WINDOW_PACKETS = 32;
const MIN_WINDOW_PACKETS = 2;
/** The congestion window never grows beyond this (bytes). */
const MAX_CWND = 16 * 1024 * 1024;
/** Unsent bytes a writer may queue before its write waits. */
const SEND_HIGH_WATER = 1024 * 1024;
/** Probe timeouts in a row after which the peer is taken for gone. */
const MAX_PTO_COUNT = 10;
/** How many packets a flush sends before it yields to the event loop. */
const BURST = 64;

/** The options of every node:crypto ChaCha20-Poly1305 cipher (one object, not one per packet). */
const AEAD_OPTIONS = { authTagLength: TAG_LEN };

/** A Buffer view of `bytes` (no copy: wiping one wipes the other), which node:crypto takes without converting. */
function asBuffer(bytes: Uint8Array): Uint8Array {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Options of a {@linkcode DatagramSession}. Durations in milliseconds; 0 disables. */
export interface DatagramSessionOptions {
  /** The largest UDP payload sent (default 1200; at least 256). */
  datagramSize?: number;
  /** Send a PING after this long without sending anything (default 15 s: NAT bindings of 30 s stay open). */
  keepAliveMs?: number;
  /** End the session after this long without an authenticated packet (default 45 s). */
  idleTimeoutMs?: number;
  /** A graceful close waits this long for unacknowledged bytes, then aborts (default 5 s). */
  closeTimeoutMs?: number;
  /** Rekey after this many packets (default 2^20). */
  rekeyAfterPackets?: number;
  /** Rekey after this long (default 120 s). */
  rekeyAfterMs?: number;
  /** The AEAD provider (default: the kernel's). */
  provider?: CryptoProvider;
}

/** What a session has done, for `peers` and benchmarks. */
export interface DatagramSessionStats {
  /** The peer's current address. */
  remoteAddr: string;
  /** Smoothed round-trip time in ms (null before the first sample). */
  rttMs: number | null;
  /** Congestion window, bytes. */
  cwnd: number;
  /** Data packets sent. */
  packetsSent: number;
  /** Data packets received that authenticated. */
  packetsReceived: number;
  /** Packets declared lost (sent again). */
  packetsLost: number;
  /** Packets that did not authenticate, were replays, or came for an old key. */
  packetsDropped: number;
  /** Probe timeouts that fired (RFC 9002 section 6.2): each one a stall of at least an RTT plus the ack delay. */
  probeTimeouts: number;
  /** Key phase flips of the sending direction. */
  rekeys: number;
  /** Stream bytes sent for the first time. */
  streamBytesSent: number;
  /** Stream bytes delivered in order. */
  streamBytesReceived: number;
}

/** How the session sends a datagram: to the peer's current address. */
export type DatagramSender = (packet: Uint8Array, to: UdpAddr) => void;

interface Chunk {
  offset: number;
  data: Uint8Array;
}

interface SentPacket {
  time: number;
  size: number;
  ackEliciting: boolean;
  chunks: Chunk[] | null;
}

/** CLOSE codes (NZ-DGRAM-01 "Records"). */
export const CloseCode = { NORMAL: 0, ERROR: 1, PROTOCOL: 2, IDLE: 3 } as const;

/** The data phase of one session: a reliable byte stream over datagrams. */
export class DatagramSession implements Duplex {
  readonly localAddr: string;
  readonly closed: Promise<void>;
  /** The peer's index (receiver index of what this side sends). */
  readonly remoteIndex: number;
  /** This side's index (receiver index of what the peer sends). */
  readonly localIndex: number;
  #resolveClosed!: () => void;
  #remote: UdpAddr;
  #send: DatagramSender;
  #provider: CryptoProvider;
  /** Whether the provider is the native one: packets are then sealed and opened with node:crypto directly. */
  #native: boolean;
  #datagramSize: number;
  #keepAliveMs: number;
  #idleTimeoutMs: number;
  #closeTimeoutMs: number;
  #rekeyAfterPackets: number;
  #rekeyAfterMs: number;
  #onClose: (session: DatagramSession) => void;
  #onFirstPacket: (() => void) | null;

  // Keys: the current send key and phase; the current receive key and phase, the one before, and the next.
  #sendKey: Uint8Array;
  #sendPhase: 0 | 1 = 0;
  #sendPhaseSince: number;
  #sendPhasePackets = 0;
  /** The first counter sent under the current phase, and whether the peer acknowledged a packet of it (a rekey waits for that). */
  #sendPhaseFirst = 0;
  #sendPhaseConfirmed = true;
  #recvKey: Uint8Array;
  #recvPhase: 0 | 1 = 0;
  #recvPrevKey: Uint8Array | null = null;
  /** A Buffer: node:crypto takes Buffers as they are, and converts (copies) plain Uint8Arrays on every call. */
  #nonce: Uint8Array = Buffer.alloc(12);
  #nonceView = new DataView(this.#nonce.buffer, this.#nonce.byteOffset, 12);

  // Sending.
  #counter = 0;
  #writer: RecordWriter;
  #sendQueue: Chunk[] = [];
  #sendQueued = 0;
  #lost: Chunk[] = [];
  #nextOffset = 0;
  #sent = new Map<number, SentPacket>();
  #streamInFlight = 0;
  #bytesInFlight = 0;
  #cwnd: number;
  #ssthresh = Infinity;
  #recoveryStart = -1;
  #peerMaxData = RECEIVE_WINDOW;
  #largestAcked = -1;
  #srtt: number | null = null;
  #rttvar = INITIAL_RTT_MS / 2;
  #ptoCount = 0;
  /** Probe packets owed after a probe timeout: sent whatever the congestion window says (RFC 9002 section 6.2.4). */
  #probes = 0;
  /**
   * The loss detection deadline (time threshold or probe timeout; Infinity: none) and whether it is the time
   * threshold. The timer is lazy: it is set again only when the deadline comes earlier than it fires; one that
   * fires early (the deadline moved on with each acknowledgement) sets itself for the new deadline. So a bulk
   * transfer arms a timer every few milliseconds, not one per acknowledgement.
   */
  #lossAt = Infinity;
  #lossAtIsTimeThreshold = false;
  #lossTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed loss timer fires. */
  #lossTimerAt = Infinity;
  #lastSent: number;
  #writeWaiters: (() => void)[] = [];
  #drainWaiters: (() => void)[] = [];
  #flushing = false;
  #flushAgain = false;
  #pingWanted = false;

  // Receiving.
  #replay = new ReplayWindow();
  #recvRanges: [number, number][] = [];
  #ackPending = 0;
  #ackWanted = false;
  /** When a delayed acknowledgement is due (Infinity: none); the ack timer is lazy as the loss timer is. */
  #ackDue = Infinity;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #delivered = 0;
  #consumed = 0;
  #maxData = RECEIVE_WINDOW;
  #maxDataWanted = false;
  #readQueue: Uint8Array[] = [];
  #outOfOrder: Chunk[] = [];
  #pendingRead: PromiseWithResolvers<Uint8Array | null> | null = null;
  #lastReceived: number;
  #stopTick: () => void;

  // Ending.
  #state: "open" | "closing" | "closed" = "open";
  /** Why reads end: null for a clean end (reads return null once drained). */
  #readError: unknown = undefined;
  #peerEnded = false;
  #writeError: unknown = undefined;
  #readable: ReadableStream<Uint8Array> | null = null;
  #writable: WritableStream<Uint8Array> | null = null;

  /** The counters, live ({@linkcode DatagramSession.info} adds the address, RTT and window). */
  readonly stats: Omit<DatagramSessionStats, "remoteAddr" | "rttMs" | "cwnd"> = {
    packetsSent: 0,
    packetsReceived: 0,
    packetsLost: 0,
    packetsDropped: 0,
    probeTimeouts: 0,
    rekeys: 0,
    streamBytesSent: 0,
    streamBytesReceived: 0,
  };

  /**
   * A session of a finished handshake; made by `DatagramHandshake.establish()`, or by tests.
   *
   * @param init.keys The handshake's channel keys; the packet keys are derived from them (they are not used as
   *   they are, so the channel running on top can use them without sharing a nonce space).
   * @param init.initiator Whether this side started the handshake: the responder sends the first packet, a PING,
   *   which confirms the handshake to the initiator.
   */
  constructor(init: {
    localIndex: number;
    remoteIndex: number;
    remote: UdpAddr;
    localAddr: string;
    keys: { sendKey: Uint8Array; recvKey: Uint8Array };
    initiator: boolean;
    send: DatagramSender;
    onClose: (session: DatagramSession) => void;
    onFirstPacket?: () => void;
    options?: DatagramSessionOptions;
  }) {
    const options = init.options ?? {};
    this.localIndex = init.localIndex;
    this.remoteIndex = init.remoteIndex;
    this.#remote = init.remote;
    this.localAddr = init.localAddr;
    this.#send = init.send;
    this.#onClose = init.onClose;
    this.#onFirstPacket = init.onFirstPacket ?? null;
    this.#provider = options.provider ?? defaultCrypto;
    this.#native = this.#provider === nativeProvider;
    this.#datagramSize = options.datagramSize ?? DEFAULT_DATAGRAM_SIZE;
    if (!Number.isInteger(this.#datagramSize) || this.#datagramSize < 256 || this.#datagramSize > 65_507) {
      throw new RangeError(`Invalid datagramSize: ${options.datagramSize}, expected 256 to 65507`);
    }
    this.#keepAliveMs = options.keepAliveMs ?? 15_000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 5_000;
    this.#rekeyAfterPackets = options.rekeyAfterPackets ?? REKEY_AFTER_PACKETS;
    this.#rekeyAfterMs = options.rekeyAfterMs ?? REKEY_AFTER_MS;
    this.#sendKey = asBuffer(deriveKey(init.keys.sendKey, PACKET_KEY_LABEL));
    this.#recvKey = deriveKey(init.keys.recvKey, PACKET_KEY_LABEL);
    this.#writer = new RecordWriter(this.#datagramSize - DATA_HEADER_LEN - TAG_LEN);
    this.#cwnd = INITIAL_WINDOW_PACKETS * this.#datagramSize;
    const now = performance.now();
    this.#lastSent = this.#lastReceived = this.#sendPhaseSince = now;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    const tick = setInterval(() => this.#tick(), 1_000);
    Deno.unrefTimer(tick);
    this.#stopTick = () => clearInterval(tick);
    if (!init.initiator) {
      // Confirms the handshake: the initiator stops resending FINISH once a packet of ours authenticates.
      this.#pingWanted = true;
      this.#flush();
    }
  }

  /** The peer's address as `udp://HOST:PORT`. */
  get remoteAddr(): string {
    return formatUdpAddr(this.#remote);
  }

  /** The peer's current endpoint. */
  get remote(): UdpAddr {
    return this.#remote;
  }

  /** Smoothed RTT in ms, or null before the first acknowledgement. */
  get rttMs(): number | null {
    return this.#srtt;
  }

  /** A snapshot of the counters. */
  info(): DatagramSessionStats {
    return { remoteAddr: this.remoteAddr, rttMs: this.#srtt, cwnd: this.#cwnd, ...this.stats };
  }

  // ------------------------------------------------------------------ Duplex

  /** Bytes from the peer, in order; `null` after the peer closed and everything was read. */
  read(): Promise<Uint8Array | null> {
    if (this.#pendingRead) return Promise.reject(new TypeError("Cannot read: a read is already pending"));
    const chunk = this.#readQueue.shift();
    if (chunk) {
      this.#consume(chunk.length);
      return Promise.resolve(chunk);
    }
    if (this.#readError !== undefined) {
      return this.#readError === null ? Promise.resolve(null) : Promise.reject(this.#readError);
    }
    this.#pendingRead = Promise.withResolvers();
    return this.#pendingRead.promise;
  }

  /** Queues `chunk` (copied) for the peer; resolves when the queue is below its high-water mark. */
  write(chunk: Uint8Array): Promise<void> {
    if (this.#writeError !== undefined || this.#state !== "open") {
      return Promise.reject(this.#writeError ?? new TransportError("Cannot write: the session is closed"));
    }
    if (chunk.length > 0) {
      this.#sendQueue.push({ offset: this.#nextOffset, data: chunk.slice() });
      this.#nextOffset += chunk.length;
      this.#sendQueued += chunk.length;
      this.#flush();
    }
    if (this.#sendQueued <= SEND_HIGH_WATER) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#writeWaiters.push(() => (this.#writeError !== undefined ? reject(this.#writeError) : resolve()));
    });
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.read();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => this.abort(new TransportError("The readable was cancelled")),
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.close(),
      abort: (reason) => this.abort(reason),
    });
  }

  /** Waits (up to the close timeout) until the peer acknowledged every byte, then ends the session. */
  async close(): Promise<void> {
    if (this.#state !== "open") return this.closed;
    this.#state = "closing";
    this.#writeError = new TransportError("Cannot write: the session is closing");
    if (!this.#allAcked()) {
      const drained = new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((
        resolve,
      ) => (timer = setTimeout(() => resolve("timeout"), this.#closeTimeoutMs)));
      const outcome = await Promise.race([drained, timeout]);
      clearTimeout(timer);
      if (outcome === "timeout" && this.#state === "closing") {
        this.#end(
          CloseCode.ERROR,
          "close timed out with unacknowledged data",
          new TransportError("The session close timed out"),
        );
        return;
      }
    }
    if (this.#state === "closing") this.#end(CloseCode.NORMAL, "closed", null);
  }

  /** Ends at once; pending reads and writes reject with `reason`. */
  abort(reason?: unknown): void {
    if (this.#state === "closed") return;
    const error = reason ?? new TransportError("The session was aborted");
    const text = error instanceof Error ? error.message : String(error);
    this.#end(CloseCode.ERROR, text, error);
  }

  /** Same as {@linkcode DatagramSession.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ------------------------------------------------------------------ receiving

  /**
   * Takes a data packet addressed to this session (its receiver index is
   * `localIndex`). Packets that do not authenticate, replays and packets of a
   * key this side no longer holds are dropped silently; an authenticated
   * packet that breaks the protocol ends the session.
   */
  receive(packet: Uint8Array, from: UdpAddr): void {
    if (this.#state === "closed") return;
    let header: DataHeader;
    try {
      header = readDataHeader(packet);
    } catch {
      this.stats.packetsDropped++;
      return;
    }
    if (!this.#replay.fresh(header.counter)) {
      this.stats.packetsDropped++;
      return;
    }
    const plaintext = this.#open(packet, header);
    if (!plaintext) {
      this.stats.packetsDropped++;
      return;
    }
    this.#replay.mark(header.counter);
    this.stats.packetsReceived++;
    this.#lastReceived = performance.now();
    if (from.hostname !== this.#remote.hostname || from.port !== this.#remote.port) {
      // Only a packet that authenticates moves the session (NZ-DGRAM-01 "Addresses").
      if (header.counter >= this.#replay.highest) this.#remote = { hostname: from.hostname, port: from.port };
    }
    if (this.#onFirstPacket) {
      const first = this.#onFirstPacket;
      this.#onFirstPacket = null;
      first();
    }
    let records;
    try {
      records = decodeRecords(plaintext);
    } catch (error) {
      this.#end(CloseCode.PROTOCOL, (error as Error).message, error);
      return;
    }
    let ackEliciting = false;
    for (const record of records) {
      switch (record.type) {
        case "ping":
          ackEliciting = true;
          break;
        case "stream":
          ackEliciting = true;
          if (!this.#onStream(record.offset, record.data)) return;
          break;
        case "ack":
          this.#onAck(record.ranges, record.delayMs);
          break;
        case "max_data":
          if (record.max > this.#peerMaxData) this.#peerMaxData = record.max;
          break;
        case "close":
          this.#onPeerClose(record.code, record.reason);
          return;
      }
    }
    this.#noteReceived(header.counter, ackEliciting);
    this.#flush();
  }

  #open(packet: Uint8Array, header: DataHeader): Uint8Array | null {
    const ad = packet.subarray(0, DATA_HEADER_LEN);
    const sealed = packet.subarray(DATA_HEADER_LEN);
    const nonce = this.#nonceFor(header.counter);
    if (header.phase === this.#recvPhase) {
      return this.#tryOpen(this.#recvKey, nonce, sealed, ad) ??
        (this.#recvPrevKey ? this.#tryOpen(this.#recvPrevKey, nonce, sealed, ad) : null);
    }
    // The other phase: the peer's next key (a rekey), or a late packet of the previous one.
    if (this.#recvPrevKey) {
      const late = this.#tryOpen(this.#recvPrevKey, nonce, sealed, ad);
      if (late) return late;
    }
    const next = rekeyKey(this.#recvKey, this.#provider);
    const plaintext = this.#tryOpen(next, nonce, sealed, ad);
    if (!plaintext) {
      wipe(next);
      return null;
    }
    if (this.#recvPrevKey) wipe(this.#recvPrevKey);
    this.#recvPrevKey = this.#recvKey;
    this.#recvKey = next;
    this.#recvPhase = header.phase;
    return plaintext;
  }

  #tryOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | null {
    if (!this.#native) {
      try {
        return this.#provider.chachaOpen(key, nonce, sealed, ad);
      } catch {
        return null;
      }
    }
    // The hot path: node:crypto directly, without the provider's copies. The plaintext is released only after
    // final() has checked the tag, and wiped when it does not verify.
    const length = sealed.length - TAG_LEN;
    const decipher = createDecipheriv("chacha20-poly1305", asBuffer(key), nonce, AEAD_OPTIONS);
    decipher.setAAD(ad, { plaintextLength: length });
    decipher.setAuthTag(sealed.subarray(length));
    const plaintext = decipher.update(sealed.subarray(0, length));
    try {
      decipher.final();
    } catch {
      plaintext.fill(0);
      return null;
    }
    // A plain Uint8Array view of node's Buffer when it owns its memory (no copy); bytes cut from node's shared
    // pool are copied out and wiped there, as the native provider does.
    if (plaintext.byteOffset === 0 && plaintext.buffer.byteLength === plaintext.length) {
      return new Uint8Array(plaintext.buffer, 0, plaintext.length);
    }
    const copy = Uint8Array.from(plaintext);
    plaintext.fill(0);
    return copy;
  }

  #nonceFor(counter: number): Uint8Array {
    // 4 zero bytes || LE64(counter), as NZ-CHANNEL-01 frames.
    this.#nonceView.setUint32(4, counter >>> 0, true);
    this.#nonceView.setUint32(8, Math.floor(counter / 0x1_0000_0000), true);
    return this.#nonce;
  }

  /** Returns false when the session ended (the peer overran the window). */
  #onStream(offset: number, data: Uint8Array): boolean {
    const end = offset + data.length;
    if (end > this.#maxData) {
      this.#end(
        CloseCode.PROTOCOL,
        "stream data beyond MAX_DATA",
        new DatagramError("The peer overran the receive window"),
      );
      return false;
    }
    if (end <= this.#delivered || this.#readError !== undefined) return true;
    if (offset < this.#delivered) {
      data = data.subarray(this.#delivered - offset);
      offset = this.#delivered;
    }
    if (offset === this.#delivered) {
      this.#deliver(data);
      // Out-of-order chunks that now join up.
      const waiting = this.#outOfOrder;
      let i = 0;
      while (i < waiting.length && waiting[i].offset <= this.#delivered) {
        const chunk = waiting[i++];
        const chunkEnd = chunk.offset + chunk.data.length;
        if (chunkEnd > this.#delivered) this.#deliver(chunk.data.subarray(this.#delivered - chunk.offset));
      }
      if (i > 0) waiting.splice(0, i);
    } else {
      // Insert by offset (binary search); an exact duplicate is dropped.
      const waiting = this.#outOfOrder;
      let lo = 0, hi = waiting.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (waiting[mid].offset < offset) lo = mid + 1;
        else hi = mid;
      }
      if (lo < waiting.length && waiting[lo].offset === offset && waiting[lo].data.length >= data.length) return true;
      waiting.splice(lo, 0, { offset, data });
    }
    return true;
  }

  #deliver(data: Uint8Array): void {
    this.#delivered += data.length;
    this.stats.streamBytesReceived += data.length;
    const pending = this.#pendingRead;
    if (pending) {
      this.#pendingRead = null;
      this.#consume(data.length);
      pending.resolve(data);
    } else {
      this.#readQueue.push(data);
    }
  }

  #consume(length: number): void {
    this.#consumed += length;
    if (this.#maxData - this.#consumed < RECEIVE_WINDOW / 2) {
      this.#maxData = this.#consumed + RECEIVE_WINDOW;
      this.#maxDataWanted = true;
      this.#flush();
    }
  }

  #noteReceived(counter: number, ackEliciting: boolean): void {
    const ranges = this.#recvRanges;
    const top = ranges[0];
    let inOrder = false;
    if (top && counter === top[0] + 1) {
      top[0] = counter;
      inOrder = true;
    } else {
      // Insert into the descending, disjoint list, merging neighbours.
      let i = 0;
      while (i < ranges.length && ranges[i][1] > counter) i++;
      if (i < ranges.length && ranges[i][0] >= counter) return; // already in a range
      const above = i > 0 ? ranges[i - 1] : undefined;
      const below = i < ranges.length ? ranges[i] : undefined;
      if (above && above[1] === counter + 1) {
        above[1] = counter;
        if (below && below[0] === counter - 1) {
          above[1] = below[1];
          ranges.splice(i, 1);
        }
      } else if (below && below[0] === counter - 1) {
        below[0] = counter;
      } else {
        ranges.splice(i, 0, [counter, counter]);
      }
      if (ranges.length > MAX_ACK_RANGES) ranges.length = MAX_ACK_RANGES;
      inOrder = ranges.length === 1;
    }
    if (!ackEliciting) return;
    this.#ackPending++;
    if (!inOrder || this.#ackPending >= ACK_EVERY) {
      this.#ackWanted = true;
    } else if (this.#ackDue === Infinity) {
      this.#ackDue = this.#lastReceived + MAX_ACK_DELAY_MS;
      // An armed timer fires before the new due time (it was set for an earlier one): it sets itself again then.
      if (this.#ackTimer === undefined) this.#setAckTimer(MAX_ACK_DELAY_MS);
    }
  }

  #setAckTimer(delay: number): void {
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      if (this.#state === "closed" || this.#ackDue === Infinity || this.#ackPending === 0) return;
      // Set for an earlier due time: wait for this one, unless it is within the timers' granularity (a second
      // timer would fire a millisecond late, past what the peer's probe timeout allows for).
      const early = this.#ackDue - performance.now();
      if (early > TIMER_GRANULARITY_MS) {
        this.#setAckTimer(early);
        return;
      }
      this.#ackWanted = true;
      this.#flush();
    }, delay);
  }

  #onAck(ranges: [number, number][], delayMs: number): void {
    const now = performance.now();
    const largest = ranges[0][0];
    if (largest >= this.#counter) {
      this.#end(
        CloseCode.PROTOCOL,
        "ACK of a packet never sent",
        new DatagramError("The peer acknowledged a packet never sent"),
      );
      return;
    }
    let rangeIndex = ranges.length - 1;
    let newlyAcked = false;
    let largestNewly: SentPacket | undefined;
    for (const [pn, sent] of this.#sent) {
      if (pn > largest) break;
      while (rangeIndex > 0 && ranges[rangeIndex][0] < pn) rangeIndex--;
      const [hi, lo] = ranges[rangeIndex];
      if (pn < lo || pn > hi) continue;
      this.#sent.delete(pn);
      newlyAcked = true;
      if (pn === largest) largestNewly = sent;
      this.#bytesInFlight -= sent.size;
      if (sent.chunks) { for (const c of sent.chunks) this.#streamInFlight -= c.data.length; }
      if (pn >= this.#sendPhaseFirst) this.#sendPhaseConfirmed = true;
      // NewReno (RFC 9002 section 7.3): no growth for packets sent before the current recovery began.
      if (sent.time > this.#recoveryStart) {
        if (this.#cwnd < this.#ssthresh) this.#cwnd += sent.size;
        else this.#cwnd += (this.#datagramSize * sent.size) / this.#cwnd;
        if (this.#cwnd > MAX_CWND) this.#cwnd = MAX_CWND;
      }
    }
    if (!newlyAcked) return;
    if (largest > this.#largestAcked) this.#largestAcked = largest;
    if (largestNewly?.ackEliciting) {
      // RFC 9002 section 5: the sample, less the peer's reported delay.
      let sample = now - largestNewly.time;
      if (this.#srtt !== null && sample - delayMs >= 0.5) sample -= Math.min(delayMs, 25);
      if (this.#srtt === null) {
        this.#srtt = sample;
        this.#rttvar = sample / 2;
      } else {
        this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - sample);
        this.#srtt = 0.875 * this.#srtt + 0.125 * sample;
      }
    }
    this.#ptoCount = 0;
    this.#probes = 0;
    this.#detectLoss(now);
    this.#armLossTimer();
    if (this.#allAcked()) { for (const waiter of this.#drainWaiters.splice(0)) waiter(); }
  }

  #lossDelay(): number {
    return Math.max(TIME_THRESHOLD * (this.#srtt ?? INITIAL_RTT_MS), 1);
  }

  /** Declares lost what the packet and time thresholds say (RFC 9002 section 6.1). */
  #detectLoss(now: number): void {
    const lossDelay = this.#lossDelay();
    let congestion = false;
    for (const [pn, sent] of this.#sent) {
      if (pn > this.#largestAcked) break;
      if (this.#largestAcked - pn >= PACKET_THRESHOLD || now - sent.time >= lossDelay) {
        this.#declareLost(pn, sent);
        if (sent.time > this.#recoveryStart) congestion = true;
      }
    }
    if (congestion) {
      this.#recoveryStart = now;
      this.#cwnd = Math.max(this.#cwnd / 2, MIN_WINDOW_PACKETS * this.#datagramSize);
      this.#ssthresh = this.#cwnd;
    }
  }

  #declareLost(pn: number, sent: SentPacket): void {
    this.#sent.delete(pn);
    this.#bytesInFlight -= sent.size;
    this.stats.packetsLost++;
    if (sent.chunks) {
      for (const c of sent.chunks) {
        this.#streamInFlight -= c.data.length;
        this.#lost.push(c);
      }
    }
  }

  /** Computes the loss detection deadline (RFC 9002 section 6.2.1 and appendix A.8) and makes sure a timer fires by then. */
  #armLossTimer(): void {
    this.#lossAt = Infinity;
    if (this.#state === "closed") return;
    let oldest: SentPacket | undefined;
    let lossAt = Infinity;
    const lossDelay = this.#lossDelay();
    for (const [pn, sent] of this.#sent) {
      if (!sent.ackEliciting) continue;
      oldest ??= sent;
      if (pn < this.#largestAcked) lossAt = Math.min(lossAt, sent.time + lossDelay);
      else break;
    }
    if (!oldest) {
      // Nothing to watch: no timer left behind (an idle session holds none).
      if (this.#lossTimer !== undefined) clearTimeout(this.#lossTimer);
      this.#lossTimer = undefined;
      this.#lossTimerAt = Infinity;
      return;
    }
    const srtt = this.#srtt ?? INITIAL_RTT_MS;
    const pto = (srtt + Math.max(4 * this.#rttvar, TIMER_GRANULARITY_MS) + MAX_ACK_DELAY_MS) * 2 ** this.#ptoCount;
    this.#lossAt = Math.min(lossAt, oldest.time + pto);
    this.#lossAtIsTimeThreshold = lossAt <= oldest.time + pto;
    if (this.#lossTimer !== undefined && this.#lossTimerAt <= this.#lossAt) return;
    if (this.#lossTimer !== undefined) clearTimeout(this.#lossTimer);
    this.#setLossTimer(this.#lossAt);
  }

  #setLossTimer(at: number): void {
    this.#lossTimerAt = at;
    this.#lossTimer = setTimeout(() => {
      this.#lossTimer = undefined;
      this.#lossTimerAt = Infinity;
      if (this.#state === "closed" || this.#lossAt === Infinity) return;
      if (this.#lossAt > performance.now()) {
        this.#setLossTimer(this.#lossAt);
        return;
      }
      this.#onLossTimer(this.#lossAtIsTimeThreshold);
    }, Math.max(0, at - performance.now()));
  }

  #onLossTimer(timeThreshold: boolean): void {
    this.#lossAt = Infinity;
    const now = performance.now();
    if (timeThreshold) {
      this.#detectLoss(now);
    } else {
      // Probe timeout (RFC 9002 section 6.2): send the oldest unacknowledged data again, or a PING.
      this.#ptoCount++;
      this.stats.probeTimeouts++;
      if (this.#ptoCount > MAX_PTO_COUNT) {
        this.#end(CloseCode.ERROR, "peer unreachable", new TransportError("The peer stopped answering"));
        return;
      }
      let probed = false;
      for (const [pn, sent] of this.#sent) {
        if (!sent.ackEliciting) continue;
        if (sent.chunks) {
          this.#declareLost(pn, sent);
          probed = true;
        }
        break;
      }
      if (!probed) this.#pingWanted = true;
      // The probes go out even when the congestion window is full: after a loss that halved the window, the bytes
      // of a lost tail still count as in flight, and a probe the window held back would only double the next
      // timeout, again and again (RFC 9002 section 6.2.4: "Probe packets MUST NOT be blocked by the congestion
      // controller"). Two, as the RFC allows, so that one lost probe does not cost another timeout.
      this.#probes = 2;
    }
    this.#flush();
    this.#armLossTimer();
  }

  #onPeerClose(code: number, reason: string): void {
    this.#peerEnded = true;
    const error = code === CloseCode.NORMAL
      ? null
      : new TransportError(`The peer ended the session: ${reason || `code ${code}`}`);
    this.#finish(error, error ?? new TransportError(`The peer closed the session: ${reason}`));
  }

  // ------------------------------------------------------------------ sending

  #allAcked(): boolean {
    return this.#sendQueued === 0 && this.#lost.length === 0 && this.#streamInFlight === 0;
  }

  /** Sends what may be sent now: acknowledgements, lost bytes, new bytes, within the windows. */
  #flush(): void {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    if (this.#state === "closed") return;
    this.#flushing = true;
    try {
      let burst = 0;
      do {
        this.#flushAgain = false;
        while ((this.#state as string) !== "closed" && this.#sendOne()) {
          if (++burst >= BURST) {
            // Yield, so that acknowledgements get in; go on from a macrotask.
            setTimeout(() => this.#flush(), 0);
            return;
          }
        }
      } while (this.#flushAgain);
    } finally {
      this.#flushing = false;
    }
    this.#wakeWriters();
  }

  /** Builds and sends one packet; false when there is nothing to send (or no room in the windows). */
  #sendOne(): boolean {
    const w = this.#writer;
    w.reset();
    // An acknowledgement goes out when due, and rides along with any stream bytes before it is due.
    const hasData = this.#lost.length > 0 ||
      (this.#sendQueue.length > 0 && this.#sendQueue[0].offset < this.#peerMaxData);
    const ack = this.#recvRanges.length > 0 &&
      (this.#ackWanted || (this.#ackPending > 0 && hasData && this.#cwnd - this.#bytesInFlight >= this.#datagramSize));
    if (ack) w.ack(0, this.#recvRanges);
    if (this.#maxDataWanted || ack) w.maxData(this.#maxData);
    let chunks: Chunk[] | null = null;
    const room = this.#probes > 0 || this.#cwnd - this.#bytesInFlight >= this.#datagramSize;
    if (room) {
      // Lost bytes first, then new bytes within the peer's window.
      while (w.free > STREAM_RECORD_HEADER) {
        const fromLost = this.#lost.length > 0;
        const queue = fromLost ? this.#lost : this.#sendQueue;
        const head = queue[0];
        if (!head) break;
        let take = Math.min(head.data.length, w.free - STREAM_RECORD_HEADER, 0xffff);
        if (!fromLost) take = Math.min(take, this.#peerMaxData - head.offset);
        if (take <= 0) break;
        const piece = take === head.data.length ? head.data : head.data.subarray(0, take);
        w.stream(head.offset, piece);
        (chunks ??= []).push({ offset: head.offset, data: piece });
        if (take === head.data.length) queue.shift();
        else queue[0] = { offset: head.offset + take, data: head.data.subarray(take) };
        if (!fromLost) {
          this.#sendQueued -= take;
          this.stats.streamBytesSent += take;
        }
        this.#streamInFlight += take;
      }
    }
    const ping = this.#pingWanted && !chunks;
    if (ping) w.ping();
    if (!ack && !chunks && !ping && !this.#maxDataWanted) return false;
    this.#pingWanted = false;
    this.#maxDataWanted = false;
    if (ack) {
      this.#ackWanted = false;
      this.#ackPending = 0;
      this.#ackDue = Infinity;
    }
    const ackEliciting = chunks !== null || ping;
    if (ackEliciting && this.#probes > 0) this.#probes--;
    const size = this.#seal(w.buffer.subarray(0, w.length), ackEliciting, chunks);
    if (ackEliciting && this.#lossAt === Infinity) this.#armLossTimer();
    return size > 0;
  }

  /** Seals `plaintext` as the next packet, records it, and sends it. */
  #seal(plaintext: Uint8Array, ackEliciting: boolean, chunks: Chunk[] | null): number {
    const now = performance.now();
    this.#maybeRekey(now);
    const counter = this.#counter++;
    // header || ciphertext || tag, built in place in the one buffer that is sent.
    const packet = new Uint8Array(DATA_HEADER_LEN + plaintext.length + TAG_LEN);
    this.#writeHeader(packet, counter);
    const header = packet.subarray(0, DATA_HEADER_LEN);
    const nonce = this.#nonceFor(counter);
    if (this.#native) {
      const cipher = createCipheriv("chacha20-poly1305", this.#sendKey, nonce, AEAD_OPTIONS);
      cipher.setAAD(header, { plaintextLength: plaintext.length });
      packet.set(cipher.update(plaintext), DATA_HEADER_LEN);
      cipher.final();
      packet.set(cipher.getAuthTag(), DATA_HEADER_LEN + plaintext.length);
    } else {
      packet.set(this.#provider.chachaSeal(this.#sendKey, nonce, plaintext, header), DATA_HEADER_LEN);
    }
    this.#sendPhasePackets++;
    if (ackEliciting) {
      // Packets that elicit no acknowledgement carry nothing to send again and are not in flight: no record.
      this.#sent.set(counter, { time: now, size: packet.length, ackEliciting, chunks });
      this.#bytesInFlight += packet.length;
    }
    this.stats.packetsSent++;
    this.#lastSent = now;
    this.#send(packet, this.#remote);
    return packet.length;
  }

  /** Writes the data header (NZ-DGRAM-01 "Data packets"): type by key phase, receiver index, BE64 counter. */
  #writeHeader(packet: Uint8Array, counter: number): void {
    packet[0] = this.#sendPhase === 0 ? PacketType.DATA_PHASE_0 : PacketType.DATA_PHASE_1;
    const receiver = this.remoteIndex;
    packet[1] = receiver >>> 24;
    packet[2] = receiver >>> 16;
    packet[3] = receiver >>> 8;
    packet[4] = receiver;
    const high = Math.floor(counter / 0x1_0000_0000);
    const low = counter >>> 0;
    packet[5] = high >>> 24;
    packet[6] = high >>> 16;
    packet[7] = high >>> 8;
    packet[8] = high;
    packet[9] = low >>> 24;
    packet[10] = low >>> 16;
    packet[11] = low >>> 8;
    packet[12] = low;
  }

  /** Flips the key phase when the current key is old, once the peer acknowledged a packet of this phase. */
  #maybeRekey(now: number): void {
    if (this.#sendPhasePackets < this.#rekeyAfterPackets && now - this.#sendPhaseSince < this.#rekeyAfterMs) return;
    // The peer must have moved to the current phase before the next flip (section "Key phases").
    if (!this.#sendPhaseConfirmed) return;
    const next = asBuffer(rekeyKey(this.#sendKey, this.#provider));
    wipe(this.#sendKey);
    this.#sendKey = next;
    this.#sendPhase = this.#sendPhase === 0 ? 1 : 0;
    this.stats.rekeys++;
    this.#sendPhaseSince = now;
    this.#sendPhasePackets = 0;
    this.#sendPhaseFirst = this.#counter;
    this.#sendPhaseConfirmed = false;
  }

  #wakeWriters(): void {
    if (this.#sendQueued > SEND_HIGH_WATER || this.#writeWaiters.length === 0) return;
    for (const waiter of this.#writeWaiters.splice(0)) waiter();
  }

  #tick(): void {
    if (this.#state === "closed") return;
    const now = performance.now();
    if (this.#idleTimeoutMs > 0 && now - this.#lastReceived >= this.#idleTimeoutMs) {
      this.#end(
        CloseCode.IDLE,
        "idle timeout",
        new TransportError(`No packet from the peer for ${this.#idleTimeoutMs} ms`),
      );
      return;
    }
    if (this.#keepAliveMs > 0 && now - this.#lastSent >= this.#keepAliveMs) {
      this.#pingWanted = true;
      this.#flush();
    }
  }

  // ------------------------------------------------------------------ ending

  /** Sends a CLOSE (unless the peer ended it) and finishes. `error` null: a clean end. */
  #end(code: number, reason: string, error: unknown): void {
    if (this.#state === "closed") return;
    if (!this.#peerEnded) {
      try {
        const w = this.#writer;
        w.reset();
        w.close(code, reason);
        const plaintext = w.buffer.slice(0, w.length);
        // Twice: a lost CLOSE costs the peer its idle timeout.
        this.#seal(plaintext, false, null);
        this.#seal(plaintext, false, null);
      } catch { /* the socket may be gone */ }
    }
    this.#finish(error, error ?? new TransportError("Cannot write: the session is closed"));
  }

  #finish(readError: unknown, writeError: unknown): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#readError = readError;
    this.#writeError = writeError;
    if (this.#lossTimer !== undefined) clearTimeout(this.#lossTimer);
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    this.#stopTick();
    if (readError !== null) this.#readQueue.length = 0;
    const pending = this.#pendingRead;
    this.#pendingRead = null;
    if (pending) {
      if (readError === null) pending.resolve(null);
      else pending.reject(readError);
    }
    for (const waiter of this.#writeWaiters.splice(0)) waiter();
    for (const waiter of this.#drainWaiters.splice(0)) waiter();
    this.#sent.clear();
    this.#lost.length = 0;
    this.#sendQueue.length = 0;
    this.#outOfOrder.length = 0;
    wipe(this.#sendKey, this.#recvKey);
    if (this.#recvPrevKey) wipe(this.#recvPrevKey);
    this.#onClose(this);
    this.#resolveClosed();
  }
}
