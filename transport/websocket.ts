/**
 * WebSocket transport: `ws://HOST:PORT/PATH` and `wss://HOST:PORT/PATH`.
 * Each binary message carries the next piece of the byte stream; a text
 * message is a protocol error that aborts the connection.
 *
 * The server side is {@linkcode acceptWebSocket}, which turns an HTTP upgrade
 * request into a {@linkcode Duplex} inside any `Deno.serve` handler or Hono
 * route; {@linkcode WebSocketTransport.listen} runs a `Deno.serve` of its own
 * that accepts upgrades on one path.
 *
 * Flow control: writes wait while the socket's `bufferedAmount` is above a
 * high-water mark. The WebSocket API cannot pause reading, so received bytes
 * queue in the readable (whose high-water mark is only advisory) up to
 * `readBufferLimit`; a peer that pushes further ahead of the reader gets the
 * connection aborted (close code 4002) instead of filling memory.
 *
 * WebSocket has no half-close: closing the writable closes the connection,
 * and messages the peer sends after that are lost.
 *
 * @module
 */

import { formatAddress, parseAddress, type TransportAddress } from "./address.ts";
import { AddressInUseError, DialError, ProtocolError, TransportError } from "./errors.ts";
import { dialWithRetry, type RetryOptions } from "./retry.ts";
import type { DialOptions, Duplex, Listener, ListenOptions, Transport } from "./types.ts";
import { WriteSide } from "./_write_side.ts";
import { DEFAULT_DIAL_TIMEOUT_MS } from "./tcp.ts";

/** Bytes the readable queues before its high-water mark is reached, by default. */
export const DEFAULT_WS_READ_HIGH_WATER_MARK = 1024 * 1024;
/** Bytes received but not read after which the connection is aborted, by default. */
export const DEFAULT_WS_READ_BUFFER_LIMIT = 16 * 1024 * 1024;
/** `bufferedAmount` above which writes wait, by default. */
export const DEFAULT_WS_WRITE_HIGH_WATER_MARK = 1024 * 1024;

/** The largest message sent: bigger writes are split (peers cap message sizes, Deno at 64 MiB). */
const MAX_MESSAGE = 1024 * 1024;
/** How often a waiting write looks at `bufferedAmount` again, in milliseconds. */
const DRAIN_POLL_MS = 1;

/** Close codes (RFC 6455 section 7.4; 4000-4999 are for applications). */
const CLOSE_NORMAL = 1000;
const CLOSE_NO_STATUS = 1005;
const CLOSE_ABORTED = 4000;
const CLOSE_PROTOCOL = 4001;
const CLOSE_OVERFLOW = 4002;

const CLOSE_MEANINGS: Record<number, string> = {
  [CLOSE_ABORTED]: "aborted by the peer",
  [CLOSE_PROTOCOL]: "closed by the peer for a protocol error",
  [CLOSE_OVERFLOW]: "closed by the peer: we sent faster than it read",
  1006: "lost (closed without a close frame)",
  0: "lost (reset before a close frame arrived)", // what Deno reports after a transport error
};

/** Tuning shared by both sides of a WebSocket connection. */
export interface WebSocketDuplexOptions {
  /** Advisory size of the read queue, in bytes; default {@linkcode DEFAULT_WS_READ_HIGH_WATER_MARK}. */
  readHighWaterMark?: number;
  /** Unread bytes that abort the connection; default {@linkcode DEFAULT_WS_READ_BUFFER_LIMIT}. */
  readBufferLimit?: number;
  /** `bufferedAmount` above which writes wait; default {@linkcode DEFAULT_WS_WRITE_HIGH_WATER_MARK}. */
  writeHighWaterMark?: number;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A WebSocket as a {@linkcode Duplex}. */
class WebSocketDuplex implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly localAddr: string;
  readonly remoteAddr: string;
  readonly closed: Promise<void>;
  #ws: WebSocket;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #readDone = false;
  #readHighWaterMark: number;
  #readBufferLimit: number;
  #writeHighWaterMark: number;
  #write: WriteSide;
  #state: "open" | "closing" | "closed" = "open";
  #closeError: unknown = null;
  #resolveClosed: () => void;

