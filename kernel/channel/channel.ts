/**
 * NZ-CHANNEL-01 (spec/protocols/NZ-CHANNEL-01.md): the encrypted,
 * multiplexed channel that runs over a connection after the handshake.
 * {@linkcode openChannel} takes the connection's {@linkcode FrameIO} and the
 * handshake's {@linkcode SessionKeys} and returns a {@linkcode Channel}: ordered
 * streams of messages in both directions, with per-stream flow control,
 * rekeying, keep-alive, idle timeout, and graceful or abrupt close.
 *
 * Whatever a peer sends, the worst it can do is end its own channel: a frame
 * that does not authenticate or decode, or breaks a rule, ends the channel with
 * a {@linkcode ChannelError} (logged, and the reason in `closed`), never an
 * exception elsewhere.
 *
 * @module
 */

import type { CryptoProvider } from "../crypto/provider.ts";
import { ChannelCipher } from "./cipher.ts";
import {
  AUTO_WINDOW_BUDGET,
  COPY_THRESHOLD,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_COUNTER_LIMIT,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_KEEP_ALIVE_MS,
  DEFAULT_MAX_STREAMS,
  DEFAULT_RECEIVE_WINDOW,
  ErrorCode,
  FAIL_FLUSH_MS,
  FrameType,
  HEADER_LEN,
  INITIAL_WINDOW,
  MAX_FRAME_LEN,
  MAX_MESSAGE_SIZE,
  MAX_PLAINTEXT_LEN,
  MAX_STREAM_ID,
  MAX_WINDOW,
  MIN_FRAME_LEN,
  PING_PAYLOAD_LEN,
  REASSEMBLY_BUDGET_FACTOR,
  REKEY_AFTER_BYTES,
  REKEY_AFTER_FRAMES,
  REKEY_AFTER_MS,
  SEND_QUEUE_HIGH_WATER,
  TAG_LEN,
  TICK_MS,
  WRITE_BATCH_BYTES,
} from "./constants.ts";
import { ChannelError } from "./errors.ts";
import {
  codeOfFailure,
  decodeFrame,
  decodeGoAway,
  decodeU32,
  encodeGoAway,
  encodeU32,
  failureOfCode,
  writeHeader,
} from "./frame.ts";
import { type Settle, Stream, type StreamHandlers, type StreamHost } from "./stream.ts";
import type { FrameIO, SessionKeys } from "./types.ts";

/** Time for a channel: a monotonic clock in milliseconds and a periodic tick. */
export interface ChannelClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `tick` periodically (about every second) until the returned function is called. */
  schedule(tick: () => void): () => void;
}

const ticks = new Set<() => void>();
let interval: ReturnType<typeof setInterval> | undefined;

/**
 * The real clock: `performance.now()`, and one shared, unref'd interval of
 * {@linkcode TICK_MS} for every channel of the process (it stops when the last
 * channel ends).
 */
export const systemClock: ChannelClock = {
  now: () => performance.now(),
  schedule(tick: () => void): () => void {
    ticks.add(tick);
    if (interval === undefined) {
      const id = setInterval(() => {
        for (const t of [...ticks]) t();
      }, TICK_MS);
      Deno.unrefTimer(id);
      interval = id;
    }
    return () => {
      ticks.delete(tick);
      if (ticks.size === 0 && interval !== undefined) {
        clearInterval(interval);
        interval = undefined;
      }
    };
  },
};

/** Options of {@linkcode openChannel}. Durations are in milliseconds; 0 disables keep-alive and idle timeout. */
export interface ChannelOptions {
  /** Names the peer in log lines and errors (a node ID, an address). */
  peer?: unknown;
  /** Send a PING after this long without receiving anything (default 10 s). */
  keepAliveMs?: number;
  /** End the channel after this long without receiving anything (default 30 s). */
  idleTimeoutMs?: number;
  /** A graceful close waits this long for sends in progress, then aborts (default 5 s). */
  closeTimeoutMs?: number;
  /** Rekey the sending direction after this many sealed bytes under one key (default 1 GiB). */
  rekeyAfterBytes?: number;
  /** Rekey after this many frames under one key (default 2^20). */
  rekeyAfterFrames?: number;
  /** Rekey after a key has been in use this long (default 120 s). */
  rekeyAfterMs?: number;
  /** The channel ends before a frame counter reaches this (default 2^53 - 1; the protocol allows 2^64 - 1). */
  counterLimit?: number;
  /** The receive window granted per stream, at least 256 KiB (default 1 MiB). */
  initialWindow?: number;
  /** Streams open at once, both directions together (default 128); beyond it the peer's OPEN is refused. */
  maxStreams?: number;
  /** The largest message sent or accepted (default and maximum 16 MiB). */
  maxMessageSize?: number;
  /** Called with each stream the peer opens; without it, take them from {@linkcode Channel.accept}. */
  onStream?: (stream: Stream) => void;
  /** The clock (default {@linkcode systemClock}); tests pass a fake one. */
  clock?: ChannelClock;
  /** Where the end of a channel is reported (default: `console.warn` when it ends with an error other than `aborted`). */
  log?: (message: string, error?: ChannelError) => void;
  /** The AEAD provider (default: the kernel's `crypto`). */
  provider?: CryptoProvider;
}

/** How a channel ended. */
export interface ChannelClosed {
  /** A sentence: the reason given to `close()`, the peer's GOAWAY reason, or the error's message. */
  reason: string;
  /** Whether the peer ended it (GOAWAY, end of the connection). */
  remote: boolean;
  /** Set when it did not end gracefully. */
  error?: ChannelError;
}

