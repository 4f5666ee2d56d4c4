/**
 * The node's part in the DHT (NZ-DHT-01): runs a {@linkcode Dht} on the
 * node's UDP socket with the active identity, keeps the node's own peer record
 * published (its addresses, re-signed when they change), and publishes the
 * values and service announcements the operator asked for, which are kept in
 * the store and published again after a restart.
 *
 * @module
 */

import { decodeDidKey } from "../identity/did.ts";
import type { Identity } from "../identity/identity.ts";
import { nodeIdOf } from "../identity/identity.ts";
import { fromHex, toHex } from "../bytes.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { Dht, type DhtOptions, type GetResult, type LookupResult, type PutResult } from "../discovery/dht/dht.ts";
import {
  decodeAddresses,
  decodeService,
  MAX_ADDRESSES,
  mutableKey,
  peerRecord,
  type ServiceInfo,
  serviceKey,
  serviceRecord,
  type SignedRecord,
  signRecord,
} from "../discovery/record.ts";
import type { PeerManager, Session } from "../peers/manager.ts";
import { hostAddresses } from "../peers/punch.ts";
import type { EncryptedStore, Namespace } from "../storage/encrypted_kv.ts";
import { parseUdpAddr, udpAddrKey } from "../../transport/udp.ts";
import type { Reachability } from "./reachability.ts";
import { encodeDidKey } from "../identity/did.ts";

/** Options of {@linkcode DhtService}. */
export interface DhtServiceOptions {
  /** Run the DHT (default false in the library; the CLI turns it on). */
  enabled?: boolean;
  /** Bootstrap nodes, `udp://HOST:PORT` or `HOST:PORT`. */
  bootstrap?: readonly string[];
  /** Take part as a client only: others never add this node to their tables nor store at it. */
  readOnly?: boolean;
  /** Tuning of the DHT itself (timeouts, k, paths), for tests. */
  tuning?: Partial<Omit<DhtOptions, "socket" | "signer" | "bootstrap" | "readOnly" | "log">>;
  /** How often to check whether the node's addresses changed, in ms (default 60 s). */
  addressCheckMs?: number;
  /** Where to log. */
  log?: (line: string) => void;
}

/** A value the node publishes under its own key, as stored. */
interface StoredValue {
  value: Uint8Array;
  seq: number;
  ttlMs: number;
}

/** A service the node announces, as stored. */
interface StoredService extends ServiceInfo {
  ttlMs: number;
}

/** A service found by capability. */
export interface FoundService extends ServiceInfo {
  /** The node offering it. */
  nodeId: string;
  /** Its DID. */
  did: string;
  /** When the announcement expires (ms since the epoch). */
  expires: number;
}

/** A value read from the DHT. */
export interface FoundValue {
  /** The publisher's DID. */
  did: string;
  /** The value's name. */
  name: string;
  /** Its sequence number. */
  seq: number;
  /** When it expires (ms since the epoch). */
  expires: number;
  /** The value's bytes. */
  value: Uint8Array;
}

/** The DHT as `/v1/dht` shows it. */
export interface DhtState {
  /** Whether the DHT runs. */
  enabled: boolean;
  /** Whether the node takes part as a client only. */
  readOnly: boolean;
  /** The node's DHT ID (its node ID), when it runs. */
  id: string | null;
  /** The configured bootstrap nodes. */
  bootstrap: string[];
  /** Contacts in the routing table. */
  contacts: number;
  /** The addresses in the node's own peer record, and when it expires. */
  peerRecord: { addresses: string[]; expires: number } | null;
  /** Names of the values and services the node publishes. */
  published: { values: string[]; services: string[] };
  /** The DHT's counters. */
  stats: Record<string, unknown> | null;
}

/** Value and service records live 1 hour; the DHT republishes them well before. */
const DEFAULT_TTL_MS = 3600_000;