  constructor(ws: WebSocket, localAddr: string, remoteAddr: string, options: WebSocketDuplexOptions) {
    this.#ws = ws;
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    this.#readHighWaterMark = options.readHighWaterMark ?? DEFAULT_WS_READ_HIGH_WATER_MARK;
    this.#readBufferLimit = options.readBufferLimit ?? DEFAULT_WS_READ_BUFFER_LIMIT;
    this.#writeHighWaterMark = options.writeHighWaterMark ?? DEFAULT_WS_WRITE_HIGH_WATER_MARK;
    const closed = Promise.withResolvers<void>();
    this.closed = closed.promise;
    this.#resolveClosed = closed.resolve;
    ws.binaryType = "arraybuffer";
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        this.#readDone = true;
      },
    }, { highWaterMark: this.#readHighWaterMark, size: (chunk) => chunk.byteLength });
    this.#write = new WriteSide({
      write: (chunk) => this.#send(chunk),
      close: () => this.close(),
      abort: (reason) => this.abort(reason),
    }, this.#writeHighWaterMark);
    this.writable = this.#write.writable;
    ws.addEventListener("message", (event) => this.#onMessage(event));
    ws.addEventListener("close", (event) => this.#onClose(event));
  }

  #onMessage(event: MessageEvent): void {
    if (this.#readDone || this.#state === "closed") return;
    if (!(event.data instanceof ArrayBuffer)) {
      this.#fail(new ProtocolError(`${this.remoteAddr} sent a text message; only binary messages are allowed`), {
        code: CLOSE_PROTOCOL,
        reason: "text message",
      });
      return;
    }
    if (event.data.byteLength === 0) return;
    this.#controller.enqueue(new Uint8Array(event.data));
    const unread = this.#readHighWaterMark - this.#controller.desiredSize!;
    if (unread > this.#readBufferLimit) {
      this.#fail(
        new ProtocolError(
          `${this.remoteAddr} sent ${unread} bytes that were not read, more than readBufferLimit ${this.#readBufferLimit}`,
        ),
        { code: CLOSE_OVERFLOW, reason: "read buffer overflow" },
      );
    }
  }

  #onClose(event: CloseEvent): void {
    if (event.code === CLOSE_NORMAL || event.code === CLOSE_NO_STATUS) {
      this.#endRead();
      this.#write.fail(new TransportError(`Connection to ${this.remoteAddr} was closed by the peer`));
    } else {
      const meaning = CLOSE_MEANINGS[event.code] ?? "closed abnormally";
      const error = new TransportError(
        `Connection to ${this.remoteAddr} ${meaning} (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`,
      );
      this.#closeError = error;
      this.#endRead(error);
      this.#write.error(error);
    }
    this.#state = "closed";
    this.#resolveClosed();
  }

  async #send(chunk: Uint8Array): Promise<void> {
    for (let offset = 0; offset < chunk.length; offset += MAX_MESSAGE) {
      while (this.#ws.readyState === WebSocket.OPEN && this.#ws.bufferedAmount > this.#writeHighWaterMark) {
        await delay(DRAIN_POLL_MS);
      }
      if (this.#ws.readyState !== WebSocket.OPEN || this.#state === "closed") {
        // Closing: wait for the close event, which tells whether the peer closed cleanly or cut us off.
        if (this.#state === "open") await this.closed;
        throw this.#closeError ?? new TransportError(`Connection to ${this.remoteAddr} is closed`);
      }
      // send() copies the bytes, so the caller may reuse its buffer once this resolves.
      this.#ws.send(offset === 0 && chunk.length <= MAX_MESSAGE ? chunk : chunk.subarray(offset, offset + MAX_MESSAGE));
    }
  }

  async close(): Promise<void> {
    if (this.#state !== "open") return this.closed;
    this.#state = "closing";
    await this.#write.drained();
    // Queued messages go out before the close frame, but wait for them so a slow link cannot cut them.
    while (this.#ws.readyState === WebSocket.OPEN && this.#ws.bufferedAmount > 0) await delay(DRAIN_POLL_MS);
    if (this.#state !== "closing") return this.closed; // aborted, or closed by the peer, meanwhile
    this.#write.fail(new TransportError(`Connection to ${this.remoteAddr} is closed`));
    this.#endRead();
    this.#closeSocket(CLOSE_NORMAL, "");
    return this.closed;
  }

  abort(reason: unknown = new DOMException("The connection was aborted", "AbortError")): void {
    this.#fail(reason, { code: CLOSE_ABORTED, reason: "aborted" });
  }

  #fail(error: unknown, close: { code: number; reason: string }): void {
    if (this.#state === "closed") return;
    this.#state = "closing";
    this.#endRead(error);
    this.#write.error(error);
    this.#closeSocket(close.code, close.reason);
  }

  #closeSocket(code: number, reason: string): void {
    if (this.#ws.readyState === WebSocket.CLOSED) {
      this.#state = "closed";
      this.#resolveClosed();
      return;
    }
    try {
      this.#ws.close(code, reason);
    } catch { /* already closing */ }
  }

  #endRead(error?: unknown): void {
    if (this.#readDone) return;
    this.#readDone = true;
    if (error === undefined) this.#controller.close();
    else this.#controller.error(error);
  }
}

function wsAddr(scheme: "ws" | "wss", addr: Deno.NetAddr, path = "/"): string {
  return formatAddress({ scheme, host: addr.hostname, port: addr.port, path });
}

/** Options of {@linkcode acceptWebSocket}. */
export interface AcceptWebSocketOptions extends WebSocketDuplexOptions {
  /** Receives the connection once the upgrade completed; it owns it from then on. */
  onConnection: (conn: Duplex) => void;
  /** The connection's `localAddr`; default `ws://0.0.0.0:0/`. */
  localAddr?: string;
  /** The connection's `remoteAddr` (from `Deno.ServeHandlerInfo.remoteAddr`); default `ws://0.0.0.0:0/`. */
  remoteAddr?: string;
  /** Seconds without a pong before the server drops the client (`Deno.upgradeWebSocket`); default 30, 0 disables. */
  idleTimeout?: number;
}

const UNKNOWN_ADDR = "ws://0.0.0.0:0/";

/**
 * Answers an HTTP request with a WebSocket upgrade and hands the connection,
 * once open, to `onConnection`. For a request that is not an upgrade it
 * answers 426 Upgrade Required.
 *
 * @param request The incoming request.
 * @param options `onConnection`, the addresses to report, tuning.
 * @returns The response to send back (101 Switching Protocols, or 426).
 *
 * @example Serve the transport on a Hono-style route of one's own server
 * ```ts
 * import { acceptWebSocket, WebSocketTransport } from "./websocket.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) =>
 *   new URL(request.url).pathname === "/p2p"
 *     ? acceptWebSocket(request, { onConnection: (conn) => void conn.readable.pipeTo(conn.writable) })
 *     : new Response("not found", { status: 404 }));
 * const conn = await new WebSocketTransport().dial(`ws://127.0.0.1:${server.addr.port}/p2p`);
 * const writer = conn.writable.getWriter();
 * await writer.write(new Uint8Array([7]));
 * deepEqual((await conn.readable.getReader().read()).value, new Uint8Array([7]));
 * await writer.close();
 * await server.shutdown();
 * ```
 */
export function acceptWebSocket(request: Request, options: AcceptWebSocketOptions): Response {
  if (typeof options?.onConnection !== "function") {
    throw new TypeError("Cannot accept WebSocket: options.onConnection must be a function");
  }
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("Expected a WebSocket upgrade\n", { status: 426, headers: { upgrade: "websocket" } });
  }
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: options.idleTimeout });
  const duplex = new WebSocketDuplex(
    socket,
    options.localAddr ?? UNKNOWN_ADDR,
    options.remoteAddr ?? UNKNOWN_ADDR,
    options,
  );
  socket.addEventListener("open", () => {
    try {
      options.onConnection(duplex);
    } catch (error) {
      duplex.abort(error);
    }
  }, { once: true });
  return response;
}

