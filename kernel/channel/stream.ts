/**
 * One stream of an NZ-CHANNEL-01 channel: ordered messages in both
 * directions, with per-stream flow control (spec/protocols/NZ-CHANNEL-01.md
 * sections "Streams", "Messages" and "Flow control"). Streams come from
 * `Channel.openStream()` and `Channel.accept()`; the channel feeds each one
 * through the {@linkcode StreamHandlers} it receives from the constructor.
 *
 * @module
 */

import { abortable } from "../async.ts";
import { ChannelError } from "./errors.ts";
import {
  AUTO_WINDOW_MAX,
  AUTO_WINDOW_MIN_RTT_MS,
  ErrorCode,
  FLAG_END_OF_MESSAGE,
  FLAG_FIN,
  INITIAL_WINDOW,
  MAX_WINDOW,
  SEND_PIECE,
} from "./constants.ts";
import { failureOfCode } from "./frame.ts";

/** Callbacks that settle a queued record: `resolve` once it is sealed, `reject` when it is dropped. */
export interface Settle {
  /** The record was sealed into a frame. */
  resolve(): void;
  /** The record will never be sent. */
  reject(error: unknown): void;
}

/** What a stream asks of its channel. Implemented by the channel; not for applications. */
export interface StreamHost {
  /** The largest message this side sends or accepts, in bytes. */
  readonly maxMessageSize: number;
  /** The receive window this side grants per stream at first (at least INITIAL_WINDOW). */
  readonly receiveWindow: number;
  /** The channel's clock, in milliseconds. */
  now(): number;
  /** The smoothed round-trip time of the channel's pings in milliseconds, or 0 before the first one. */
  rtt(): number;
  /**
   * Takes up to `bytes` from the channel's budget for grown receive windows; returns how many it got (0 when the
   * budget is spent).
   */
  growWindow(bytes: number): number;
  /** Gives window growth back to the budget (the stream ended). */
  shrinkWindow(bytes: number): void;
  /** Queues a DATA record behind everything queued before (with `done` settled when it is sealed or dropped). */
  queueData(streamId: number, payload: Uint8Array, flags: number, done?: Settle): void;
  /** Queues a WINDOW_UPDATE ahead of DATA. */
  queueWindowUpdate(streamId: number, increment: number): void;
  /** Drops the stream's queued DATA, sends RESET with `code` if the peer knows the stream, and forgets the stream. */
  resetStream(streamId: number, code: number, error: ChannelError): void;
  /** Resolves when the send queue has room, or returns undefined when it has room now; rejects once the channel ends. */
  queueSpace(): Promise<void> | undefined;
  /** Why nothing more can be sent (the channel is closing or closed), or null. */
  sendBlocked(): ChannelError | null;
  /** Counts a send in progress (a graceful close waits for them); returns the function that ends it. */
  beginSend(): () => void;
  /**
   * Reserves `maxMessageSize` bytes of the channel's reassembly budget for
   * the message `streamId` is reassembling; false (and the stream is called
   * back through `retryBorrow` later) when the budget has not that much left.
   */
  reserve(streamId: number): boolean;
  /** Gives reassembly budget back (an unused reservation, or borrowed bytes the application read). */
  repay(bytes: number): void;
  /** Both directions are done: the channel forgets the stream. */
  finished(streamId: number): void;
}

/** The channel's side of a stream: how it delivers what arrives. */
export interface StreamHandlers {
  /** A DATA record arrived. Throws ChannelError for a channel-level violation (credit, FIN rules). */
  data(payload: Uint8Array, flags: number): void;
  /** The peer granted credit. Throws ChannelError `flow_control_error` beyond MAX_WINDOW. */
  windowUpdate(increment: number): void;
  /** The peer reset the stream with a wire error code; returns the error its operations now fail with. */
  reset(code: number): ChannelError;
  /** The channel ended: messages that had fully arrived stay readable, then operations fail with `error`. */
  end(error: ChannelError): void;
  /** The channel's reassembly budget has room again. */
  retryBorrow(): void;
}