/** The node's DHT participation; started by the daemon once the node listens. */
export class DhtService {
  #peers: PeerManager;
  #identity: () => Identity;
  #reachability: Reachability;
  #ns: Namespace;
  #options: DhtServiceOptions;
  #dht: Dht | null = null;
  #peerRecord: SignedRecord | null = null;
  /** What the node publishes, by slot (`peer`, `value:NAME`, `service:NAME`), and how to sign it anew. */
  #published = new Map<string, { record: SignedRecord; sign: () => SignedRecord }>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** A service over `peers`' UDP socket, signing as the active identity, persisting in `store`. */
  constructor(
    peers: PeerManager,
    identity: () => Identity,
    reachability: Reachability,
    store: EncryptedStore,
    options: DhtServiceOptions = {},
  ) {
    this.#peers = peers;
    this.#identity = identity;
    this.#reachability = reachability;
    this.#ns = store.namespace(["dht"]);
    this.#options = options;
    for (const address of options.bootstrap ?? []) parseUdpAddr(address);
  }

  /** Whether the DHT runs. */
  get running(): boolean {
    return this.#dht !== null;
  }

  /**
   * The running DHT.
   *
   * @throws {ConflictError} when it does not run (`--no-dht`).
   */
  get dht(): Dht {
    if (!this.#dht) {
      throw new ConflictError(
        "The DHT does not run on this node: it was started with --no-dht, or listens on no UDP address and has no " +
          "--bootstrap node",
      );
    }
    return this.#dht;
  }

