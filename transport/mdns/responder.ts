/**
 * Announcing a DNS-SD service instance over mDNS (RFC 6762 sections 6-10,
 * RFC 6763 section 12): probing for its names, announcing its records,
 * answering queries for them (with known-answer suppression and the
 * once-a-second limit), defending them, and goodbyes when it stops.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";
import {
  checkHostLabel,
  checkInstanceName,
  checkServiceType,
  encodeTxt,
  instanceFqdn,
  LOCAL_DOMAIN,
  sameName,
  SERVICES_META_QUERY,
  type TxtRecord,
  typeFqdn,
} from "./dns_sd.ts";
import type { DnsPacket, DnsRecord, MdnsRemote, MdnsSocket } from "./socket.ts";

/** TTL of records naming a host (A, AAAA, SRV), in seconds (RFC 6762 section 10). */
export const HOST_RECORD_TTL = 120;
/** TTL of other records (PTR, TXT), in seconds (RFC 6762 section 10). */
export const OTHER_RECORD_TTL = 4500;
/** Probes sent before a name is ours (RFC 6762 section 8.1). */
const PROBE_COUNT = 3;
/** Between probes (RFC 6762 section 8.1). */
const PROBE_INTERVAL_MS = 250;
/** Unsolicited announcements (RFC 6762 section 8.3: at least two, intervals doubling from one second). */
const ANNOUNCE_COUNT = 3;
/** A record is multicast at most this often, except to defend it against a probe (RFC 6762 section 6). */
const MULTICAST_INTERVAL_MS = 1000;
const PROBE_DEFENSE_INTERVAL_MS = 250;
/** After losing a simultaneous probe, wait this long and probe again (RFC 6762 section 8.2). */
const TIEBREAK_DELAY_MS = 1000;
/** Renames tried before giving up. */
const MAX_RENAMES = 15;
/** TTL of answers to legacy unicast queries (RFC 6762 section 6.7). */
const LEGACY_UNICAST_TTL = 10;
/** Unicast answers per second at most: a flood of queries gets no flood of answers. */
const MAX_UNICAST_PER_SECOND = 20;

/** What {@linkcode announce} publishes. */
export interface ServiceDescription {
  /** The instance name (`nzcore-0a1b2c3d4e5f`): 1-63 bytes of UTF-8, no dots. */
  instance: string;
  /** The service type (`_nzcore._udp`). */
  type: string;
  /** The port of the service (SRV). */
  port: number;
  /** The TXT record (default empty). */
  txt?: TxtRecord;
  /** The host name label the SRV record points at, without `.local` (default: derived from the instance name). */
  host?: string;
  /** The addresses of the host's A/AAAA records (default: the socket's interface addresses, read at each answer). */
  addresses?: readonly string[];
  /** Override of the TTLs in seconds (tests use short ones to see expiry). */
  ttl?: { host?: number; other?: number };
  /** Whether to probe before announcing (default true). */
  probe?: boolean;
}

/** Counters of an {@linkcode Announcement}, live. */
export interface AnnouncementStats {
  /** Queries answered (multicast or unicast). */
  answered: number;
  /** Answers left out because the querier listed them as known (RFC 6762 section 7.1). */
  suppressed: number;
  /** Conflicts that led to a new name. */
  conflicts: number;
  /** Unicast answers left out by the limit of 20 a second. */
  limited: number;
}

/** A service being announced; `stop()` sends goodbyes. */
export interface Announcement {
  /** The instance name won in probing (`name (2)` after a conflict). */
  readonly instance: string;
  /** The host name in use, with `.local`. */
  readonly host: string;
  /** Counters, live. */
  readonly stats: AnnouncementStats;
  /** Sends goodbyes (TTL 0, RFC 6762 section 10.1) and stops answering. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Probes for the names of `service`, announces it and answers queries for it
 * on `socket` until `stop()`.
 *
 * @throws {SyntaxError|RangeError} when the description is invalid.
 * @throws {Error} when every name tried was taken.
 */
export async function announce(socket: MdnsSocket, service: ServiceDescription): Promise<Announcement> {
  const responder = new Responder(socket, service);
  await responder.start();
  return responder;
}

type State = "probing" | "announced" | "stopped";

class Responder implements Announcement {
  readonly stats: AnnouncementStats = { answered: 0, suppressed: 0, conflicts: 0, limited: 0 };
  #socket: MdnsSocket;
  #type: string;
  #baseInstance: string;
  #instance: string;
  #baseHost: string;
  #host: string;
  #port: number;
  #txt: Uint8Array[];
  #addresses?: readonly string[];
  #hostTtl: number;
  #otherTtl: number;
  #probe: boolean;
  #state: State = "probing";
  #renames = 0;
  #lastMulticast = new Map<string, number>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #off: () => void = () => {};
  #probeRound = 0;
  #probeDone?: PromiseWithResolvers<void>;
  #announced = false;
  #unicast = { second: 0, count: 0 };

