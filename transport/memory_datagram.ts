/**
 * An in-process datagram network: the twin of {@linkcode UdpSocket} for tests
 * and simulations that run many nodes in one process (the DHT simulation runs
 * 10,000). Sockets bind `HOST:PORT` on one {@linkcode MemoryDatagramNetwork};
 * a datagram sent to an address arrives there after the network's latency, or
 * is lost at its loss rate, or vanishes when nobody is bound there, as UDP's
 * do. Routing is the same {@linkcode DatagramRoutes} as the UDP socket's.
 *
 * Deliveries wait in one queue ordered by due time, under one timer: 10,000
 * nodes with thousands of datagrams in flight cost one `setTimeout`, and the
 * datagrams that fall due together are delivered in one batch.
 *
 * @module
 */

import { AddressInUseError, TransportError } from "./errors.ts";
import { canonicalIp, parseIp } from "./ip.ts";
import {
  type DatagramHandler,
  type DatagramMatch,
  DatagramRoutes,
  formatUdpAddr,
  MAX_DATAGRAM_SIZE,
  type PacketSocket,
  type UdpAddr,
  type UdpSocketStats,
} from "./udp.ts";

/** How long a datagram from `from` to `to` takes, in milliseconds (a function may add jitter). */
export type MemoryLatency = number | ((from: UdpAddr, to: UdpAddr) => number);

/** Options of a {@linkcode MemoryDatagramNetwork}. */
export interface MemoryDatagramNetworkOptions {
  /** One-way delay of every datagram in ms, or a function of the two ends; 0 by default (still asynchronous). */
  latency?: MemoryLatency;
  /** The probability, 0 to 1, that a datagram is lost; 0 by default. */
  loss?: number;
  /** The random source for losses, [0, 1) like `Math.random` (the default); pass a seeded one for repeatable runs. */
  random?: () => number;
  /**
   * Another part of the network, holding the addresses `owns` names (another
   * worker's network, when a simulation is split across threads): datagrams
   * to them are handed to `forward`, after the loss draw, with their due time;
   * the other side passes them to its {@linkcode MemoryDatagramNetwork.receiveForwarded}.
   */
  peer?: MemoryDatagramPeer;
}

/** Where a {@linkcode MemoryDatagramNetwork} sends datagrams for addresses it does not hold. */
export interface MemoryDatagramPeer {
  /** Whether `to` belongs to the other part (whether or not a socket is bound there now). */
  owns(to: UdpAddr): boolean;
  /** Takes one datagram (its bytes are the peer's to keep). */
  forward(datagram: ForwardedDatagram): void;
}

/** A datagram on its way to another part of the network. */
export interface ForwardedDatagram {
  /** The bytes (a copy). */
  data: Uint8Array;
  /** The sender. */
  from: UdpAddr;
  /** The destination. */
  to: UdpAddr;
  /** When it is due, in ms since the epoch (`performance.timeOrigin + performance.now()`, the same in every worker). */
  due: number;
}

/** Counters of a {@linkcode MemoryDatagramNetwork}, over all its sockets. */
export interface MemoryDatagramNetworkStats {
  /** Datagrams accepted by `send`. */
  sent: number;
  /** Datagrams handed to a bound socket. */
  delivered: number;
  /** Datagrams dropped at the loss rate. */
  lost: number;
  /** Datagrams that arrived where no socket was bound (never bound, or closed in the meantime). */
  unreachable: number;
  /** Datagrams handed to the peer (counted in `sent` here, and in `delivered` or `unreachable` there). */
  forwarded: number;
  /** Bytes of the datagrams accepted by `send`. */
  bytes: number;
}

/** The first port given to a socket bound on port 0 (the IANA dynamic range, RFC 6335 section 6). */
const EPHEMERAL_PORT_MIN = 49_152;
const PORT_MAX = 65_535;

/** One datagram on its way. */
interface Delivery {
  due: number;
  /** Tie-breaker, so datagrams due at the same time arrive in the order they were sent. */
  order: number;
  data: Uint8Array;
  from: UdpAddr;
  to: string;
}

