/**
 * The DHT simulation: N nodes running the real DHT code in one process, over a
 * {@linkcode MemoryDatagramNetwork} with latency, loss and churn, then M
 * FIND_NODE lookups; prints progress on stderr and ends stdout with one JSON
 * line of results.
 *
 * ```sh
 * deno task dht-sim --nodes 1000 [--churn 0.2] [--sybil 0.1] [--lookups 1000] [--impl nzcore|bittorrent-dht]
 * ```
 *
 * Options: `--nodes N` (1000), `--lookups M` (1000), `--churn FRACTION` of the
 * nodes that leave during the lookups while as many new ones join (0),
 * `--sybil FRACTION` of adversarial nodes (0) answering lookups with made-up
 * IDs (`--sybil-mode fake`) or junk (`junk`; see `_dht_sim_nzcore.ts`),
 * `--latency MS` one-way delay, each datagram drawn uniformly from half to one
 * and a half times it (20), `--loss RATE` (0.01), `--paths D` disjoint lookup
 * paths (the DHT's default), `--seed S` (1), `--concurrency C` lookups at once
 * (16), `--join-concurrency J` nodes joining at once (32), `--settle MS` wait
 * between joining and looking up (2000), `--impl` (nzcore), `--heap-snapshot
 * PATH` to write a V8 heap snapshot after the lookups (one worker only),
 * `--workers W` threads to run the nodes on (1).
 *
 * With `--workers W` > 1 the nodes are spread over W workers by the last
 * octet of their address, each worker holding its part of the network
 * (`_dht_sim_shard.ts`); datagrams between parts cross a `MessagePort` with
 * their due time, so one run can use every core. This thread then only
 * coordinates: it draws everything random about the run, so the same seed
 * gives the same addresses, keys and lookups whatever W is.
 *
 * Phases:
 * 1. Join: every node gets a distinct random public-looking IPv4 address (so
 *    per-prefix limits apply as on the internet) and bootstraps from up to
 *    three random nodes that joined before it, J at a time.
 * 2. Settle.
 * 3. Lookups: M FIND_NODE lookups, C at a time, each from a random live node
 *    for the ID of another random live node. A lookup succeeds when the target
 *    node itself is found. With churn, FRACTION × N nodes leave (close their
 *    socket, without a word) and as many new ones join, spread evenly over the
 *    lookups; a node leaves only while no lookup runs from or to it, so every
 *    target is alive for its whole lookup.
 *
 * How each implementation counts hops is said in its adapter's module doc
 * (`_dht_sim_nzcore.ts`, `_dht_sim_bittorrent.ts`): both as the length of
 * the query chain that reached the target. `lookupMs` is the wall time until
 * the lookup call returned, `targetMs` until the target answered (the same for
 * our DHT, which stops there; bittorrent-dht goes on until its k closest have
 * answered). Percentiles are nearest-rank; hops and `targetMs` are over the
 * successful lookups. In one thread, CPU work delays every timer: `loopLagMs`
 * tells how much that added to the simulated latency.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { UdpAddr } from "../transport/mod.ts";
import type { SimLookup } from "./_dht_sim_bittorrent.ts";
import { seededRandom, type ShardHandle, shardOf, startShards } from "./_dht_sim_shard.ts";

/** The implementations the simulation can run. */
export const IMPLEMENTATIONS = ["nzcore", "bittorrent-dht"] as const;
/** One of {@linkcode IMPLEMENTATIONS}. */
export type Implementation = typeof IMPLEMENTATIONS[number];

/** What one run is asked to do. */
export interface SimOptions {
  impl: Implementation;
  nodes: number;
  lookups: number;
  churn: number;
  sybil: number;
  sybilMode: "fake" | "junk";
  latencyMs: number;
  loss: number;
  paths?: number;
  seed: number;
  concurrency: number;
  joinConcurrency: number;
  settleMs: number;
  /** Threads to run the nodes on: 1 runs them in this one, more in as many workers. */
  workers: number;
  /** Where to write a V8 heap snapshot after the lookups (for finding what the nodes hold). */
  heapSnapshot?: string;
}

/** Nearest-rank percentiles of a sample. */
export interface Percentiles {
  p50: number;
  p99: number;
}

