/**
 * One part of the DHT simulation's network and its nodes: a
 * {@linkcode MemoryDatagramNetwork} holding the addresses whose last octet
 * modulo the number of shards is this shard's index. The simulation runs one
 * shard in its own thread, or several in workers (`--workers`), one per core:
 * a datagram to another shard's address is forwarded over a `MessagePort` with
 * its due time, so latency and loss stay the sender's draw.
 *
 * The coordinator (`dht_sim.ts`) decides everything random about the run
 * (addresses, keys, bootstrap nodes, who looks up whom, who leaves) and asks
 * the shards through a {@linkcode ShardHandle}; the shards only run nodes.
 *
 * @module
 */

import {
  type ForwardedDatagram,
  MemoryDatagramNetwork,
  type MemoryDatagramNetworkStats,
  type UdpAddr,
} from "../transport/mod.ts";
import { type SimLookup, type SimNode, startBittorrentNode } from "./_dht_sim_bittorrent.ts";

/** What a shard is told when it starts. */
export interface ShardConfig {
  /** Which DHT the nodes run. */
  impl: "nzcore" | "bittorrent-dht";
  /** Disjoint lookup paths of our DHT (its default when absent). */
  paths?: number;
  /** How Sybils answer. */
  sybilMode: "fake" | "junk";
  /** Mean one-way latency: each datagram's is drawn uniformly from half to one and a half times it. */
  latencyMs: number;
  /** Loss rate. */
  loss: number;
  /** Seed of the shards' randoms (latency and loss draws; each shard adds its index). */
  seed: number;
  /** This shard's index, 0 to `count - 1`. */
  index: number;
  /** How many shards there are. */
  count: number;
}

/** A node to start. */
export interface JoinRequest {
  /** Its IPv4 address (one this shard owns) and port. */
  addr: UdpAddr;
  /** 32 bytes of key material (our DHT: the Ed25519 seed; bittorrent-dht: the first 20 bytes are the ID). */
  seed: Uint8Array;
  /** Where it bootstraps from. */
  bootstrap: UdpAddr[];
  /** Whether it is an adversarial node. */
  sybil: boolean;
}

/** What a shard tells about its nodes and network. */
export interface ShardReport {
  /** Routing-table sizes of the honest nodes. */
  contacts: number[];
  /** Lookup queries the Sybils answered. */
  sybilAnswers: number;
  /** The shard's network counters. */
  network: MemoryDatagramNetworkStats;
  /** Event-loop lag samples (ms) since `watchLag` was called. */
  lags: number[];
  /** This thread's JavaScript heap in use, in bytes. */
  heapUsed: number;
}

/** How the coordinator talks to a shard, in this thread or in a worker. */
export interface ShardHandle {
  /** Starts a node; resolves with its DHT ID once it has joined. */
  join(request: JoinRequest): Promise<Uint8Array>;
  /** Runs a lookup from the node at `from` for `target`. */
  lookup(from: UdpAddr, target: Uint8Array): Promise<SimLookup>;
  /** Closes the node at `addr` (it leaves without a word). */
  leave(addr: UdpAddr): Promise<void>;
  /** Starts sampling the event loop's lag. */
  watchLag(): Promise<void>;
  /** The report. */
  report(): Promise<ShardReport>;
  /** Closes every node and the network. */
  close(): Promise<void>;
}

/** The period of the event-loop lag monitor. */
const LAG_TICK_MS = 10;

/** The shard that owns `hostname` (an IPv4 literal): its last octet modulo `count`. */
export function shardOf(hostname: string, count: number): number {
  return count === 1 ? 0 : Number(hostname.slice(hostname.lastIndexOf(".") + 1)) % count;
}

/** A seeded random in [0, 1) (mulberry32: small, fast, and repeatable across runs). */
export function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Factory {
  start(socket: ReturnType<MemoryDatagramNetwork["bind"]>, seed: Uint8Array, bootstrap: UdpAddr[]): Promise<SimNode>;
  startSybil?(
    socket: ReturnType<MemoryDatagramNetwork["bind"]>,
    seed: Uint8Array,
    bootstrap: UdpAddr[],
  ): Promise<SimNode>;
}