/** Options of {@linkcode Stream.send} and {@linkcode Stream.receive}. */
export interface StreamOperationOptions {
  /** Gives up waiting. A send aborted after part of its message left resets the stream. */
  signal?: AbortSignal;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

const DONE = Promise.resolve();

/**
 * A bidirectional stream of messages. `send` respects the peer's credit and
 * resolves once the whole message is sealed (the caller may then reuse its
 * bytes); `receive` returns whole messages in order, and `null` after the
 * peer's FIN.
 */
export class Stream implements AsyncIterable<Uint8Array> {
  /** The stream ID: odd when the handshake initiator opened it, even otherwise; never 0. */
  readonly id: number;
  #host: StreamHost;

  // Send side.
  #sendCredit = INITIAL_WINDOW;
  #creditWaiter: Waiter<void> | null = null;
  #sendTail: Promise<void> = DONE;
  #sendsQueued = 0;
  #finQueued = false;
  #closeRequested = false;

  // Receive side. recvCredit + buffered + unacked === window + borrowed (section "Flow control").
  #window: number;
  /** When the current auto-tuning epoch began, and the bytes the application read since. */
  #epochStart: number;
  #epochRead = 0;
  #recvCredit = INITIAL_WINDOW;
  #unacked = 0;
  #borrowed = 0;
  #reserved = 0;
  #starved = 0;
  #messages: Uint8Array[] = [];
  #partial: Uint8Array[] = [];
  #partialLength = 0;
  #finReceived = false;
  #readers: Waiter<Uint8Array | null>[] = [];

  // Set once the stream cannot be used any more (reset, or the channel ended).
  #error: ChannelError | null = null;
  #forgotten = false;

  /**
   * Creates a stream. Called by the channel, which keeps `handlers`.
   *
   * @param id The stream ID.
   * @param host The channel.
   * @param attach Receives the handlers the channel calls.
   */
  constructor(id: number, host: StreamHost, attach: (handlers: StreamHandlers) => void) {
    this.id = id;
    this.#host = host;
    // The extra window over INITIAL_WINDOW is granted by a WINDOW_UPDATE the channel queues at open.
    this.#recvCredit = this.#window = host.receiveWindow;
    this.#epochStart = host.now();
    attach({
      data: (payload, flags) => this.#onData(payload, flags),
      windowUpdate: (increment) => this.#onWindowUpdate(increment),
      reset: (code) => this.#onRemoteReset(code),
      end: (error) => this.#onChannelEnd(error),
      retryBorrow: () => this.#retryBorrow(),
    });
  }

  // -------------------------------------------------------------------------
  // Sending
  // -------------------------------------------------------------------------

  /**
   * Sends one message: chunked into DATA records as the peer's credit allows,
   * the last one marked END_OF_MESSAGE. Sends on one stream go out in call
   * order. The bytes are read when sealed: do not change them before the
   * promise resolves.
   *
   * @param message The message, at most the channel's `maxMessageSize` bytes (may be empty).
   * @param options `signal` to stop waiting for credit.
   * @returns Resolves once the whole message is sealed and queued for the transport.
   * @throws {TypeError} when `message` is not a Uint8Array.
   * @throws {RangeError} when `message` is longer than `maxMessageSize`.
   * @throws {ChannelError} when the stream was reset or closed, or the channel ended.
   */
  send(message: Uint8Array, options: StreamOperationOptions = {}): Promise<void> {
    if (!(message instanceof Uint8Array)) return Promise.reject(new TypeError("Invalid message: expected Uint8Array"));
    if (message.length > this.#host.maxMessageSize) {
      return Promise.reject(
        new RangeError(`Cannot send message: length is ${message.length}, expected <= ${this.#host.maxMessageSize}`),
      );
    }
    const blocked = this.#sendError();
    if (blocked) return Promise.reject(blocked);
    const end = this.#host.beginSend();
    const run = () => this.#sendNow(message, options.signal);
    const sent = this.#sendsQueued === 0 ? run() : this.#sendTail.then(run);
    this.#sendsQueued++;
    const settled = sent.finally(() => {
      this.#sendsQueued--;
      end();
    });
    this.#sendTail = settled.catch(() => {});
    return settled;
  }

