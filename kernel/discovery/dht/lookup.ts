/**
 * The iterative lookup of NZ-DHT-01 (section 8): Kademlia's node lookup
 * (Maymounkov and Mazieres 2002, section 2.3) with alpha queries in flight,
 * run as d disjoint paths (S/Kademlia, Baumgart and Mies 2007, section 4.4):
 * the k closest starting contacts are dealt round-robin to the paths, each
 * path keeps its own shortlist, and a node (or an address) queried by one path
 * is never queried by another, so an adversary met on one path cannot steer
 * the others. The result is the k closest nodes that answered, over all paths.
 *
 * This module only decides whom to ask next; the caller's `query` sends the
 * request and returns the contacts the answer held.
 *
 * @module
 */

import { udpAddrKey } from "../../../transport/udp.ts";
import { compareDistance, type Contact, idKey, sameId } from "./contact.ts";

/** What one query returned. */
export type QueryOutcome = { ok: true; contacts: readonly Contact[] } | { ok: false };

/** Options of {@linkcode lookup}. */
export interface LookupOptions {
  /** The ID looked up. */
  target: Uint8Array;
  /** Our own ID (never queried). */
  self: Uint8Array;
  /** Where to start: the closest contacts of the routing table (any order). */
  start: readonly Contact[];
  /** Result size and shortlist size per path (k). */
  k: number;
  /** Queries in flight per path (alpha). */
  alpha: number;
  /** Disjoint paths (d); 1 is plain Kademlia. */
  paths: number;
  /** Sends one query to `contact` (which must answer with its own ID); `hop` is its hop number. */
  query: (contact: Contact, hop: number) => Promise<QueryOutcome>;
  /** Ends the lookup early once it returns true for a node that answered. */
  stopWhen?: (responder: Contact) => boolean;
  /** Aborts the lookup (it then rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** The outcome of {@linkcode lookup}. */
export interface LookupOutcome {
  /** The k closest nodes that answered, closest first. */
  closest: Contact[];
  /** The node `stopWhen` accepted, if any. */
  stoppedAt: Contact | null;
  /**
   * The length of the query chain that first reached the node `stopWhen`
   * accepted, or else the closest node that answered: the starting contacts
   * are hop 1, a contact learned from a hop-h answer is hop h + 1; 0 when no
   * node answered.
   */
  hops: number;
  /** Queries sent. */
  queried: number;
  /** Queries that failed (no answer, a bad answer, or the wrong key). */
  failed: number;
}

type State = "new" | "inflight" | "done" | "failed" | "skipped";

interface Candidate {
  contact: Contact;
  key: string;
  hop: number;
  state: State;
}

interface Path {
  /** Closest first. */
  shortlist: Candidate[];
  byKey: Map<string, Candidate>;
  inflight: number;
  finished: boolean;
}

/** The most candidates a path keeps; farther ones are forgotten. */
const SHORTLIST_FACTOR = 4;

/**
 * Runs a lookup.
 *
 * @returns The k closest responders, the hop count and the query counts.
 * @throws The signal's reason when it aborts.
 *
 * @example
 * ```ts
 * import { lookup } from "./lookup.ts";
 *
 * const target = new Uint8Array(32).fill(7);
 * const node = { id: target, addr: { hostname: "192.0.2.1", port: 1 } };
 * const result = await lookup({
 *   target, self: new Uint8Array(32), start: [node], k: 20, alpha: 3, paths: 3,
 *   query: () => Promise.resolve({ ok: true, contacts: [] }),
 * });
 * if (result.closest.length !== 1 || result.hops !== 1) throw new Error("Cannot look up");
 * ```
 */
export function lookup(options: LookupOptions): Promise<LookupOutcome> {
  const { target, self, k, alpha, query, stopWhen, signal } = options;
  const pathCount = Math.max(1, options.paths);
  return new Promise<LookupOutcome>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    /** Which path claimed an ID or an address. */
    const claimed = new Map<string, number>();
    const responders: Candidate[] = [];
    const paths: Path[] = [];
    let queried = 0, failed = 0, done = false, stoppedAt: Candidate | null = null;

    const finish = () => {
      if (done) return;
      done = true;
      signal?.removeEventListener("abort", onAbort);
      responders.sort((a, b) => compareDistance(a.contact.id, b.contact.id, target));
      const closest = responders.slice(0, k);
      const hops = stoppedAt?.hop ?? closest[0]?.hop ?? 0;
      resolve({
        closest: closest.map((c) => c.contact),
        stoppedAt: stoppedAt?.contact ?? null,
        hops,
        queried,
        failed,
      });
    };
    const onAbort = () => {
      if (done) return;
      done = true;
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    const add = (path: Path, contact: Contact, hop: number) => {
      if (sameId(contact.id, self)) return;
      const key = idKey(contact.id);
      const existing = path.byKey.get(key);
      if (existing) {
        if (hop < existing.hop && existing.state === "new") existing.hop = hop;
        return;
      }
      const owner = claimed.get(key) ?? claimed.get(udpAddrKey(contact.addr));
      if (owner !== undefined && owner !== paths.indexOf(path)) return;
      const candidate: Candidate = { contact, key, hop, state: "new" };
      // Binary insertion, closest first.
      let lo = 0, hi = path.shortlist.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareDistance(path.shortlist[mid].contact.id, contact.id, target) < 0) lo = mid + 1;
        else hi = mid;
      }
      if (lo >= k * SHORTLIST_FACTOR) return;
      path.shortlist.splice(lo, 0, candidate);
      path.byKey.set(key, candidate);
      if (path.shortlist.length > k * SHORTLIST_FACTOR) {
        const dropped = path.shortlist.pop()!;
        if (dropped.state === "new") path.byKey.delete(dropped.key);
      }
    };

