/**
 * One UDP socket per node (`udp://HOST:PORT`) on `Deno.listenDatagram`,
 * shared by every protocol that speaks UDP: STUN, the secure channel's
 * datagram mode and the DHT. Each registers a route, a test on a datagram's
 * first bytes; a datagram goes to the first route that matches it, and one no
 * route claims is counted and dropped.
 *
 * This layer knows nothing of the kernel: it moves datagrams, nothing more.
 *
 * @module
 */

import { formatAddress, parseAddress } from "./address.ts";
import { AddressInUseError, TransportError } from "./errors.ts";

/** A UDP endpoint: an IP literal (`203.0.113.7`, `::1`) and a port. */
export interface UdpAddr {
  /** The IP address, as a literal (no brackets around IPv6). */
  hostname: string;
  /** The port, 1-65535 (0 only when binding). */
  port: number;
}

/** Receives one datagram: `data` is the handler's to keep; `from` is where it came from. */
export type DatagramHandler = (data: Uint8Array, from: UdpAddr) => void;

/**
 * Whether a datagram belongs to a route. `from` is where it came from, for a
 * route that claims only one sender's traffic (a TURN client claims only its
 * server's); a match that looks at the bytes alone may leave it out.
 */
export type DatagramMatch = (data: Uint8Array, from: UdpAddr) => boolean;

/** Counters of a {@linkcode UdpSocket}. */
export interface UdpSocketStats {
  /** Datagrams received. */
  received: number;
  /** Datagrams received that no route claimed (dropped). */
  unrouted: number;
  /** Datagrams sent. */
  sent: number;
  /** Sends that failed (unreachable, no route, message too long). */
  sendErrors: number;
}

/** The largest UDP payload over IPv4 (65535 - 20 - 8). */
export const MAX_DATAGRAM_SIZE = 65_507;

/** Room for the largest UDP payload (IPv6: 65535 - 8). */
const RECEIVE_BUFFER_SIZE = 65_536;

/** The STUN magic cookie (RFC 5389, RFC 8489). */
const STUN_MAGIC_COOKIE = 0x2112a442;

/**
 * Whether `data` looks like a STUN message (RFC 8489 section 5): at least the
 * 20-byte header, the two top bits zero, a length that is a multiple of 4, and
 * the magic cookie at bytes 4-7. The channel's datagram mode and the DHT use
 * first bytes of 0x80 and above, so these never collide.
 */
export function isStunDatagram(data: Uint8Array): boolean {
  if (data.length < 20 || (data[0] & 0xc0) !== 0 || (data[3] & 3) !== 0) return false;
  return ((data[4] << 24 | data[5] << 16 | data[6] << 8 | data[7]) >>> 0) === STUN_MAGIC_COOKIE;
}

/** Parses `udp://HOST:PORT` (or a bare `HOST:PORT`) into a {@linkcode UdpAddr}; throws `SyntaxError`. */
export function parseUdpAddr(addr: string): UdpAddr {
  const parsed = parseAddress(addr.includes("://") ? addr : `udp://${addr}`);
  if (parsed.scheme !== "udp") throw new SyntaxError(`not a udp:// address: ${addr}`);
  return { hostname: parsed.host, port: parsed.port };
}

/** Formats a {@linkcode UdpAddr} as `udp://HOST:PORT` (`udp://[::1]:7475` for IPv6). */
export function formatUdpAddr(addr: UdpAddr): string {
  return formatAddress({ scheme: "udp", host: addr.hostname, port: addr.port, path: "" });
}

/** A stable string key of an endpoint, for maps: `HOST|PORT`. */
export function udpAddrKey(addr: UdpAddr): string {
  return `${addr.hostname}|${addr.port}`;
}

/**
 * What carries datagrams for a protocol: the node's {@linkcode UdpSocket}, or
 * something that behaves like one, such as a TURN allocation (its `url` is the
 * relayed address).
 */
export interface PacketSocket {
  /** The local (or relayed) address, as `udp://HOST:PORT`. */
  readonly url: string;
  /** Routes datagrams whose `match` is true to `handler`; returns a function that removes the route. */
  route(match: DatagramMatch, handler: DatagramHandler): () => void;
  /** Sends one datagram to `to`; rejects when the socket is closed or the system refuses. */
  send(data: Uint8Array, to: UdpAddr): Promise<void>;
}

/**
 * Routes of a {@linkcode PacketSocket}: a datagram goes to the earliest route
 * whose `match` is true; a match or handler that throws loses only that
 * datagram (a throwing match is passed over, a throwing handler is logged).
 */
export class DatagramRoutes {
  #routes: { match: DatagramMatch; handler: DatagramHandler }[] = [];
  #label: string;

  /** `label` starts the log line of a handler that throws (`udp`, `turn`). */
  constructor(label: string) {
    this.#label = label;
  }

