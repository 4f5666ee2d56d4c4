/**
 * An in-process twin of the network transports for tests of the layers
 * above: `memory://NAME` addresses in one registry per process, connections
 * as pairs of bounded pipes with the same close, abort and backpressure
 * behaviour as TCP.
 *
 * @module
 */

import { AddressInUseError, DialError, TransportError } from "./errors.ts";
import type { DialOptions, Duplex, Listener, ListenOptions, Transport } from "./types.ts";
import { WriteSide } from "./_write_side.ts";

/** Bytes a pipe holds unread before its writer waits, by default. */
export const DEFAULT_MEMORY_BUFFER_SIZE = 64 * 1024;

const NAME = /^[A-Za-z0-9._~-]{1,200}$/;

/** The listening names of this process. */
const registry = new Map<string, MemoryListener>();
let dialers = 0;

function parseMemoryAddress(addr: string, action: "dial" | "listen on"): string {
  if (typeof addr !== "string") {
    throw new TypeError(`Cannot ${action} address: expected a string, got ${addr === null ? "null" : typeof addr}`);
  }
  if (!addr.startsWith("memory://")) {
    throw new RangeError(`Cannot ${action} ${JSON.stringify(addr)}: the memory transport takes memory://NAME only`);
  }
  const name = addr.slice("memory://".length);
  if (!NAME.test(name)) {
    throw new SyntaxError(
      `Cannot ${action} ${JSON.stringify(addr)}: NAME must be 1 to 200 letters, digits, ".", "_", "~" or "-"`,
    );
  }
  return name;
}

/** One end of an in-memory connection. */
class MemoryDuplex implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly localAddr: string;
  readonly remoteAddr: string;
  readonly closed: Promise<void>;
  #peer!: MemoryDuplex;
  #bufferSize: number;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #readDone = false;
  /** Resolved by `pull`, when the reader made room; the peer's writes wait on it. */
  #space: PromiseWithResolvers<void> | null = null;
  #write: WriteSide;
  #state: "open" | "closing" | "closed" = "open";
  #resolveClosed: () => void;

  constructor(localAddr: string, remoteAddr: string, bufferSize: number) {
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    this.#bufferSize = bufferSize;
    const closed = Promise.withResolvers<void>();
    this.closed = closed.promise;
    this.#resolveClosed = closed.resolve;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#wakeWriter(),
      cancel: () => {
        this.#readDone = true;
        this.#wakeWriter();
        this.#maybeFinish();
      },
    }, { highWaterMark: bufferSize, size: (chunk) => chunk.byteLength });
    this.#write = new WriteSide({
      write: (chunk) => this.#send(chunk),
      close: () => {
        this.#peer.#endRead(); // half-close: the peer reads the end and can still answer
        this.#maybeFinish();
        return Promise.resolve();
      },
      abort: (reason) => this.abort(reason),
    }, bufferSize);
    this.writable = this.#write.writable;
  }

  /** Connects two ends. */
  static pair(a: MemoryDuplex, b: MemoryDuplex): void {
    a.#peer = b;
    b.#peer = a;
  }

  async #send(chunk: Uint8Array): Promise<void> {
    const peer = this.#peer;
    for (let offset = 0; offset < chunk.length; offset += this.#bufferSize) {
      while (!peer.#readDone && peer.#controller.desiredSize! <= 0) {
        peer.#space ??= Promise.withResolvers<void>();
        await peer.#space.promise;
      }
      if (this.#state === "closed") throw new TransportError(`Connection to ${this.remoteAddr} is closed`);
      if (peer.#readDone) {
        throw new TransportError(`Cannot write to ${this.remoteAddr}: the peer closed the connection`);
      }
      // A copy: the caller may reuse its buffer once the write resolved, as with a socket.
      peer.#controller.enqueue(chunk.slice(offset, offset + this.#bufferSize));
    }
  }

  #wakeWriter(): void {
    this.#space?.resolve();
    this.#space = null;
  }

  async close(): Promise<void> {
    if (this.#state !== "open") return this.closed;
    this.#state = "closing";
    await this.#write.drained();
    if (this.#state !== "closing") return this.closed; // aborted meanwhile
    this.#write.fail(new TransportError(`Connection to ${this.remoteAddr} is closed`));
    this.#endRead();
    this.#finish();
    this.#peer.#peerClosed();
  }

  /** The peer closed both directions: we read the end, and our writes have nowhere to go. */
  #peerClosed(): void {
    this.#endRead();
    this.#write.fail(new TransportError(`Cannot write to ${this.remoteAddr}: the peer closed the connection`));
    this.#maybeFinish();
  }

  abort(reason: unknown = new DOMException("The connection was aborted", "AbortError")): void {
    if (this.#state === "closed") return;
    this.#endRead(reason);
    this.#write.error(reason);
    this.#finish();
    this.#peer.#reset();
  }

  /** The peer aborted: both directions fail, as after a TCP reset. */
  #reset(): void {
    if (this.#state === "closed") return;
    const error = new TransportError(`Connection to ${this.remoteAddr} was reset by the peer`);
    this.#endRead(error);
    this.#write.error(error);
    this.#finish();
  }

  #endRead(error?: unknown): void {
    if (this.#readDone) return;
    this.#readDone = true;
    if (error === undefined) this.#controller.close();
    else this.#controller.error(error);
    this.#wakeWriter();
    this.#maybeFinish();
  }

  #maybeFinish(): void {
    if (this.#readDone && this.#write.done && this.#state === "open") this.#finish();
  }

  #finish(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#readDone = true;
    this.#wakeWriter();
    this.#peer.#wakeWriter();
    this.#resolveClosed();
  }
}

