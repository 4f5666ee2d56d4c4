/**
 * The established implementation the DHT simulation runs side by side with
 * ours: webtorrent's `bittorrent-dht` (BEP 5 Kademlia: k = 20, 160-bit IDs,
 * lookups through `k-rpc` with up to 16 queries in flight, a query timing out
 * after about 2 s), unmodified, each node on a socket of the same
 * {@linkcode MemoryDatagramNetwork} our DHT runs on.
 *
 * `k-rpc-socket` takes any dgram-like socket as its `socket` option (it calls
 * `send(buf, offset, length, port, host, cb)`, `bind`, `address`, `close` and
 * listens for `message`); {@linkcode DgramAdapter} is that over a memory
 * socket.
 *
 * A lookup is `k-rpc`'s iterative FIND_NODE (`rpc.closest`, which the
 * library's own `lookup`, `get` and `announce` run with other queries): it
 * goes on until the k closest nodes it heard of have all answered or timed
 * out, so the simulation records both the time until it returned and the
 * time until the target answered. Hops are counted as our DHT counts them
 * (`LookupResult.hops`), from the replies `closest` hands to a visitor: a
 * contact of the node's own routing table (or a bootstrap node) is hop 1, a
 * contact learned from the reply of a hop-h node is hop h + 1 (the lowest
 * such h while it has not answered), and a lookup's hops are those of the
 * target when it answered: the length of the query chain that reached it.
 * The lookup succeeds when the target itself answers.
 *
 * @module
 */

import DHT from "bittorrent-dht";
import { Buffer } from "node:buffer";
import { EventEmitter } from "node:events";
import type { MemoryDatagramSocket, UdpAddr } from "../transport/mod.ts";

/** The parts of `bittorrent-dht`'s DHT class (no types ship with it) that the simulation uses. */
interface BtDht extends EventEmitter {
  nodeId: Buffer;
  nodes: { count(): number; toArray(): { id: Buffer; host: string; port: number }[] };
  _rpc: {
    closest(
      target: Buffer,
      message: { q: string; a: Record<string, unknown> },
      visit: (reply: { r?: { id?: Buffer; nodes?: Buffer } }) => boolean | void,
      done: (error: Error | null, replies: number) => void,
    ): void;
  };
  listen(port: number, host: string, onListening?: () => void): void;
  destroy(done?: () => void): void;
}

/** The outcome of one lookup, as the simulation records it for either implementation. */
export interface SimLookup {
  /** Whether the target node itself was found (it answered). */
  found: boolean;
  /** Queries on the chain that led to the target (see the module doc). */
  hops: number;
  /** Queries that were answered. */
  answered: number;
  /** Queries that timed out or failed, when the implementation tells. */
  failed?: number;
  /** Wall time of the whole lookup, until it returned. */
  ms: number;
  /** Wall time until the target answered, when it did. */
  targetMs?: number;
}

/** One node of the simulation, whatever the implementation. */
export interface SimNode {
  /** The node's DHT ID. */
  readonly id: Uint8Array;
  /** Where it is bound. */
  readonly addr: UdpAddr;
  /** How many contacts its routing table holds. */
  contacts(): number;
  /** An iterative FIND_NODE for `target`. */
  lookup(target: Uint8Array): Promise<SimLookup>;
  /** Leaves the network (closes the socket). */
  close(): Promise<void>;
  /** Lookup queries (FIND_NODE, FIND_VALUE) it answered, when it counts them (the Sybils do). */
  lookupQueriesAnswered?(): number;
}

/** A dgram-like socket (the part of `node:dgram`'s Socket that `k-rpc-socket` uses) over a memory socket. */
export class DgramAdapter extends EventEmitter {
  #socket: MemoryDatagramSocket;