/** Options of {@linkcode WebSocketTransport}. */
export interface WebSocketTransportOptions extends WebSocketDuplexOptions {
  /** HTTP client for dials (custom CA certificates for `wss`, proxies). */
  client?: Deno.HttpClient;
  /** Certificate and key (PEM) for `listen("wss://...")`. */
  tls?: { cert: string; key: string };
  /** Retry failed dials with backoff ({@linkcode dialWithRetry}); default: one attempt. */
  retry?: Omit<RetryOptions, "signal">;
}

/**
 * WebSocket transport for `ws://` and `wss://` addresses.
 *
 * @example Echo over a standalone listener
 * ```ts
 * import { WebSocketTransport } from "./websocket.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const ws = new WebSocketTransport();
 * const served: Promise<void>[] = [];
 * const listener = await ws.listen("ws://127.0.0.1:0/p2p", {
 *   onConnection: (conn) => void served.push(conn.readable.pipeTo(conn.writable).catch(() => {})),
 * });
 * const conn = await ws.dial(listener.addr);
 * const writer = conn.writable.getWriter();
 * await writer.write(new Uint8Array([1, 2, 3]));
 * deepEqual((await conn.readable.getReader().read()).value, new Uint8Array([1, 2, 3]));
 * await writer.close();
 * await Promise.all(served);
 * await listener.close();
 * ```
 */