  /**
   * Starts the DHT on the node's UDP socket (bootstrapping in the background),
   * then publishes the node's peer record and what the store says to publish.
   * Does nothing when the DHT is not enabled, or when the node has no UDP
   * socket and no bootstrap node.
   */
  async start(): Promise<void> {
    if (!this.#options.enabled || this.#dht || this.#closed) return;
    // With no UDP socket to answer on and no node to ask, there is nothing to take part in.
    if (!this.#peers.udpSocket && (this.#options.bootstrap?.length ?? 0) === 0) return;
    const socket = await this.#peers.ensureUdpSocket();
    this.#dht = await Dht.start({
      ...this.#options.tuning,
      socket,
      signer: this.#identity(),
      bootstrap: (this.#options.bootstrap ?? []).map(parseUdpAddr),
      readOnly: this.#options.readOnly,
      log: this.#options.log,
    });
    this.#timer = setInterval(() => void this.#refresh(), this.#options.addressCheckMs ?? 60_000);
    Deno.unrefTimer(this.#timer);
    void this.#publishStored();
  }

  /** The addresses other nodes may reach this one at: listen addresses (wildcards resolved), then public ones. */
  ownAddresses(): string[] {
    const out: string[] = [];
    for (const address of this.#peers.listening) {
      const match = /^([a-z]+):\/\/(\[[^\]]+\]|[^/:]+):(\d+)(.*)$/.exec(address);
      if (!match) continue;
      const [, scheme, host, port, rest] = match;
      for (const a of hostAddresses(host === "[::]" ? "::" : host)) {
        out.push(a === host ? address : `${scheme}://${a.includes(":") ? `[${a}]` : a}:${port}${rest}`);
      }
    }
    // Public addresses (STUN-mapped, port-mapped) come first: they are the ones that work from afar.
    const publicAddresses = this.#reachability.state().publicAddresses;
    return [...new Set([...publicAddresses, ...out])].slice(0, MAX_ADDRESSES);
  }

  /** The DHT's state for the API. */
  state(): DhtState {
    const dht = this.#dht;
    return {
      enabled: !!this.#options.enabled,
      readOnly: !!this.#options.readOnly,
      id: dht ? toHex(dht.id) : null,
      bootstrap: [...(this.#options.bootstrap ?? [])],
      contacts: dht ? dht.contacts().length : 0,
      peerRecord: this.#peerRecord
        ? { addresses: decodeAddresses(this.#peerRecord.value), expires: this.#peerRecord.expires }
        : null,
      published: {
        values: [...this.#published.keys()].filter((k) => k.startsWith("value:")).map((k) => k.slice(6)),
        services: [...this.#published.keys()].filter((k) => k.startsWith("service:")).map((k) => k.slice(8)),
      },
      stats: dht ? { ...dht.stats() } as Record<string, unknown> : null,
    };
  }

  /** Looks up the k nodes closest to `target` (a node ID). */
  findNode(target: Uint8Array, signal?: AbortSignal): Promise<LookupResult> {
    return this.dht.findNode(target, { signal });
  }

  /** The addresses in the newest peer record of `nodeId`, or null when the DHT has none. */
  async findPeer(nodeId: string): Promise<{ addresses: string[]; record: SignedRecord } | null> {
    const record = await this.dht.findPeer(fromHex(nodeId));
    return record ? { addresses: decodeAddresses(record.value), record } : null;
  }

  /**
   * Dials `nodeId` at the addresses of its peer record in the DHT, in order,
   * until one answers as that node.
   *
   * @throws {NotFoundError} when the DHT holds no peer record of the node.
   * @throws the last dial's error when none answers.
   */
  async connect(nodeId: string, options: { autoConnect?: boolean } = {}): Promise<Session> {
    const found = await this.findPeer(nodeId);
    if (!found) throw new NotFoundError(`The DHT holds no peer record of ${nodeId}`);
    let last: unknown;
    for (const address of found.addresses) {
      try {
        return await this.#peers.connect(address, { expectedPeer: nodeId, autoConnect: options.autoConnect });
      } catch (error) {
        last = error;
      }
    }
    throw last;
  }

  /**
   * Publishes `value` under the node's key and `name` (a mutable record),
   * with a sequence number above the last one, and keeps publishing it.
   */
  async putValue(
    name: string,
    value: Uint8Array,
    ttlMs = DEFAULT_TTL_MS,
  ): Promise<{ key: string; seq: number; result: PutResult }> {
    const dht = this.dht;
    const nameBytes = new TextEncoder().encode(name);
    const old = await this.#ns.get<StoredValue>(["value", name]);
    let seq = Math.max(Date.now(), (old?.seq ?? 0) + 1);
    const sign = () =>
      signRecord(this.#identity(), {
        kind: "mutable",
        seq: seq++,
        expires: Date.now() + ttlMs,
        name: nameBytes,
        value,
      });
    const record = sign();
    await this.#ns.set(["value", name], { value, seq: record.seq, ttlMs } satisfies StoredValue);
    const result = await this.#publish(`value:${name}`, record, sign, dht);
    return { key: toHex(mutableKey(record.publicKey, nameBytes)), seq: record.seq, result };
  }

  /** Stops publishing the value `name` (copies at other nodes expire). */
  async removeValue(name: string): Promise<void> {
    if (!(await this.#ns.get(["value", name]))) throw new NotFoundError(`The node publishes no value "${name}"`);
    await this.#ns.delete(["value", name]);
    this.#unpublish(`value:${name}`);
  }

  /** The newest value `name` of the node with DID `did` (or of this node), or null. */
  async getValue(did: string, name: string): Promise<FoundValue | null> {
    const publicKey = decodeDidKey(did);
    const result = await this.dht.get(mutableKey(publicKey, new TextEncoder().encode(name)));
    const record = result.records.filter((r) => r.kind === "mutable").sort((a, b) => b.seq - a.seq)[0];
    if (!record) return null;
    return {
      did: encodeDidKey(record.publicKey),
      name: new TextDecoder().decode(record.name),
      seq: record.seq,
      expires: record.expires,
      value: record.value,
    };
  }

  /** The records under a raw DHT key. */
  getKey(key: Uint8Array): Promise<GetResult> {
    return this.dht.get(key);
  }

  /** Announces a service with capability tags, and keeps announcing it (also after a restart). */
  async announce(service: ServiceInfo, ttlMs = DEFAULT_TTL_MS): Promise<{ keys: string[]; result: PutResult }> {
    const dht = this.dht;
    const sign = () => serviceRecord(this.#identity(), service, { ttlMs });
    const record = sign();
    await this.#ns.set(["service", service.name], { ...service, ttlMs } satisfies StoredService);
    const result = await this.#publish(`service:${service.name}`, record, sign, dht);
    return { keys: service.tags.map((tag) => toHex(serviceKey(tag))), result };
  }

  /** Stops announcing the service `name`. */
  async withdraw(name: string): Promise<void> {
    if (!(await this.#ns.get(["service", name]))) throw new NotFoundError(`The node announces no service "${name}"`);
    await this.#ns.delete(["service", name]);
    this.#unpublish(`service:${name}`);
  }

  /** Services announced with capability `tag`, newest first. */
  async findServices(tag: string): Promise<FoundService[]> {
    serviceKey(tag);
    const records = await this.dht.findServices(tag);
    return records.map((record) => ({
      ...decodeService(record),
      nodeId: nodeIdOf(record.publicKey),
      did: encodeDidKey(record.publicKey),
      expires: record.expires,
    })).filter((s) => s.tags.includes(tag)).sort((a, b) => b.expires - a.expires);
  }

  /** Stops publishing and closes the DHT. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const dht = this.#dht;
    this.#dht = null;
    await dht?.close();
  }

  async #publish(slot: string, record: SignedRecord, sign: () => SignedRecord, dht: Dht): Promise<PutResult> {
    const old = this.#published.get(slot);
    if (old) dht.unpublish(old.record);
    this.#published.set(slot, { record, sign });
    return await dht.publish(record);
  }

  #unpublish(slot: string): void {
    const old = this.#published.get(slot);
    this.#published.delete(slot);
    if (old) this.#dht?.unpublish(old.record);
  }

  /**
   * Fills a thin routing table from UDP peers, re-signs the peer record when the addresses changed, and signs anew
   * what is past half its lifetime (the DHT republishes a record, but cannot extend its expiry).
   */
  async #refresh(): Promise<void> {
    await this.#refreshPeerRecord();
    const dht = this.#dht;
    if (!dht) return;
    // A thin table fills from the peers the node has direct UDP sessions with: each runs the DHT on that socket.
    if (dht.contacts().length < 8) {
      const known = new Set(dht.contacts().map((c) => udpAddrKey(c.addr)));
      const peers = this.#peers.sessions().map((s) => s.path())
        .filter((p) => p.kind === "direct" && p.transport === "udp")
        .map((p) => parseUdpAddr(p.remoteAddr))
        .filter((a) => !known.has(udpAddrKey(a)));
      if (peers.length > 0) await dht.bootstrap(peers).catch(() => {});
    }
    for (const [slot, { record, sign }] of this.#published) {
      if (slot === "peer" || record.expires - Date.now() > (record.expires - record.seq) / 2) continue;
      await this.#publish(slot, sign(), sign, dht).catch((error) => {
        this.#options.log?.(`dht: cannot republish ${slot}: ${(error as Error).message}`);
      });
    }
  }

  /** Publishes the peer record, then the stored values and services, each on its own: one failure stops none. */
  async #publishStored(): Promise<void> {
    await this.#refreshPeerRecord();
    for await (const entry of this.#ns.list<StoredValue>(["value"])) {
      const name = String(entry.key[1]);
      await this.putValue(name, entry.value.value, entry.value.ttlMs).catch((error) => {
        this.#options.log?.(`dht: cannot publish the value "${name}": ${(error as Error).message}`);
      });
    }
    for await (const entry of this.#ns.list<StoredService>(["service"])) {
      const { ttlMs, ...service } = entry.value;
      await this.announce(service, ttlMs).catch((error) => {
        this.#options.log?.(`dht: cannot announce the service "${service.name}": ${(error as Error).message}`);
      });
    }
  }

  /** Signs and publishes a new peer record when the node's addresses changed (or the record is due). */
  async #refreshPeerRecord(): Promise<void> {
    const dht = this.#dht;
    if (!dht || this.#options.readOnly) return;
    const addresses = this.ownAddresses();
    if (addresses.length === 0) return;
    const old = this.#peerRecord;
    const same = old && decodeAddresses(old.value).join(" ") === addresses.join(" ");
    if (same && old.expires - Date.now() > DEFAULT_TTL_MS / 2) return;
    const sign = () => peerRecord(this.#identity(), addresses);
    const record = this.#peerRecord = sign();
    await this.#publish("peer", record, sign, dht).catch((error) => {
      this.#options.log?.(`dht: cannot publish the peer record: ${(error as Error).message}`);
    });
  }
}