/** Counters of a channel. */
export interface ChannelStats {
  /** Sealed bytes handed to the transport. */
  bytesSent: number;
  /** Sealed bytes read from the transport. */
  bytesReceived: number;
  /** Frames sealed. */
  framesSent: number;
  /** Frames opened. */
  framesReceived: number;
  /** Key changes, both directions. */
  rekeys: number;
  /** Streams open now. */
  streams: number;
}

interface OutRecord {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
  done?: Settle;
}

interface StreamEntry {
  stream: Stream;
  handlers: StreamHandlers;
}

const OPEN = 0, CLOSING = 1, CLOSED = 2;
const EMPTY = new Uint8Array(0);
/** The smallest piece a DATA record is split into to fill a frame. */
const MIN_SPLIT = 1024;
/** PONGs queued at once; more PINGs are answered later or not at all. */
const MAX_QUEUED_PONGS = 4;
/** Plaintext of small parts (headers, short payloads) of the frame being sealed; shared, used synchronously. */
const scratch = new Uint8Array(MAX_PLAINTEXT_LEN);

/**
 * Writes sealed frames, each given in pieces: in one call when the FrameIO
 * takes batches (`transport/framing.ts` does), else one joined frame at a time.
 */
async function writeFrames(io: FrameIO, frames: Uint8Array[][]): Promise<void> {
  if (io.writeFrames) return io.writeFrames(frames);
  for (const pieces of frames) {
    let frame = pieces[0];
    if (pieces.length > 1) {
      let length = 0;
      for (const piece of pieces) length += piece.length;
      frame = new Uint8Array(length);
      let offset = 0;
      for (const piece of pieces) {
        frame.set(piece, offset);
        offset += piece.length;
      }
    }
    await io.write(frame);
  }
}

/**
 * Opens a channel over a connection whose handshake just finished. Frames
 * start flowing at once; no further round trip is needed.
 *
 * @param io The connection's frames.
 * @param keys The handshake's keys; the channel takes over `sendKey` and `recvKey` and wipes them when it ends.
 * @param options Limits, timeouts, hooks.
 * @returns The channel.
 * @throws {RangeError} for an option out of range or a key that is not 32 bytes.
 *
 * @example Two channels over an in-memory pair of FrameIOs
 * ```ts
 * import { openChannel } from "./channel.ts";
 * import type { FrameIO } from "./types.ts";
 *
 * function pair(): [FrameIO, FrameIO] {
 *   const queues: Uint8Array[][] = [[], []];
 *   const waiting: (((f: Uint8Array | null) => void) | undefined)[] = [];
 *   const end = (me: number): FrameIO => ({
 *     maxFrameSize: 65_599,
 *     read: () => queues[me].length ? Promise.resolve(queues[me].shift()!) : new Promise((r) => waiting[me] = r),
 *     write: (frame) => {
 *       const w = waiting[1 - me];
 *       waiting[1 - me] = undefined;
 *       w ? w(frame.slice()) : queues[1 - me].push(frame.slice());
 *       return Promise.resolve();
 *     },
 *     close: () => (waiting[1 - me]?.(null), waiting[me]?.(null), Promise.resolve()),
 *     abort: () => void (waiting[1 - me]?.(null), waiting[me]?.(null)),
 *   });
 *   return [end(0), end(1)];
 * }
 *
 * const k1 = crypto.getRandomValues(new Uint8Array(32)), k2 = crypto.getRandomValues(new Uint8Array(32));
 * const h = new Uint8Array(32);
 * const [ioA, ioB] = pair();
 * const a = openChannel(ioA, { initiator: true, sendKey: k1.slice(), recvKey: k2.slice(), handshakeHash: h });
 * const b = openChannel(ioB, { initiator: false, sendKey: k2, recvKey: k1, handshakeHash: h });
 *
 * const stream = await a.openStream();
 * await stream.send(new TextEncoder().encode("hello"));
 * const incoming = (await b.accept())!;
 * const message = await incoming.receive();
 * if (new TextDecoder().decode(message!) !== "hello") throw new Error("Cannot receive");
 * await a.close("done");
 * await b.closed;
 * ```
 */
export function openChannel(io: FrameIO, keys: SessionKeys, options: ChannelOptions = {}): Channel {
  return new Channel(io, keys, options);
}

function positive(value: number | undefined, fallback: number, name: string, min = 1, max = Infinity): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`Invalid ${name}: ${v}, expected an integer in ${min}..${max}`);
  }
  return v;
}

/**
 * An open channel: streams of messages over one connection. Obtain one from
 * {@linkcode openChannel}.
 */
export class Channel implements AsyncIterable<Stream> {
  /** Resolves once the channel has ended, with why; never rejects. */
  readonly closed: Promise<ChannelClosed>;
  /** The peer label given in the options. */
  readonly peer: unknown;
  /** Whether this side was the handshake initiator (its streams have odd IDs). */
  readonly initiator: boolean;

  #io: FrameIO;
  #send: ChannelCipher;
  #recv: ChannelCipher;
  #clock: ChannelClock;
  #log: (message: string, error?: ChannelError) => void;
  #onStream: ((stream: Stream) => void) | undefined;
  #resolveClosed!: (result: ChannelClosed) => void;
  #unschedule: () => void;

  #keepAliveMs: number;
  #idleTimeoutMs: number;
  #closeTimeoutMs: number;
  #rekeyAfterBytes: number;
  #rekeyAfterFrames: number;
  #rekeyAfterMs: number;
  #counterLimit: number;
  #maxStreams: number;
  #maxPlaintext: number;
  #maxFrame: number;
  #host: StreamHost;

