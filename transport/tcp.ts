/**
 * TCP on `Deno.connect` and `Deno.listen`: `tcp://HOST:PORT` addresses, with
 * `TCP_NODELAY` (frames leave at once) and keep-alive (dead peers are noticed)
 * on every connection.
 *
 * @module
 */

import { formatAddress, parseAddress } from "./address.ts";
import { AddressInUseError, DialError, TransportError } from "./errors.ts";
import type { DialOptions, Duplex, Listener, ListenOptions, Transport } from "./types.ts";
import { WriteSide } from "./_write_side.ts";

/** How long a dial waits by default, in milliseconds. */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/**
 * Each connection reads into one buffer of its own, reused from read to read
 * through the fast path (a chunk from `read()` is valid until the next one):
 * no allocation, no page faults, and the bytes stay in cache. The buffer
 * starts at this size, what an idle connection holds in its pending read.
 */
const MIN_READ_SIZE = 1024;
/** A read that fills the buffer makes the next one 4 times larger, up to this. */
const MAX_READ_SIZE = 256 * 1024;
/** After this many reads in a row that fill less than 1/16 of a grown buffer, it shrinks back to the minimum. */
const SHRINK_AFTER = 4;
/**
 * How long `close()` reads and discards what the peer still sends, waiting for its end: closing a socket with
 * unread bytes makes the kernel send a reset, which destroys data the peer has received but not yet read.
 */
const LINGER_MS = 2_000;
/** Bytes the writable queues before `writer.ready` waits (the kernel's send buffer holds more). */
const WRITE_HIGH_WATER_MARK = 64 * 1024;