/**
 * A network of datagram sockets in one process, with latency and loss.
 *
 * ```ts
 * import { MemoryDatagramNetwork } from "./memory_datagram.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * using network = new MemoryDatagramNetwork({ latency: 5 });
 * const a = network.bind("198.51.100.1", 4000);
 * const b = network.bind("203.0.113.9", 4000);
 * const got = Promise.withResolvers<[Uint8Array, string]>();
 * b.route((data) => data[0] === 0x80, (data, from) => got.resolve([data, `${from.hostname}:${from.port}`]));
 * await a.send(new Uint8Array([0x80, 1]), b.addr);
 * deepEqual(await got.promise, [new Uint8Array([0x80, 1]), "198.51.100.1:4000"]);
 * ```
 */
export class MemoryDatagramNetwork implements Disposable {
  /** Counters, live. */
  readonly stats: MemoryDatagramNetworkStats = {
    sent: 0,
    delivered: 0,
    lost: 0,
    unreachable: 0,
    forwarded: 0,
    bytes: 0,
  };
  #latency: MemoryLatency;
  #loss: number;
  #random: () => number;
  #peer: MemoryDatagramPeer | undefined;
  #sockets = new Map<string, { socket: MemoryDatagramSocket; routes: DatagramRoutes }>();
  #queue: Delivery[] = [];
  #order = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerDue = Infinity;

  /** Creates a network; throws `RangeError` for a negative latency or a loss rate outside [0, 1]. */
  constructor(options: MemoryDatagramNetworkOptions = {}) {
    const { latency = 0, loss = 0, random = Math.random, peer } = options;
    if (typeof latency === "number" && !(Number.isFinite(latency) && latency >= 0)) {
      throw new RangeError(`Cannot create a memory network: latency must be a finite number >= 0, got ${latency}`);
    }
    if (typeof latency !== "number" && typeof latency !== "function") {
      throw new TypeError(`Cannot create a memory network: latency must be a number or a function`);
    }
    if (typeof loss !== "number" || !(loss >= 0 && loss <= 1)) {
      throw new RangeError(`Cannot create a memory network: loss must be between 0 and 1, got ${loss}`);
    }
    if (typeof random !== "function") throw new TypeError(`Cannot create a memory network: random must be a function`);
    this.#latency = latency;
    this.#loss = loss;
    this.#random = random;
    this.#peer = peer;
  }

  /** How many sockets are bound. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Datagrams sent and not yet delivered, lost or dropped. */
  get inFlight(): number {
    return this.#queue.length;
  }

  /**
   * Binds `hostname` (an IP literal, not the unspecified address) and `port`
   * (0 picks a free one from 49152 up). Throws {@linkcode AddressInUseError}
   * when a socket of this network holds the address, `SyntaxError` for a
   * hostname that is not an IP literal, `RangeError` for a bad port.
   */
  bind(hostname: string, port: number): MemoryDatagramSocket {
    if (typeof hostname !== "string") throw new TypeError(`Cannot bind: hostname must be a string`);
    const ip = parseIp(hostname);
    if (ip === null) {
      throw new SyntaxError(`Cannot bind: hostname must be an IP literal, got ${JSON.stringify(hostname)}`);
    }
    if (ip.every((b) => b === 0)) {
      throw new RangeError(
        `Cannot bind: hostname ${hostname} is the unspecified address; a memory socket has one address`,
      );
    }
    if (!Number.isInteger(port) || port < 0 || port > PORT_MAX) {
      throw new RangeError(`Cannot bind: port must be an integer from 0 to 65535, got ${port}`);
    }
    const host = canonicalIp(hostname);
    if (port === 0) port = this.#freePort(host);
    const key = `${host}|${port}`;
    if (this.#sockets.has(key)) {
      throw new AddressInUseError(`udp address in use: ${formatUdpAddr({ hostname: host, port })}`);
    }
    const addr = { hostname: host, port };
    const routes = new DatagramRoutes("memory-udp");
    const socket = new MemoryDatagramSocket(addr, {
      routes,
      transmit: (data, to) => this.#send(data, addr, to),
      unbind: () => this.#sockets.delete(key),
    });
    this.#sockets.set(key, { socket, routes });
    return socket;
  }