  /** Wraps `socket`; every datagram it receives is emitted as `message`. */
  constructor(socket: MemoryDatagramSocket) {
    super();
    this.#socket = socket;
    socket.route(() => true, (data, from) => {
      this.emit("message", Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
        address: from.hostname,
        family: "IPv4",
        port: from.port,
        size: data.byteLength,
      });
    });
  }

  /** The memory socket is bound already: emits `listening` on the next tick. */
  bind(...args: unknown[]): void {
    const callback = args.find((a) => typeof a === "function") as (() => void) | undefined;
    queueMicrotask(() => {
      this.emit("listening");
      callback?.();
    });
  }

  /** The bound address, as `dgram` gives it. */
  address(): { address: string; family: string; port: number } {
    return { address: this.#socket.addr.hostname, family: "IPv4", port: this.#socket.addr.port };
  }

  /** `dgram`'s `send(buf, offset, length, port, host, cb)`. */
  send(
    buf: Uint8Array,
    offset: number,
    length: number,
    port: number,
    host: string,
    callback?: (error: Error | null) => void,
  ): void {
    this.#socket.send(buf.subarray(offset, offset + length), { hostname: host, port }).then(
      () => callback?.(null),
      (error) => callback?.(error),
    );
  }

  /** Closes the memory socket and emits `close`. */
  close(): void {
    this.#socket.close().then(() => this.emit("close"));
  }
}

/**
 * Starts a `bittorrent-dht` node on `socket` whose ID is the first 20 bytes of
 * `seed`, bootstrapping from `bootstrap`; resolves once its bootstrap lookup
 * is done (`ready`).
 */
export function startBittorrentNode(
  socket: MemoryDatagramSocket,
  seed: Uint8Array,
  bootstrap: readonly UdpAddr[],
): Promise<SimNode> {
  const id = seed.slice(0, 20);
  const dht = new DHT({
    socket: new DgramAdapter(socket),
    nodeId: Buffer.from(id),
    bootstrap: bootstrap.length > 0 ? bootstrap.map((a) => `${a.hostname}:${a.port}`) : false,
  }) as unknown as BtDht;
  // Warnings are the library's own notes on odd packets (late replies, for one): counted nowhere, like on the internet.
  dht.on("warning", () => {});
  dht.on("error", () => {});
  dht.listen(socket.addr.port, socket.addr.hostname);
  const node: SimNode = {
    id,
    addr: socket.addr,
    contacts: () => dht.nodes.count(),
    lookup: (target) => lookup(dht, target),
    close: () => new Promise<void>((resolve) => dht.destroy(() => resolve())),
  };
  const ready = Promise.withResolvers<SimNode>();
  dht.once("ready", () => ready.resolve(node));
  return ready.promise;
}

function lookup(dht: BtDht, target: Uint8Array): Promise<SimLookup> {
  const start = performance.now();
  const targetBuffer = Buffer.from(target);
  const targetKey = targetBuffer.toString("hex");
  /** Hop of each contact heard of, by ID. */
  const hopOf = new Map<string, number>();
  for (const contact of dht.nodes.toArray()) hopOf.set(contact.id.toString("hex"), 1);
  let hops = -1;
  let targetMs: number | undefined;
  let replies = 0;
  const done = Promise.withResolvers<SimLookup>();
  const visit = (reply: { r?: { id?: Buffer; nodes?: Buffer } }) => {
    replies++;
    const r = reply.r;
    if (r === undefined || !Buffer.isBuffer(r.id)) return;
    const hop = hopOf.get(r.id.toString("hex")) ?? 1;
    if (targetMs === undefined && r.id.equals(targetBuffer)) {
      hops = hop;
      targetMs = performance.now() - start;
    }
    const nodes = r.nodes;
    if (!Buffer.isBuffer(nodes)) return;
    for (let i = 0; i + 26 <= nodes.length; i += 26) {
      const id = nodes.toString("hex", i, i + 20);
      const known = hopOf.get(id);
      if (known === undefined || (known > hop + 1 && (targetMs === undefined || id !== targetKey))) {
        hopOf.set(id, hop + 1);
      }
    }
  };
  dht._rpc.closest(targetBuffer, { q: "find_node", a: { id: dht.nodeId, target: targetBuffer } }, visit, () => {
    done.resolve({
      found: targetMs !== undefined,
      hops,
      answered: replies,
      ms: performance.now() - start,
      targetMs,
    });
  });
  return done.promise;
}