function tcpAddr(addr: Deno.NetAddr): string {
  return formatAddress({ scheme: "tcp", host: addr.hostname, port: addr.port, path: "" });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** How one direction ended: `error` is what later reads or writes reject with (none: a read returns `null`). */
interface Ended {
  error?: unknown;
  /** For the write side: whether the writable errors (abort, broken) rather than fails softly (closed). */
  hard?: boolean;
}

/**
 * A TCP connection as a {@linkcode Duplex}. The fast path (`read`, `write`)
 * works on the socket directly; `readable` and `writable` are built on it the
 * first time they are asked for, so a connection used through `createFrameIO`
 * never creates web streams.
 */
class TcpDuplex implements Duplex {
  readonly localAddr: string;
  readonly remoteAddr: string;
  readonly closed: Promise<void>;
  #conn: Deno.TcpConn;
  #readable: ReadableStream<Uint8Array> | null = null;
  #write: WriteSide | null = null;
  #state: "open" | "closing" | "closed" = "open";
  #resolveClosed: () => void;
  /** The read buffer (allocated at the first read), and how many reads in a row used little of it. */
  #buffer: Uint8Array | null = null;
  #sparseReads = 0;
  /** Set once reading ended: cleanly (reads return `null`) or with an error. */
  #readEnd: Ended | null = null;
  /** The caller's read waiting for the socket, if any. */
  #pendingRead: PromiseWithResolvers<Uint8Array | null> | null = null;
  /** The socket read in flight, if any: a lingering close waits for it rather than read beside it. */
  #reading: Promise<unknown> | null = null;
  /** Set once writing ended (closed, aborted, broken): fast-path writes reject with its error. */
  #writeEnd: Ended | null = null;
  /** Fast-path writes queued or in flight, and the last of them (writes go out one after another). */
  #writes = 0;
  #writeTail: Promise<void> = Promise.resolve();
  #writesIdle: PromiseWithResolvers<void> | null = null;

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    conn.setNoDelay(true);
    conn.setKeepAlive(true);
    this.localAddr = tcpAddr(conn.localAddr);
    this.remoteAddr = tcpAddr(conn.remoteAddr);
    const closed = Promise.withResolvers<void>();
    this.closed = closed.promise;
    this.#resolveClosed = closed.resolve;
  }

  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.#read(true);
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => {
        this.#endRead();
        this.#maybeFinish();
      },
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array> {
    if (this.#write === null) {
      const write = new WriteSide({
        write: (chunk) => this.#send(chunk),
        close: async () => {
          // Half-close: the peer reads the end of the stream and can still answer.
          try {
            await this.#conn.closeWrite();
          } catch { /* already closed or reset: nothing left to flush */ }
          this.#maybeFinish();
        },
        abort: (reason) => this.abort(reason),
      }, WRITE_HIGH_WATER_MARK);
      this.#write = write;
      const end = this.#writeEnd;
      if (end?.hard) write.error(end.error);
      else if (end) write.fail(end.error);
    }
    return this.#write.writable;
  }

  read(): Promise<Uint8Array | null> {
    return this.#read(false);
  }

  /** The next chunk: valid until the next read, or (`keep`, for the readable) never rewritten. */
  #read(keep: boolean): Promise<Uint8Array | null> {
    const end = this.#readEnd;
    if (end) return end.error === undefined ? Promise.resolve(null) : Promise.reject(end.error);
    if (this.#pendingRead) return Promise.reject(new TypeError("Cannot read: a read is already pending"));
    const pending = Promise.withResolvers<Uint8Array | null>();
    this.#pendingRead = pending;
    void this.#readSocket(pending, keep);
    return pending.promise;
  }

  async #readSocket(pending: PromiseWithResolvers<Uint8Array | null>, keep: boolean): Promise<void> {
    const buffer = this.#buffer ??= new Uint8Array(MIN_READ_SIZE);
    let n: number | null;
    const reading = this.#conn.read(buffer);
    this.#reading = reading;
    try {
      n = await reading;
    } catch (error) {
      if (this.#readEnd) return; // closed or aborted locally: the read is already settled
      this.#broken(new TransportError(`Connection to ${this.remoteAddr} broke: ${describe(error)}`, { cause: error }));
      return;
    }
    if (this.#readEnd) return;
    if (n === null) {
      this.#endRead();
      this.#maybeFinish();
      return;
    }
    this.#pendingRead = null;
    pending.resolve(this.#chunk(buffer, n, keep));
  }

  /** The `n` bytes just read into `buffer`, and the buffer for the next read (grown, shrunk, or the same). */
  #chunk(buffer: Uint8Array, n: number, keep: boolean): Uint8Array {
    const size = buffer.length;
    if (n === size) {
      this.#sparseReads = 0;
      if (size < MAX_READ_SIZE) this.#buffer = new Uint8Array(Math.min(size * 4, MAX_READ_SIZE));
    } else if (size > MIN_READ_SIZE && n < size / 16) {
      // Bulk transfer is over: an idle connection should not hold a large buffer in its pending read.
      if (++this.#sparseReads >= SHRINK_AFTER) {
        this.#sparseReads = 0;
        this.#buffer = new Uint8Array(MIN_READ_SIZE);
      }
    } else {
      this.#sparseReads = 0;
    }
    if (!keep) return buffer.subarray(0, n);
    // For the readable: a chunk that is never rewritten. A mostly full buffer is handed over whole, else copied.
    if (n < size / 2) return buffer.slice(0, n);
    if (this.#buffer === buffer) this.#buffer = new Uint8Array(size);
    return buffer.subarray(0, n);
  }

  write(chunk: Uint8Array): Promise<void> {
    if (!(chunk instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`Cannot write: expected a Uint8Array chunk, got ${typeof chunk}`));
    }
    if (this.#writeEnd) return Promise.reject(this.#writeEnd.error);
    const run = () => this.#writeEnd ? Promise.reject(this.#writeEnd.error) : this.#send(chunk);
    const written = this.#writes++ === 0 ? run() : this.#writeTail.then(run);
    const settled = written.finally(() => {
      if (--this.#writes === 0) {
        this.#writesIdle?.resolve();
        this.#writesIdle = null;
      }
    });
    this.#writeTail = settled.catch(() => {});
    return settled;
  }

  async #send(chunk: Uint8Array): Promise<void> {
    try {
      let written = 0;
      while (written < chunk.length) written += await this.#conn.write(chunk.subarray(written));
    } catch (error) {
      if (this.#writeEnd?.hard) throw this.#writeEnd.error; // aborted: pending writes reject with its reason
      if (this.#state === "closed") throw new TransportError(`Connection to ${this.remoteAddr} is closed`);
      const failure = new TransportError(`Cannot write to ${this.remoteAddr}: ${describe(error)}`, { cause: error });
      this.#endRead(failure);
      this.#writeEnd ??= { error: failure, hard: true };
      this.#finish();
      throw failure;
    }
  }

  /** Resolves once every write so far (either path) was sent, or failed. */
  async #drained(): Promise<void> {
    await this.#write?.drained();
    if (this.#writes > 0) {
      this.#writesIdle ??= Promise.withResolvers<void>();
      await this.#writesIdle.promise;
    }
  }

  async close(): Promise<void> {
    if (this.#state !== "open") return this.closed;
    this.#state = "closing";
    await this.#drained();
    if (this.#state !== "closing") return this.closed; // aborted meanwhile
    if (!this.#writeDone()) {
      try {
        await this.#conn.closeWrite();
      } catch { /* the peer already went away */ }
    }
    this.#endWrite({ error: new TransportError(`Connection to ${this.remoteAddr} is closed`), hard: false });
    this.#endRead();
    await this.#linger();
    this.#finish();
  }

  /** Reads and discards until the peer closes its side too, or for at most {@linkcode LINGER_MS}. */
  async #linger(): Promise<void> {
    const timer = setTimeout(() => this.#finish(), LINGER_MS);
    try {
      await this.#reading?.catch(() => {});
      // Not the read buffer: the last chunk handed out stays valid.
      const scratch = new Uint8Array(16 * 1024);
      while (this.#state === "closing" && (await this.#conn.read(scratch)) !== null) { /* discard */ }
    } catch {
      // Reset, or closed by the timer: nothing more to wait for.
    } finally {
      clearTimeout(timer);
    }
  }

  abort(reason: unknown = new DOMException("The connection was aborted", "AbortError")): void {
    if (this.#state === "closed") return;
    this.#endRead(reason);
    this.#endWrite({ error: reason, hard: true });
    this.#finish();
  }

  /** The connection broke under a read: both directions fail with `failure`. */
  #broken(failure: TransportError): void {
    this.#endRead(failure);
    this.#endWrite({ error: failure, hard: true });
    this.#finish();
  }

  /** Ends reading: cleanly, or with `error`; a pending read settles at once. */
  #endRead(error?: unknown): void {
    if (this.#readEnd) return;
    this.#readEnd = error === undefined ? {} : { error };
    const pending = this.#pendingRead;
    this.#pendingRead = null;
    if (!pending) return;
    if (error === undefined) pending.resolve(null);
    else pending.reject(error);
  }

  /** Ends writing: a `hard` end errors the writable, a soft one makes later writes reject. */
  #endWrite(end: Ended): void {
    if (!this.#writeEnd || (end.hard && !this.#writeEnd.hard)) this.#writeEnd = end;
    if (end.hard) this.#write?.error(end.error);
    else this.#write?.fail(end.error);
  }

  /** Whether this side will write no more: closed, failed, or half-closed through `writable`. */
  #writeDone(): boolean {
    return this.#writeEnd !== null || (this.#write?.done ?? false);
  }

  #maybeFinish(): void {
    if (this.#readEnd && this.#writeDone() && this.#state === "open") this.#finish();
  }

  #finish(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#endRead();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#resolveClosed();
  }
}

/** Options of {@linkcode TcpTransport}: none yet. */
export type TcpTransportOptions = Record<never, never>;

/**
 * TCP transport for `tcp://HOST:PORT`.
 *
 * @example Echo over loopback
 * ```ts
 * import { TcpTransport } from "./tcp.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const tcp = new TcpTransport();
 * await using listener = await tcp.listen("tcp://127.0.0.1:0", {
 *   onConnection: (conn) => void conn.readable.pipeTo(conn.writable),
 * });
 * const conn = await tcp.dial(listener.addr);
 * const writer = conn.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2, 3]));
 * const reader = conn.readable.getReader();
 * deepEqual((await reader.read()).value, new Uint8Array([1, 2, 3]));
 * await writer.close();
 * await reader.read(); // the echo side closes in turn
 * await conn.closed;
 * ```
 */
export class TcpTransport implements Transport {
  /** `["tcp"]`. */
  readonly schemes: readonly string[] = ["tcp"];

  /** Creates the transport. */
  constructor(_options: TcpTransportOptions = {}) {}

  /**
   * Connects to `tcp://HOST:PORT`.
   *
   * @param addr The address to dial.
   * @param options `signal` aborts the dial (default: a 10 s timeout).
   * @returns The connection.
   * @throws {TypeError|SyntaxError|RangeError} If `addr` is not a valid tcp address.
   * @throws {DialError} If the connection is refused or the host unreachable.
   * @throws The signal's reason, if it aborts first.
   */
  async dial(addr: string, options: DialOptions = {}): Promise<Duplex> {
    const { host, port, scheme } = parseAddress(addr);
    if (scheme !== "tcp") throw new RangeError(`Cannot dial ${JSON.stringify(addr)}: TCP dials tcp:// addresses only`);
    const signal = options.signal ?? AbortSignal.timeout(DEFAULT_DIAL_TIMEOUT_MS);
    signal.throwIfAborted();
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: host, port, signal });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new DialError(`Cannot dial ${addr}: ${describe(error)}`, { cause: error });
    }
    if (signal.aborted) {
      conn.close();
      throw signal.reason;
    }
    return new TcpDuplex(conn);
  }

  /**
   * Listens on `tcp://HOST:PORT`; port 0 picks a free port, given in the listener's `addr`.
   *
   * @param addr The address to bind.
   * @param options `onConnection` receives each accepted connection; `signal` closes the listener.
   * @returns The listener.
   * @throws {TypeError|SyntaxError|RangeError} If `addr` is not a valid tcp address.
   * @throws {AddressInUseError} If the address is already bound.
   * @throws {TransportError} If binding fails otherwise (no such local address, permission).
   */
  // deno-lint-ignore require-await -- async, so that every failure is a rejection
  async listen(addr: string, options: ListenOptions): Promise<Listener> {
    const { host, port, scheme } = parseAddress(addr);
    if (scheme !== "tcp") throw new RangeError(`Cannot listen on ${JSON.stringify(addr)}: TCP listens on tcp:// only`);
    if (typeof options?.onConnection !== "function") {
      throw new TypeError("Cannot listen: options.onConnection must be a function");
    }
    options.signal?.throwIfAborted();
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname: host, port, transport: "tcp" });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new AddressInUseError(`Cannot listen on ${addr}: address already in use`, { cause: error });
      }
      throw new TransportError(`Cannot listen on ${addr}: ${describe(error)}`, { cause: error });
    }
    return new TcpListener(listener, options);
  }
}