  /** Closes every socket and drops the datagrams in flight. */
  close(): void {
    for (const { socket } of [...this.#sockets.values()]) socket.close();
    this.#queue = [];
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
  }

  /** Same as {@linkcode MemoryDatagramNetwork.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Queues a copy of `data` from `from` to `to`. */
  #send(data: Uint8Array, from: UdpAddr, to: UdpAddr): void {
    const latency = typeof this.#latency === "number" ? this.#latency : this.#latency(from, to);
    if (!(Number.isFinite(latency) && latency >= 0)) {
      throw new RangeError(`latency from ${formatUdpAddr(from)} to ${formatUdpAddr(to)} is ${latency}, expected >= 0`);
    }
    this.stats.sent++;
    this.stats.bytes += data.length;
    if (this.#loss > 0 && this.#random() < this.#loss) {
      this.stats.lost++;
      return;
    }
    const copy = { data: data.slice(), from: { hostname: from.hostname, port: from.port } };
    if (this.#peer?.owns(to)) {
      this.stats.forwarded++;
      const due = performance.timeOrigin + performance.now() + latency;
      this.#peer.forward({ ...copy, to: { hostname: to.hostname, port: to.port }, due });
      return;
    }
    this.#enqueue(copy.data, copy.from, `${to.hostname}|${to.port}`, performance.now() + latency);
  }

  /**
   * Takes a datagram the other part of the network forwarded (see
   * {@linkcode MemoryDatagramNetworkOptions.peer}): it arrives at its due
   * time, or at once when that has passed. Throws `TypeError` for a malformed
   * one.
   */
  receiveForwarded(datagram: ForwardedDatagram): void {
    const { data, from, to, due } = datagram;
    if (!(data instanceof Uint8Array) || typeof from?.hostname !== "string" || typeof to?.hostname !== "string") {
      throw new TypeError("Cannot receive a forwarded datagram: expected { data, from, to, due }");
    }
    if (!Number.isFinite(due)) throw new TypeError(`Cannot receive a forwarded datagram: due is ${due}`);
    this.#enqueue(
      data,
      { hostname: from.hostname, port: from.port },
      `${to.hostname}|${to.port}`,
      due - performance.timeOrigin,
    );
  }

  #enqueue(data: Uint8Array, from: UdpAddr, to: string, due: number): void {
    const delivery: Delivery = { due, order: this.#order++, data, from, to };
    this.#push(delivery);
    if (delivery.due < this.#timerDue) this.#arm(delivery.due);
  }

  #freePort(host: string): number {
    for (let port = EPHEMERAL_PORT_MIN; port <= PORT_MAX; port++) {
      if (!this.#sockets.has(`${host}|${port}`)) return port;
    }
    throw new AddressInUseError(`udp address in use: no free port left on ${host}`);
  }

  #arm(due: number): void {
    clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => this.#deliverDue(), Math.max(0, due - performance.now()));
  }

  #deliverDue(): void {
    this.#timer = undefined;
    this.#timerDue = Infinity;
    // Timers fire on whole milliseconds: what falls due within the next one goes in this batch.
    const now = performance.now() + 1;
    while (this.#queue.length > 0 && this.#queue[0].due <= now) {
      const delivery = this.#pop();
      const bound = this.#boundAt(delivery.to);
      if (bound === undefined) {
        this.stats.unreachable++;
        continue;
      }
      this.stats.delivered++;
      bound.socket.stats.received++;
      if (!bound.routes.dispatch(delivery.data, delivery.from)) bound.socket.stats.unrouted++;
    }
    if (this.#queue.length > 0 && this.#timer === undefined) this.#arm(this.#queue[0].due);
  }

