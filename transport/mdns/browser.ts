/**
 * Browsing for DNS-SD service instances over mDNS (RFC 6763 section 4,
 * RFC 6762 section 5.2): continuous PTR queries with doubling intervals and
 * known answers, resolution of SRV, TXT and addresses, a cache with TTL
 * expiry and refresh queries at 80-95 % of a TTL, goodbyes, and cache flush.
 *
 * Whatever a packet holds is checked before use: a record of a foreign type
 * or with bad data is skipped, and the number of instances and addresses kept
 * is bounded, so a flood cannot grow the cache without end.
 *
 * @module
 */

import { checkServiceType, decodeTxt, instanceOf, sameName, type TxtRecord, typeFqdn } from "./dns_sd.ts";
import type { DnsQuestion, DnsRecord, MdnsRemote, MdnsSocket } from "./socket.ts";

/** A resolved service instance. */
export interface ServiceInstance {
  /** The instance name (`nzcore-0a1b2c3d4e5f`). */
  name: string;
  /** The service type (`_nzcore._udp`). */
  type: string;
  /** The full name, `<name>.<type>.local`. */
  fqdn: string;
  /** The host the SRV record points at (`nzcore-0a1b2c3d4e5f.local`). */
  host: string;
  /** The port of the SRV record. */
  port: number;
  /** The TXT record, keys in lowercase. */
  txt: TxtRecord;
  /** The host's addresses: the one the answer came from first (it reaches us), then the others sorted. */
  addresses: string[];
}

/** Options of {@linkcode browse}. */
export interface BrowseOptions {
  /** Instances kept at most; PTRs of more are ignored and counted (default 256). */
  maxInstances?: number;
  /** The first interval between PTR queries, doubling after each (default 1 s, RFC 6762 section 5.2). */
  queryIntervalMs?: number;
  /** The longest interval between PTR queries (default 60 minutes, RFC 6762 section 5.2). */
  maxQueryIntervalMs?: number;
  /** How often the cache is checked for expiry and refresh (default 250 ms). */
  tickMs?: number;
}

/** Counters of a {@linkcode Browser}, live. */
export interface BrowserStats {
  /** Queries sent. */
  queries: number;
  /** Records read. */
  records: number;
  /** Records skipped: bad data, another type, unknown instance. */
  ignored: number;
  /** PTRs ignored because {@linkcode BrowseOptions.maxInstances} were kept already. */
  overflow: number;
  /** `onUp`/`onDown` calls that threw. */
  callbackErrors: number;
}

/** A running browse; `stop()` ends it. */
export interface Browser {
  /** The resolved instances now. */
  services(): ServiceInstance[];
  /** Counters, live. */
  readonly stats: BrowserStats;
  /** Stops querying and forgets the cache (no `onDown` calls). */
  stop(): void;
}

/** Addresses kept per host. */
const MAX_ADDRESSES = 16;
/** A goodbye (TTL 0) removes a record after one second (RFC 6762 section 10.1). */
const GOODBYE_DELAY_MS = 1000;
/** Within this of its arrival, a record survives a cache flush of its name (RFC 6762 section 10.2). */
const FLUSH_GRACE_MS = 1000;
/** Refresh queries at these fractions of a TTL (RFC 6762 section 5.2). */
const REFRESH_AT = [0.8, 0.85, 0.9, 0.95];
/** Attempts to resolve an instance before waiting for its next PTR. */
const MAX_RESOLVE_ATTEMPTS = 5;

interface Cached<T> {
  value: T;
  /** Milliseconds since the epoch when it arrived. */
  added: number;
  /** When it expires. */
  expires: number;
  /** Its TTL in milliseconds, for refresh and known answers. */
  ttlMs: number;
  /** Refresh queries sent for it so far. */
  refreshes: number;
}

interface Entry {
  fqdn: string;
  name: string;
  ptr: Cached<true>;
  srv?: Cached<{ host: string; port: number }>;
  txt?: Cached<TxtRecord>;
  from?: string;
  up?: ServiceInstance;
  upKey?: string;
  resolveAttempts: number;
  nextResolveAt: number;
}

/**
 * Browses `type` on `socket`; `onUp` gets each instance once it is resolved
 * (and again when it changes), `onDown` each resolved instance that leaves.
 *
 * @throws {SyntaxError} when `type` is not a service type.
 */
