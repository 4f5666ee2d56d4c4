/**
 * A stream of an NZ-CHANNEL-01 channel as a transport {@linkcode Duplex}: the
 * bytes written go out as messages, the messages received come in as bytes
 * (message boundaries carry no meaning), and closing the duplex half-closes
 * the stream (FIN). With `createFrameIO` on top, a handshake and a whole
 * channel run *inside* a stream of another channel: that is how a relayed
 * session (NZ-RELAY-01) is carried end to end through a relay node.
 *
 * @module
 */

import type { Stream } from "../channel/stream.ts";
import { ChannelError } from "../channel/errors.ts";
import type { Duplex } from "../../transport/types.ts";

/** Options of {@linkcode streamDuplex}. */
export interface StreamDuplexOptions {
  /** The local address the duplex shows (default `stream://local`). */
  localAddr?: string;
  /** The remote address the duplex shows (default `stream://remote`). */
  remoteAddr?: string;
  /** Bytes written are split into messages of at most this size (default 64 KiB). */
  maxMessageSize?: number;
  /** After `close()`, how long to wait for the peer's half-close before resetting the stream (default 10 s). */
  lingerMs?: number;
}

const DEFAULT_MESSAGE_SIZE = 64 * 1024;
const DEFAULT_LINGER_MS = 10_000;

/**
 * Wraps `stream` as a {@linkcode Duplex}. The duplex owns the stream from then
 * on: nothing else may read from or write to it.
 *
 * @param stream An open channel stream (its protocol name already exchanged).
 * @param options The addresses to show, the message size, the linger time.
 * @returns The duplex; it offers the `read`/`write` fast path as well as web streams.
 *
 * @example A framed byte stream inside a channel stream
 * ```ts ignore
 * import { createFrameIO } from "../../transport/framing.ts";
 * const io = createFrameIO(streamDuplex(await session.openStream("nz/relay/1")));
 * await io.write(new Uint8Array([1, 2, 3]));
 * ```
 */
export function streamDuplex(stream: Stream, options: StreamDuplexOptions = {}): Duplex {
  return new StreamDuplex(stream, options);
}

class StreamDuplex implements Duplex {
  readonly localAddr: string;
  readonly remoteAddr: string;
  readonly closed: Promise<void>;
  #stream: Stream;
  #pieceSize: number;
  #lingerMs: number;
  #resolveClosed!: () => void;
  /** The read in progress (its end, never rejecting), or null. */
  #reading: Promise<unknown> | null = null;
  #readEnded = false;
  #writeClosed = false;
  #aborted: unknown = undefined;
  #writeTail: Promise<void> = Promise.resolve();
  #readable: ReadableStream<Uint8Array> | null = null;
  #writable: WritableStream<Uint8Array> | null = null;
  #readAbort = new AbortController();

  constructor(stream: Stream, options: StreamDuplexOptions) {
    this.#stream = stream;
    this.localAddr = options.localAddr ?? "stream://local";
    this.remoteAddr = options.remoteAddr ?? "stream://remote";
    const size = options.maxMessageSize ?? DEFAULT_MESSAGE_SIZE;
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`Invalid maxMessageSize: ${size}, expected a positive integer`);
    }
    this.#pieceSize = size;
    this.#lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
  }

  read(): Promise<Uint8Array | null> {
    if (this.#reading) return Promise.reject(new TypeError("Cannot read: a read is already pending"));
    if (this.#aborted !== undefined) return Promise.reject(this.#aborted);
    if (this.#readEnded || this.#writeClosed) return Promise.resolve(null);
    const reading = this.#read();
    this.#reading = reading.catch(() => {});
    return reading;
  }

  async #read(): Promise<Uint8Array | null> {
    try {
      for (;;) {
        const message = await this.#stream.receive({ signal: this.#readAbort.signal });
        if (message === null) {
          this.#readEnded = true;
          this.#maybeClosed();
          return null;
        }
        if (message.length > 0) return message;
      }
    } catch (error) {
      if (this.#aborted !== undefined) throw this.#aborted;
      // close() ended the reading side: the readable ends.
      if (this.#writeClosed) return null;
      throw error;
    } finally {
      // Cleared before the caller sees the result, so that it may read again at once.
      this.#reading = null;
    }
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#aborted !== undefined) return Promise.reject(this.#aborted);
    if (this.#writeClosed) return Promise.reject(new ChannelError("closed", "Cannot write: the duplex is closed"));
    if (chunk.length === 0) return this.#writeTail;
    // Stream.send keeps call order; each piece is sealed before its promise resolves, so the caller may reuse `chunk`.
    let last: Promise<void> = Promise.resolve();
    for (let offset = 0; offset < chunk.length; offset += this.#pieceSize) {
      last = this.#stream.send(chunk.subarray(offset, offset + this.#pieceSize));
      last.catch(() => {});
    }
    this.#writeTail = last.catch(() => {});
    return last;
  }

  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const chunk = await this.read();
          if (chunk === null) controller.close();
          else controller.enqueue(chunk);
        } catch (error) {
          controller.error(error);
        }
      },
      cancel: (reason) => this.abort(reason),
    });
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.close(),
      abort: (reason) => this.abort(reason),
    });
    return this.#writable;
  }

  /** Flushes, sends FIN; the peer's half is read and dropped until it ends (or the linger time, then a reset). */
  async close(): Promise<void> {
    if (this.#writeClosed || this.#aborted !== undefined) return;
    this.#writeClosed = true;
    try {
      await this.#writeTail;
      await this.#stream.close();
    } catch {
      // The stream was reset or its channel ended: nothing more to flush.
    }
    if (!this.#readEnded) {
      // Nobody reads any more: a pending read ends, and what the peer still sends is dropped until its FIN.
      this.#readAbort.abort();
      void this.#drain();
    }
    this.#maybeClosed();
  }

  abort(reason?: unknown): void {
    if (this.#aborted !== undefined) return;
    this.#aborted = reason ?? new ChannelError("aborted", "The duplex was aborted");
    this.#readAbort.abort(this.#aborted);
    this.#stream.reset();
    this.#readEnded = this.#writeClosed = true;
    this.#resolveClosed();
  }

  async #drain(): Promise<void> {
    const timer = setTimeout(() => this.#stream.reset(), this.#lingerMs);
    try {
      await this.#reading;
      while ((await this.#stream.receive()) !== null) { /* dropped */ }
    } catch {
      // reset or ended
    } finally {
      clearTimeout(timer);
      this.#readEnded = true;
      this.#maybeClosed();
    }
  }

  #maybeClosed(): void {
    if (this.#readEnded && this.#writeClosed) this.#resolveClosed();
  }
}