export class WebSocketTransport implements Transport {
  /** `["ws", "wss"]`. */
  readonly schemes: readonly string[] = ["ws", "wss"];
  #options: WebSocketTransportOptions;

  /** Creates the transport. */
  constructor(options: WebSocketTransportOptions = {}) {
    this.#options = options;
  }

  /**
   * Connects to a `ws://` or `wss://` address (TLS by Deno's root store, or `options.client`).
   *
   * @param addr The address to dial.
   * @param options `signal` aborts the dial (default: a 10 s timeout per attempt).
   * @returns The connection, once the upgrade completed.
   * @throws {TypeError|SyntaxError|RangeError} If `addr` is not a valid ws or wss address.
   * @throws {DialError} If the connection or the upgrade fails (refused, 404, TLS).
   * @throws The signal's reason, if it aborts first.
   */
  dial(addr: string, options: DialOptions = {}): Promise<Duplex> {
    const retry = this.#options.retry;
    if (!retry) return this.#dialOnce(addr, options.signal ?? AbortSignal.timeout(DEFAULT_DIAL_TIMEOUT_MS));
    const once: Transport = {
      schemes: this.schemes,
      dial: (a, o) => this.#dialOnce(a, o?.signal ?? AbortSignal.timeout(DEFAULT_DIAL_TIMEOUT_MS)),
      listen: (a, o) => this.listen(a, o),
    };
    return dialWithRetry(once, addr, { ...retry, signal: options.signal });
  }