  /** Adds a route; returns a function that removes it. */
  add(match: DatagramMatch, handler: DatagramHandler): () => void {
    const route = { match, handler };
    this.#routes.push(route);
    return () => {
      const i = this.#routes.indexOf(route);
      if (i >= 0) this.#routes.splice(i, 1);
    };
  }

  /** Hands `data` to the first route that claims it; false when none does. */
  dispatch(data: Uint8Array, from: UdpAddr): boolean {
    for (const route of this.#routes) {
      let matched = false;
      try {
        matched = route.match(data, from);
      } catch {
        continue;
      }
      if (!matched) continue;
      try {
        route.handler(data, from);
      } catch (error) {
        console.warn(`${this.#label}: a handler failed on a datagram from ${formatUdpAddr(from)}: ${describe(error)}`);
      }
      return true;
    }
    return false;
  }
}

/**
 * A bound UDP socket with routes. Create it with {@linkcode UdpSocket.bind};
 * `close()` (or `await using`) releases the port.
 *
 * ```ts
 * import { UdpSocket } from "./udp.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using a = await UdpSocket.bind("udp://127.0.0.1:0");
 * await using b = await UdpSocket.bind("udp://127.0.0.1:0");
 * const got = Promise.withResolvers<Uint8Array>();
 * b.route((data) => data[0] === 0x80, (data) => got.resolve(data));
 * await a.send(new Uint8Array([0x80, 1, 2]), b.addr);
 * deepEqual(await got.promise, new Uint8Array([0x80, 1, 2]));
 * ```
 */
export class UdpSocket implements PacketSocket, AsyncDisposable {
  /** The bound address (port 0 resolved). */
  readonly addr: UdpAddr;
  /** Counters, live. */
  readonly stats: UdpSocketStats = { received: 0, unrouted: 0, sent: 0, sendErrors: 0 };
  #conn: Deno.DatagramConn;
  #routes = new DatagramRoutes("udp");
  #closed = false;
  #loop: Promise<void>;

  private constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
    const local = conn.addr as Deno.NetAddr;
    this.addr = { hostname: local.hostname, port: local.port };
    this.#loop = this.#receiveLoop();
  }

  /**
   * Binds `addr` (`udp://0.0.0.0:7475`, `udp://[::]:0`, or `HOST:PORT`).
   * Throws {@linkcode AddressInUseError} when the port is taken, `SyntaxError`
   * for an address that does not parse.
   */
  static bind(addr: string): Promise<UdpSocket> {
    const { hostname, port } = parseUdpAddr(addr);
    try {
      return Promise.resolve(new UdpSocket(Deno.listenDatagram({ transport: "udp", hostname, port })));
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        return Promise.reject(new AddressInUseError(`udp address in use: ${addr}`, { cause: error }));
      }
      return Promise.reject(new TransportError(`cannot bind ${addr}: ${describe(error)}`, { cause: error }));
    }
  }

  /** The bound address as `udp://HOST:PORT`. */
  get url(): string {
    return formatUdpAddr(this.addr);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends datagrams whose `match` is true to `handler` (the earliest route
   * registered that matches wins). Returns a function that removes the route.
   * A handler that throws loses only that datagram.
   */
  route(match: DatagramMatch, handler: DatagramHandler): () => void {
    return this.#routes.add(match, handler);
  }

  /**
   * Sends one datagram to `to`. Rejects with a {@linkcode TransportError} when
   * the socket is closed or the system refuses (no route, too long); a lost
   * datagram is not an error: UDP does not tell.
   */
  send(data: Uint8Array, to: UdpAddr): Promise<void> {
    if (this.#closed) return Promise.reject(new TransportError("udp socket is closed"));
    // Not an async function: one promise less per datagram, on the path of every packet a session sends.
    return this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port }).then(
      () => {
        this.stats.sent++;
      },
      (error) => {
        this.stats.sendErrors++;
        throw new TransportError(`udp send to ${formatUdpAddr(to)} failed: ${describe(error)}`, { cause: error });
      },
    );
  }

  /** Stops receiving and releases the port. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    await this.#loop;
  }

  /** Same as {@linkcode UdpSocket.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #receiveLoop(): Promise<void> {
    // One buffer for every receive, each datagram copied out at its own size: without a buffer,
    // `receive()` allocates (and zeroes) 64 KiB per datagram, which at 100k datagrams/s is mostly GC.
    const buffer = new Uint8Array(RECEIVE_BUFFER_SIZE);
    while (!this.#closed) {
      let data: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [d, addr] = await this.#conn.receive(buffer);
        data = d.slice();
        from = addr as Deno.NetAddr;
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return;
        }
        // An ICMP error reported on the socket (port unreachable, for one): the socket itself still works.
        continue;
      }
      this.stats.received++;
      this.#dispatch(data, { hostname: from.hostname, port: from.port });
    }
  }

  #dispatch(data: Uint8Array, from: UdpAddr): void {
    if (!this.#routes.dispatch(data, from)) this.stats.unrouted++;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
