/**
 * The routing table of NZ-DHT-01 (section 5): 256 k-buckets by the length of
 * the prefix a contact's ID shares with ours, each ordered from least to most
 * recently seen, each with a replacement cache (Maymounkov and Mazieres 2002,
 * sections 2.2 and 4.1); one ID per address; and limits on how many IDs of
 * one IP prefix (/24 IPv4, /48 IPv6) a bucket and the whole table hold, so
 * that one operator's many IDs cannot fill them (an eclipse defence).
 *
 * The table decides; it sends nothing. Its owner pings the entry that
 * `admit` names when a bucket is full, and calls `failed` or `seen` with the
 * outcome.
 *
 * @module
 */

import { type UdpAddr, udpAddrKey } from "../../../transport/udp.ts";
import { commonPrefixLength, compareDistance, type Contact, idKey } from "./contact.ts";
import { ipBytes } from "./message.ts";

/** Default bucket size (k). */
export const DEFAULT_K = 20;
/** Default most IDs of one IP prefix in one bucket. */
export const DEFAULT_PREFIX_PER_BUCKET = 2;
/** Default most IDs of one IP prefix in the whole table. */
export const DEFAULT_PREFIX_PER_TABLE = 10;
/** Failed RPCs in a row after which an entry is removed even without a replacement. */
export const MAX_FAILURES = 3;

/** A contact in the table. */
export interface TableEntry extends Contact {
  /** `idKey(id)`. */
  readonly key: string;
  /** When it last answered us, in ms. */
  lastSeen: number;
  /** RPCs in a row it did not answer. */
  failures: number;
  /** The IP prefix its address counts against (`null` when exempt), set by the table. */
  prefix: string | null;
}

/** Options of a {@linkcode RoutingTable}. */
export interface RoutingTableOptions {
  /** Bucket size; default 20. */
  k?: number;
  /** Replacement cache size per bucket; default k. */
  replacements?: number;
  /** Most IDs of one /24 (IPv4) or /48 (IPv6) in a bucket; default 2. */
  prefixPerBucket?: number;
  /** Most IDs of one prefix in the table; default 10. */
  prefixPerTable?: number;
  /** Addresses the prefix limits do not apply to; default loopback only (127/8, ::1). */
  prefixLimitExempt?: (ip: string) => boolean;
}

/** What `admit` did with a contact. */
export type Admission =
  | { result: "added" | "updated" }
  | { result: "cached"; ping: TableEntry | null }
  | { result: "refused"; reason: "self" | "prefix" | "address" };

/** Whether `ip` is a loopback address (127/8, ::1): the default prefix-limit exemption. */
export function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1" || ip.startsWith("::ffff:127.");
}

/** The /24 (IPv4) or /48 (IPv6) prefix of an IP literal, as a map key; `null` for what does not parse. */
export function ipPrefix(ip: string): string | null {
  const bytes = ipBytes(ip);
  if (bytes === null) return null;
  return bytes.length === 4
    ? `4:${bytes[0]}.${bytes[1]}.${bytes[2]}`
    : `6:${Array.from(bytes.subarray(0, 6)).join(".")}`;
}

interface Bucket {
  /** Least recently seen first. */
  entries: TableEntry[];
  /** Most recent last. */
  replacements: TableEntry[];
  /** When the bucket was last looked up in, in ms. */
  refreshed: number;
}

/**
 * k-buckets with replacement caches and IP prefix limits.
 *
 * @example
 * ```ts
 * import { RoutingTable } from "./routing_table.ts";
 *
 * const self = new Uint8Array(32);
 * const table = new RoutingTable(self, { k: 2 });
 * const id = new Uint8Array(32).fill(0x80);
 * table.admit({ id, addr: { hostname: "192.0.2.1", port: 7475 } }, 0);
 * if (table.size !== 1) throw new Error("Cannot admit a contact");
 * ```
 */