/** The JSON line a run ends with. */
export interface SimResult {
  impl: Implementation;
  nodes: number;
  churn: number;
  sybil: number;
  sybilMode: string;
  lookups: number;
  latencyMs: number;
  loss: number;
  paths: number | null;
  seed: number;
  /** Threads the nodes ran on. */
  workers: number;
  /** Hops of the successful lookups. */
  hops: Percentiles & { mean: number; max: number };
  /** Share of lookups that found their target, 0 to 1. */
  success: number;
  /** Lookups that did not. */
  failures: number;
  /** Wall time of the lookups, until they returned. */
  lookupMs: Percentiles & { mean: number };
  /** Wall time until the target answered, over the successful lookups. */
  targetMs: Percentiles;
  /** Queries answered per lookup (mean). */
  answeredMean: number;
  /** Queries per lookup that failed (mean; NaN when the implementation does not tell). */
  failedMean: number;
  /** Nodes that left and joined during the lookups. */
  churned: number;
  /** Adversarial nodes among the nodes. */
  sybils: number;
  /** FIND_NODE and FIND_VALUE requests the Sybils answered during the lookups. */
  sybilAnswers: number;
  /** Contacts in the honest nodes' routing tables after joining (mean). */
  contactsMean: number;
  /**
   * How late a 10 ms timer fired during the lookups: the event loop's lag,
   * which adds to every simulated latency when the process is CPU-bound.
   */
  loopLagMs: Percentiles & { max: number };
  /** Wall time of the join phase, of the lookup phase and of the whole run. */
  joinMs: number;
  lookupPhaseMs: number;
  wallMs: number;
  /** Resident memory and JavaScript heap in use at the end of the lookups. */
  rssMB: number;
  heapMB: number;
  /** The network's counters, over all shards. */
  network: { sent: number; delivered: number; lost: number; unreachable: number; forwarded: number };
}

export { seededRandom };

/** The nearest-rank `p`-th percentile (0 < p <= 100) of `sorted` (ascending); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))];
}

/**
 * Whether an IPv4 address is one the public internet routes (not private,
 * shared, loopback, link-local, documentation, benchmarking, multicast or
 * reserved: RFC 6890's special-purpose blocks).
 */
export function isPublicIpv4(a: number, b: number, c: number): boolean {
  if (a === 0 || a === 10 || a === 127 || a >= 224) return false;
  if (a === 100 && b >= 64 && b < 128) return false; // RFC 6598 shared address space
  if (a === 169 && b === 254) return false;
  if (a === 172 && b >= 16 && b < 32) return false;
  if (a === 192 && (b === 168 || (b === 0 && (c === 0 || c === 2)) || (b === 88 && c === 99))) return false;
  if (a === 198 && (b === 18 || b === 19 || (b === 51 && c === 100))) return false;
  if (a === 203 && b === 0 && c === 113) return false;
  return true;
}