  async #sendNow(message: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    const length = message.length;
    let offset = 0;
    let sealed: Promise<void> | undefined;
    try {
      do {
        this.#throwIfUnsendable(signal);
        if (length > 0 && this.#sendCredit === 0) await this.#waitForCredit(signal);
        const space = this.#host.queueSpace();
        if (space) await abortable(space, signal);
        this.#throwIfUnsendable(signal);
        const n = Math.min(this.#sendCredit, length - offset, SEND_PIECE);
        if (n === 0 && length > 0) continue; // credit was taken meanwhile; wait again
        this.#sendCredit -= n;
        const piece = message.subarray(offset, offset + n);
        offset += n;
        if (offset === length) {
          sealed = new Promise<void>((resolve, reject) => {
            this.#host.queueData(this.id, piece, FLAG_END_OF_MESSAGE, { resolve, reject });
          });
        } else {
          this.#host.queueData(this.id, piece, 0);
        }
      } while (offset < length);
    } catch (error) {
      // Part of the message left: the peer cannot tell where it ends, so the stream is over.
      if (offset > 0 && this.#error === null) this.#resetWith(ErrorCode.CANCEL, "send was aborted mid-message");
      throw error;
    }
    await sealed;
  }

  /** Inside a send already started: only this stream's end stops it (a channel that is closing lets it finish). */
  #throwIfUnsendable(signal: AbortSignal | undefined): void {
    signal?.throwIfAborted();
    if (this.#error) throw this.#error;
  }

  #sendError(): ChannelError | null {
    if (this.#error) return this.#error;
    if (this.#closeRequested) {
      return new ChannelError("closed", `Cannot send on stream ${this.id}: it was closed for sending`, {
        streamId: this.id,
      });
    }
    return this.#host.sendBlocked();
  }

  #waitForCredit(signal: AbortSignal | undefined): Promise<void> {
    return abortable(new Promise<void>((resolve, reject) => this.#creditWaiter = { resolve, reject }), signal, () => {
      this.#creditWaiter = null;
    });
  }

  #onWindowUpdate(increment: number): void {
    if (this.#sendCredit + increment > MAX_WINDOW) {
      throw new ChannelError(
        "flow_control_error",
        `WINDOW_UPDATE on stream ${this.id} raises its credit to ${this.#sendCredit + increment}, ` +
          `expected <= ${MAX_WINDOW}`,
        { streamId: this.id },
      );
    }
    this.#sendCredit += increment;
    const waiter = this.#creditWaiter;
    this.#creditWaiter = null;
    waiter?.resolve();
  }

