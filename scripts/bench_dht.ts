/**
 * Our DHT against webtorrent's `bittorrent-dht`, side by side in the DHT
 * simulation (`scripts/dht_sim.ts`): the same N, latency, loss, lookups and
 * seed, without churn and with 20% of the nodes churning, each run in its own
 * process. Prints a table on stderr and one JSON line on stdout:
 * `{ runs: [SimResult...], targets: {...} }`, where `targets` checks the
 * issue's figures for our DHT (median hops <= 3, p99 <= 5, success >= 99%,
 * and >= 95% with churn).
 *
 * ```sh
 * deno run -A scripts/bench_dht.ts [--nodes 1000] [--lookups 1000] [--churn 0.2] [--impl nzcore,bittorrent-dht]
 * ```
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { SimResult } from "./dht_sim.ts";

const SIM = fileURLToPath(new URL("./dht_sim.ts", import.meta.url));

/** Runs one simulation in a child process; its progress lines pass through to stderr. */
export async function runChild(args: string[]): Promise<SimResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SIM, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const output = await child.output();
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  if (output.code !== 0) throw new Error(`dht-sim ${args.join(" ")} exited with ${output.code}`);
  return JSON.parse(lines.at(-1)!);
}

/** Whether the runs of our DHT meet the issue's targets. */
export function checkTargets(runs: readonly SimResult[]): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const r of runs.filter((r) => r.impl === "nzcore")) {
    const name = `nzcore n=${r.nodes} churn=${r.churn}`;
    out[`${name}: hops p50 <= 3`] = r.hops.p50 <= 3;
    out[`${name}: hops p99 <= 5`] = r.hops.p99 <= 5;
    out[`${name}: success >= ${r.churn > 0 ? 95 : 99}%`] = r.success >= (r.churn > 0 ? 0.95 : 0.99);
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      nodes: { type: "string", default: "1000" },
      lookups: { type: "string", default: "1000" },
      churn: { type: "string", default: "0.2" },
      impl: { type: "string", default: "nzcore,bittorrent-dht" },
      seed: { type: "string", default: "1" },
    },
  });
  const runs: SimResult[] = [];
  for (const churn of ["0", values.churn]) {
    for (const impl of values.impl.split(",")) {
      const args = ["--impl", impl, "--nodes", values.nodes, "--lookups", values.lookups, "--churn", churn];
      console.error(`bench_dht: dht-sim ${args.join(" ")}`);
      runs.push(await runChild([...args, "--seed", values.seed]));
    }
  }
  console.error("\nimpl            nodes churn  hops p50/p99  success  lookup ms p50/p99  to target p50/p99  wall s");
  for (const r of runs) {
    console.error(
      `${r.impl.padEnd(15)} ${String(r.nodes).padStart(5)} ${r.churn.toFixed(2).padStart(5)}  ` +
        `${`${r.hops.p50}/${r.hops.p99}`.padStart(12)}  ${(100 * r.success).toFixed(1).padStart(6)}%  ` +
        `${`${r.lookupMs.p50}/${r.lookupMs.p99}`.padStart(17)}  ${
          `${r.targetMs.p50}/${r.targetMs.p99}`.padStart(17)
        }  ` +
        `${(r.wallMs / 1000).toFixed(1).padStart(6)}`,
    );
  }
  const targets = checkTargets(runs);
  for (const [name, met] of Object.entries(targets)) console.error(`${met ? "met   " : "MISSED"} ${name}`);
  console.log(JSON.stringify({ runs, targets }));
}