/** A shard's network and nodes. */
export class Shard implements ShardHandle {
  /** The network of this shard. */
  readonly network: MemoryDatagramNetwork;
  #config: ShardConfig;
  #factory: Promise<Factory>;
  #nodes = new Map<string, SimNode>();
  #sybils: SimNode[] = [];
  #lags: number[] = [];
  #lagTimer: ReturnType<typeof setInterval> | undefined;

  /**
   * Creates the shard's network; `forward` carries datagrams to the other
   * shards (needed when `config.count` > 1).
   */
  constructor(config: ShardConfig, forward?: (datagram: ForwardedDatagram) => void) {
    this.#config = config;
    const random = seededRandom(config.seed + config.index);
    const latency = config.latencyMs;
    this.network = new MemoryDatagramNetwork({
      latency: () => latency * (0.5 + random()),
      loss: config.loss,
      random,
      peer: config.count > 1 && forward !== undefined
        ? { owns: (to) => shardOf(to.hostname, config.count) !== config.index, forward }
        : undefined,
    });
    this.#factory = config.impl === "bittorrent-dht"
      ? Promise.resolve({ start: startBittorrentNode })
      : import("./_dht_sim_nzcore.ts").then(({ nzcoreFactory }) =>
        nzcoreFactory({ paths: config.paths, sybilMode: config.sybilMode })
      );
  }

  /** Starts a node; resolves with its ID once joined. */
  async join(request: JoinRequest): Promise<Uint8Array> {
    const factory = await this.#factory;
    const socket = this.network.bind(request.addr.hostname, request.addr.port);
    if (request.sybil) {
      if (factory.startSybil === undefined) {
        throw new RangeError(`--sybil: ${this.#config.impl} has no adversarial node`);
      }
      const node = await factory.startSybil(socket, request.seed, request.bootstrap);
      this.#sybils.push(node);
      return node.id;
    }
    const node = await factory.start(socket, request.seed, request.bootstrap);
    this.#nodes.set(key(request.addr), node);
    return node.id;
  }

  /** Runs a lookup from the node at `from`. */
  lookup(from: UdpAddr, target: Uint8Array): Promise<SimLookup> {
    const node = this.#nodes.get(key(from));
    if (node === undefined) return Promise.reject(new RangeError(`no node at ${key(from)} in this shard`));
    return node.lookup(target);
  }

  /** Closes the node at `addr`. */
  async leave(addr: UdpAddr): Promise<void> {
    const node = this.#nodes.get(key(addr));
    if (node === undefined) throw new RangeError(`no node at ${key(addr)} in this shard`);
    this.#nodes.delete(key(addr));
    await node.close();
  }

