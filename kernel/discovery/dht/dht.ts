/**
 * The Kademlia DHT of a node (NZ-DHT-01): a routing table filled only with
 * nodes proven to hold their key at their address, iterative lookups over
 * disjoint paths, signed records stored at the k closest nodes of their keys
 * and republished, bucket refresh, liveness checks, and re-bootstrap when the
 * table empties. It runs on the node's shared UDP socket (or any
 * {@linkcode PacketSocket}), on the datagrams whose first byte is 0x90-0x9F.
 *
 * @module
 */

import { toHex } from "../../bytes.ts";
import { randomBytes, sha256 } from "../../crypto/mod.ts";
import type { PacketSocket, UdpAddr } from "../../../transport/udp.ts";
import { udpAddrKey } from "../../../transport/udp.ts";
import {
  compareRecords,
  decodeService,
  openRecord,
  recordKeys,
  type RecordSigner,
  sameSlot,
  serviceKey,
  type SignedRecord,
} from "../record.ts";
import { compareDistance, type Contact, idKey, sameId } from "./contact.ts";
import { lookup, type LookupOutcome, type QueryOutcome } from "./lookup.ts";
import {
  contactSize,
  ERROR_CODES,
  FLAG_READ_ONLY,
  FLAG_WANT_SIGNATURE,
  HEADER_SIZE,
  MAX_CONTACTS,
  MAX_MESSAGE_SIZE,
  SIGNATURE_SIZE,
  TOKEN_SIZE,
  type WireContact,
} from "./message.ts";
import { RecordStore } from "./record_store.ts";
import { DEFAULT_K, randomIdInBucket, RoutingTable, type TableEntry } from "./routing_table.ts";
import { type IncomingRequest, type ResponseBody, Rpc, type RpcReply, type RpcStats } from "./rpc.ts";

export type { Contact } from "./contact.ts";

/** Default parallel queries per lookup path (alpha). */
export const DEFAULT_ALPHA = 3;
/** Default disjoint lookup paths (d). */
export const DEFAULT_PATHS = 3;
/** Buckets not looked up in for this long are refreshed (section 5.4). */
export const REFRESH_AFTER_MS = 60 * 60_000;
/** A publisher stores its records again this often (section 7.3). */
export const REPUBLISH_MS = 30 * 60_000;
/** A storing node replicates a record it has not received for this long (section 7.3). */
export const REPLICATE_MS = 60 * 60_000;
/** Table entries not heard from for this long are pinged (section 5.3). */
export const LIVENESS_MS = 15 * 60_000;
/** The maintenance tick. */
export const TICK_MS = 15_000;
/** First delay before bootstrapping again when the table is empty; it doubles up to {@linkcode REBOOTSTRAP_MAX_MS}. */
export const REBOOTSTRAP_MIN_MS = 1_000;
/** Longest delay between bootstrap attempts. */
export const REBOOTSTRAP_MAX_MS = 5 * 60_000;
/** Most FIND_VALUE pages asked of one node in one lookup. */
export const MAX_PAGES = 16;
/** Most liveness checks of requesters in flight. */
const MAX_PENDING_CHECKS = 64;
/** A requester is checked (pinged) at most this often. */
const CHECK_INTERVAL_MS = 60_000;
/** Addresses whose key binding is remembered. */
const MAX_BINDINGS = 16_384;