export class RoutingTable {
  /** Our own ID. */
  readonly self: Uint8Array;
  /** Bucket size. */
  readonly k: number;
  /** Created on first use: most of the 256 buckets of a table stay empty. */
  #buckets: (Bucket | undefined)[] = new Array(256);
  #created: number;
  #byId = new Map<string, TableEntry>();
  #byAddr = new Map<string, TableEntry>();
  #prefixCount = new Map<string, number>();
  #replacementSize: number;
  #perBucket: number;
  #perTable: number;
  #exempt: (ip: string) => boolean;

  /** A table for the node `self` (32 bytes). */
  constructor(self: Uint8Array, options: RoutingTableOptions = {}, now = 0) {
    this.self = self;
    this.k = options.k ?? DEFAULT_K;
    if (!Number.isInteger(this.k) || this.k < 1) throw new RangeError(`Invalid k: ${this.k}`);
    this.#replacementSize = options.replacements ?? this.k;
    this.#perBucket = options.prefixPerBucket ?? DEFAULT_PREFIX_PER_BUCKET;
    this.#perTable = options.prefixPerTable ?? DEFAULT_PREFIX_PER_TABLE;
    this.#exempt = options.prefixLimitExempt ?? isLoopback;
    this.#created = now;
  }

  /** Contacts in the table (replacement caches not counted). */
  get size(): number {
    return this.#byId.size;
  }

  /** The bucket of an ID: the length of the prefix it shares with ours (0-255); 256 for our own. */
  bucketOf(id: Uint8Array): number {
    return commonPrefixLength(this.self, id);
  }

  /** The entry of an ID, if the table holds it. */
  get(id: Uint8Array): TableEntry | undefined {
    return this.#byId.get(idKey(id));
  }

  /** The entry at an address, if the table holds one. */
  atAddress(addr: UdpAddr): TableEntry | undefined {
    return this.#byAddr.get(udpAddrKey(addr));
  }