  /**
   * Half-closes the stream: after every message already passed to `send`, a
   * FIN tells the peer no more messages follow. Receiving goes on until the
   * peer closes its half. Calling it again does nothing.
   *
   * @returns Resolves once the FIN is sealed.
   * @throws {ChannelError} when the stream was reset or the channel ended first.
   */
  close(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closeRequested) return this.#sendTail;
    const blocked = this.#host.sendBlocked();
    if (blocked) return Promise.reject(blocked);
    this.#closeRequested = true;
    const end = this.#host.beginSend();
    const fin = this.#sendTail.then(() => {
      if (this.#error) throw this.#error;
      this.#finQueued = true;
      const sealed = new Promise<void>((resolve, reject) => {
        this.#host.queueData(this.id, new Uint8Array(0), FLAG_FIN, { resolve, reject });
      });
      this.#maybeFinished();
      return sealed;
    }).finally(end);
    this.#sendTail = fin.catch(() => {});
    return fin;
  }

  /**
   * Resets the stream at once in both directions: queued messages are
   * dropped, pending and later operations reject with `cancel`, and the peer
   * gets RESET. Calling it again does nothing.
   */
  reset(): void {
    if (this.#error) return;
    this.#resetWith(ErrorCode.CANCEL, "reset by this side");
  }

  #resetWith(code: number, why: string): void {
    const error = new ChannelError(
      code === ErrorCode.MESSAGE_TOO_LARGE ? "message_too_large" : "cancel",
      `Stream ${this.id} was ${why}`,
      { streamId: this.id },
    );
    this.#terminate(error, false);
    this.#host.resetStream(this.id, code, error);
  }

  // -------------------------------------------------------------------------
  // Receiving
  // -------------------------------------------------------------------------

  /**
   * The next message, whole and in order.
   *
   * @param options `signal` to stop waiting.
   * @returns The message, or `null` once the peer closed its half and every message was read.
   * @throws {ChannelError} when the stream was reset (`cancel`, `message_too_large`, ...) or the channel ended
   *   before the peer's FIN (after the messages that had arrived are read).
   */
  receive(options: StreamOperationOptions = {}): Promise<Uint8Array | null> {
    const message = this.#messages.shift();
    if (message !== undefined) {
      this.#consumed(message.length);
      return Promise.resolve(message);
    }
    if (this.#finReceived) return Promise.resolve(null);
    if (this.#error) return Promise.reject(this.#error);
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    let waiter!: Waiter<Uint8Array | null>;
    const waiting = new Promise<Uint8Array | null>((resolve, reject) => waiter = { resolve, reject });
    this.#readers.push(waiter);
    return abortable(waiting, options.signal, () => {
      const i = this.#readers.indexOf(waiter);
      if (i >= 0) this.#readers.splice(i, 1);
    });
  }

  /** Iterates the messages until the peer's FIN; throws as {@linkcode receive} does. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    while (true) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }

  /** The messages as a ReadableStream (one chunk per message). */
  get readable(): ReadableStream<Uint8Array> {
    return ReadableStream.from(this);
  }

  /** A WritableStream that sends each chunk as one message; closing it half-closes, aborting it resets. */
  get writable(): WritableStream<Uint8Array> {
    return new WritableStream({
      write: (chunk) => this.send(chunk),
      close: () => this.close(),
      abort: () => this.reset(),
    });
  }

  #onData(payload: Uint8Array, flags: number): void {
    const n = payload.length;
    if (this.#finReceived) {
      throw new ChannelError("protocol_error", `DATA on stream ${this.id} after its FIN`, { streamId: this.id });
    }
    if (n > this.#recvCredit) {
      throw new ChannelError(
        "flow_control_error",
        `DATA on stream ${this.id} carries ${n} bytes, its credit is ${this.#recvCredit}`,
        { streamId: this.id },
      );
    }
    this.#recvCredit -= n;
    if (this.#error) return; // reset locally, RESET not yet seen by the peer: drop
    const total = this.#partialLength + n;
    if (total > this.#host.maxMessageSize) {
      this.#resetWith(
        ErrorCode.MESSAGE_TOO_LARGE,
        `reset: a message exceeds ${this.#host.maxMessageSize} bytes (maxMessageSize)`,
      );
      return;
    }
    if (flags & FLAG_END_OF_MESSAGE) {
      let message = payload;
      if (this.#partial.length > 0) {
        message = new Uint8Array(total);
        let offset = 0;
        for (const chunk of this.#partial) {
          message.set(chunk, offset);
          offset += chunk.length;
        }
        message.set(payload, offset);
        this.#partial = [];
        this.#partialLength = 0;
      }
      this.#releaseReservation();
      this.#deliver(message);
    } else if (n > 0) {
      const head = this.#messages.length === 0;
      this.#partial.push(payload);
      this.#partialLength = total;
      // The message at the head is incomplete: credit it now from the channel's budget, or it could never complete.
      if (head) this.#borrow(n);
    }
    if (flags & FLAG_FIN) {
      if (this.#partialLength > 0) {
        throw new ChannelError("protocol_error", `FIN on stream ${this.id} cuts a message short`, {
          streamId: this.id,
        });
      }
      this.#finReceived = true;
      this.#releaseWindow();
      for (const reader of this.#readers.splice(0)) reader.resolve(null);
      this.#maybeFinished();
    }
  }

  #deliver(message: Uint8Array): void {
    const reader = this.#readers.shift();
    if (reader) {
      this.#consumed(message.length);
      reader.resolve(message);
    } else {
      this.#messages.push(message);
    }
  }

  /** Bytes left the stream for the application: repay borrowed budget first, credit the rest. */
  #consumed(bytes: number): void {
    const repay = Math.min(this.#borrowed, bytes);
    if (repay > 0) {
      this.#borrowed -= repay;
      this.#host.repay(repay);
    }
    this.#unacked += bytes - repay;
    this.#epochRead += bytes;
    this.#maybeUpdate();
  }

  /**
   * Credits `bytes` of the incomplete message at the head of the queue ahead
   * of the application, from a reservation of a whole maximum message: a
   * stream that holds one can always complete its message, so messages larger
   * than the window never deadlock each other (section "Flow control").
   */
  #borrow(bytes: number): void {
    const want = bytes + this.#starved;
    if (this.#reserved === 0) {
      if (!this.#host.reserve(this.id)) {
        this.#starved = want;
        return;
      }
      this.#reserved = this.#host.maxMessageSize;
    }
    const got = Math.min(want, this.#reserved);
    this.#reserved -= got;
    this.#starved = want - got;
    this.#borrowed += got;
    this.#unacked += got;
    this.#maybeUpdate();
  }

  #releaseReservation(): void {
    this.#starved = 0;
    if (this.#reserved === 0) return;
    const unused = this.#reserved;
    this.#reserved = 0;
    this.#host.repay(unused);
  }

  #retryBorrow(): void {
    if (this.#starved > 0 && this.#error === null) this.#borrow(0);
  }

  /** Sends a WINDOW_UPDATE once half a window is owed (or the peer has nothing left and something is owed). */
  #maybeUpdate(): void {
    if (this.#unacked === 0 || this.#finReceived || this.#error) return;
    if (this.#unacked < this.#window / 2 && this.#recvCredit > 0) return;
    const increment = this.#unacked + this.#autoTune();
    this.#recvCredit += increment;
    this.#host.queueWindowUpdate(this.id, increment);
    this.#unacked = 0;
  }

  /**
   * Receive-window auto-tuning, as quic-go does it (a local policy: the peer only sees larger WINDOW_UPDATEs).
   * When the application read half the window or more within about two round trips, the window, not the reader,
   * limits the stream: it doubles, up to AUTO_WINDOW_MAX, with the growth drawn from the channel's budget.
   * Returns the growth to grant now.
   */
  #autoTune(): number {
    const read = this.#epochRead;
    if (read < this.#window / 2) return 0;
    const now = this.#host.now();
    const rtt = Math.max(this.#host.rtt(), AUTO_WINDOW_MIN_RTT_MS);
    let grow = 0;
    if (now - this.#epochStart < 4 * (read / this.#window) * rtt && this.#window < AUTO_WINDOW_MAX) {
      grow = this.#host.growWindow(Math.min(this.#window, AUTO_WINDOW_MAX - this.#window));
      this.#window += grow;
    }
    this.#epochStart = now;
    this.#epochRead = 0;
    return grow;
  }

  /** Gives the window's growth back to the channel's budget: nothing more will be received. */
  #releaseWindow(): void {
    const grown = this.#window - this.#host.receiveWindow;
    if (grown <= 0) return;
    this.#window = this.#host.receiveWindow;
    this.#host.shrinkWindow(grown);
  }

  // -------------------------------------------------------------------------
  // Ending
  // -------------------------------------------------------------------------

  #onRemoteReset(code: number): ChannelError {
    if (this.#error) return this.#error;
    const failure = failureOfCode(code);
    const error = new ChannelError(
      failure === "closed" ? "cancel" : failure,
      `Stream ${this.id} was reset by the peer (${failure})`,
      { remote: true, streamId: this.id },
    );
    this.#terminate(error, false);
    return error;
  }

  #onChannelEnd(error: ChannelError): void {
    if (this.#error) return;
    this.#terminate(error, true);
  }

  /** Ends the stream with `error`; `keep` leaves complete messages readable. */
  #terminate(error: ChannelError, keep: boolean): void {
    this.#error = error;
    this.#forgotten = true;
    this.#releaseWindow();
    if (!keep) {
      this.#messages = [];
    }
    this.#partial = [];
    this.#partialLength = 0;
    this.#releaseReservation();
    if (!keep && this.#borrowed > 0) {
      this.#host.repay(this.#borrowed);
      this.#borrowed = 0;
    }
    const credit = this.#creditWaiter;
    this.#creditWaiter = null;
    credit?.reject(error);
    for (const reader of this.#readers.splice(0)) {
      if (this.#finReceived) reader.resolve(null);
      else reader.reject(error);
    }
  }

  #maybeFinished(): void {
    if (this.#finQueued && this.#finReceived && !this.#forgotten) {
      this.#forgotten = true;
      this.#host.finished(this.id);
    }
  }
}