/** Parses the command line; throws `RangeError` naming the option that is out of range. */
export function parseSimArgs(args: string[]): SimOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      nodes: { type: "string", default: "1000" },
      lookups: { type: "string", default: "1000" },
      churn: { type: "string", default: "0" },
      sybil: { type: "string", default: "0" },
      "sybil-mode": { type: "string", default: "fake" },
      latency: { type: "string", default: "20" },
      loss: { type: "string", default: "0.01" },
      paths: { type: "string" },
      seed: { type: "string", default: "1" },
      concurrency: { type: "string", default: "16" },
      "join-concurrency": { type: "string", default: "32" },
      settle: { type: "string", default: "2000" },
      impl: { type: "string", default: "nzcore" },
      "heap-snapshot": { type: "string" },
      workers: { type: "string", default: "1" },
    },
  });
  const integer = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new RangeError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  const fraction = (name: string, text: string, max: number) => {
    const n = Number(text);
    if (text.trim() === "" || !(n >= 0 && n <= max)) {
      throw new RangeError(`--${name} must be a number from 0 to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  const impl = values.impl as Implementation;
  if (!IMPLEMENTATIONS.includes(impl)) {
    throw new RangeError(`--impl must be one of ${IMPLEMENTATIONS.join(", ")}, got ${JSON.stringify(values.impl)}`);
  }
  const sybilMode = values["sybil-mode"];
  if (sybilMode !== "fake" && sybilMode !== "junk") {
    throw new RangeError(`--sybil-mode must be fake or junk, got ${JSON.stringify(sybilMode)}`);
  }
  return {
    impl,
    sybilMode,
    nodes: integer("nodes", values.nodes, 2, 200_000),
    lookups: integer("lookups", values.lookups, 1, 10_000_000),
    churn: fraction("churn", values.churn, 1),
    sybil: fraction("sybil", values.sybil, 0.9),
    latencyMs: fraction("latency", values.latency, 10_000),
    loss: fraction("loss", values.loss, 1),
    paths: values.paths === undefined ? undefined : integer("paths", values.paths, 1, 16),
    seed: integer("seed", values.seed, 0, 2 ** 31 - 1),
    concurrency: integer("concurrency", values.concurrency, 1, 10_000),
    joinConcurrency: integer("join-concurrency", values["join-concurrency"], 1, 10_000),
    settleMs: integer("settle", values.settle, 0, 3_600_000),
    heapSnapshot: values["heap-snapshot"],
    workers: integer("workers", values.workers, 1, 16),
  };
}

/** A node as the coordinator knows it. */
interface NodeRecord {
  addr: UdpAddr;
  id: Uint8Array;
  shard: ShardHandle;
}

/** Runs one simulation; `progress` gets the stderr lines. */
export async function runSim(options: SimOptions, progress: (line: string) => void = () => {}): Promise<SimResult> {
  const wallStart = performance.now();
  if (options.impl === "bittorrent-dht") {
    if (options.sybil > 0) throw new RangeError("--sybil runs with --impl nzcore only");
    if (options.paths !== undefined) throw new RangeError("--paths runs with --impl nzcore only");
  }
  const random = seededRandom(options.seed);
  const shards = await startShards({
    impl: options.impl,
    paths: options.paths,
    sybilMode: options.sybilMode,
    latencyMs: options.latencyMs,
    loss: options.loss,
    seed: options.seed ^ 0x5eed,
    count: options.workers,
  });
  try {
    return await drive(options, random, shards, progress, wallStart);
  } finally {
    await Promise.all(shards.map((s) => s.close()));
  }
}

async function drive(
  options: SimOptions,
  random: () => number,
  shards: ShardHandle[],
  progress: (line: string) => void,
  wallStart: number,
): Promise<SimResult> {
  const usedIps = new Set<string>();
  const newAddr = (): UdpAddr => {
    for (;;) {
      const [a, b, c, d] = [
        1 + Math.floor(random() * 223),
        random() * 256 | 0,
        random() * 256 | 0,
        1 + (random() * 254 | 0),
      ];
      const ip = `${a}.${b}.${c}.${d}`;
      if (!isPublicIpv4(a, b, c) || usedIps.has(ip)) continue;
      usedIps.add(ip);
      return { hostname: ip, port: 1024 + Math.floor(random() * 64_000) };
    }
  };
  const newSeed = () => {
    const seed = new Uint8Array(32);
    for (let i = 0; i < 32; i++) seed[i] = random() * 256 | 0;
    return seed;
  };

  const live: NodeRecord[] = [];
  let sybils = 0;
  const sybilCount = Math.round(options.nodes * options.sybil);
  const pickBootstrap = (): UdpAddr[] => {
    const picked = new Set<NodeRecord>();
    for (let tries = 0; picked.size < Math.min(3, live.length) && tries < 20; tries++) {
      picked.add(live[Math.floor(random() * live.length)]);
    }
    return [...picked].map((n) => n.addr);
  };
  const join = async (sybil: boolean) => {
    const addr = newAddr();
    const shard = shards[shardOf(addr.hostname, shards.length)];
    const id = await shard.join({ addr, seed: newSeed(), bootstrap: pickBootstrap(), sybil });
    if (sybil) sybils++;
    else live.push({ addr, id, shard });
  };

  // Phase 1: join. The first node alone, then J at a time; Sybils join spread among the honest nodes.
  const joinStart = performance.now();
  const roles: boolean[] = Array.from({ length: options.nodes }, (_, i) => i >= 1 && i <= sybilCount);
  for (let i = roles.length - 1; i > 1; i--) {
    const j = 1 + Math.floor(random() * i);
    [roles[i], roles[j]] = [roles[j], roles[i]];
  }
  await join(false);
  let next = 1;
  let lastReport = performance.now();
  const joiner = async () => {
    while (next < roles.length) {
      const sybil = roles[next++];
      await join(sybil);
      if (performance.now() - lastReport > 2000) {
        lastReport = performance.now();
        progress(`join: ${live.length + sybils}/${options.nodes} nodes (${fmtMs(lastReport - joinStart)})`);
      }
    }
  };
  await Promise.all(Array.from({ length: options.joinConcurrency }, joiner));
  const joinMs = performance.now() - joinStart;
  const joined = await Promise.all(shards.map((s) => s.report()));
  const contactsMean = mean(joined.flatMap((r) => r.contacts));
  progress(
    `join: ${live.length} nodes and ${sybils} Sybils in ${fmtMs(joinMs)}, ${contactsMean.toFixed(1)} contacts per node`,
  );

  // Phase 2: settle.
  await new Promise((resolve) => setTimeout(resolve, options.settleMs));

  // Phase 3: lookups, with churn spread over them.
  const churnTotal = Math.round(options.nodes * options.churn);
  let churned = 0;
  const busy = new Map<NodeRecord, number>();
  const hold = (n: NodeRecord, delta: number) => {
    const count = (busy.get(n) ?? 0) + delta;
    if (count === 0) busy.delete(n);
    else busy.set(n, count);
  };
  const churnUntil = async (done: number) => {
    while (churned < Math.round(churnTotal * done / options.lookups)) {
      churned++;
      let leaver: NodeRecord | undefined;
      for (let tries = 0; tries < 100 && leaver === undefined; tries++) {
        const candidate = live[Math.floor(random() * live.length)];
        if (!busy.has(candidate)) leaver = candidate;
      }
      if (leaver === undefined) continue;
      live.splice(live.indexOf(leaver), 1);
      await leaver.shard.leave(leaver.addr);
      await join(false);
    }
  };
  const results: SimLookup[] = [];
  await Promise.all(shards.map((s) => s.watchLag()));
  const lookupStart = performance.now();
  let started = 0;
  lastReport = performance.now();
  const looker = async () => {
    while (started < options.lookups) {
      const index = started++;
      await churnUntil(index);
      const from = live[Math.floor(random() * live.length)];
      let target = from;
      while (target === from) target = live[Math.floor(random() * live.length)];
      hold(from, 1);
      hold(target, 1);
      try {
        results.push(await from.shard.lookup(from.addr, target.id));
      } finally {
        hold(from, -1);
        hold(target, -1);
      }
      if (performance.now() - lastReport > 2000) {
        lastReport = performance.now();
        const ok = results.filter((r) => r.found).length;
        progress(
          `lookups: ${results.length}/${options.lookups}, ${(100 * ok / results.length).toFixed(1)}% found, ` +
            `${churned} churned (${fmtMs(lastReport - lookupStart)})`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, options.lookups) }, looker));
  const lookupPhaseMs = performance.now() - lookupStart;
  const reports = await Promise.all(shards.map((s) => s.report()));
  const lags = reports.flatMap((r) => r.lags).sort((a, b) => a - b);
  const network = { sent: 0, delivered: 0, lost: 0, unreachable: 0, forwarded: 0 };
  for (const r of reports) {
    for (const k of Object.keys(network) as (keyof typeof network)[]) network[k] += r.network[k];
  }

  const found = results.filter((r) => r.found);
  const hops = found.map((r) => r.hops).sort((a, b) => a - b);
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  const targetMs = found.map((r) => r.targetMs ?? r.ms).sort((a, b) => a - b);
  const result: SimResult = {
    impl: options.impl,
    nodes: options.nodes,
    churn: options.churn,
    sybil: options.sybil,
    sybilMode: options.sybilMode,
    lookups: results.length,
    latencyMs: options.latencyMs,
    loss: options.loss,
    paths: options.paths ?? null,
    seed: options.seed,
    workers: options.workers,
    hops: {
      p50: percentile(hops, 50),
      p99: percentile(hops, 99),
      mean: round(mean(hops), 2),
      max: hops.at(-1) ?? NaN,
    },
    success: round(found.length / results.length, 4),
    failures: results.length - found.length,
    lookupMs: { p50: round(percentile(ms, 50), 1), p99: round(percentile(ms, 99), 1), mean: round(mean(ms), 1) },
    targetMs: { p50: round(percentile(targetMs, 50), 1), p99: round(percentile(targetMs, 99), 1) },
    answeredMean: round(mean(results.map((r) => r.answered)), 1),
    failedMean: round(mean(results.map((r) => r.failed ?? NaN)), 3),
    churned,
    sybils,
    sybilAnswers: reports.reduce((sum, r) => sum + r.sybilAnswers, 0) -
      joined.reduce((sum, r) => sum + r.sybilAnswers, 0),
    contactsMean: round(contactsMean, 1),
    loopLagMs: {
      p50: round(percentile(lags, 50), 1),
      p99: round(percentile(lags, 99), 1),
      max: round(lags.at(-1) ?? NaN, 1),
    },
    joinMs: Math.round(joinMs),
    lookupPhaseMs: Math.round(lookupPhaseMs),
    wallMs: Math.round(performance.now() - wallStart),
    rssMB: Math.round(Deno.memoryUsage().rss / 2 ** 20),
    heapMB: Math.round(reports.reduce((sum, r) => sum + r.heapUsed, 0) / 2 ** 20),
    network,
  };
  if (options.heapSnapshot !== undefined && shards.length === 1) {
    const { writeHeapSnapshot } = await import("node:v8");
    progress(`heap snapshot: ${writeHeapSnapshot(options.heapSnapshot)}`);
  }
  progress(`closing ${live.length + sybils} nodes`);
  return result;
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function fmtMs(ms: number): string {
  return ms < 10_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

if (import.meta.main) {
  let options: SimOptions;
  try {
    options = parseSimArgs(Deno.args);
  } catch (error) {
    console.error(`dht-sim: ${error instanceof Error ? error.message : error}`);
    Deno.exit(2);
  }
  const start = performance.now();
  const result = await runSim(
    options,
    (line) => console.error(`[${((performance.now() - start) / 1000).toFixed(1)}s] ${line}`),
  );
  console.log(JSON.stringify(result));
  // Libraries' intervals (bittorrent-dht's secret rotation) would keep the process alive.
  Deno.exit(0);
}