export function browse(
  socket: MdnsSocket,
  type: string,
  onUp: (service: ServiceInstance) => void,
  onDown: (service: ServiceInstance) => void,
  options: BrowseOptions = {},
): Browser {
  return new ServiceBrowser(socket, checkServiceType(type), onUp, onDown, options);
}

class ServiceBrowser implements Browser {
  readonly stats: BrowserStats = { queries: 0, records: 0, ignored: 0, overflow: 0, callbackErrors: 0 };
  #socket: MdnsSocket;
  #type: string;
  #onUp: (service: ServiceInstance) => void;
  #onDown: (service: ServiceInstance) => void;
  #max: number;
  #maxInterval: number;
  #interval: number;
  #nextQueryAt = 0;
  #entries = new Map<string, Entry>();
  #hosts = new Map<string, Map<string, Cached<string>>>();
  #off: () => void;
  #timer: ReturnType<typeof setInterval>;
  #stopped = false;

  constructor(
    socket: MdnsSocket,
    type: string,
    onUp: (service: ServiceInstance) => void,
    onDown: (service: ServiceInstance) => void,
    options: BrowseOptions,
  ) {
    this.#socket = socket;
    this.#type = type;
    this.#onUp = onUp;
    this.#onDown = onDown;
    this.#max = positive(options.maxInstances ?? 256, "maxInstances");
    this.#interval = positive(options.queryIntervalMs ?? 1000, "queryIntervalMs");
    this.#maxInterval = positive(options.maxQueryIntervalMs ?? 3_600_000, "maxQueryIntervalMs");
    this.#off = socket.onPacket((packet, from) => {
      if (packet.type === "response") this.#onResponse(packet.answers, packet.additionals, from);
    });
    this.#timer = setInterval(() => this.#tick(), positive(options.tickMs ?? 250, "tickMs"));
    this.#tick();
  }

  services(): ServiceInstance[] {
    return [...this.#entries.values()].flatMap((e) => (e.up ? [e.up] : []));
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#off();
    clearInterval(this.#timer);
    this.#entries.clear();
    this.#hosts.clear();
  }

  #onResponse(answers: DnsRecord[] = [], additionals: DnsRecord[] = [], from: MdnsRemote): void {
    if (this.#stopped) return;
    const records = [...(Array.isArray(answers) ? answers : []), ...(Array.isArray(additionals) ? additionals : [])];
    const now = Date.now();
    const touched = new Set<Entry>();
    // PTRs first, then what hangs off them: one packet from avahi carries the whole set, in any order.
    const order = ["PTR", "SRV", "TXT", "A", "AAAA"];
    const sorted = records.filter((r) => r && typeof r.name === "string" && order.includes(r.type));
    this.stats.ignored += records.length - sorted.length;
    sorted.sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
    const flushed = new Set<string>();
    for (const record of sorted) {
      this.stats.records++;
      const ttl = typeof record.ttl === "number" && record.ttl >= 0 ? record.ttl : null;
      if (ttl === null) {
        this.stats.ignored++;
        continue;
      }
      // RFC 6762 section 10.1: a goodbye keeps the record one second more.
      const expires = ttl === 0 ? now + GOODBYE_DELAY_MS : now + ttl * 1000;
      const cached = <T>(value: T): Cached<T> => ({ value, added: now, expires, ttlMs: ttl * 1000, refreshes: 0 });
      switch (record.type) {
        case "PTR": {
          if (!sameName(record.name, typeFqdn(this.#type)) || typeof record.data !== "string") {
            this.stats.ignored++;
            break;
          }
          const name = instanceOf(record.data, this.#type);
          if (name === null) {
            this.stats.ignored++;
            break;
          }
          const key = record.data.toLowerCase();
          let entry = this.#entries.get(key);
          if (!entry) {
            if (ttl === 0) break;
            if (this.#entries.size >= this.#max) {
              this.stats.overflow++;
              break;
            }
            entry = { fqdn: record.data, name, ptr: cached(true as const), resolveAttempts: 0, nextResolveAt: 0 };
            this.#entries.set(key, entry);
          } else {
            entry.ptr = cached(true as const);
            if (ttl > 0) entry.resolveAttempts = 0;
          }
          entry.from = from.address;
          touched.add(entry);
          break;
        }
        case "SRV":
        case "TXT": {
          const entry = this.#entries.get(record.name.toLowerCase());
          if (!entry) {
            this.stats.ignored++;
            break;
          }
          if (record.type === "SRV") {
            const d = record.data;
            if (
              !d || typeof d.target !== "string" || d.target === "" || !Number.isInteger(d.port) || d.port < 1 ||
              d.port > 65535
            ) {
              this.stats.ignored++;
              break;
            }
            entry.srv = cached({ host: d.target, port: d.port });
          } else {
            const strings = Array.isArray(record.data) ? record.data : [record.data];
            entry.txt = cached(decodeTxt(strings.filter((s: unknown) => s instanceof Uint8Array)));
          }
          entry.from = from.address;
          touched.add(entry);
          break;
        }
        case "A":
        case "AAAA": {
          const host = record.name.toLowerCase();
          if (typeof record.data !== "string" || !this.#wantsHost(host)) {
            this.stats.ignored++;
            break;
          }
          let addresses = this.#hosts.get(host);
          if (!addresses) this.#hosts.set(host, addresses = new Map());
          // RFC 6762 section 10.2: a record with the cache-flush bit replaces those of its name and type that are
          // older than one second.
          const flushKey = `${host}|${record.type}`;
          if (record.flush && !flushed.has(flushKey)) {
            flushed.add(flushKey);
            for (const [address, old] of addresses) {
              if (isV6(address) === (record.type === "AAAA") && now - old.added > FLUSH_GRACE_MS) {
                old.expires = Math.min(old.expires, now + GOODBYE_DELAY_MS);
              }
            }
          }
          if (!addresses.has(record.data) && addresses.size >= MAX_ADDRESSES) {
            this.stats.ignored++;
            break;
          }
          addresses.set(record.data, cached(record.data));
          for (const entry of this.#entries.values()) {
            if (entry.srv && sameName(entry.srv.value.host, host)) touched.add(entry);
          }
          break;
        }
      }
    }
    for (const entry of touched) this.#evaluate(entry, now);
  }

  /** Whether an address record of `host` belongs to an instance being resolved (the rest are not kept). */
  #wantsHost(host: string): boolean {
    for (const entry of this.#entries.values()) if (entry.srv && sameName(entry.srv.value.host, host)) return true;
    return false;
  }

  #addressesOf(entry: Entry, now: number): string[] {
    if (!entry.srv) return [];
    const cached = this.#hosts.get(entry.srv.value.host.toLowerCase());
    if (!cached) return [];
    const live = [...cached.values()].filter((c) => c.expires > now && c.ttlMs > 0).map((c) => c.value).sort();
    const first = live.indexOf(entry.from ?? "");
    if (first > 0) live.unshift(...live.splice(first, 1));
    return live;
  }

  #evaluate(entry: Entry, now: number): void {
    const live = <T>(c: Cached<T> | undefined) => c && c.expires > now && c.ttlMs > 0 ? c : undefined;
    const ptr = live(entry.ptr);
    const srv = live(entry.srv);
    const txt = live(entry.txt);
    const addresses = this.#addressesOf(entry, now);
    if (ptr && srv && txt && addresses.length > 0) {
      const service: ServiceInstance = {
        name: entry.name,
        type: this.#type,
        fqdn: entry.fqdn,
        host: srv.value.host,
        port: srv.value.port,
        txt: txt.value,
        addresses,
      };
      const key = JSON.stringify(service);
      if (key !== entry.upKey) {
        entry.up = service;
        entry.upKey = key;
        this.#call(this.#onUp, service);
      }
      return;
    }
    if (entry.up) {
      const gone = entry.up;
      entry.up = undefined;
      entry.upKey = undefined;
      this.#call(this.#onDown, gone);
    }
    if (ptr) {
      if (entry.nextResolveAt <= now + 50) this.#resolve(entry, now);
    }
  }

  /** Asks for what an instance lacks: SRV and TXT, then its host's addresses (with backoff). */
  #resolve(entry: Entry, now: number): void {
    if (entry.resolveAttempts >= MAX_RESOLVE_ATTEMPTS) return;
    const questions: DnsQuestion[] = [];
    if (!entry.srv || entry.srv.expires <= now || entry.srv.ttlMs === 0) {
      questions.push({ name: entry.fqdn, type: "SRV" });
    }
    if (!entry.txt || entry.txt.expires <= now || entry.txt.ttlMs === 0) {
      questions.push({ name: entry.fqdn, type: "TXT" });
    }
    if (entry.srv && this.#addressesOf(entry, now).length === 0) {
      questions.push({ name: entry.srv.value.host, type: "A" }, { name: entry.srv.value.host, type: "AAAA" });
    }
    if (questions.length === 0) return;
    entry.nextResolveAt = now + 1000 * 2 ** entry.resolveAttempts++;
    this.#query(questions);
  }

  #tick(): void {
    if (this.#stopped) return;
    const now = Date.now();
    const questions: DnsQuestion[] = [];
    for (const [key, entry] of this.#entries) {
      if (entry.ptr.expires <= now) {
        this.#entries.delete(key);
        if (entry.up) this.#call(this.#onDown, entry.up);
        continue;
      }
      if (entry.srv && entry.srv.expires <= now) entry.srv = undefined;
      if (entry.txt && entry.txt.expires <= now) entry.txt = undefined;
      const wasUp = entry.up;
      this.#evaluate(entry, now);
      if (wasUp && !entry.up) continue;
      // RFC 6762 section 5.2: refresh what is in use at 80, 85, 90 and 95 % of its TTL.
      if (needsRefresh(entry.ptr, now)) questions.push({ name: typeFqdn(this.#type), type: "PTR" });
      if (entry.srv && needsRefresh(entry.srv, now)) questions.push({ name: entry.fqdn, type: "SRV" });
      if (entry.txt && needsRefresh(entry.txt, now)) questions.push({ name: entry.fqdn, type: "TXT" });
      if (!entry.up && entry.nextResolveAt <= now) this.#resolve(entry, now);
    }
    for (const [host, addresses] of this.#hosts) {
      for (const [address, c] of addresses) if (c.expires <= now) addresses.delete(address);
      if (addresses.size === 0 || !this.#wantsHost(host)) this.#hosts.delete(host);
    }
    if (now >= this.#nextQueryAt) {
      // RFC 6762 section 5.2: the interval doubles, up to an hour.
      this.#nextQueryAt = now + this.#interval;
      this.#interval = Math.min(this.#interval * 2, this.#maxInterval);
      questions.push({ name: typeFqdn(this.#type), type: "PTR" });
    }
    if (questions.length) this.#query(dedupe(questions));
  }

  #query(questions: DnsQuestion[]): void {
    const now = Date.now();
    const answers: DnsRecord[] = [];
    if (questions.some((q) => q.type === "PTR")) {
      // RFC 6762 section 7.1: known answers with more than half their TTL left, so their owners stay silent.
      for (const entry of this.#entries.values()) {
        const left = entry.ptr.expires - now;
        if (entry.ptr.ttlMs > 0 && left > entry.ptr.ttlMs / 2) {
          answers.push({ name: typeFqdn(this.#type), type: "PTR", ttl: Math.floor(left / 1000), data: entry.fqdn });
        }
        if (answers.length >= 64) break;
      }
    }
    this.stats.queries++;
    this.#socket.send({ type: "query", questions, answers }).catch(() => {});
  }

  #call(fn: (service: ServiceInstance) => void, service: ServiceInstance): void {
    try {
      fn(service);
    } catch {
      this.stats.callbackErrors++;
    }
  }
}

function needsRefresh(c: Cached<unknown>, now: number): boolean {
  if (c.ttlMs === 0 || c.refreshes >= REFRESH_AT.length) return false;
  if (now < c.added + c.ttlMs * REFRESH_AT[c.refreshes]) return false;
  c.refreshes++;
  return true;
}

function dedupe(questions: DnsQuestion[]): DnsQuestion[] {
  const seen = new Set<string>();
  return questions.filter((q) => {
    const key = `${q.name.toLowerCase()}|${q.type}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function isV6(address: string): boolean {
  return address.includes(":");
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`Invalid ${name}: ${value}, expected > 0`);
  return value;
}