class MemoryListener implements Listener {
  readonly addr: string;
  readonly bufferSize: number;
  #name: string;
  #onConnection: (conn: Duplex) => void;
  #signal?: AbortSignal;
  #onAbort = () => void this.close();

  constructor(name: string, options: ListenOptions, bufferSize: number) {
    this.#name = name;
    this.addr = `memory://${name}`;
    this.bufferSize = bufferSize;
    this.#onConnection = options.onConnection;
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  accept(dialer: string, bufferSize: number): MemoryDuplex {
    const client = new MemoryDuplex(dialer, this.addr, bufferSize);
    const server = new MemoryDuplex(this.addr, dialer, this.bufferSize);
    MemoryDuplex.pair(client, server);
    queueMicrotask(() => {
      try {
        this.#onConnection(server);
      } catch (error) {
        server.abort(error);
      }
    });
    return client;
  }

  close(): Promise<void> {
    if (registry.get(this.#name) === this) registry.delete(this.#name);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Options of {@linkcode MemoryTransport}. */
export interface MemoryTransportOptions {
  /** Bytes each direction holds unread before writes wait; default {@linkcode DEFAULT_MEMORY_BUFFER_SIZE}. */
  bufferSize?: number;
}

/**
 * In-memory transport for `memory://NAME`. All instances in a process share
 * one registry of names, as hosts share a network.
 *
 * @example Dial a listener by name
 * ```ts
 * import { MemoryTransport } from "./memory.ts";
 * import { equal } from "node:assert/strict";
 *
 * const memory = new MemoryTransport();
 * await using listener = await memory.listen("memory://example", {
 *   onConnection: (conn) => void conn.close(),
 * });
 * const conn = await memory.dial(listener.addr);
 * equal(conn.remoteAddr, "memory://example");
 * equal((await conn.readable.getReader().read()).done, true);
 * await conn.closed;
 * ```
 */
export class MemoryTransport implements Transport {
  /** `["memory"]`. */
  readonly schemes: readonly string[] = ["memory"];
  #bufferSize: number;

  /** Creates the transport. */
  constructor(options: MemoryTransportOptions = {}) {
    const bufferSize = options.bufferSize ?? DEFAULT_MEMORY_BUFFER_SIZE;
    if (!Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new RangeError(`Cannot create memory transport: bufferSize must be a positive integer, got ${bufferSize}`);
    }
    this.#bufferSize = bufferSize;
  }

  /**
   * Connects to a listening `memory://NAME`.
   *
   * @param addr The address to dial.
   * @param options `signal` aborts the dial.
   * @returns The connection.
   * @throws {TypeError|SyntaxError|RangeError} If `addr` is not a valid memory address.
   * @throws {DialError} If nothing listens on the name.
   * @throws The signal's reason, if it is aborted.
   */
  dial(addr: string, options: DialOptions = {}): Promise<Duplex> {
    try {
      const name = parseMemoryAddress(addr, "dial");
      options.signal?.throwIfAborted();
      const listener = registry.get(name);
      if (!listener) throw new DialError(`Cannot dial ${addr}: connection refused (nothing listens on it)`);
      return Promise.resolve(listener.accept(`memory://dialer-${++dialers}`, this.#bufferSize));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Listens on `memory://NAME`.
   *
   * @param addr The address to take.
   * @param options `onConnection` receives each connection; `signal` closes the listener.
   * @returns The listener.
   * @throws {TypeError|SyntaxError|RangeError} If `addr` is not a valid memory address.
   * @throws {AddressInUseError} If the name is taken.
   */
  listen(addr: string, options: ListenOptions): Promise<Listener> {
    try {
      const name = parseMemoryAddress(addr, "listen on");
      if (typeof options?.onConnection !== "function") {
        throw new TypeError("Cannot listen: options.onConnection must be a function");
      }
      options.signal?.throwIfAborted();
      if (registry.has(name)) throw new AddressInUseError(`Cannot listen on ${addr}: address already in use`);
      const listener = new MemoryListener(name, options, this.#bufferSize);
      registry.set(name, listener);
      return Promise.resolve(listener);
    } catch (error) {
      return Promise.reject(error);
    }
  }
}