class TcpListener implements Listener {
  readonly addr: string;
  #listener: Deno.TcpListener;
  #closed = false;
  #loop: Promise<void>;
  #signal?: AbortSignal;
  #onAbort = () => void this.close();
  #retry?: { id: ReturnType<typeof setTimeout>; resolve: () => void };

  constructor(listener: Deno.TcpListener, options: ListenOptions) {
    this.#listener = listener;
    this.addr = tcpAddr(listener.addr);
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#loop = this.#accept(options.onConnection);
  }

  async #accept(onConnection: (conn: Duplex) => void): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        if (this.#closed) return;
        // A transient failure (too many open files, a connection reset before accept): pause, then go on.
        await new Promise<void>((resolve) => {
          this.#retry = { id: setTimeout(resolve, 50), resolve };
        });
        this.#retry = undefined;
        continue;
      }
      let duplex: Duplex;
      try {
        duplex = new TcpDuplex(conn);
      } catch {
        conn.close(); // reset before we could read its addresses
        continue;
      }
      try {
        onConnection(duplex);
      } catch (error) {
        duplex.abort(error);
      }
    }
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#signal?.removeEventListener("abort", this.#onAbort);
      if (this.#retry) {
        clearTimeout(this.#retry.id);
        this.#retry.resolve();
      }
      try {
        this.#listener.close();
      } catch { /* already closed */ }
    }
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
