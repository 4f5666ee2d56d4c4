/**
 * A connected pair of in-memory {@linkcode FrameIO} ends, for tests of
 * anything that runs over frames (handshake, channel, manager).
 *
 * - Each direction buffers at most `capacity` frames; a `write()` beyond that
 *   waits until the peer reads (backpressure), like a full socket.
 * - Frames are copied on write, so a writer may reuse its buffer.
 * - `close()` ends this side's output: the peer reads what was queued, then
 *   `null`; reads on the closing side return `null` too.
 * - `abort(reason)` drops everything at once: pending and later calls on this
 *   end reject with `reason`, and the peer's reads and writes reject with
 *   "Connection reset by peer", as after a TCP reset. Calling it twice, or
 *   after `close()`, is harmless.
 * - `written` records every frame an end wrote (a transcript), `closed` and
 *   `abortReason` say how it ended.
 *
 * {@linkcode scriptedFrameIO} plays a peer from a fixed list of frames.
 */

import type { FrameIO } from "../../../kernel/channel/types.ts";

/** Options of {@linkcode framePair}. */
export interface FramePairOptions {
  /** Frames buffered per direction before `write()` waits (default 8). */
  capacity?: number;
  /** The largest frame either end accepts (default 65 535 + 64). */
  maxFrameSize?: number;
}

/** A FrameIO end with what a test wants to inspect afterwards. */
export interface TestFrameIO extends FrameIO {
  /** Every frame this end wrote, in order. */
  readonly written: readonly Uint8Array[];
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /** The reason given to `abort()`, or undefined while not aborted. */
  readonly abortReason: unknown;
  /** Whether `abort()` was called. */
  readonly aborted: boolean;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** One direction: a bounded queue with its waiting readers and writers. */
class Pipe {
  readonly queue: Uint8Array[] = [];
  readonly readers: Waiter<Uint8Array | null>[] = [];
  readonly writers: (Waiter<void> & { frame: Uint8Array })[] = [];
  ended = false;
  error: unknown = undefined;
  failed = false;

  constructor(readonly capacity: number) {}

  push(frame: Uint8Array): Promise<void> {
    if (this.failed) return Promise.reject(this.error);
    if (this.ended) return Promise.reject(new Error("Cannot write: connection closed"));
    const reader = this.readers.shift();
    if (reader) {
      reader.resolve(frame);
      return Promise.resolve();
    }
    if (this.queue.length < this.capacity) {
      this.queue.push(frame);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.writers.push({ frame, resolve, reject }));
  }

  pull(): Promise<Uint8Array | null> {
    if (this.failed) return Promise.reject(this.error);
    const frame = this.queue.shift();
    if (frame) {
      const writer = this.writers.shift();
      if (writer) {
        this.queue.push(writer.frame);
        writer.resolve();
      }
      return Promise.resolve(frame);
    }
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  end(): void {
    if (this.ended || this.failed) return;
    this.ended = true;
    // Writers still waiting for room keep their place; readers of an empty queue see the end now.
    if (this.queue.length === 0) { for (const r of this.readers.splice(0)) r.resolve(null); }
  }

  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.error = error;
    this.queue.length = 0;
    for (const r of this.readers.splice(0)) r.reject(error);
    for (const w of this.writers.splice(0)) w.reject(error);
  }
}

class End implements TestFrameIO {
  readonly written: Uint8Array[] = [];
  closed = false;
  aborted = false;
  abortReason: unknown = undefined;

  constructor(readonly maxFrameSize: number, readonly incoming: Pipe, readonly outgoing: Pipe) {}

  read(): Promise<Uint8Array | null> {
    if (this.aborted) return Promise.reject(this.abortReason);
    if (this.closed) return Promise.resolve(null);
    return this.incoming.pull();
  }