  #boundAt(key: string): { socket: MemoryDatagramSocket; routes: DatagramRoutes } | undefined {
    const bound = this.#sockets.get(key);
    if (bound !== undefined) return bound;
    // The sender wrote the host in a form other than the canonical one (`::0001`).
    const bar = key.lastIndexOf("|");
    return this.#sockets.get(`${canonicalIp(key.slice(0, bar))}${key.slice(bar)}`);
  }

  // A binary min-heap on (due, order).
  #push(delivery: Delivery): void {
    const heap = this.#queue;
    heap.push(delivery);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(delivery, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = delivery;
  }

  #pop(): Delivery {
    const heap = this.#queue;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && earlier(heap[right], heap[left]) ? right : left;
        if (!earlier(heap[child], last)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}

function earlier(a: Delivery, b: Delivery): boolean {
  return a.due < b.due || (a.due === b.due && a.order < b.order);
}

/** What ties a {@linkcode MemoryDatagramSocket} to its network. */
export interface MemoryDatagramLink {
  /** The socket's routes; the network dispatches arriving datagrams through them. */
  routes: DatagramRoutes;
  /** Puts a datagram on the network; throws `RangeError` when the latency function returns a bad delay. */
  transmit(data: Uint8Array, to: UdpAddr): void;
  /** Frees the socket's address. */
  unbind(): void;
}

/**
 * A socket of a {@linkcode MemoryDatagramNetwork}: a {@linkcode PacketSocket}
 * like the node's {@linkcode UdpSocket}, made by
 * {@linkcode MemoryDatagramNetwork.bind}.
 */
export class MemoryDatagramSocket implements PacketSocket, AsyncDisposable {
  /** The bound address. */
  readonly addr: UdpAddr;
  /** Counters, live. */
  readonly stats: UdpSocketStats = { received: 0, unrouted: 0, sent: 0, sendErrors: 0 };
  #link: MemoryDatagramLink;
  #closed = false;

  /** Made by {@linkcode MemoryDatagramNetwork.bind}, which holds the other end of `link`. */
  constructor(addr: UdpAddr, link: MemoryDatagramLink) {
    this.addr = addr;
    this.#link = link;
  }

  /** The bound address as `udp://HOST:PORT`. */
  get url(): string {
    return formatUdpAddr(this.addr);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Routes datagrams whose `match` is true to `handler` (the earliest matching route wins); returns its remover. */
  route(match: DatagramMatch, handler: DatagramHandler): () => void {
    return this.#link.routes.add(match, handler);
  }

  /**
   * Sends a copy of `data` to `to`. Rejects with a {@linkcode TransportError}
   * when the socket is closed or `data` is longer than a UDP payload, and with
   * `TypeError`/`RangeError` for a malformed `to`; a lost datagram is not an
   * error, as with UDP.
   */
  send(data: Uint8Array, to: UdpAddr): Promise<void> {
    try {
      if (this.#closed) throw new TransportError("udp socket is closed");
      if (!(data instanceof Uint8Array)) throw new TypeError("Cannot send: data must be a Uint8Array");
      if (data.length > MAX_DATAGRAM_SIZE) {
        throw new TransportError(`udp send failed: message too long (${data.length} > ${MAX_DATAGRAM_SIZE} bytes)`);
      }
      if (to === null || typeof to !== "object" || typeof to.hostname !== "string") {
        throw new TypeError("Cannot send: to must be a { hostname, port }");
      }
      if (!Number.isInteger(to.port) || to.port < 1 || to.port > PORT_MAX) {
        throw new RangeError(`Cannot send: to.port must be an integer from 1 to 65535, got ${to.port}`);
      }
      this.#link.transmit(data, to);
      this.stats.sent++;
      return Promise.resolve();
    } catch (error) {
      this.stats.sendErrors++;
      return Promise.reject(error);
    }
  }

  /** Unbinds the address (datagrams still on their way to it are dropped). Safe to call twice. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#link.unbind();
    }
    return Promise.resolve();
  }

  /** Same as {@linkcode MemoryDatagramSocket.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
