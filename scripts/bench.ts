/**
 * Runs every benchmark in turn as its own process (crypto, kv, start, http),
 * showing each one's output as it goes, and ends with one line of JSON that
 * holds the last JSON line of each (null for one that failed or printed
 * none). Exits 1 when any benchmark failed.
 *
 * `deno task bench` (about 2 minutes), or `deno run -A scripts/bench.ts --only kv,start`.
 *
 * @module
 */

import { PROJECT_ROOT } from "./_bench_lib.ts";

const BENCHES = ["crypto", "kv", "start", "http", "channels"] as const;
type Bench = typeof BENCHES[number];

function parseOnly(args: string[]): Bench[] {
  const i = args.indexOf("--only");
  if (i < 0) return [...BENCHES];
  const names = (args[i + 1] ?? "").split(",").filter(Boolean);
  const unknown = names.filter((n) => !(BENCHES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length) {
    console.error(`Invalid --only "${args[i + 1] ?? ""}": expected a comma-separated list of ${BENCHES.join(", ")}`);
    Deno.exit(2);
  }
  return names as Bench[];
}

/** The last line of `text` that parses as a JSON object, or null. */
export function lastJsonLine(text: string): Record<string, unknown> | null {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i].startsWith("{")) continue;
    try {
      const value = JSON.parse(lines[i]);
      if (value && typeof value === "object" && !Array.isArray(value)) return value;
    } catch {
      // not JSON; keep looking
    }
  }
  return null;
}

/** Runs one benchmark script, copying its stdout through while keeping it. */
async function run(name: Bench): Promise<{ code: number; json: Record<string, unknown> | null; seconds: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `scripts/bench_${name}.ts`],
    cwd: PROJECT_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    text += decoder.decode(chunk, { stream: true });
  }
  const { code } = await child.status;
  return { code, json: lastJsonLine(text), seconds: (performance.now() - t0) / 1000 };
}

if (import.meta.main) {
  const selected = parseOnly(Deno.args);
  const results: Record<string, Record<string, unknown> | null> = {};
  const failed: string[] = [];
  const times: string[] = [];
  for (const name of selected) {
    console.log(`\n=== bench_${name}.ts ===\n`);
    const { code, json, seconds } = await run(name);
    times.push(`${name} ${seconds.toFixed(1)} s`);
    if (code !== 0 || !json) {
      failed.push(name);
      console.log(`\nbench_${name}.ts failed: exit code ${code}${json ? "" : ", no JSON line"}`);
    }
    results[name] = code === 0 ? json : null;
  }
  console.log(`\n=== summary ===\n${times.join(", ")}`);
  console.log(failed.length ? `Failed: ${failed.join(", ")}` : "All benchmarks ran.");
  console.log(JSON.stringify({ bench: "all", deno: Deno.version.deno, results, failed }));
  if (failed.length) Deno.exit(1);
}