    const pump = (p: number) => {
      const path = paths[p];
      if (path.finished || done) return;
      if (stoppedAt) {
        path.finished = true;
      } else {
        let window = 0;
        for (const c of path.shortlist) {
          if (window >= k) break;
          if (c.state === "failed" || c.state === "skipped") continue;
          if (c.state === "new") {
            if (path.inflight >= alpha) {
              window++;
              continue;
            }
            const addrKey = udpAddrKey(c.contact.addr);
            const owner = claimed.get(c.key) ?? claimed.get(addrKey);
            if (owner !== undefined) {
              // Queried already, by another path or (at this address, under another ID) by this one.
              c.state = "skipped";
              continue;
            }
            claimed.set(c.key, p);
            claimed.set(addrKey, p);
            c.state = "inflight";
            path.inflight++;
            queried++;
            launch(p, c);
          }
          window++;
        }
        if (path.inflight === 0) path.finished = true;
      }
      if (paths.every((x) => x.finished)) finish();
    };

    const launch = (p: number, c: Candidate) => {
      let outcome: Promise<QueryOutcome>;
      try {
        outcome = query(c.contact, c.hop);
      } catch {
        outcome = Promise.resolve({ ok: false });
      }
      outcome.then((o) => o, () => ({ ok: false }) as QueryOutcome).then((o) => {
        const path = paths[p];
        path.inflight--;
        if (done) return;
        if (o.ok) {
          c.state = "done";
          responders.push(c);
          if (!stoppedAt && stopWhen?.(c.contact)) stoppedAt = c;
          for (const learned of o.contacts) add(path, learned, c.hop + 1);
        } else {
          c.state = "failed";
          failed++;
        }
        if (stoppedAt) {
          for (const x of paths) x.finished = true;
          finish();
          return;
        }
        pump(p);
      });
    };

    const start = [...options.start].sort((a, b) => compareDistance(a.id, b.id, target)).slice(0, k);
    for (let p = 0; p < pathCount; p++) paths.push({ shortlist: [], byKey: new Map(), inflight: 0, finished: false });
    start.forEach((contact, i) => add(paths[i % pathCount], contact, 1));
    for (let p = 0; p < pathCount; p++) pump(p);
    if (!done && paths.every((x) => x.finished)) finish();
  });
}