  constructor(socket: MdnsSocket, service: ServiceDescription) {
    this.#socket = socket;
    this.#type = checkServiceType(service.type);
    this.#baseInstance = this.#instance = checkInstanceName(service.instance);
    this.#baseHost = this.#host = checkHostLabel(service.host ?? hostLabelOf(service.instance));
    if (!Number.isInteger(service.port) || service.port < 0 || service.port > 65535) {
      throw new RangeError(`Invalid port: ${service.port}, expected 0-65535`);
    }
    this.#port = service.port;
    this.#txt = encodeTxt(service.txt ?? {});
    this.#addresses = service.addresses ? [...service.addresses] : undefined;
    this.#hostTtl = ttlOf(service.ttl?.host, HOST_RECORD_TTL, "ttl.host");
    this.#otherTtl = ttlOf(service.ttl?.other, OTHER_RECORD_TTL, "ttl.other");
    this.#probe = service.probe ?? true;
  }

  get instance(): string {
    return this.#instance;
  }

  get host(): string {
    return `${this.#host}.${LOCAL_DOMAIN}`;
  }

  async start(): Promise<void> {
    this.#off = this.#socket.onPacket((packet, from) => this.#onPacket(packet, from));
    try {
      if (this.#probe) await this.#probeNames();
    } catch (error) {
      this.#off();
      this.#clearTimers();
      this.#state = "stopped";
      throw error;
    }
    this.#state = "announced";
    this.#announce();
  }

  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    const announced = this.#announced;
    this.#state = "stopped";
    this.#off();
    this.#clearTimers();
    if (!announced || this.#socket.closed) return;
    // RFC 6762 section 10.1: the same records with TTL 0 tell caches to drop them (in one second). The host's
    // address records stay: another service of this host may point at them, and unused they expire in 120 s.
    const goodbye = this.#records().filter((r) => r.type !== "A" && r.type !== "AAAA").map((r) => ({ ...r, ttl: 0 }));
    await this.#socket.send({ type: "response", flags: dnsPacket.AUTHORITATIVE_ANSWER, answers: goodbye }).catch(
      () => {},
    );
  }

  // -- probing, RFC 6762 section 8.1-8.2

