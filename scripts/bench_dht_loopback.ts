/**
 * Lookups in a DHT of real node processes on loopback (the "20 real
 * processes on loopback: lookup p50 under 20 ms"). Starts the net of
 * `tests/integration/_dht_net.ts` (20 nodes, one bootstrap node), then from
 * random nodes looks up random other nodes through `POST /v1/dht/find-node`.
 * Reports the lookup's own time (as the DHT measures it, from the first query
 * to the result) and the API round trip around it, hops, and how many lookups
 * found their target; ends with one JSON line.
 *
 * `deno task bench:dht-loopback [--nodes 20] [--lookups 400]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startDhtNet } from "../tests/integration/_dht_net.ts";
import { round, table } from "./_bench_lib.ts";

const { values } = parseArgs({
  options: { nodes: { type: "string", default: "20" }, lookups: { type: "string", default: "400" } },
});
const nodes = Number(values.nodes), lookups = Number(values.lookups);
if (!Number.isInteger(nodes) || nodes < 3 || !Number.isInteger(lookups) || lookups < 1) {
  console.error("Invalid --nodes (at least 3) or --lookups (at least 1)");
  Deno.exit(2);
}

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
};

const t0 = performance.now();
const net = await startDhtNet(nodes);
const startMs = performance.now() - t0;
console.error(`${nodes} nodes up and joined in ${(startMs / 1000).toFixed(1)} s; ${lookups} lookups`);
const lookupMs: number[] = [], apiMs: number[] = [], hops: number[] = [];
let found = 0;
try {
  for (let i = 0; i < lookups; i++) {
    const from = net.nodes[Math.floor(Math.random() * nodes)];
    let to = from;
    while (to === from) to = net.nodes[Math.floor(Math.random() * nodes)];
    const t = performance.now();
    const response = await from.api("/v1/dht/find-node", {
      method: "POST",
      body: JSON.stringify({ target: to.nodeId }),
    });
    const r = await response.json() as { found: boolean; hops: number; durationMs: number };
    apiMs.push(performance.now() - t);
    if (!response.ok) throw new Error(`find-node answered ${response.status}: ${JSON.stringify(r)}`);
    lookupMs.push(r.durationMs);
    hops.push(r.hops);
    if (r.found) found++;
  }
} finally {
  await net.close();
}

const figures = {
  bench: "dht-loopback",
  nodes,
  lookups,
  found: round(found / lookups, 4),
  hops: { p50: percentile(hops, 0.5), p99: percentile(hops, 0.99) },
  lookupMs: { p50: round(percentile(lookupMs, 0.5), 2), p99: round(percentile(lookupMs, 0.99), 2) },
  apiMs: { p50: round(percentile(apiMs, 0.5), 2), p99: round(percentile(apiMs, 0.99), 2) },
  startSeconds: round(startMs / 1000, 1),
};
console.log(table(["", "p50", "p99"], [
  ["lookup (ms, as the DHT measures it)", String(figures.lookupMs.p50), String(figures.lookupMs.p99)],
  ["API round trip around it (ms)", String(figures.apiMs.p50), String(figures.apiMs.p99)],
  ["hops", String(figures.hops.p50), String(figures.hops.p99)],
]));
console.log(`found: ${(figures.found * 100).toFixed(1)}% of ${lookups}`);
console.log(JSON.stringify(figures));