  async #dialOnce(addr: string, signal: AbortSignal): Promise<Duplex> {
    const parsed = parseAddress(addr);
    if (parsed.scheme === "tcp") {
      throw new RangeError(`Cannot dial ${JSON.stringify(addr)}: WebSocket dials ws:// and wss:// addresses only`);
    }
    signal.throwIfAborted();
    const url = formatAddress(parsed);
    const client = this.#options.client;
    const ws = client ? new WebSocket(url, { client }) : new WebSocket(url);
    const duplex = new WebSocketDuplex(ws, `${parsed.scheme}://0.0.0.0:0/`, url, this.#options);
    const { promise, resolve, reject } = Promise.withResolvers<Duplex>();
    const onOpen = () => resolve(duplex);
    const onError = (event: Event) => {
      const message = (event as ErrorEvent).message || "connection failed";
      reject(new DialError(`Cannot dial ${addr}: ${message}`));
    };
    const onClose = (event: CloseEvent) => reject(new DialError(`Cannot dial ${addr}: closed (code ${event.code})`));
    const onAbort = () => {
      reject(signal.reason);
      duplex.abort(signal.reason);
    };
    ws.addEventListener("open", onOpen);
    ws.addEventListener("error", onError);
    ws.addEventListener("close", onClose);
    signal.addEventListener("abort", onAbort);
    try {
      return await promise;
    } finally {
      ws.removeEventListener("open", onOpen);
      ws.removeEventListener("error", onError);
      ws.removeEventListener("close", onClose);
      signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Serves WebSocket upgrades on `ws://HOST:PORT/PATH` (`wss` with `options.tls`)
   * with a `Deno.serve` of its own; other paths get 404. Port 0 picks a free
   * port, given in the listener's `addr`.
   *
   * Closing the listener refuses new upgrades (503) at once; the port is
   * released when the last connection it accepted has closed, since shutting
   * the HTTP server down would close them.
   *
   * @param addr The address to bind and the path to accept.
   * @param options `onConnection` receives each connection; `signal` closes the listener.
   * @returns The listener.
   * @throws {TypeError|SyntaxError|RangeError} If `addr` is not a valid address, or `wss` lacks `tls`.
   * @throws {AddressInUseError} If the address is already bound.
   * @throws {TransportError} If binding fails otherwise.
   */
  listen(addr: string, options: ListenOptions): Promise<Listener> {
    try {
      const parsed = parseAddress(addr);
      if (parsed.scheme === "tcp") {
        throw new RangeError(`Cannot listen on ${JSON.stringify(addr)}: WebSocket listens on ws:// and wss:// only`);
      }
      if (parsed.scheme === "wss" && !this.#options.tls) {
        throw new TypeError(`Cannot listen on ${addr}: wss needs the transport's options.tls (cert and key)`);
      }
      if (typeof options?.onConnection !== "function") {
        throw new TypeError("Cannot listen: options.onConnection must be a function");
      }
      options.signal?.throwIfAborted();
      return Promise.resolve(new WebSocketListener(parsed, addr, options, this.#options));
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

class WebSocketListener implements Listener {
  readonly addr: string;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #closing = false;
  #live = new Set<Duplex>();
  #shutdown: Promise<void> | null = null;
  #signal?: AbortSignal;
  #onAbort = () => void this.close();

  constructor(parsed: TransportAddress, addr: string, options: ListenOptions, transport: WebSocketTransportOptions) {
    const scheme = parsed.scheme as "ws" | "wss";
    const tls = scheme === "wss" ? transport.tls : undefined;
    try {
      this.#server = Deno.serve({
        hostname: parsed.host,
        port: parsed.port,
        ...(tls ?? {}),
        onListen: () => {},
        onError: () => new Response("Internal error\n", { status: 500 }),
      }, (request, info) => this.#handle(request, info, options.onConnection, transport, parsed.path));
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new AddressInUseError(`Cannot listen on ${addr}: address already in use`, { cause: error });
      }
      throw new TransportError(`Cannot listen on ${addr}: ${error instanceof Error ? error.message : error}`, {
        cause: error,
      });
    }
    this.addr = wsAddr(scheme, this.#server.addr, parsed.path);
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  #handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
    onConnection: (conn: Duplex) => void,
    options: WebSocketTransportOptions,
    path: string,
  ): Response {
    if (this.#closing) return new Response("Not accepting connections\n", { status: 503 });
    const url = new URL(request.url);
    if (url.pathname + url.search !== path) return new Response("Not found\n", { status: 404 });
    const scheme = this.addr.startsWith("wss:") ? "wss" : "ws";
    return acceptWebSocket(request, {
      ...options,
      localAddr: this.addr,
      remoteAddr: wsAddr(scheme, info.remoteAddr),
      onConnection: (conn) => {
        if (this.#closing) return conn.abort(new TransportError("The listener was closed"));
        this.#live.add(conn);
        void conn.closed.then(() => {
          this.#live.delete(conn);
          if (this.#closing && this.#live.size === 0) void this.#stopServer();
        });
        onConnection(conn);
      },
    });
  }

  #stopServer(): Promise<void> {
    this.#shutdown ??= this.#server.shutdown();
    return this.#shutdown;
  }

  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#signal?.removeEventListener("abort", this.#onAbort);
    }
    if (this.#live.size === 0) await this.#stopServer();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