/** Options of {@linkcode Dht.start}. */
export interface DhtOptions {
  /** The node's UDP socket, or an in-memory one in a simulation. */
  socket: PacketSocket;
  /** The node's identity (its public key names it; it signs responses). */
  signer: RecordSigner;
  /** Addresses to bootstrap from. */
  bootstrap?: readonly UdpAddr[];
  /** Never admitted by others (read-only flag on every request), never stores for others. */
  readOnly?: boolean;
  /** Bucket size and result size; default 20. */
  k?: number;
  /** Queries in flight per path; default 3. */
  alpha?: number;
  /** Disjoint lookup paths; default 3. */
  paths?: number;
  /** Response timeout; default 1000 ms. */
  rpcTimeoutMs?: number;
  /** Addresses exempt from the IP prefix limits of the routing table; default loopback only. */
  prefixLimitExempt?: (ip: string) => boolean;
  /** Most IDs of one /24 or /48 per bucket (default 2) and per table (default 10). */
  prefixLimits?: { perBucket?: number; perTable?: number };
  /** Request rate limits: per IP per second and burst, and global per second. */
  rateLimit?: { perIp?: number; burst?: number; global?: number };
  /** Store limits: records per key (default 64) and bytes in all (default 8 MiB). */
  storeLimits?: { maxPerKey?: number; maxBytes?: number };
  /** Timers, in ms (defaults: the constants of this module). */
  timers?: {
    tickMs?: number;
    refreshMs?: number;
    republishMs?: number;
    replicateMs?: number;
    livenessMs?: number;
    rebootstrapMinMs?: number;
  };
  /** Whether `bootstrap` also refreshes the buckets farther than the closest neighbour; default true. */
  refreshOnBootstrap?: boolean;
  /** The clock, in ms since the Unix epoch. */
  now?: () => number;
  /** Log lines. */
  log?: (line: string) => void;
}

/** The outcome of a node lookup. */
export interface LookupResult {
  /** The ID looked up. */
  target: Uint8Array;
  /** The k closest nodes that answered, closest first. */
  closest: Contact[];
  /** Whether the node with the target ID itself answered. */
  found: boolean;
  /** Length of the query chain that reached the target (or the closest node). */
  hops: number;
  /** Queries sent. */
  queried: number;
  /** Queries that failed. */
  failed: number;
  /** Time taken. */
  durationMs: number;
}

/** The outcome of {@linkcode Dht.get}. */
export interface GetResult {
  /** The key looked up. */
  key: Uint8Array;
  /** Verified records under the key, the newest of each slot. */
  records: SignedRecord[];
  /** Length of the query chain that first returned a record (or reached the closest node). */
  hops: number;
  /** Queries sent (pages included). */
  queried: number;
  /** Time taken. */
  durationMs: number;
}

/** The outcome of {@linkcode Dht.put}. */
export interface PutResult {
  /** Keys the record is stored under. */
  keys: number;
  /** STOREs acknowledged. */
  stored: number;
  /** STOREs refused or unanswered. */
  failed: number;
  /** Time taken. */
  durationMs: number;
}

/** Counters of a {@linkcode Dht}. */
export interface DhtStats {
  /** Contacts in the routing table. */
  contacts: number;
  /** Non-empty buckets. */
  buckets: number;
  /** Records stored for others (and our own). */
  records: number;
  /** Their bytes. */
  recordBytes: number;
  /** Records being republished by us. */
  published: number;
  /** RPCs sent, received, answered, timed out, and requests sent a second time. */
  rpcs: { sent: number; received: number; responses: number; timeouts: number; retransmits: number };
  /** Datagrams or requests dropped or refused, by reason. */
  dropped: RpcStats["dropped"] & { badToken: number };
  /** STOREs refused (bad token included). */
  storesRefused: number;
  /** Lookups run. */
  lookups: number;
}

/** Options of a lookup call. */
export interface LookupCallOptions {
  /** Aborts the lookup. */
  signal?: AbortSignal;
  /** Disjoint paths for this lookup (default: the node's). */
  paths?: number;
}

interface Publication {
  record: SignedRecord;
  nextAt: number;
}

/**
 * A DHT node.
 *
 * @example
 * ```ts
 * import { Dht } from "./dht.ts";
 * import { Identity } from "../../identity/identity.ts";
 * import { UdpSocket } from "../../../transport/udp.ts";
 *
 * await using sa = await UdpSocket.bind("udp://127.0.0.1:0");
 * await using sb = await UdpSocket.bind("udp://127.0.0.1:0");
 * const a = await Dht.start({ socket: sa, signer: Identity.generate("a") });
 * const b = await Dht.start({ socket: sb, signer: Identity.generate("b"), bootstrap: [sa.addr] });
 * await b.bootstrap();
 * const result = await b.findNode(a.id);
 * if (!result.found) throw new Error("Cannot find a");
 * await b.close();
 * await a.close();
 * ```
 */
