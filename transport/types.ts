/**
 * The transport interface: dialing and listening yield a {@linkcode Duplex},
 * a byte stream with close and abort. Implementations: `tcp.ts`
 * (`tcp://HOST:PORT`), `websocket.ts` (`ws://HOST:PORT/PATH`,
 * `wss://...`) and `memory.ts` (an in-process twin for tests). Framing on top
 * of a byte stream lives in `framing.ts`.
 *
 * This layer knows nothing of `kernel/`: no identities, no crypto.
 *
 * @module
 */

/**
 * A connected, ordered, reliable byte stream.
 *
 * Closing follows TCP: closing `writable` is a half-close (the peer's
 * `readable` ends, and the peer may still answer), `close()` ends both
 * directions. WebSocket has no half-close, so there closing `writable` closes
 * the connection. Chunks read from `readable` may be views into larger
 * buffers; they are never reused.
 *
 * A transport may also offer {@linkcode Duplex.read} and {@linkcode Duplex.write}:
 * the same bytes without web streams (no stream objects, no promise per queued
 * chunk), for a single consumer such as `createFrameIO`. Use either those or
 * `readable`/`writable` on one connection, never both. Unlike the readable's,
 * a chunk from `read()` is lent: the transport may read the next bytes into the
 * same buffer, so it is valid only until the next `read()`; copy what you keep.
 */
export interface Duplex {
  /** Bytes from the peer; ends when the peer closes its side, errors when the connection breaks or is aborted. */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * Bytes to the peer; a write resolves once the transport has taken the bytes (backpressure), after which the
   * caller may reuse its buffer. Writes reject once the connection is closed.
   */
  readonly writable: WritableStream<Uint8Array>;
  /**
   * Optional fast path: the next chunk from the peer, or `null` once the peer closed its side (or `close()` was
   * called). The chunk is valid until the next `read()` call, which may reuse its buffer. One read at a time: a
   * second call while one is pending rejects with `TypeError`. Rejects as `readable` errors (a broken connection,
   * or the reason given to `abort()`). Not to be mixed with `readable`.
   */
  read?(): Promise<Uint8Array | null>;
  /**
   * Optional fast path: sends `chunk`, resolving once the transport took the bytes (backpressure), after which
   * the caller may reuse its buffer. Writes may overlap; they go out in call order. Rejects as writes to
   * `writable` do. Not to be mixed with `writable`; `close()` flushes these writes too.
   */
  write?(chunk: Uint8Array): Promise<void>;
  /** The local address, as a transport address (`tcp://127.0.0.1:4001`). */
  readonly localAddr: string;
  /** The remote address, as a transport address. */
  readonly remoteAddr: string;
  /**
   * Flushes what was written, then closes both directions: the readable ends, later writes reject. Safe to call
   * twice.
   */
  close(): Promise<void>;
  /** Closes at once, dropping what is unsent; pending reads and writes reject with `reason`. */
  abort(reason?: unknown): void;
  /**
   * Resolves when the connection is closed, whichever side closed it: after `close()` or `abort()`, a broken
   * connection, or both directions ended. (Over TCP a peer's full close is seen as the end of `readable`, plus a
   * failed write if this side keeps writing.) Never rejects.
   */
  readonly closed: Promise<void>;
}

/** Options of {@linkcode Transport.dial}. */
export interface DialOptions {
  /** Aborts the dial; the default is a timeout of 10 s. */
  signal?: AbortSignal;
}

/** A listening socket, held until closed. */
export interface Listener extends AsyncDisposable {
  /** The address actually bound (port 0 resolved), as a transport address. */
  readonly addr: string;
  /** Stops accepting; connections already accepted stay open. */
  close(): Promise<void>;
}

/** Options of {@linkcode Transport.listen}. */
export interface ListenOptions {
  /** Called with each accepted connection; it owns the connection from then on. */
  onConnection: (conn: Duplex) => void;
  /** Aborting closes the listener. */
  signal?: AbortSignal;
}

/** One way of reaching peers: a URL scheme and how to dial and listen on it. */
export interface Transport {
  /** The URL schemes this transport handles, without the colon (`["tcp"]`, `["ws", "wss"]`). */
  readonly schemes: readonly string[];
  /** Opens a connection to `addr`. */
  dial(addr: string, options?: DialOptions): Promise<Duplex>;
  /** Listens on `addr` (port 0 picks a free port). */
  listen(addr: string, options: ListenOptions): Promise<Listener>;
}