  #state = OPEN;
  #streams = new Map<number, StreamEntry>();
  #nextLocalId: number;
  #nextPeerId: number;
  #incoming: Stream[] = [];
  #acceptWaiters: ((stream: Stream | null) => void)[] = [];
  #remoteGoAway: string | null = null;

  // Sending.
  #control: OutRecord[] = [];
  #data: OutRecord[] = [];
  #dataHead = 0;
  #queuedBytes = 0;
  #spaceWaiters: Settle[] = [];
  #pongsQueued = 0;
  #pumping = false;
  #tail: Promise<void> = Promise.resolve();
  #rekeyWanted = false;
  #sendKeyTime: number;
  #framesSinceKey = 0;
  #bytesSinceKey = 0;
  #activeSends = 0;
  #sendsDrained: (() => void) | null = null;

  // Receiving and timers.
  #lastReceived: number;
  #lastPing = -Infinity;
  #pingSeq = 0;
  #pingPayload: Uint8Array | null = null;
  #pings = new Map<number, { sent: number; resolve: (rtt: number) => void; reject: (error: ChannelError) => void }>();
  #closeDeadline = Infinity;
  #reassemblyLeft: number;
  #starving = new Set<number>();
  /** What streams may still add to their receive windows (auto-tuning). */
  #windowBudget = AUTO_WINDOW_BUDGET;
  /** Smoothed round-trip time of ping() in milliseconds (0: none yet). */
  #rtt = 0;

  #stats = { bytesSent: 0, bytesReceived: 0, framesSent: 0, framesReceived: 0, rekeys: 0 };