  /** Starts sampling the event loop's lag. */
  watchLag(): Promise<void> {
    clearInterval(this.#lagTimer);
    this.#lags = [];
    let tickAt = performance.now();
    this.#lagTimer = setInterval(() => {
      const now = performance.now();
      this.#lags.push(Math.max(0, now - tickAt - LAG_TICK_MS));
      tickAt = now;
    }, LAG_TICK_MS);
    return Promise.resolve();
  }

  /** What the coordinator sums up. */
  report(): Promise<ShardReport> {
    clearInterval(this.#lagTimer);
    return Promise.resolve({
      contacts: [...this.#nodes.values()].map((n) => n.contacts()),
      sybilAnswers: this.#sybils.reduce((sum, n) => sum + (n.lookupQueriesAnswered?.() ?? 0), 0),
      network: { ...this.network.stats },
      lags: this.#lags,
      heapUsed: Deno.memoryUsage().heapUsed,
    });
  }

  /** Closes every node and the network. */
  async close(): Promise<void> {
    clearInterval(this.#lagTimer);
    await Promise.all([...this.#nodes.values(), ...this.#sybils].map((n) => n.close()));
    this.#nodes.clear();
    this.network.close();
  }
}

function key(addr: UdpAddr): string {
  return `${addr.hostname}|${addr.port}`;
}

/** A message from the coordinator to a worker. */
export type ToWorker =
  | { type: "init"; config: ShardConfig; peers: (MessagePort | null)[] }
  | { type: "call"; id: number; method: keyof ShardHandle; args: unknown[] };

/** A message from a worker to the coordinator. */
export type FromWorker =
  | { type: "ready" }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; message: string };

/**
 * Serves a {@linkcode Shard} inside a worker: `init` creates it, with one
 * `MessagePort` per other shard for datagrams (batched per turn of the event
 * loop, their buffers transferred), and `call` runs a method.
 */
export function serveShard(scope: {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
}): void {
  let shard: Shard | null = null;
  scope.onmessage = (event) => {
    const message = event.data;
    if (message.type === "init") {
      const { config, peers } = message;
      const outbox: ForwardedDatagram[][] = peers.map(() => []);
      let flushing = false;
      const flush = () => {
        flushing = false;
        outbox.forEach((batch, i) => {
          if (batch.length === 0) return;
          peers[i]!.postMessage(batch, batch.map((d) => d.data.buffer as ArrayBuffer));
          outbox[i] = [];
        });
      };
      shard = new Shard(config, (datagram) => {
        outbox[shardOf(datagram.to.hostname, config.count)].push(datagram);
        if (!flushing) {
          flushing = true;
          queueMicrotask(flush);
        }
      });
      const network = shard.network;
      for (const port of peers) {
        if (port === null) continue;
        port.onmessage = (e: MessageEvent<ForwardedDatagram[]>) => {
          for (const datagram of e.data) network.receiveForwarded(datagram);
        };
      }
      scope.postMessage({ type: "ready" });
      return;
    }
    const { id, method, args } = message;
    const target = shard!;
    (target[method] as (...a: unknown[]) => Promise<unknown>).apply(target, args).then(
      (value) => scope.postMessage({ type: "result", id, value }),
      (error) =>
        scope.postMessage({ type: "error", id, message: error instanceof Error ? error.message : String(error) }),
    );
  };
}

/** Starts `config.count` shards, each in a worker (or, for one shard, in this thread), joined by ports. */
export async function startShards(config: Omit<ShardConfig, "index">): Promise<ShardHandle[]> {
  if (config.count === 1) return [new Shard({ ...config, index: 0 })];
  const channels = new Map<string, MessageChannel>();
  const portFor = (i: number, j: number): MessagePort | null => {
    if (i === j) return null;
    const name = `${Math.min(i, j)}-${Math.max(i, j)}`;
    let channel = channels.get(name);
    if (channel === undefined) channels.set(name, channel = new MessageChannel());
    return i < j ? channel.port1 : channel.port2;
  };
  const handles: ShardHandle[] = [];
  for (let index = 0; index < config.count; index++) {
    const worker = new Worker(new URL("./_dht_sim_worker.ts", import.meta.url).href, { type: "module" });
    const peers = Array.from({ length: config.count }, (_, j) => portFor(index, j));
    const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    let nextId = 0;
    const ready = Promise.withResolvers<void>();
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "ready") return ready.resolve();
      const call = calls.get(message.id);
      calls.delete(message.id);
      if (message.type === "result") call?.resolve(message.value);
      else call?.reject(new Error(`shard ${index}: ${message.message}`));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(`shard ${index} failed: ${event.message}`);
      ready.reject(error);
      for (const call of calls.values()) call.reject(error);
      calls.clear();
    };
    worker.postMessage(
      { type: "init", config: { ...config, index }, peers } satisfies ToWorker,
      peers.filter((p): p is MessagePort => p !== null),
    );
    await ready.promise;
    const call = <T>(method: keyof ShardHandle, ...args: unknown[]) =>
      new Promise<T>((resolve, reject) => {
        const id = nextId++;
        calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
        worker.postMessage({ type: "call", id, method, args } satisfies ToWorker);
      });
    handles.push({
      join: (request) => call("join", request),
      lookup: (from, target) => call("lookup", from, target),
      leave: (addr) => call("leave", addr),
      watchLag: () => call("watchLag"),
      report: () => call("report"),
      close: async () => {
        await call("close");
        worker.terminate();
      },
    });
  }
  return handles;
}
