/**
 * Benchmarks the node's HTTP API with `wrk` on loopback: authenticated
 * `GET /v1/state` on a running node against a bare Hono hello world on
 * `Deno.serve` (scripts/_hello_server.ts), same wrk settings, in the order
 * node, hello, hello, node so drift hits both alike. Prints a table, then one
 * line of JSON with every figure (nulls when wrk is missing). Target:
 * node/hello >= 0.70 requests/s.
 *
 * `deno run -A scripts/bench_http.ts` (about 45 s; needs `wrk`: `apt-get install wrk`).
 *
 * @module
 */

import { join } from "node:path";
import {
  freePort,
  hasProgram,
  mb,
  median,
  readRss,
  round,
  type Server,
  spawnDeno,
  spawnNode,
  stop,
  table,
  waitFor200,
  waitForOutput,
} from "./_bench_lib.ts";

const THREADS = 2;
const CONNECTIONS = 32;
const SECONDS = 8;
const WARMUP_SECONDS = 2;
const TARGET = 0.7;
const WRK_SETTINGS = `-t${THREADS} -c${CONNECTIONS} -d${SECONDS}s`;

type Name = "node" | "hello";
const ORDER: Name[] = ["node", "hello", "hello", "node"];

/** What one wrk run reports. */
interface WrkRun {
  rps: number;
  latencyMs: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

function toMs(value: string, unit: string): number {
  const x = Number(value);
  return unit === "us" ? x / 1000 : unit === "s" ? x * 1000 : unit === "m" ? x * 60_000 : x;
}

function parseWrk(text: string): WrkRun {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  const latency = /^\s+Latency\s+([\d.]+)(us|ms|s|m)\b/m.exec(text);
  const requests = /^\s+(\d+) requests in /m.exec(text);
  if (!rps || !latency || !requests) throw new Error(`Cannot read wrk's output:\n${text}`);
  const non2xx = /^\s+Non-2xx or 3xx responses:\s+(\d+)/m.exec(text);
  const socket = /^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/m.exec(text);
  return {
    rps: Number(rps[1]),
    latencyMs: toMs(latency[1], latency[2]),
    requests: Number(requests[1]),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

async function wrk(url: string, seconds: number, headers: string[]): Promise<WrkRun> {
  const args = [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency"];
  for (const h of headers) args.push("-H", h);
  args.push(url);
  const out = await new Deno.Command("wrk", { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`wrk failed with exit code ${out.code}:\n${text}`);
  return parseWrk(text);
}

function printJson(results: unknown, ratio: number | null, met: boolean | null, note?: string): void {
  console.log(JSON.stringify({
    bench: "http",
    deno: Deno.version.deno,
    wrk: WRK_SETTINGS,
    endpoint: "GET /v1/state (bearer)",
    results,
    ratio,
    target: { ratio: TARGET, met },
    ...(note ? { note } : {}),
  }));
}

if (!(await hasProgram("wrk", ["-v"]))) {
  console.log("wrk is not installed: skipping the HTTP benchmark. Install it with `apt-get install wrk`.");
  printJson({ node: null, hello: null }, null, null, "wrk not found");
  Deno.exit(0);
}

const dataDir = await Deno.makeTempDir({ prefix: "nzcore-bench-http-" });
const servers: Server[] = [];
const started = performance.now();
const runs: Record<Name, WrkRun[]> = { node: [], hello: [] };
const rss: Record<Name, { beforeMB: number; afterMB: number }> = {
  node: { beforeMB: 0, afterMB: 0 },
  hello: { beforeMB: 0, afterMB: 0 },
};
try {
  const ports = { node: freePort(), hello: freePort() };
  const node = spawnNode(dataDir, ports.node);
  servers.push(node);
  const hello = spawnDeno(["run", "--allow-net", "scripts/_hello_server.ts", String(ports.hello)]);
  servers.push(hello);
  await waitFor200(node, `http://127.0.0.1:${ports.node}/v1/health`);
  await waitForOutput(node, /^ready$/m);
  await waitFor200(hello, `http://127.0.0.1:${ports.hello}/`);

  const token = (await Deno.readTextFile(join(dataDir, "admin.token"))).trim();
  const urls: Record<Name, string> = {
    node: `http://127.0.0.1:${ports.node}/v1/state`,
    hello: `http://127.0.0.1:${ports.hello}/`,
  };
  const headers: Record<Name, string[]> = { node: [`Authorization: Bearer ${token}`], hello: [] };

  // Benchmark 200s, not 401s: one authenticated request first.
  const check = await fetch(urls.node, { headers: { Authorization: `Bearer ${token}` } });
  const body = await check.text();
  if (check.status !== 200) throw new Error(`GET /v1/state with the admin token answered ${check.status}: ${body}`);

  const pids: Record<Name, number> = { node: node.child.pid, hello: hello.child.pid };
  for (const name of ["node", "hello"] as const) rss[name].beforeMB = mb(await readRss(pids[name]));
  for (const name of ["node", "hello"] as const) await wrk(urls[name], WARMUP_SECONDS, headers[name]);
  for (const name of ORDER) runs[name].push(await wrk(urls[name], SECONDS, headers[name]));
  for (const name of ["node", "hello"] as const) rss[name].afterMB = mb(await readRss(pids[name]));
} finally {
  for (const s of servers) await stop(s);
  await Deno.remove(dataDir, { recursive: true });
}

const summary = (name: Name) => ({
  rps: round(median(runs[name].map((r) => r.rps))),
  latencyMs: round(median(runs[name].map((r) => r.latencyMs)), 2),
  rounds: runs[name].map((r) => round(r.rps)),
  non2xx: runs[name].reduce((a, r) => a + r.non2xx, 0),
  socketErrors: runs[name].reduce((a, r) => a + r.socketErrors, 0),
  rssMB: rss[name],
});
const results = { node: summary("node"), hello: summary("hello") };
const ratio = round(results.node.rps / results.hello.rps, 3);
const met = ratio >= TARGET;

console.log(`Deno ${Deno.version.deno}; wrk ${WRK_SETTINGS} on 127.0.0.1, rounds ${ORDER.join(", ")}, medians\n`);
console.log(table(["server", "requests/s", "latency ms", "rounds", "non-2xx", "socket errors"], [
  [
    "node GET /v1/state (bearer)",
    round(results.node.rps).toLocaleString("en-US"),
    results.node.latencyMs.toFixed(2),
    results.node.rounds.map((r) => r.toLocaleString("en-US")).join(" "),
    String(results.node.non2xx),
    String(results.node.socketErrors),
  ],
  [
    "Hono hello GET /",
    round(results.hello.rps).toLocaleString("en-US"),
    results.hello.latencyMs.toFixed(2),
    results.hello.rounds.map((r) => r.toLocaleString("en-US")).join(" "),
    String(results.hello.non2xx),
    String(results.hello.socketErrors),
  ],
]));
if (results.node.non2xx || results.hello.non2xx) console.log("\nWARNING: some responses were not 2xx");
console.log(
  `\nRSS before -> after the load (MB = 10^6 bytes): node ${rss.node.beforeMB} -> ${rss.node.afterMB}, ` +
    `hello ${rss.hello.beforeMB} -> ${rss.hello.afterMB}`,
);
console.log(`Target node/hello >= ${TARGET}: ${met ? "met" : "NOT met"} (${ratio.toFixed(2)})`);
console.log(`Total ${((performance.now() - started) / 1000).toFixed(1)} s`);
printJson(results, ratio, met);
