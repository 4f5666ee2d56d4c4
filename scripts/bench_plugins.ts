/**
 * Plugins benchmark (NZ-PLUGIN-01): the round trip of a host call, timed
 * from inside a real plugin Worker: the `bench` fixture calls the trivial
 * host method `ping` (and `storage.get`, which passes the capability check,
 * the policy gate and the encrypted store) many times and reports each call's
 * time. A real node (temporary data directory) runs the real PluginManager.
 * Target: `ping` p50 under 0.2 ms.
 *
 * `deno task bench:plugins [--calls N]`; ends with one JSON line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Node } from "../kernel/node/node.ts";
import { PluginManager } from "../kernel/runtime/plugins.ts";
import { round, table } from "./_bench_lib.ts";

const { values } = parseArgs({ args: Deno.args, options: { calls: { type: "string", default: "20000" } } });
const CALLS = Number(values.calls);
const TARGET_MS = 0.2;
const FIXTURE = fileURLToPath(new URL("../tests/fixtures/plugins/bench", import.meta.url));

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

const dataDir = await Deno.makeTempDir({ prefix: "nzcore-bench-plugins-" });
const node = await Node.open({ dataDir });
const manager = await PluginManager.open(node);
const results: Record<string, { p50: number; p99: number }> = {};
try {
  await manager.install(FIXTURE, { grant: "all" });
  await manager.enable("bench");
  for (const method of ["ping", "storage.get"]) {
    const out = await manager.cli("bench", [method, String(method === "ping" ? CALLS : Math.min(CALLS, 5000))]);
    const times = (JSON.parse(out.stdout) as number[]).sort((a, b) => a - b);
    results[method] = { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
  }
} finally {
  manager.close();
  await node.close();
  await Deno.remove(dataDir, { recursive: true });
}
console.log(table(
  ["host call", "p50 ms", "p99 ms"],
  Object.entries(results).map(([m, r]) => [m, String(round(r.p50, 4)), String(round(r.p99, 4))]),
));
const met = results.ping.p50 < TARGET_MS;
console.log(`target: ping p50 under ${TARGET_MS} ms: ${met ? "met" : "MISSED"}`);
console.log(JSON.stringify({
  bench: "plugins",
  calls: CALLS,
  ping_p50_ms: round(results.ping.p50, 4),
  ping_p99_ms: round(results.ping.p99, 4),
  storage_get_p50_ms: round(results["storage.get"].p50, 4),
  storage_get_p99_ms: round(results["storage.get"].p99, 4),
  target_ms: TARGET_MS,
  met,
}));