  write(frame: Uint8Array): Promise<void> {
    if (this.aborted) return Promise.reject(this.abortReason);
    if (this.closed) return Promise.reject(new Error("Cannot write: this end is closed"));
    if (!(frame instanceof Uint8Array)) return Promise.reject(new TypeError("Invalid frame: expected Uint8Array"));
    if (frame.length > this.maxFrameSize) {
      return Promise.reject(
        new RangeError(`Invalid frame: length is ${frame.length}, expected <= ${this.maxFrameSize}`),
      );
    }
    const copy = frame.slice();
    this.written.push(copy);
    return this.outgoing.push(copy);
  }

  close(): Promise<void> {
    if (this.closed || this.aborted) return Promise.resolve();
    this.closed = true;
    this.outgoing.end();
    // Pending local reads end as well: the connection is closed in both directions.
    for (const r of this.incoming.readers.splice(0)) r.resolve(null);
    return Promise.resolve();
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason ?? new Error("Connection aborted");
    const reset = new Error("Connection reset by peer");
    for (const r of this.incoming.readers.splice(0)) r.reject(this.abortReason);
    for (const w of this.outgoing.writers.splice(0)) w.reject(this.abortReason);
    this.outgoing.fail(reset);
    this.incoming.fail(reset);
  }
}

/**
 * A connected pair of in-memory FrameIO ends.
 *
 * @param options Buffer capacity and maximum frame size.
 * @returns `[a, b]`: what `a` writes, `b` reads, and the other way round.
 */
export function framePair(options: FramePairOptions = {}): [TestFrameIO, TestFrameIO] {
  const capacity = options.capacity ?? 8;
  const maxFrameSize = options.maxFrameSize ?? 131_072 + 64;
  const ab = new Pipe(capacity), ba = new Pipe(capacity);
  const a = new End(maxFrameSize, ba, ab), b = new End(maxFrameSize, ab, ba);
  return [a, b];
}

/** Options of {@linkcode scriptedFrameIO}. */
export interface ScriptedFrameIOOptions {
  /** What `read()` does after the last frame: return `null` (default) or never settle (a stalled peer). */
  afterLast?: "close" | "stall";
  /** The largest frame accepted (default 65 535 + 64). */
  maxFrameSize?: number;
}

/**
 * A FrameIO whose peer is a script: `read()` returns `frames` one by one,
 * then `null` (or stalls); writes are recorded in `written` and otherwise
 * ignored.
 *
 * @param frames The frames the peer "sends", in order.
 * @param options What happens after the last frame.
 * @returns The end under test.
 */
export function scriptedFrameIO(frames: readonly Uint8Array[], options: ScriptedFrameIOOptions = {}): TestFrameIO {
  const queue = [...frames];
  const written: Uint8Array[] = [];
  const stalled: Waiter<Uint8Array | null>[] = [];
  const io = {
    maxFrameSize: options.maxFrameSize ?? 131_072 + 64,
    written,
    closed: false,
    aborted: false,
    abortReason: undefined as unknown,
    read(): Promise<Uint8Array | null> {
      if (io.aborted) return Promise.reject(io.abortReason);
      const frame = queue.shift();
      if (frame) return Promise.resolve(frame.slice());
      if (options.afterLast === "stall" && !io.closed) {
        return new Promise((resolve, reject) => stalled.push({ resolve, reject }));
      }
      return Promise.resolve(null);
    },
    write(frame: Uint8Array): Promise<void> {
      if (io.aborted) return Promise.reject(io.abortReason);
      written.push(frame.slice());
      return Promise.resolve();
    },
    close(): Promise<void> {
      io.closed = true;
      for (const w of stalled.splice(0)) w.resolve(null);
      return Promise.resolve();
    },
    abort(reason?: unknown): void {
      if (io.aborted) return;
      io.aborted = true;
      io.abortReason = reason ?? new Error("Connection aborted");
      for (const w of stalled.splice(0)) w.reject(io.abortReason);
    },
  };
  return io;
}