  /** Use {@linkcode openChannel}. */
  constructor(io: FrameIO, keys: SessionKeys, options: ChannelOptions = {}) {
    this.#keepAliveMs = positive(options.keepAliveMs, DEFAULT_KEEP_ALIVE_MS, "keepAliveMs", 0);
    this.#idleTimeoutMs = positive(options.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, "idleTimeoutMs", 0);
    this.#closeTimeoutMs = positive(options.closeTimeoutMs, DEFAULT_CLOSE_TIMEOUT_MS, "closeTimeoutMs", 0);
    this.#rekeyAfterBytes = positive(options.rekeyAfterBytes, REKEY_AFTER_BYTES, "rekeyAfterBytes");
    this.#rekeyAfterFrames = positive(options.rekeyAfterFrames, REKEY_AFTER_FRAMES, "rekeyAfterFrames");
    this.#rekeyAfterMs = positive(options.rekeyAfterMs, REKEY_AFTER_MS, "rekeyAfterMs");
    this.#counterLimit = positive(options.counterLimit, DEFAULT_COUNTER_LIMIT, "counterLimit", 2);
    this.#maxStreams = positive(options.maxStreams, DEFAULT_MAX_STREAMS, "maxStreams");
    const receiveWindow = positive(
      options.initialWindow,
      DEFAULT_RECEIVE_WINDOW,
      "initialWindow",
      INITIAL_WINDOW,
      MAX_WINDOW,
    );
    const maxMessageSize = positive(options.maxMessageSize, MAX_MESSAGE_SIZE, "maxMessageSize", 1, MAX_MESSAGE_SIZE);
    this.#maxFrame = Math.min(MAX_FRAME_LEN, io.maxFrameSize);
    if (!(this.#maxFrame >= MIN_FRAME_LEN + 2 * HEADER_LEN + MIN_SPLIT)) {
      throw new RangeError(`Invalid io: maxFrameSize is ${io.maxFrameSize}, expected >= ${MIN_FRAME_LEN + 1048}`);
    }
    this.#maxPlaintext = this.#maxFrame - TAG_LEN;

    this.#io = io;
    this.peer = options.peer;
    this.initiator = keys.initiator;
    this.#send = new ChannelCipher(keys.sendKey, { provider: options.provider });
    this.#recv = new ChannelCipher(keys.recvKey, { provider: options.provider });
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? ((message, error) => {
      if (error && error.code !== "aborted") console.warn(`nzcore: ${message}`);
    });
    this.#onStream = options.onStream;
    this.#nextLocalId = keys.initiator ? 1 : 2;
    this.#nextPeerId = keys.initiator ? 2 : 1;
    this.#reassemblyLeft = REASSEMBLY_BUDGET_FACTOR * maxMessageSize;
    this.#lastReceived = this.#sendKeyTime = this.#clock.now();
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#host = this.#makeHost(maxMessageSize, receiveWindow);
    this.#unschedule = this.#clock.schedule(() => this.#tick());
    this.#readLoop();
  }

  /** Counters of bytes, frames and rekeys so far. */
  get stats(): ChannelStats {
    return { ...this.#stats, streams: this.#streams.size };
  }

  /** The smoothed round-trip time of PINGs in milliseconds (RFC 6298), or null before the first PONG. */
  get rttMs(): number | null {
    return this.#rtt === 0 ? null : this.#rtt;
  }

  /** The largest message this side sends or accepts. */
  get maxMessageSize(): number {
    return this.#host.maxMessageSize;
  }

  // -------------------------------------------------------------------------
  // Streams
  // -------------------------------------------------------------------------

  /**
   * Opens a stream. The peer learns of it with the first frame that follows;
   * messages may be sent at once.
   *
   * @returns The new stream.
   * @throws {ChannelError} `closed` once the channel is closing or ended (or the peer sent GOAWAY), `refused_stream`
   *   when `maxStreams` streams are open or the stream IDs are used up.
   */
  openStream(): Promise<Stream> {
    const blocked = this.#host.sendBlocked();
    if (blocked) return Promise.reject(blocked);
    if (this.#streams.size >= this.#maxStreams) {
      return Promise.reject(
        new ChannelError("refused_stream", `Cannot open stream: ${this.#maxStreams} streams are open (maxStreams)`),
      );
    }
    if (this.#nextLocalId > MAX_STREAM_ID) {
      return Promise.reject(new ChannelError("refused_stream", "Cannot open stream: stream IDs are used up"));
    }
    const id = this.#nextLocalId;
    this.#nextLocalId += 2;
    const entry = this.#addStream(id);
    this.#queue({ type: FrameType.OPEN, flags: 0, streamId: id, payload: EMPTY });
    const extra = this.#host.receiveWindow - INITIAL_WINDOW;
    // In the DATA queue, behind the OPEN: the peer must see the stream before credit for it.
    if (extra > 0) this.#queue({ type: FrameType.WINDOW_UPDATE, flags: 0, streamId: id, payload: encodeU32(extra) });
    return Promise.resolve(entry.stream);
  }

  /**
   * The next stream the peer opened (when no `onStream` option takes them).
   *
   * @returns The stream, or `null` once the channel has ended.
   */
  accept(): Promise<Stream | null> {
    const stream = this.#incoming.shift();
    if (stream) return Promise.resolve(stream);
    if (this.#state === CLOSED) return Promise.resolve(null);
    return new Promise((resolve) => this.#acceptWaiters.push(resolve));
  }

  /** Iterates the streams the peer opens, until the channel ends. */
  async *[Symbol.asyncIterator](): AsyncIterator<Stream> {
    while (true) {
      const stream = await this.accept();
      if (stream === null) return;
      yield stream;
    }
  }

  #addStream(id: number): StreamEntry {
    let handlers!: StreamHandlers;
    const stream = new Stream(id, this.#host, (h) => handlers = h);
    const entry: StreamEntry = { stream, handlers };
    this.#streams.set(id, entry);
    return entry;
  }

  #makeHost(maxMessageSize: number, receiveWindow: number): StreamHost {
    return {
      maxMessageSize,
      receiveWindow,
      now: () => this.#clock.now(),
      rtt: () => this.#rtt,
      growWindow: (bytes) => {
        const granted = Math.min(bytes, this.#windowBudget);
        this.#windowBudget -= granted;
        return granted;
      },
      shrinkWindow: (bytes) => {
        this.#windowBudget += bytes;
      },
      queueData: (streamId, payload, flags, done) => {
        this.#queue({ type: FrameType.DATA, flags, streamId, payload, done });
      },
      queueWindowUpdate: (streamId, increment) => {
        if (this.#state === CLOSED) return;
        this.#control.push({ type: FrameType.WINDOW_UPDATE, flags: 0, streamId, payload: encodeU32(increment) });
        this.#kick();
      },
      resetStream: (streamId, code, error) => this.#resetStream(streamId, code, error),
      queueSpace: () => {
        if (this.#state === CLOSED) return Promise.reject(this.#closedError());
        if (this.#queuedBytes < SEND_QUEUE_HIGH_WATER) return undefined;
        return new Promise<void>((resolve, reject) => this.#spaceWaiters.push({ resolve, reject }));
      },
      sendBlocked: () => {
        if (this.#state === CLOSED) return this.#closedError();
        if (this.#state === CLOSING) return new ChannelError("closed", "Cannot send: the channel is closing");
        if (this.#remoteGoAway !== null) {
          return new ChannelError("closed", `Cannot send: the peer closed the channel (${this.#remoteGoAway})`, {
            remote: true,
          });
        }
        return null;
      },
      beginSend: () => {
        this.#activeSends++;
        return () => {
          if (--this.#activeSends === 0 && this.#sendsDrained) this.#sendsDrained();
        };
      },
      reserve: (streamId) => {
        if (this.#reassemblyLeft < maxMessageSize) {
          this.#starving.add(streamId);
          return false;
        }
        this.#reassemblyLeft -= maxMessageSize;
        this.#starving.delete(streamId);
        return true;
      },
      repay: (bytes) => {
        this.#reassemblyLeft += bytes;
        if (this.#starving.size === 0 || this.#state === CLOSED) return;
        // Waiting streams get reservations in the order they asked.
        for (const id of [...this.#starving]) {
          if (this.#reassemblyLeft < maxMessageSize) break;
          const entry = this.#streams.get(id);
          if (entry) entry.handlers.retryBorrow();
          else this.#starving.delete(id);
        }
      },
      finished: (streamId) => this.#forget(streamId),
    };
  }

  #forget(streamId: number): void {
    this.#streams.delete(streamId);
    this.#starving.delete(streamId);
  }

  #resetStream(streamId: number, code: number, error: ChannelError): void {
    this.#forget(streamId);
    if (this.#state === CLOSED) return;
    // Drop what the stream still had queued; if its OPEN is among it, the peer never hears of the stream.
    let openDropped = false;
    const kept: OutRecord[] = [];
    for (let i = this.#dataHead; i < this.#data.length; i++) {
      const r = this.#data[i];
      if (r.streamId !== streamId || r.type === FrameType.GOAWAY) {
        kept.push(r);
        continue;
      }
      if (r.type === FrameType.OPEN) openDropped = true;
      this.#queuedBytes -= HEADER_LEN + r.payload.length;
      r.done?.reject(error);
    }
    this.#data = kept;
    this.#dataHead = 0;
    this.#control = this.#control.filter((r) => r.streamId !== streamId);
    this.#wakeSpaceWaiters();
    if (openDropped) return;
    this.#queue({ type: FrameType.RESET, flags: 0, streamId, payload: encodeU32(code) });
  }

  // -------------------------------------------------------------------------
  // Closing
  // -------------------------------------------------------------------------

  /**
   * Sends a PING and resolves when its PONG arrives: proof that the peer
   * holds the keys and reads this channel.
   *
   * @returns the round-trip time in milliseconds.
   * @throws {ChannelError} when the channel ends first.
   */
  ping(): Promise<number> {
    if (this.#state === CLOSED) return Promise.reject(this.#closedError());
    const payload = new Uint8Array(PING_PAYLOAD_LEN);
    const seq = ++this.#pingSeq;
    new DataView(payload.buffer).setUint32(4, seq);
    return new Promise((resolve, reject) => {
      this.#pings.set(seq, { sent: performance.now(), resolve, reject });
      this.#control.push({ type: FrameType.PING, flags: 0, streamId: 0, payload });
      this.#kick();
    });
  }

  /**
   * Closes gracefully: no new streams or sends; the sends already started
   * finish (within `closeTimeoutMs`), then a GOAWAY follows everything they
   * sent and the connection is closed. The peer reads every message sent
   * before.
   *
   * @param reason A sentence for the peer's log (at most 256 UTF-8 bytes are sent).
   * @returns How the channel ended (as {@linkcode closed}).
   */
  close(reason = "closed"): Promise<ChannelClosed> {
    if (this.#state !== OPEN) return this.closed;
    this.#state = CLOSING;
    this.#closeDeadline = this.#clock.now() + this.#closeTimeoutMs;
    for (const waiter of this.#acceptWaiters.splice(0)) waiter(null);
    void this.#drainAndClose(reason);
    return this.closed;
  }

  async #drainAndClose(reason: string): Promise<void> {
    if (this.#activeSends > 0) await new Promise<void>((resolve) => this.#sendsDrained = resolve);
    this.#sendsDrained = null;
    if (this.#state === CLOSED) return;
    const sealed = new Promise<void>((resolve, reject) => {
      this.#queue({
        type: FrameType.GOAWAY,
        flags: 0,
        streamId: 0,
        payload: encodeGoAway(ErrorCode.NO_ERROR, reason),
        done: { resolve, reject },
      });
    });
    try {
      await sealed;
      await this.#tail;
      if (this.#state === CLOSED) return;
      this.#finish({ reason, remote: false });
      await this.#io.close();
    } catch {
      // The connection broke first: #fail has already reported it.
    }
  }

  /**
   * Ends the channel at once: nothing more is sent, pending operations
   * reject with `aborted`, and the connection is aborted.
   *
   * @param reason Why, for the log and the errors.
   */
  abort(reason: unknown = "aborted"): void {
    const text = reason instanceof Error ? reason.message : String(reason);
    this.#fail(new ChannelError("aborted", `Channel ${this.#label()} was aborted: ${text}`, { cause: reason }), false);
  }

  #label(): string {
    return this.peer === undefined ? "(unnamed peer)" : String(this.peer);
  }

  #closedError(): ChannelError {
    return new ChannelError("closed", "Cannot use the channel: it has ended");
  }

  /**
   * Ends the channel with `error`. `goAway` first seals a GOAWAY telling the
   * peer why; with it or with `flush`, the frames already sealed are written
   * (for at most FAIL_FLUSH_MS) before the connection closes, otherwise it is
   * aborted at once.
   */
  #fail(error: ChannelError, goAway: boolean, flush = goAway): void {
    if (this.#state === CLOSED) return;
    let final: Uint8Array | null = null;
    if (goAway && this.#send.counter < this.#counterLimit) {
      try {
        const payload = encodeGoAway(codeOfFailure(error.code), error.message);
        writeHeader(scratch, 0, FrameType.GOAWAY, 0, 0, payload.length);
        scratch.set(payload, HEADER_LEN);
        final = this.#send.seal([scratch.subarray(0, HEADER_LEN + payload.length)], HEADER_LEN + payload.length);
      } catch {
        final = null;
      }
    }
    this.#finish({ reason: error.message, remote: error.remote, error });
    const io = this.#io;
    if (!flush && final === null) {
      io.abort(error);
      return;
    }
    const frame = final;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flushed = this.#tail.then(() => frame && io.write(frame)).then(() => io.close());
    const deadline = new Promise<void>((_, reject) => {
      const id = setTimeout(() => reject(new Error("GOAWAY not flushed in time")), FAIL_FLUSH_MS);
      Deno.unrefTimer(id);
      timer = id;
    });
    Promise.race([flushed, deadline]).catch(() => io.abort(error)).finally(() => clearTimeout(timer));
    flushed.catch(() => {});
  }

  /** Moves to CLOSED: settles every waiter and stream, wipes the keys, reports the end. */
  #finish(result: ChannelClosed): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#unschedule();
    const error = result.error ??
      new ChannelError("closed", `Channel ${this.#label()} was closed: ${result.reason}`, { remote: result.remote });
    for (const waiter of this.#acceptWaiters.splice(0)) waiter(null);
    for (const waiter of this.#spaceWaiters.splice(0)) waiter.reject(error);
    for (const ping of this.#pings.values()) ping.reject(error);
    this.#pings.clear();
    for (let i = this.#dataHead; i < this.#data.length; i++) this.#data[i].done?.reject(error);
    this.#data = [];
    this.#dataHead = 0;
    this.#control = [];
    this.#queuedBytes = 0;
    for (const entry of this.#streams.values()) entry.handlers.end(error);
    this.#streams.clear();
    this.#send.wipe();
    this.#recv.wipe();
    this.#sendsDrained?.();
    if (result.error) this.#log(`channel ${this.#label()} ended: ${result.reason}`, result.error);
    else this.#log(`channel ${this.#label()} closed: ${result.reason}`);
    this.#resolveClosed(result);
  }

  // -------------------------------------------------------------------------
  // Writing
  // -------------------------------------------------------------------------

  #queue(record: OutRecord): void {
    if (this.#state === CLOSED || this.#goAwayQueued) {
      // Nothing may follow a GOAWAY (section "Closing").
      record.done?.reject(this.#closedError());
      return;
    }
    if (record.type === FrameType.GOAWAY) this.#goAwayQueued = true;
    this.#data.push(record);
    this.#queuedBytes += HEADER_LEN + record.payload.length;
    this.#kick();
  }

  #kick(): void {
    if (this.#pumping || this.#state === CLOSED) return;
    this.#pumping = true;
    queueMicrotask(() => this.#pump());
  }

  #hasWork(): boolean {
    return this.#control.length > 0 || this.#dataHead < this.#data.length || this.#rekeyWanted;
  }

  async #pump(): Promise<void> {
    try {
      while (this.#state !== CLOSED && this.#hasWork()) {
        // Seal what is queued, up to a batch, and hand it to the transport in one write.
        const frames: Uint8Array[][] = [];
        let bytes = 0;
        do {
          const frame = this.#sealNext();
          frames.push(frame);
          bytes += this.#lastSealedLength;
        } while (
          !this.#exhausted && bytes + MAX_FRAME_LEN <= WRITE_BATCH_BYTES && this.#state !== CLOSED && this.#hasWork()
        );
        const previous = this.#tail;
        const io = this.#io;
        const write = previous.then(() => writeFrames(io, frames));
        this.#tail = write;
        write.catch((cause) => {
          const text = cause instanceof Error ? cause.message : String(cause);
          this.#fail(
            new ChannelError("connection_lost", `Channel ${this.#label()} lost its connection: ${text}`, { cause }),
            false,
          );
        });
        if (this.#exhausted) {
          this.#exhausted = false;
          this.#fail(
            new ChannelError(
              "counter_exhausted",
              `Channel ${this.#label()} ended: its frame counter reached ${this.#counterLimit} (counterLimit)`,
            ),
            false,
            true,
          );
          return;
        }
        // One batch being written while the next is sealed.
        await previous;
      }
    } catch {
      // A failed write is reported by its own catch above.
    } finally {
      this.#pumping = false;
    }
    if (this.#state !== CLOSED && this.#hasWork()) this.#kick();
  }

  #exhausted = false;
  #goAwayQueued = false;
  /** The length of the frame {@linkcode #sealNext} returned last. */
  #lastSealedLength = 0;

  /** Packs queued records into one frame, seals it, and settles what it carried; returns the frame in pieces. */
  #sealNext(): Uint8Array[] {
    const send = this.#send;
    if (send.counter >= this.#counterLimit - 1) {
      // The last counter this side may use carries the GOAWAY that says so (section "Counters").
      this.#exhausted = true;
      const payload = encodeGoAway(ErrorCode.COUNTER_EXHAUSTED, "frame counter exhausted");
      writeHeader(scratch, 0, FrameType.GOAWAY, 0, 0, payload.length);
      scratch.set(payload, HEADER_LEN);
      return this.#sealed([scratch.subarray(0, HEADER_LEN + payload.length)], HEADER_LEN + payload.length, [], false);
    }
    const cap = this.#maxPlaintext - HEADER_LEN; // room for a REKEY record
    const parts: Uint8Array[] = [];
    const done: Settle[] = [];
    let length = 0;
    let runStart = 0;
    let goAway = false;

    const header = (type: number, flags: number, streamId: number, payloadLength: number) => {
      writeHeader(scratch, length, type, flags, streamId, payloadLength);
      length += HEADER_LEN;
    };
    const payload = (bytes: Uint8Array) => {
      if (bytes.length < COPY_THRESHOLD) {
        scratch.set(bytes, length);
        length += bytes.length;
        return;
      }
      if (length > runStart) parts.push(scratch.subarray(runStart, length));
      parts.push(bytes);
      length += bytes.length;
      runStart = length;
    };

    let c = 0;
    for (; c < this.#control.length; c++) {
      const r = this.#control[c];
      if (length + HEADER_LEN + r.payload.length > cap) break;
      if (r.type === FrameType.PONG) this.#pongsQueued--;
      header(r.type, r.flags, r.streamId, r.payload.length);
      payload(r.payload);
    }
    if (c > 0) this.#control = c === this.#control.length ? [] : this.#control.slice(c);

    const data = this.#data;
    let head = this.#dataHead;
    while (head < data.length) {
      const r = data[head];
      const room = cap - length - HEADER_LEN;
      if (room < 0) break;
      if (r.payload.length <= room) {
        header(r.type, r.flags, r.streamId, r.payload.length);
        payload(r.payload);
        this.#queuedBytes -= HEADER_LEN + r.payload.length;
        if (r.done) done.push(r.done);
        if (r.type === FrameType.GOAWAY) goAway = true;
        head++;
      } else if (r.type === FrameType.DATA && room >= MIN_SPLIT) {
        // Fill the frame with the front of a long record; the rest (and its flags) waits for the next frame.
        header(FrameType.DATA, 0, r.streamId, room);
        payload(r.payload.subarray(0, room));
        r.payload = r.payload.subarray(room);
        this.#queuedBytes -= room;
        break;
      } else {
        break;
      }
    }
    if (head === data.length) {
      this.#data = [];
      this.#dataHead = 0;
    } else if (head > 1024 && head * 2 > data.length) {
      this.#data = data.slice(head);
      this.#dataHead = 0;
    } else {
      this.#dataHead = head;
    }

    const now = this.#clock.now();
    // A GOAWAY is the last record a side sends: no REKEY after it.
    const rekey = !goAway && (this.#rekeyWanted || this.#framesSinceKey + 1 >= this.#rekeyAfterFrames ||
      this.#bytesSinceKey + length + TAG_LEN >= this.#rekeyAfterBytes || now - this.#sendKeyTime >= this.#rekeyAfterMs);
    if (rekey) header(FrameType.REKEY, 0, 0, 0);
    if (length > runStart) parts.push(scratch.subarray(runStart, length));
    return this.#sealed(parts, length, done, rekey);
  }

  #sealed(parts: Uint8Array[], length: number, done: Settle[], rekey: boolean): Uint8Array[] {
    const frame = this.#send.sealParts(parts, length);
    const sealedLength = length + TAG_LEN;
    this.#lastSealedLength = sealedLength;
    this.#stats.framesSent++;
    this.#stats.bytesSent += sealedLength;
    this.#framesSinceKey++;
    this.#bytesSinceKey += sealedLength;
    if (rekey) {
      this.#send.rekey();
      this.#rekeyWanted = false;
      this.#framesSinceKey = 0;
      this.#bytesSinceKey = 0;
      this.#sendKeyTime = this.#clock.now();
      this.#stats.rekeys++;
    }
    for (const d of done) d.resolve();
    this.#wakeSpaceWaiters();
    return frame;
  }

  #wakeSpaceWaiters(): void {
    if (this.#queuedBytes >= SEND_QUEUE_HIGH_WATER || this.#spaceWaiters.length === 0) return;
    for (const waiter of this.#spaceWaiters.splice(0)) waiter.resolve();
  }

  // -------------------------------------------------------------------------
  // Reading
  // -------------------------------------------------------------------------

  async #readLoop(): Promise<void> {
    while (this.#state !== CLOSED) {
      let frame: Uint8Array | null;
      try {
        frame = await this.#io.read();
      } catch (cause) {
        const text = cause instanceof Error ? cause.message : String(cause);
        this.#fail(
          new ChannelError("connection_lost", `Channel ${this.#label()} lost its connection: ${text}`, { cause }),
          false,
        );
        return;
      }
      if (this.#state === CLOSED) return;
      if (frame === null) {
        this.#onEnd();
        return;
      }
      try {
        this.#onFrame(frame);
      } catch (cause) {
        // Whatever the frame did wrong ends this channel, named in the message; nothing escapes further.
        const inner = cause instanceof ChannelError ? cause : null;
        const text = cause instanceof Error ? cause.message : String(cause);
        const error = new ChannelError(inner?.code ?? "internal_error", `Channel ${this.#label()}: ${text}`, {
          cause,
          remote: inner?.remote,
          streamId: inner?.streamId,
        });
        this.#fail(error, !error.remote);
        return;
      }
    }
  }

  #onEnd(): void {
    if (this.#state === CLOSED) return;
    if (this.#remoteGoAway !== null) {
      this.#finish({ reason: this.#remoteGoAway, remote: true });
      void this.#io.close().catch(() => {});
      return;
    }
    this.#fail(
      new ChannelError(
        "connection_lost",
        `Channel ${this.#label()} lost its connection: the peer closed it without GOAWAY`,
        { remote: true },
      ),
      false,
    );
  }

  #onFrame(frame: Uint8Array): void {
    this.#lastReceived = this.#clock.now();
    if (frame.length < MIN_FRAME_LEN || frame.length > this.#maxFrame) {
      throw new ChannelError(
        "frame_size_error",
        `Cannot open frame: length is ${frame.length}, expected ${MIN_FRAME_LEN}..${this.#maxFrame}`,
      );
    }
    if (this.#remoteGoAway !== null) {
      throw new ChannelError("protocol_error", "A frame arrived after the peer's GOAWAY");
    }
    if (this.#recv.counter >= this.#counterLimit) {
      throw new ChannelError(
        "counter_exhausted",
        `The peer's frame counter reached ${this.#counterLimit} (counterLimit) without a GOAWAY`,
      );
    }
    let plaintext: Uint8Array;
    try {
      plaintext = this.#recv.open(frame);
    } catch (cause) {
      throw new ChannelError(
        "auth_failed",
        `Cannot open frame ${this.#recv.counter}: it does not authenticate (tampered, truncated, replayed or reordered)`,
        { cause },
      );
    }
    this.#stats.framesReceived++;
    this.#stats.bytesReceived += frame.length;
    for (const record of decodeFrame(plaintext)) {
      if (this.#state === CLOSED) return;
      this.#onRecord(record.type, record.flags, record.streamId, record.payload);
    }
  }

  #onRecord(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    switch (type) {
      case FrameType.DATA:
        this.#entryFor(streamId, "DATA")?.handlers.data(payload, flags);
        return;
      case FrameType.OPEN:
        this.#onOpen(streamId);
        return;
      case FrameType.WINDOW_UPDATE:
        this.#entryFor(streamId, "WINDOW_UPDATE")?.handlers.windowUpdate(decodeU32(payload));
        return;
      case FrameType.RESET: {
        const entry = this.#entryFor(streamId, "RESET");
        if (!entry) return;
        this.#forget(streamId);
        this.#dropQueued(streamId, entry.handlers.reset(decodeU32(payload)));
        return;
      }
      case FrameType.PING:
        if (this.#pongsQueued >= MAX_QUEUED_PONGS || this.#state === CLOSED) return;
        this.#pongsQueued++;
        this.#control.push({ type: FrameType.PONG, flags: 0, streamId: 0, payload: payload.slice() });
        this.#kick();
        return;
      case FrameType.PONG: {
        if (this.#pingPayload && payload.every((b, i) => b === this.#pingPayload![i])) this.#pingPayload = null;
        const seq = payload.length === PING_PAYLOAD_LEN
          ? new DataView(payload.buffer, payload.byteOffset).getUint32(4)
          : 0;
        const ping = this.#pings.get(seq);
        if (ping) {
          this.#pings.delete(seq);
          const rtt = performance.now() - ping.sent;
          this.#rtt = this.#rtt === 0 ? rtt : 0.875 * this.#rtt + 0.125 * rtt; // RFC 6298 section 2
          ping.resolve(rtt);
        }
        return;
      }
      case FrameType.REKEY:
        this.#recv.rekey();
        this.#stats.rekeys++;
        return;
      case FrameType.GOAWAY: {
        const { code, reason } = decodeGoAway(payload);
        if (code !== ErrorCode.NO_ERROR) {
          throw new ChannelError(failureOfCode(code), `the peer ended the channel: ${reason}`, { remote: true });
        }
        this.#remoteGoAway = reason;
        return;
      }
    }
  }

  /** Drops DATA a reset stream still had queued (the peer reset it: nothing of it matters now). */
  #dropQueued(streamId: number, error: ChannelError): void {
    let dropped = false;
    for (let i = this.#dataHead; i < this.#data.length; i++) {
      const r = this.#data[i];
      if (r.streamId === streamId && r.type === FrameType.DATA) {
        dropped = true;
        break;
      }
    }
    if (!dropped) return;
    const kept: OutRecord[] = [];
    for (let i = this.#dataHead; i < this.#data.length; i++) {
      const r = this.#data[i];
      if (r.streamId === streamId && r.type === FrameType.DATA) {
        this.#queuedBytes -= HEADER_LEN + r.payload.length;
        r.done?.reject(error);
      } else {
        kept.push(r);
      }
    }
    this.#data = kept;
    this.#dataHead = 0;
    this.#wakeSpaceWaiters();
  }

  /**
   * The stream a record is for: undefined for a stream that existed and
   * ended (late records are dropped), a protocol error for one never opened.
   */
  #entryFor(streamId: number, name: string): StreamEntry | undefined {
    const entry = this.#streams.get(streamId);
    if (entry) return entry;
    const local = streamId % 2 === this.#nextLocalId % 2;
    if (streamId < (local ? this.#nextLocalId : this.#nextPeerId)) return undefined;
    throw new ChannelError("protocol_error", `${name} on stream ${streamId}, which was never opened`, { streamId });
  }

  #onOpen(streamId: number): void {
    // The peer's parity, above its previous OPEN; IDs it skipped count as ended (section "Stream IDs").
    if (streamId % 2 !== this.#nextPeerId % 2 || streamId < this.#nextPeerId) {
      throw new ChannelError(
        "protocol_error",
        `OPEN of stream ${streamId}, expected ${this.#nextPeerId % 2 ? "an odd" : "an even"} ID >= ${this.#nextPeerId}`,
        { streamId },
      );
    }
    this.#nextPeerId = streamId + 2;
    if (this.#state !== OPEN || this.#streams.size >= this.#maxStreams) {
      this.#queue({ type: FrameType.RESET, flags: 0, streamId, payload: encodeU32(ErrorCode.REFUSED_STREAM) });
      return;
    }
    const { stream } = this.#addStream(streamId);
    const extra = this.#host.receiveWindow - INITIAL_WINDOW;
    if (extra > 0) this.#host.queueWindowUpdate(streamId, extra);
    if (this.#onStream) {
      try {
        this.#onStream(stream);
      } catch (error) {
        this.#log(`channel ${this.#label()}: onStream threw: ${error instanceof Error ? error.message : error}`);
        stream.reset();
      }
      return;
    }
    const waiter = this.#acceptWaiters.shift();
    if (waiter) waiter(stream);
    else this.#incoming.push(stream);
  }

  // -------------------------------------------------------------------------
  // Timers
  // -------------------------------------------------------------------------

  #tick(): void {
    if (this.#state === CLOSED) return;
    const now = this.#clock.now();
    if (this.#state === CLOSING && now >= this.#closeDeadline) {
      this.#fail(
        new ChannelError(
          "timeout",
          `Channel ${this.#label()} did not close within ${this.#closeTimeoutMs} ms (closeTimeoutMs)`,
        ),
        true,
      );
      return;
    }
    const idle = now - this.#lastReceived;
    if (this.#idleTimeoutMs > 0 && idle >= this.#idleTimeoutMs) {
      this.#fail(
        new ChannelError(
          "idle_timeout",
          `Channel ${this.#label()} received nothing for ${Math.round(idle)} ms (idleTimeoutMs ${this.#idleTimeoutMs})`,
        ),
        true,
      );
      return;
    }
    if (this.#keepAliveMs > 0 && idle >= this.#keepAliveMs && now - this.#lastPing >= this.#keepAliveMs) {
      this.#lastPing = now;
      const ping = new Uint8Array(PING_PAYLOAD_LEN);
      new DataView(ping.buffer).setUint32(4, ++this.#pingSeq);
      this.#pingPayload = ping;
      this.#control.push({ type: FrameType.PING, flags: 0, streamId: 0, payload: ping });
      this.#kick();
    }
    if (now - this.#sendKeyTime >= this.#rekeyAfterMs && !this.#rekeyWanted) {
      // An idle direction rekeys on time too, so an old key does not linger (forward secrecy).
      this.#rekeyWanted = true;
      this.#kick();
    }
  }
}
