/**
 * Services benchmark: how long a crashed service takes to be back and
 * healthy, beyond its backoff. A real {@linkcode Supervisor} on the real
 * clock runs the `steady` fixture in a Worker (as the node runs external
 * services) with a health check; each run asks it to crash, then measures
 * from the crash request to the first passing health check of the new
 * instance, and subtracts the backoff the supervisor chose. Target: under
 * 1 s plus the backoff.
 *
 * `deno task bench:services [--runs N] [--backoff MS]`; ends with one JSON
 * line holding `recovery_p50_ms`, `recovery_max_ms` (backoff excluded) and
 * `backoff_ms`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { parseManifest } from "../kernel/runtime/manifest.ts";
import { Supervisor } from "../kernel/runtime/supervisor.ts";
import { workerService } from "../kernel/runtime/worker_service.ts";
import { median, round, table } from "./_bench_lib.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "20" }, backoff: { type: "string", default: "100" } },
});
const RUNS = Number(values.runs);
const BACKOFF_MS = Number(values.backoff);
const TARGET_MS = 1000;

const manifest = parseManifest({
  name: "steady",
  version: "1.0.0",
  entry: "steady.ts",
  health: { intervalMs: 60_000, timeoutMs: 1000 },
  // A window of 1 ms keeps every restart the first of its window: the backoff stays at initialMs.
  restart: { backoff: { initialMs: BACKOFF_MS, maxMs: BACKOFF_MS * 2 }, budget: { maxRestarts: 1000, windowMs: 1 } },
});
const service = workerService(manifest, {
  baseDir: fileURLToPath(new URL("../tests/fixtures/services/", import.meta.url)),
});
let onHealthy: (() => void) | undefined;
const health = service.health!.bind(service);
service.health = async (ctx) => {
  const ok = await health(ctx);
  if (ok) onHealthy?.();
  return ok;
};
let lastBackoff = 0;
const sup = new Supervisor({
  random: () => 0,
  log: () => {},
  publish: (_, data) => {
    if (data.to === "backoff") lastBackoff = sup.status("steady").nextRestartAt! - Date.now();
  },
});
sup.register(manifest, service);

const healthy = () => new Promise<void>((resolve) => (onHealthy = resolve));
const first = healthy();
await sup.startAll();
await first;

const recoveries: number[] = [];
const totals: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const back = healthy();
  const t0 = performance.now();
  service.post({ type: "crash" });
  await back;
  const total = performance.now() - t0;
  totals.push(total);
  recoveries.push(total - BACKOFF_MS);
}
await sup.stopAll();

const status = sup.status("steady");
if (status.restarts !== RUNS) throw new Error(`Expected ${RUNS} restarts, saw ${status.restarts}`);
recoveries.sort((a, b) => a - b);
const p50 = median(recoveries);
const max = recoveries[recoveries.length - 1];
console.log(table(["", "p50 ms", "max ms"], [
  ["crash to healthy", String(round(median(totals), 1)), String(round(Math.max(...totals), 1))],
  [`  minus backoff (${BACKOFF_MS} ms)`, String(round(p50, 1)), String(round(max, 1))],
]));
console.log(`target: under ${TARGET_MS} ms plus the backoff: ${max < TARGET_MS ? "met" : "MISSED"}`);
console.log(JSON.stringify({
  bench: "services",
  runs: RUNS,
  backoff_ms: BACKOFF_MS,
  chosen_backoff_ms: lastBackoff,
  recovery_p50_ms: round(p50, 1),
  recovery_max_ms: round(max, 1),
  target_ms: TARGET_MS,
  met: max < TARGET_MS,
}));