  /**
   * Whether `admit` would take the contact into its bucket or the bucket's
   * replacement cache: not ourselves, not at an address another ID holds,
   * room in the bucket or its cache, and within the prefix limits. The owner asks for a signed response only then.
   */
  canAdmit(id: Uint8Array, addr: UdpAddr): boolean {
    const index = this.bucketOf(id);
    if (index === 256) return false;
    const existing = this.#byId.get(idKey(id));
    const holder = this.#byAddr.get(udpAddrKey(addr));
    if (holder && holder !== existing) return false;
    if (existing) return true;
    const bucket = this.#buckets[index];
    if (bucket && bucket.entries.length >= this.k && bucket.replacements.length >= this.#replacementSize) return false;
    return this.#withinPrefixLimits(index, addr.hostname, null);
  }

  /** Whether `admit` would take the contact into its bucket itself (not only the replacement cache). */
  hasRoom(id: Uint8Array, addr: UdpAddr): boolean {
    return this.canAdmit(id, addr) && (this.get(id) !== undefined || this.bucketSize(this.bucketOf(id)) < this.k);
  }

  /**
   * Admits a contact whose signed response at `contact.addr` was verified:
   * updates it when present (a new address too, within the limits), adds it
   * when its bucket has room, else puts it in the bucket's replacement cache
   * and names the least recently seen entry for the owner to ping.
   */
  admit(contact: Contact, now: number): Admission {
    const index = this.bucketOf(contact.id);
    if (index === 256) return { result: "refused", reason: "self" };
    const key = idKey(contact.id);
    const addrKey = udpAddrKey(contact.addr);
    const holder = this.#byAddr.get(addrKey);
    const existing = this.#byId.get(key);
    if (holder && holder !== existing) return { result: "refused", reason: "address" };
    const bucket = this.#bucket(index);
    if (existing) {
      if (udpAddrKey(existing.addr) !== addrKey) {
        if (!this.#withinPrefixLimits(index, contact.addr.hostname, existing)) {
          return { result: "refused", reason: "prefix" };
        }
        this.#unindex(existing);
        existing.addr = { hostname: contact.addr.hostname, port: contact.addr.port };
        existing.prefix = this.#prefixOfIp(existing.addr.hostname);
        this.#index(existing);
      }
      existing.lastSeen = now;
      existing.failures = 0;
      moveToEnd(bucket.entries, existing);
      return { result: "updated" };
    }
    if (!this.#withinPrefixLimits(index, contact.addr.hostname, null)) return { result: "refused", reason: "prefix" };
    const entry: TableEntry = {
      id: contact.id.slice(),
      addr: { ...contact.addr },
      key,
      lastSeen: now,
      failures: 0,
      prefix: this.#prefixOfIp(contact.addr.hostname),
    };
    if (bucket.entries.length < this.k) {
      bucket.entries.push(entry);
      this.#index(entry);
      return { result: "added" };
    }
    const cached = bucket.replacements.findIndex((e) => e.key === key);
    if (cached >= 0) bucket.replacements.splice(cached, 1);
    bucket.replacements.push(entry);
    if (bucket.replacements.length > this.#replacementSize) bucket.replacements.shift();
    return { result: "cached", ping: bucket.entries[0] ?? null };
  }

  /** Records that an entry answered: it becomes the most recently seen of its bucket. */
  seen(id: Uint8Array, now: number): void {
    const entry = this.#byId.get(idKey(id));
    if (!entry) return;
    entry.lastSeen = now;
    entry.failures = 0;
    moveToEnd(this.#bucket(this.bucketOf(id)).entries, entry);
  }

  /**
   * Records that an entry did not answer. It is replaced when its bucket's
   * replacement cache has a contact that fits, or removed after
   * {@linkcode MAX_FAILURES} failures in a row. Returns whether it left.
   */
  failed(id: Uint8Array): boolean {
    const entry = this.#byId.get(idKey(id));
    if (!entry) return false;
    entry.failures++;
    const bucket = this.#bucket(this.bucketOf(id));
    if (bucket.replacements.length > 0 || entry.failures >= MAX_FAILURES) {
      this.remove(id);
      return true;
    }
    return false;
  }

  /** Removes an entry and promotes the most recent replacement that fits the limits. */
  remove(id: Uint8Array): void {
    const entry = this.#byId.get(idKey(id));
    if (!entry) return;
    const index = this.bucketOf(id);
    const bucket = this.#bucket(index);
    bucket.entries.splice(bucket.entries.indexOf(entry), 1);
    this.#unindex(entry);
    while (bucket.replacements.length > 0) {
      const candidate = bucket.replacements.pop()!;
      if (this.#byAddr.has(udpAddrKey(candidate.addr))) continue;
      if (!this.#withinPrefixLimits(index, candidate.addr.hostname, null)) continue;
      bucket.entries.push(candidate);
      this.#index(candidate);
      break;
    }
  }

  /**
   * The `count` entries closest to `target`, closest first (those `exclude`
   * is true for left out). Buckets are visited from the closest to the
   * target outwards: with `c` the prefix `target` shares with us, bucket `c`
   * holds the entries that share more than `c` bits with it, the buckets
   * beyond `c` those sharing exactly `c`, and each bucket `j < c` those
   * sharing `j`, so only the buckets needed are sorted.
   */
  closest(target: Uint8Array, count: number, exclude?: (entry: TableEntry) => boolean): TableEntry[] {
    const c = Math.min(this.bucketOf(target), 255);
    const out: TableEntry[] = [];
    const take = (group: TableEntry[]) => {
      const kept = exclude ? group.filter((e) => !exclude(e)) : group.slice();
      kept.sort((a, b) => compareDistance(a.id, b.id, target));
      for (const e of kept) {
        if (out.length >= count) return;
        out.push(e);
      }
    };
    take(this.#buckets[c]?.entries ?? []);
    if (out.length < count) {
      const deeper: TableEntry[] = [];
      for (let j = c + 1; j < 256; j++) for (const e of this.#buckets[j]?.entries ?? []) deeper.push(e);
      take(deeper);
    }
    for (let j = c - 1; j >= 0 && out.length < count; j--) if (this.#buckets[j]) take(this.#buckets[j]!.entries);
    return out;
  }

  /** Every entry. */
  entries(): TableEntry[] {
    return [...this.#byId.values()];
  }

  /** How many buckets hold at least one entry. */
  get nonEmptyBuckets(): number {
    let n = 0;
    for (const b of this.#buckets) if (b && b.entries.length > 0) n++;
    return n;
  }

  /** How many entries bucket `index` holds. */
  bucketSize(index: number): number {
    return this.#buckets[index]?.entries.length ?? 0;
  }

  /** Entries of one bucket, least recently seen first (a copy). */
  bucket(index: number): TableEntry[] {
    return [...this.#buckets[index]?.entries ?? []];
  }

  /** Replacement cache of one bucket, most recent last (a copy). */
  replacements(index: number): TableEntry[] {
    return [...this.#buckets[index]?.replacements ?? []];
  }

  /** Marks a bucket as looked up in at `now`. */
  touch(index: number, now: number): void {
    if (index >= 0 && index < 256) this.#bucket(index).refreshed = now;
  }

  /**
   * Buckets to refresh: those not looked up in since `now - ageMs`, from the
   * closest non-empty one outwards (section 5.4). Buckets beyond the deepest
   * non-empty one are empty by construction and are left out.
   */
  staleBuckets(now: number, ageMs: number): number[] {
    let deepest = -1;
    for (let i = 255; i >= 0; i--) {
      if ((this.#buckets[i]?.entries.length ?? 0) > 0) {
        deepest = i;
        break;
      }
    }
    const out: number[] = [];
    for (let i = 0; i <= deepest; i++) if (now - (this.#buckets[i]?.refreshed ?? this.#created) >= ageMs) out.push(i);
    return out;
  }

  #withinPrefixLimits(index: number, ip: string, ignore: TableEntry | null): boolean {
    if (this.#exempt(ip)) return true;
    const prefix = ipPrefix(ip);
    if (prefix === null) return false;
    if ((this.#prefixCount.get(prefix) ?? 0) - (ignore?.prefix === prefix ? 1 : 0) >= this.#perTable) return false;
    let inBucket = 0;
    for (const e of this.#buckets[index]?.entries ?? []) if (e !== ignore && e.prefix === prefix) inBucket++;
    return inBucket < this.#perBucket;
  }

  #bucket(index: number): Bucket {
    return this.#buckets[index] ??= { entries: [], replacements: [], refreshed: this.#created };
  }

  #prefixOfIp(ip: string): string | null {
    return this.#exempt(ip) ? null : ipPrefix(ip);
  }

  #index(entry: TableEntry): void {
    this.#byId.set(entry.key, entry);
    this.#byAddr.set(udpAddrKey(entry.addr), entry);
    const prefix = entry.prefix;
    if (prefix !== null) this.#prefixCount.set(prefix, (this.#prefixCount.get(prefix) ?? 0) + 1);
  }

  #unindex(entry: TableEntry): void {
    this.#byId.delete(entry.key);
    this.#byAddr.delete(udpAddrKey(entry.addr));
    const prefix = entry.prefix;
    if (prefix !== null) {
      const n = (this.#prefixCount.get(prefix) ?? 1) - 1;
      if (n > 0) this.#prefixCount.set(prefix, n);
      else this.#prefixCount.delete(prefix);
    }
  }
}

function moveToEnd<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0 && i !== list.length - 1) {
    list.splice(i, 1);
    list.push(item);
  }
}

/**
 * A random ID in bucket `index` of `self`: it shares exactly `index` leading
 * bits with `self` (section 5.4, bucket refresh).
 */
export function randomIdInBucket(self: Uint8Array, index: number, random: Uint8Array): Uint8Array {
  const id = random.slice(0, 32);
  const byte = index >> 3, bit = index & 7;
  for (let i = 0; i < byte; i++) id[i] = self[i];
  const keepMask = (0xff00 >> bit) & 0xff; // the `bit` leading bits of this byte are self's
  const flip = 0x80 >> bit;
  id[byte] = (self[byte] & keepMask) | ((self[byte] ^ flip) & flip) | (id[byte] & ~(keepMask | flip) & 0xff);
  return id;
}