export class Dht {
  /** Our node ID: SHA-256 of the signer's public key. */
  readonly id: Uint8Array;
  readonly #options: DhtOptions;
  readonly #k: number;
  readonly #alpha: number;
  readonly #paths: number;
  readonly #now: () => number;
  readonly #log: (line: string) => void;
  readonly #table: RoutingTable;
  readonly #store: RecordStore;
  readonly #rpc: Rpc;
  readonly #timers: Required<NonNullable<DhtOptions["timers"]>>;
  /** Address key -> node ID key of a verified signed response from there. */
  readonly #bindings = new Map<string, string>();
  /** Address keys of requesters being checked, and when each was last checked. */
  readonly #checking = new Set<string>();
  readonly #checked = new Map<string, number>();
  readonly #pingingLrs = new Set<string>();
  readonly #published = new Map<string, Publication>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #closing = new AbortController();
  #bootstrapAddrs: UdpAddr[];
  #bootstrapping: Promise<number> | null = null;
  #rebootstrapAt = 0;
  #rebootstrapDelay: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #badToken = 0;
  #storesRefused = 0;
  #lookups = 0;
  #closed = false;

  private constructor(options: DhtOptions) {
    this.#options = options;
    this.#k = options.k ?? DEFAULT_K;
    this.#alpha = options.alpha ?? DEFAULT_ALPHA;
    this.#paths = options.paths ?? DEFAULT_PATHS;
    for (const [name, v] of [["k", this.#k], ["alpha", this.#alpha], ["paths", this.#paths]] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`Invalid options.${name}: ${v}, expected an integer >= 1`);
      }
    }
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
    this.#timers = {
      tickMs: options.timers?.tickMs ?? TICK_MS,
      refreshMs: options.timers?.refreshMs ?? REFRESH_AFTER_MS,
      republishMs: options.timers?.republishMs ?? REPUBLISH_MS,
      replicateMs: options.timers?.replicateMs ?? REPLICATE_MS,
      livenessMs: options.timers?.livenessMs ?? LIVENESS_MS,
      rebootstrapMinMs: options.timers?.rebootstrapMinMs ?? REBOOTSTRAP_MIN_MS,
    };
    this.#rebootstrapDelay = this.#timers.rebootstrapMinMs;
    this.id = sha256(options.signer.publicKey);
    this.#table = new RoutingTable(this.id, {
      k: this.#k,
      prefixLimitExempt: options.prefixLimitExempt,
      prefixPerBucket: options.prefixLimits?.perBucket,
      prefixPerTable: options.prefixLimits?.perTable,
    }, this.#now());
    this.#store = new RecordStore(options.storeLimits);
    this.#bootstrapAddrs = [...(options.bootstrap ?? [])];
    this.#rpc = new Rpc({
      socket: options.socket,
      signer: options.signer,
      handler: (request) => this.#onRequest(request),
      readOnly: options.readOnly,
      timeoutMs: options.rpcTimeoutMs,
      rateLimit: options.rateLimit,
      now: this.#now,
      log: this.#log,
    });
  }

  /**
   * Starts a DHT node on `options.socket`: registers its route, starts the
   * maintenance timer, and bootstraps in the background from
   * `options.bootstrap` (await {@linkcode Dht.bootstrap} for the first fill).
   *
   * @throws {RangeError} for a k, alpha or paths below 1.
   */
  static start(options: DhtOptions): Promise<Dht> {
    const dht = new Dht(options);
    dht.#schedule();
    if (dht.#bootstrapAddrs.length > 0) dht.#track(dht.bootstrap().catch(() => 0));
    return Promise.resolve(dht);
  }

  /**
   * Pings the bootstrap addresses (asking for signed answers), admits those
   * that answer, looks up our own ID, then refreshes the buckets farther
   * away than our closest neighbour (section 9). Without `addrs`, uses the
   * configured ones and joins a bootstrap already under way.
   *
   * @returns The routing table's size once done.
   */
  bootstrap(addrs?: readonly UdpAddr[]): Promise<number> {
    if (addrs === undefined && this.#bootstrapping) return this.#bootstrapping;
    const run = this.#runBootstrap(addrs ?? this.#bootstrapAddrs);
    if (addrs === undefined) {
      this.#bootstrapping = run;
      run.finally(() => {
        if (this.#bootstrapping === run) this.#bootstrapping = null;
      }).catch(() => {});
    }
    return run;
  }

  async #runBootstrap(addrs: readonly UdpAddr[]): Promise<number> {
    await Promise.all(addrs.map(async (addr) => {
      // Always signed: the node at a bootstrap address may have changed since we last bound it.
      const reply = await this.#rpc.request(addr, { type: "ping" }, { sign: true });
      if (reply.ok) this.#answered({ id: reply.id, addr }, reply);
    }));
    if (this.#closed || this.#table.size === 0) return this.#table.size;
    await this.#lookupNodes(this.id, {});
    if (this.#options.refreshOnBootstrap ?? true) {
      const closest = this.#table.closest(this.id, 1)[0];
      const depth = closest ? this.#table.bucketOf(closest.id) : 0;
      const indices = Array.from({ length: depth }, (_, i) => depth - 1 - i);
      // Three refresh lookups at a time, nearest buckets first.
      const worker = async () => {
        for (let i = indices.shift(); i !== undefined && !this.#closed; i = indices.shift()) {
          // A bucket the self-lookup (or another refresh) filled needs no lookup of its own.
          if (this.#table.bucketSize(i) < this.#k) await this.#refresh(i);
        }
      };
      await Promise.all([worker(), worker(), worker()]);
    }
    if (this.#table.size > 0) this.#rebootstrapDelay = this.#timers.rebootstrapMinMs;
    return this.#table.size;
  }

  /**
   * Looks up the node with ID `target`; stops once it answers.
   *
   * @param target A node ID (32 bytes).
   * @returns The closest nodes that answered and whether the target did.
   */
  async findNode(target: Uint8Array, options: LookupCallOptions = {}): Promise<LookupResult> {
    checkId(target, "target");
    const started = performance.now();
    const outcome = await this.#lookupNodes(target, options, (c) => sameId(c.id, target));
    return {
      target: target.slice(),
      closest: outcome.closest.map(copyContact),
      found: outcome.stoppedAt !== null,
      hops: outcome.hops,
      queried: outcome.queried,
      failed: outcome.failed,
      durationMs: performance.now() - started,
    };
  }

  /**
   * Finds the records stored under `key`: asks the nodes of a lookup with
   * FIND_VALUE (paging through what they hold), verifies every record, and
   * keeps the newest of each slot (our own store included).
   */
  async get(key: Uint8Array, options: LookupCallOptions = {}): Promise<GetResult> {
    checkId(key, "key");
    const started = performance.now();
    const keyHex = toHex(key);
    const now = this.#now();
    const kept = new Map<string, SignedRecord>();
    const seen = new Set<string>();
    let firstHop = 0, pages = 0;
    const take = (bytes: Uint8Array): boolean => {
      const hex = toHex(bytes);
      if (seen.has(hex)) return false;
      seen.add(hex);
      let record: SignedRecord;
      try {
        record = openRecord(bytes.slice(), now);
        if (!recordKeys(record).some((k) => toHex(k) === keyHex)) return false;
      } catch {
        return false;
      }
      const slot = slotKey(record);
      const current = kept.get(slot);
      if (!current || compareRecords(record, current) > 0) kept.set(slot, record);
      return true;
    };
    for (const r of this.#store.get(key, now)) take(r.bytes);
    const query = async (contact: Contact, hop: number): Promise<QueryOutcome> => {
      let offset = 0, contacts: readonly WireContact[] = [];
      for (let page = 0; page < MAX_PAGES; page++) {
        const reply = await this.#request(contact, { type: "find_value", key, offset });
        if (page > 0) pages++;
        if (!reply.ok || reply.message.type !== "values") return page === 0 ? { ok: false } : { ok: true, contacts };
        const m = reply.message;
        if (page === 0) contacts = m.contacts;
        let any = false;
        for (const bytes of m.records) any = take(bytes) || any;
        if (any && firstHop === 0) firstHop = hop;
        offset += m.records.length;
        if (m.records.length === 0 || offset >= m.total) break;
      }
      return { ok: true, contacts };
    };
    const outcome = await this.#lookup(key, options, query);
    return {
      key: key.slice(),
      records: [...kept.values()],
      hops: firstHop || outcome.hops,
      queried: outcome.queried + pages,
      durationMs: performance.now() - started,
    };
  }

  /**
   * Stores a record once at the k closest nodes of each of its keys (and in
   * our own store when we are among them).
   *
   * @throws {RecordError} when the record is not one NZ-RECORD-01 accepts now.
   * @throws {TypeError} for an introduction, which the DHT never stores.
   */
  async put(record: SignedRecord): Promise<PutResult> {
    const started = performance.now();
    const opened = openRecord(record.bytes, this.#now());
    if (opened.kind === "introduction") {
      throw new TypeError("Invalid record: an introduction is never stored in the DHT");
    }
    const keys = recordKeys(opened);
    let stored = 0, failed = 0;
    await Promise.all(keys.map(async (key) => {
      const r = await this.#storeAt(key, [opened]);
      stored += r.stored;
      failed += r.failed;
    }));
    return { keys: keys.length, stored, failed, durationMs: performance.now() - started };
  }

  /**
   * Puts a record now and again every 30 minutes until {@linkcode Dht.unpublish}
   * or its expiry; it replaces a record of the same slot published before.
   */
  publish(record: SignedRecord): Promise<PutResult> {
    const opened = openRecord(record.bytes, this.#now());
    for (const [slot, p] of this.#published) if (sameSlot(p.record, opened)) this.#published.delete(slot);
    this.#published.set(slotKey(opened), { record: opened, nextAt: this.#now() + this.#timers.republishMs });
    return this.put(opened);
  }

  /** Stops republishing the record of `record`'s slot (stored copies expire on their own). */
  unpublish(record: SignedRecord): void {
    this.#published.delete(slotKey(record));
  }

  /**
   * The newest peer record of a node, named by its Ed25519 public key or its
   * node ID (both 32 bytes: both readings are looked up at once).
   */
  async findPeer(publicKeyOrNodeId: Uint8Array): Promise<SignedRecord | null> {
    checkId(publicKeyOrNodeId, "publicKeyOrNodeId");
    const asKey = sha256(publicKeyOrNodeId);
    const [byId, byKey] = await Promise.all([this.get(publicKeyOrNodeId), this.get(asKey)]);
    let best: SignedRecord | null = null;
    for (const r of [...byId.records, ...byKey.records]) {
      if (r.kind !== "peer") continue;
      const matches = sameId(sha256(r.publicKey), publicKeyOrNodeId) || sameId(r.publicKey, publicKeyOrNodeId);
      if (matches && (!best || r.seq > best.seq)) best = r;
    }
    return best;
  }

  /** Service records that name capability `tag`, the newest of each slot. */
  async findServices(tag: string): Promise<SignedRecord[]> {
    const result = await this.get(serviceKey(tag));
    return result.records.filter((r) => {
      try {
        return r.kind === "service" && decodeService(r).tags.includes(tag);
      } catch {
        return false;
      }
    });
  }

  /** The routing table's contacts. */
  contacts(): Contact[] {
    return this.#table.entries().map(copyContact);
  }

  /** Counters. */
  stats(): DhtStats {
    const r = this.#rpc.stats;
    return {
      contacts: this.#table.size,
      buckets: this.#table.nonEmptyBuckets,
      records: this.#store.size,
      recordBytes: this.#store.bytes,
      published: this.#published.size,
      rpcs: {
        sent: r.sent,
        received: r.received,
        responses: r.responses,
        timeouts: r.timeouts,
        retransmits: r.retransmits,
      },
      dropped: { ...r.dropped, badToken: this.#badToken },
      storesRefused: this.#storesRefused,
      lookups: this.#lookups,
    };
  }

  /** Stops timers, fails requests in flight, removes the route and waits for background work. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#closing.abort(new DOMException("The DHT is closed", "AbortError"));
    this.#rpc.close();
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  /** Same as {@linkcode Dht.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- requests we answer (section 4) ----

  #onRequest(request: IncomingRequest): ResponseBody | null {
    const { message, from, id } = request;
    if (!(message.flags & FLAG_READ_ONLY)) this.#consider(id, from);
    const wantsSignature = (message.flags & FLAG_WANT_SIGNATURE) !== 0;
    switch (message.type) {
      case "ping":
        return { type: "pong", observed: from };
      case "find_node": {
        const room = MAX_MESSAGE_SIZE - HEADER_SIZE - TOKEN_SIZE - 1 - (wantsSignature ? SIGNATURE_SIZE : 0);
        return {
          type: "nodes",
          token: this.#rpc.token(from),
          contacts: this.#closestFitting(message.target, id, room),
        };
      }
      case "find_value":
        return this.#values(message.key, message.offset, from, id, wantsSignature);
      case "store": {
        if (this.#options.readOnly) {
          this.#storesRefused++;
          return { type: "error", code: ERROR_CODES.notStoring, reason: "this node does not store records" };
        }
        if (!this.#rpc.checkToken(from, message.token)) {
          this.#badToken++;
          this.#storesRefused++;
          return { type: "error", code: ERROR_CODES.badToken, reason: "the token is not valid for this address" };
        }
        const outcome = this.#store.put(message.key, message.record, this.#now());
        if (!outcome.ok) {
          this.#storesRefused++;
          return { type: "error", code: outcome.code, reason: outcome.reason };
        }
        return { type: "stored" };
      }
    }
  }

  #values(key: Uint8Array, offset: number, from: UdpAddr, requester: Uint8Array, signed: boolean): ResponseBody {
    const all = this.#store.get(key, this.#now());
    let room = MAX_MESSAGE_SIZE - HEADER_SIZE - TOKEN_SIZE - 2 - 1 - 1 - (signed ? SIGNATURE_SIZE : 0);
    const records: Uint8Array[] = [];
    for (let i = offset; i < all.length && records.length < 255; i++) {
      const size = 2 + all[i].bytes.length;
      if (size > room) break;
      records.push(all[i].bytes);
      room -= size;
    }
    return {
      type: "values",
      token: this.#rpc.token(from),
      total: Math.min(all.length, 0xffff),
      records,
      contacts: this.#closestFitting(key, requester, room),
    };
  }

  #closestFitting(target: Uint8Array, requester: Uint8Array, room: number): WireContact[] {
    const out: WireContact[] = [];
    const requesterKey = idKey(requester);
    for (const e of this.#table.closest(target, Math.min(this.#k, MAX_CONTACTS), (e) => e.key === requesterKey)) {
      const size = contactSize(e.addr);
      if (size > room) break;
      out.push({ id: e.id, addr: e.addr });
      room -= size;
    }
    return out;
  }

  /**
   * A requester that is not read-only may be admitted when its bucket has
   * room, but only after a PING from us to its address comes back (signed,
   * unless its key is bound to the address already): section 5.2. (Full
   * buckets get their replacements from our own lookups.)
   */
  #consider(id: Uint8Array, from: UdpAddr): void {
    const addrKey = udpAddrKey(from);
    const entry = this.#table.get(id);
    const bound = this.#bindings.get(addrKey) === idKey(id);
    if (entry && bound && udpAddrKey(entry.addr) === addrKey) {
      this.#table.seen(id, this.#now());
      return;
    }
    if (this.#closed || !this.#table.hasRoom(id, from)) return;
    if (this.#checking.has(addrKey) || this.#checking.size >= MAX_PENDING_CHECKS) return;
    const last = this.#checked.get(addrKey);
    const now = this.#now();
    if (last !== undefined && now - last < CHECK_INTERVAL_MS) return;
    this.#checked.set(addrKey, now);
    if (this.#checked.size > MAX_BINDINGS) this.#checked.delete(this.#checked.keys().next().value!);
    this.#checking.add(addrKey);
    const contact = { id: id.slice(), addr: { hostname: from.hostname, port: from.port } };
    this.#track(
      this.#rpc.request(from, { type: "ping" }, { sign: !bound, expectedId: id }).then((reply) => {
        this.#checking.delete(addrKey);
        if (reply.ok) this.#answered(contact, reply);
      }),
    );
  }

  // ---- requests we send ----

  /** Sends a request to a contact, asking for a signature when it could be admitted and is not bound yet. */
  async #request(contact: Contact, body: Parameters<Rpc["request"]>[1]): Promise<RpcReply> {
    const bound = this.#bindings.get(udpAddrKey(contact.addr)) === idKey(contact.id);
    const sign = !bound && this.#table.canAdmit(contact.id, contact.addr);
    const reply = await this.#rpc.request(contact.addr, body, { sign, expectedId: contact.id });
    if (reply.ok) this.#answered(contact, reply);
    else if (reply.reason !== "closed") this.#unanswered(contact);
    return reply;
  }

  /** A contact answered: bind its key to its address when signed, and admit it when bound. */
  #answered(contact: Contact, reply: Extract<RpcReply, { ok: true }>): void {
    const addrKey = udpAddrKey(contact.addr);
    const key = idKey(contact.id);
    if (reply.signed) {
      this.#bindings.delete(addrKey);
      this.#bindings.set(addrKey, key);
      if (this.#bindings.size > MAX_BINDINGS) this.#bindings.delete(this.#bindings.keys().next().value!);
    }
    if (this.#bindings.get(addrKey) !== key) return;
    const admission = this.#table.admit(contact, this.#now());
    if (admission.result === "cached" && admission.ping) this.#pingLeastRecent(admission.ping);
  }

  #unanswered(contact: Contact): void {
    const entry = this.#table.get(contact.id);
    if (!entry || udpAddrKey(entry.addr) !== udpAddrKey(contact.addr)) return;
    this.#table.failed(contact.id);
    if (this.#table.size === 0) this.#wantRebootstrap();
  }

  /** A full bucket's least recently seen entry is pinged; it leaves (for a replacement) if it does not answer. */
  #pingLeastRecent(entry: TableEntry): void {
    if (this.#closed || this.#pingingLrs.has(entry.key)) return;
    if (this.#now() - entry.lastSeen < CHECK_INTERVAL_MS) return;
    this.#pingingLrs.add(entry.key);
    const contact = { id: entry.id, addr: entry.addr };
    this.#track(this.#request(contact, { type: "ping" }).then(() => this.#pingingLrs.delete(entry.key)));
  }

  #lookup(
    target: Uint8Array,
    options: LookupCallOptions,
    query: (contact: Contact, hop: number) => Promise<QueryOutcome>,
    stopWhen?: (c: Contact) => boolean,
  ): Promise<LookupOutcome> {
    this.#lookups++;
    const bucket = this.#table.bucketOf(target);
    this.#table.touch(bucket === 256 ? 255 : bucket, this.#now());
    const signal = options.signal ? AbortSignal.any([options.signal, this.#closing.signal]) : this.#closing.signal;
    const task = lookup({
      target,
      self: this.id,
      start: this.#table.closest(target, this.#k),
      k: this.#k,
      alpha: this.#alpha,
      paths: options.paths ?? this.#paths,
      query,
      stopWhen,
      signal,
    });
    this.#track(task.catch(() => {}));
    return task;
  }

  #lookupNodes(
    target: Uint8Array,
    options: LookupCallOptions,
    stopWhen?: (c: Contact) => boolean,
    tokens?: Map<string, Uint8Array>,
  ): Promise<LookupOutcome> {
    return this.#lookup(target, options, async (contact) => {
      const reply = await this.#request(contact, { type: "find_node", target });
      if (!reply.ok || reply.message.type !== "nodes") return { ok: false };
      tokens?.set(idKey(contact.id), reply.message.token);
      return { ok: true, contacts: reply.message.contacts };
    }, stopWhen);
  }

  /**
   * Refreshes bucket `index` (section 5.4): a lookup of a random ID in its range, on one path, that ends once the
   * bucket is full (the nodes that answer it are in that range, and are admitted as they answer).
   */
  #refresh(index: number): Promise<LookupOutcome> {
    const target = randomIdInBucket(this.id, index, randomBytes(32));
    return this.#lookupNodes(target, { paths: 1 }, () => this.#table.bucketSize(index) >= this.#k);
  }

  /** Looks up the k closest nodes of `key` and stores `records` at each (section 8.2). */
  async #storeAt(key: Uint8Array, records: SignedRecord[]): Promise<{ stored: number; failed: number }> {
    const tokens = new Map<string, Uint8Array>();
    const outcome = await this.#lookupNodes(key, {}, undefined, tokens);
    let stored = 0, failed = 0;
    await Promise.all(outcome.closest.map(async (contact) => {
      const token = tokens.get(idKey(contact.id));
      if (!token) return;
      for (const record of records) {
        const reply = await this.#request(contact, { type: "store", token, key, record: record.bytes });
        if (reply.ok && reply.message.type === "stored") stored++;
        else failed++;
      }
    }));
    const kth = outcome.closest[this.#k - 1];
    if (!this.#options.readOnly && (!kth || compareDistance(this.id, kth.id, key) < 0)) {
      for (const record of records) this.#store.put(key, record.bytes, this.#now());
    }
    return { stored, failed };
  }

  // ---- maintenance (sections 5.3, 5.4, 7.3, 9) ----

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#track(this.#tick().catch((error) => this.#log(`dht: maintenance failed: ${describe(error)}`)))
        .finally(() => this.#schedule());
    }, this.#timers.tickMs);
  }

  async #tick(): Promise<void> {
    const now = this.#now();
    this.#store.expire(now);
    if (this.#table.size === 0) {
      this.#wantRebootstrap();
      return;
    }
    const work: Promise<unknown>[] = [];
    // Liveness: ping entries not heard from for livenessMs (a few per tick).
    const stale = this.#table.entries().filter((e) => now - e.lastSeen >= this.#timers.livenessMs)
      .sort((a, b) => a.lastSeen - b.lastSeen).slice(0, 8);
    for (const e of stale) work.push(this.#request({ id: e.id, addr: e.addr }, { type: "ping" }));
    // Refresh: one random-ID lookup in each of up to two stale buckets.
    for (const index of this.#table.staleBuckets(now, this.#timers.refreshMs).slice(0, 2)) {
      work.push(this.#refresh(index));
    }
    // Republish what we publish.
    for (const [slot, p] of this.#published) {
      if (p.record.expires <= now) {
        this.#published.delete(slot);
      } else if (p.nextAt <= now) {
        p.nextAt = now + this.#timers.republishMs;
        work.push(this.put(p.record).catch(() => {}));
      }
    }
    // Replicate what we store and have not received for replicateMs (a few keys per tick).
    if (!this.#options.readOnly) {
      let keys = 0;
      for (const { key, records } of this.#store.entries(now)) {
        const due = records.filter((r) => now - r.storedAt >= this.#timers.replicateMs);
        if (due.length === 0) continue;
        for (const r of due) r.storedAt = now;
        work.push(this.#storeAt(key, due.map((r) => r.record)));
        if (++keys >= 4) break;
      }
    }
    await Promise.all(work);
    if (this.#table.size === 0) this.#wantRebootstrap();
  }

  /** Bootstraps again when the table is empty, no sooner than the backoff allows (section 9). */
  #wantRebootstrap(): void {
    if (this.#closed || this.#bootstrapping || this.#bootstrapAddrs.length === 0) return;
    const now = this.#now();
    if (now < this.#rebootstrapAt) return;
    this.#rebootstrapAt = now + this.#rebootstrapDelay;
    this.#rebootstrapDelay = Math.min(this.#rebootstrapDelay * 2, REBOOTSTRAP_MAX_MS);
    this.#log(`dht: the routing table is empty; bootstrapping again`);
    this.#track(this.bootstrap().catch(() => 0));
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#tasks.add(promise);
    promise.finally(() => this.#tasks.delete(promise)).catch(() => {});
    return promise;
  }
}

function slotKey(record: SignedRecord): string {
  return `${record.kind}|${toHex(record.publicKey)}|${toHex(record.name)}`;
}

function copyContact(c: Contact): Contact {
  return { id: c.id.slice(), addr: { hostname: c.addr.hostname, port: c.addr.port } };
}

function checkId(id: Uint8Array, name: string): void {
  if (!(id instanceof Uint8Array)) throw new TypeError(`Invalid ${name}: expected Uint8Array`);
  if (id.length !== 32) throw new RangeError(`Invalid ${name}: length is ${id.length}, expected 32`);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