  async #probeNames(): Promise<void> {
    for (;;) {
      this.#probeDone = Promise.withResolvers<void>();
      const round = ++this.#probeRound;
      // RFC 6762 section 8.1: a random delay of 0-250 ms before the first probe.
      this.#later(Math.random() * PROBE_INTERVAL_MS, () => this.#sendProbe(round, 0));
      const outcome = await this.#probeDone.promise.then(() => "won" as const, (e) => e as ProbeLost);
      if (outcome === "won") return;
      if (outcome.reason === "tiebreak") {
        await new Promise<void>((resolve) => this.#later(TIEBREAK_DELAY_MS, resolve));
      } else {
        this.stats.conflicts++;
        if (++this.#renames > MAX_RENAMES) {
          throw new Error(`mDNS: every name tried for "${this.#baseInstance}" is taken`);
        }
        // RFC 6763 section 4.1.1 leaves the choice of a new name to us: "name (2)", and "host-2" for the host.
        if (outcome.name === "instance") this.#instance = renamed(this.#baseInstance, this.#renames + 1);
        else this.#host = `${this.#baseHost.slice(0, 55)}-${this.#renames + 1}`;
      }
      if (this.#state === "stopped") throw new Error("mDNS: the announcement stopped while probing");
    }
  }

  #sendProbe(round: number, sent: number): void {
    if (round !== this.#probeRound || this.#state !== "probing") return;
    if (sent === PROBE_COUNT) {
      this.#probeDone?.resolve();
      return;
    }
    const packet: DnsPacket = {
      type: "query",
      questions: [{ name: this.#fqdn(), type: "ANY" }, { name: this.host, type: "ANY" }],
      authorities: this.#uniqueRecords(),
    };
    this.#socket.send(packet).catch(() => {});
    this.#later(PROBE_INTERVAL_MS, () => this.#sendProbe(round, sent + 1));
  }

  /** RFC 6762 section 8.2: of two hosts probing for a name at once, the one whose records sort later wins. */
  #tiebreak(probe: DnsPacket): void {
    for (const [name, which] of [[this.#fqdn(), "instance"], [this.host, "host"]] as const) {
      const theirs = (probe.authorities ?? []).filter((r) => sameName(r.name, name));
      if (theirs.length === 0) continue;
      const ours = this.#uniqueRecords().filter((r) => sameName(r.name, name));
      const order = compareRecordSets(ours, theirs);
      if (order < 0) this.#lose({ reason: "tiebreak", name: which });
    }
  }

  #lose(lost: ProbeLost): void {
    if (this.#state !== "probing") {
      // RFC 6762 section 9: a conflict after probing puts the records back into probing.
      if (this.#state === "announced" && lost.reason === "conflict") void this.#reprobe(lost);
      return;
    }
    this.#probeRound++;
    this.#probeDone?.reject(lost);
  }

  async #reprobe(lost: ProbeLost): Promise<void> {
    this.#state = "probing";
    this.stats.conflicts++;
    const oldRecords = this.#records();
    if (++this.#renames > MAX_RENAMES) {
      await this.stop();
      return;
    }
    if (lost.name === "instance") this.#instance = renamed(this.#baseInstance, this.#renames + 1);
    else this.#host = `${this.#baseHost.slice(0, 55)}-${this.#renames + 1}`;
    // The old names are someone else's now: withdraw ours.
    await this.#socket.send({ type: "response", answers: oldRecords.map((r) => ({ ...r, ttl: 0 })) }).catch(() => {});
    try {
      await this.#probeNames();
    } catch {
      await this.stop();
      return;
    }
    if (this.#state !== "probing") return;
    this.#state = "announced";
    this.#announce();
  }

  // -- announcing, RFC 6762 section 8.3

  #announce(): void {
    this.#announced = true;
    const send = (n: number) => {
      if (this.#state !== "announced" || this.#socket.closed) return;
      const records = this.#records();
      for (const r of records) this.#lastMulticast.set(recordKey(r), Date.now());
      this.#socket.send({ type: "response", flags: dnsPacket.AUTHORITATIVE_ANSWER, answers: records }).catch(() => {});
      if (n + 1 < ANNOUNCE_COUNT) this.#later(1000 * 2 ** n, () => send(n + 1));
    };
    send(0);
  }

  // -- answering, RFC 6762 sections 6, 7.1 and 6.7; RFC 6763 section 12

  #onPacket(packet: DnsPacket, from: MdnsRemote): void {
    if (this.#state === "stopped") return;
    if (packet.type === "response") {
      this.#checkConflicts(packet);
      return;
    }
    if (packet.type !== "query") return;
    if (this.#state === "probing") {
      if (packet.authorities?.length) this.#tiebreak(packet);
      return;
    }
    this.#answer(packet, from);
  }

  #checkConflicts(packet: DnsPacket): void {
    const ours = this.#uniqueRecords();
    for (const record of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
      if (!record || typeof record.name !== "string") continue;
      const which = sameName(record.name, this.#fqdn()) ? "instance" : sameName(record.name, this.host) ? "host" : null;
      if (!which || record.ttl === 0) continue;
      // The same data is no conflict: it is our own packet come back, or another of this host's sockets.
      if (ours.some((r) => sameName(r.name, record.name) && sameRecord(r, record))) continue;
      // An address record for our host name that is one of ours (a host with two interfaces) is no conflict either.
      if (which === "host" && (record.type === "A" || record.type === "AAAA")) {
        if (this.#hostAddresses().includes(String(record.data))) continue;
      }
      this.#lose({ reason: "conflict", name: which });
      return;
    }
  }

  #answer(query: DnsPacket, from: MdnsRemote): void {
    const legacy = from.port !== this.#socket.port;
    const all = this.#records();
    const answers: DnsRecord[] = [];
    for (const q of query.questions ?? []) {
      if (!q || typeof q.name !== "string" || !isInternetClass(q.class)) continue;
      for (const r of all) {
        if (!sameName(r.name, q.name) || (q.type !== "ANY" && q.type !== r.type)) continue;
        if (!answers.includes(r)) answers.push(r);
      }
    }
    if (answers.length === 0) return;
    // RFC 6762 section 7.1: leave out what the querier already knows with at least half our TTL left.
    const known = (query.answers ?? []).filter((k) => k && typeof k.name === "string");
    const fresh = answers.filter((r) => {
      const suppressed = known.some((k) => sameName(k.name, r.name) && sameRecord(k, r) && (k.ttl ?? 0) >= r.ttl! / 2);
      if (suppressed) this.stats.suppressed++;
      return !suppressed;
    });
    if (fresh.length === 0) return;
    // RFC 6763 section 12: with a PTR go the SRV, TXT and addresses; with an SRV the addresses.
    const additionals: DnsRecord[] = [];
    const add = (r: DnsRecord) => {
      if (!fresh.includes(r) && !additionals.includes(r)) additionals.push(r);
    };
    for (const r of fresh) {
      if (r.type === "PTR" && sameName(r.name, typeFqdn(this.#type))) {
        all.filter((x) => sameName(x.name, this.#fqdn()) || sameName(x.name, this.host)).forEach(add);
      } else if (r.type === "SRV") all.filter((x) => sameName(x.name, this.host)).forEach(add);
    }
    if (legacy) {
      const second = Math.floor(Date.now() / 1000);
      if (this.#unicast.second !== second) this.#unicast = { second, count: 0 };
      if (++this.#unicast.count > MAX_UNICAST_PER_SECOND) {
        this.stats.limited++;
        return;
      }
      this.stats.answered++;
      // RFC 6762 section 6.7: a querier not on port 5353 gets a conventional unicast answer: its ID, its
      // questions, short TTLs and no cache-flush bits.
      const cap = (r: DnsRecord) => ({ ...r, ttl: Math.min(r.ttl!, LEGACY_UNICAST_TTL), flush: false });
      const reply: DnsPacket = {
        id: query.id,
        type: "response",
        flags: dnsPacket.AUTHORITATIVE_ANSWER,
        questions: query.questions,
        answers: fresh.map(cap),
        additionals: additionals.map(cap),
      };
      this.#socket.send(reply, from).catch(() => {});
      return;
    }
    this.stats.answered++;
    // RFC 6762 section 6: at most one multicast of a record per second (a quarter second to defend against a probe).
    const now = Date.now();
    const interval = query.authorities?.length ? PROBE_DEFENSE_INTERVAL_MS : MULTICAST_INTERVAL_MS;
    const due = fresh.filter((r) => now - (this.#lastMulticast.get(recordKey(r)) ?? -Infinity) >= interval);
    if (due.length === 0) return;
    // RFC 6762 section 6: answers with shared records (PTR) wait 20-120 ms, so that responders do not collide.
    const shared = due.some((r) => !r.flush);
    const send = () => {
      if (this.#state !== "announced") return;
      const at = Date.now();
      for (const r of [...due, ...additionals]) this.#lastMulticast.set(recordKey(r), at);
      this.#socket.send({ type: "response", flags: dnsPacket.AUTHORITATIVE_ANSWER, answers: due, additionals })
        .catch(() => {});
    };
    if (shared) this.#later(20 + Math.random() * 100, send);
    else send();
  }

  // -- records

  #fqdn(): string {
    return instanceFqdn(this.#instance, this.#type);
  }

  #hostAddresses(): string[] {
    return [...(this.#addresses ?? this.#socket.addresses())];
  }

  /** The unique records (RFC 6762 section 2): SRV, TXT, A and AAAA, each with the cache-flush bit. */
  #uniqueRecords(): DnsRecord[] {
    const records: DnsRecord[] = [
      {
        name: this.#fqdn(),
        type: "SRV",
        ttl: this.#hostTtl,
        flush: true,
        data: { priority: 0, weight: 0, port: this.#port, target: this.host },
      },
      // Buffers, because dns-packet encodes only Buffers; copies, because it replaces the array's elements.
      { name: this.#fqdn(), type: "TXT", ttl: this.#otherTtl, flush: true, data: this.#txt.map((s) => Buffer.from(s)) },
    ];
    for (const address of this.#hostAddresses()) {
      const type = address.includes(":") ? "AAAA" : "A";
      records.push({ name: this.host, type, ttl: this.#hostTtl, flush: true, data: address });
    }
    return records;
  }

  /** Every record: the shared PTRs (RFC 6763 sections 4.1 and 9) and the unique ones. */
  #records(): DnsRecord[] {
    return [
      { name: typeFqdn(this.#type), type: "PTR", ttl: this.#otherTtl, data: this.#fqdn() },
      { name: SERVICES_META_QUERY, type: "PTR", ttl: this.#otherTtl, data: typeFqdn(this.#type) },
      ...this.#uniqueRecords(),
    ];
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  #clearTimers(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

interface ProbeLost {
  reason: "conflict" | "tiebreak";
  name: "instance" | "host";
}

/** `IN`, `ANY`, or either with the unicast-response bit (dns-packet decodes those as `UNKNOWN_32769` / `UNKNOWN_33023`). */
function isInternetClass(klass: string | undefined): boolean {
  return klass === undefined || klass === "IN" || klass === "ANY" || klass === "UNKNOWN_32769" ||
    klass === "UNKNOWN_33023";
}

function ttlOf(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new RangeError(`Invalid ${name}: ${value}, expected a whole number of seconds >= 1`);
  }
  return value;
}

function renamed(base: string, n: number): string {
  const suffix = ` (${n})`;
  let name = base;
  while (new TextEncoder().encode(name + suffix).length > 63) name = name.slice(0, -1);
  return name + suffix;
}

/** A host label from an instance name: lowercase letters, digits and hyphens. */
function hostLabelOf(instance: string): string {
  const label = instance.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63)
    .replace(/-+$/, "");
  return label || "host";
}

function recordKey(r: DnsRecord): string {
  return `${r.name.toLowerCase()}|${r.type}|${dataKey(r)}`;
}

function dataKey(r: DnsRecord): string {
  if (r.type === "TXT") {
    const strings: Uint8Array[] = Array.isArray(r.data) ? r.data : [r.data];
    return strings.map((s) => (s instanceof Uint8Array ? [...s].join(",") : String(s))).join("|");
  }
  if (r.type === "SRV") {
    const d = r.data ?? {};
    return `${d.priority}|${d.weight}|${d.port}|${String(d.target).toLowerCase()}`;
  }
  if (r.type === "PTR") return String(r.data).toLowerCase();
  return String(r.data);
}

/** Whether two records of the same name carry the same type and data. */
function sameRecord(a: DnsRecord, b: DnsRecord): boolean {
  try {
    return a.type === b.type && dataKey(a) === dataKey(b);
  } catch {
    return false;
  }
}

/**
 * RFC 6762 section 8.2.1: sorts each set by (class, type, rdata) and compares
 * them pairwise, then by length. Negative when `ours` is earlier (we lose).
 */
function compareRecordSets(ours: DnsRecord[], theirs: DnsRecord[]): number {
  const a = ours.map(canonical).sort(compareBytes);
  const b = theirs.map(canonical).sort(compareBytes);
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareBytes(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** class (without the cache-flush bit), type, then RDATA with names uncompressed: what section 8.2 compares. */
function canonical(r: DnsRecord): Uint8Array {
  try {
    const wire: Uint8Array = dnsPacket.answer.encode({ ...r, name: ".", flush: false, ttl: 0 });
    // "." is one byte; then type (2), class (2), TTL (4), RDLENGTH (2), RDATA.
    const type = wire.subarray(1, 3);
    const klass = wire.subarray(3, 5);
    const out = new Uint8Array(wire.length - 7);
    out.set(klass, 0);
    out.set(type, 2);
    out.set(wire.subarray(11), 4);
    return out;
  } catch {
    return new Uint8Array(0);
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
