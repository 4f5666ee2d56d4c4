/**
 * Benchmarks the node as a whole process: ms from spawn (exactly as the
 * `start` task runs it) to the first 200 from `GET /v1/health`, polled every
 * 5 ms, for first starts (empty data directory: key creation) and restarts
 * of an existing one; then the resident memory (VmRSS) of an idle node after
 * 5 s, beside Deno's own baselines: a bare `Deno.serve` hello world and a
 * Hono hello world, measured the same way. Prints a table, then one line of
 * JSON with every figure. Targets: start <= 500 ms, idle RSS <= 60 MB.
 *
 * `deno run -A scripts/bench_start.ts` (about 15 s).
 *
 * @module
 */

import { join } from "node:path";
import {
  freePort,
  mb,
  median,
  readRss,
  readRssSplit,
  round,
  type Server,
  spawnDeno,
  spawnNode,
  stop,
  table,
  waitFor200,
  waitForOutput,
} from "./_bench_lib.ts";

const RUNS = 5;
const IDLE_MS = 5_000;
const START_TARGET_MS = 500;
/** Megabytes (10^6 bytes); VmRSS counts KiB, converted. */
const RSS_TARGET_MB = 60;

interface Stats {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

function stats(xs: number[]): Stats {
  return {
    median: round(median(xs), 1),
    min: round(Math.min(...xs), 1),
    max: round(Math.max(...xs), 1),
    runs: xs.map((x) => round(x, 1)),
  };
}

const health = (port: number) => `http://127.0.0.1:${port}/v1/health`;
let exits = 0, cleanExits = 0;
const unclean: string[] = [];

async function stopCounting(server: Server, what: string): Promise<void> {
  const status = await stop(server);
  exits++;
  if (status.success) cleanExits++;
  else unclean.push(`${what}: exit code ${status.code}${status.signal ? `, signal ${status.signal}` : ""}`);
}

/**
 * Starts the node on `dataDir`, returns ms to the first 200, and stops it
 * once it has printed `ready` (it handles SIGTERM only from then on).
 */
async function timeNodeStart(dataDir: string, what: string): Promise<number> {
  const port = freePort();
  const server = spawnNode(dataDir, port);
  try {
    const ms = await waitFor200(server, health(port));
    await waitForOutput(server, /^ready$/m);
    return ms;
  } finally {
    await stopCounting(server, what);
  }
}

/** Starts a hello-world script, returns ms to the first 200, and stops it. */
async function timeHelloStart(script: string): Promise<number> {
  const port = freePort();
  const server = spawnDeno(["run", "--allow-net", script, String(port)]);
  try {
    return await waitFor200(server, health(port));
  } finally {
    await stop(server);
  }
}

const root = await Deno.makeTempDir({ prefix: "nzcore-bench-start-" });
const started = performance.now();
const servers: Server[] = [];
let result;
try {
  // The first run of all may fill Deno's transpile cache: reported, not counted.
  const coldCache = await timeNodeStart(join(root, "cold"), "cold-cache start");

  const first: number[] = [];
  for (let i = 0; i < RUNS; i++) first.push(await timeNodeStart(join(root, `first-${i}`), `first start ${i}`));
  const restart: number[] = [];
  for (let i = 0; i < RUNS; i++) restart.push(await timeNodeStart(join(root, "first-0"), `restart ${i}`));
  const bare: number[] = [];
  for (let i = 0; i < RUNS; i++) bare.push(await timeHelloStart("scripts/_hello_bare.ts"));
  const hono: number[] = [];
  for (let i = 0; i < RUNS; i++) hono.push(await timeHelloStart("scripts/_hello_server.ts"));

  // Idle memory: the node (restarted on an existing directory) and both baselines side by side.
  const ports = { node: freePort(), bare: freePort(), hono: freePort() };
  const node = spawnNode(join(root, "first-0"), ports.node);
  servers.push(node);
  const bareServer = spawnDeno(["run", "--allow-net", "scripts/_hello_bare.ts", String(ports.bare)]);
  servers.push(bareServer);
  const honoServer = spawnDeno(["run", "--allow-net", "scripts/_hello_server.ts", String(ports.hono)]);
  servers.push(honoServer);
  await Promise.all([
    waitFor200(node, health(ports.node)).then(() => waitForOutput(node, /^ready$/m)),
    waitFor200(bareServer, health(ports.bare)),
    waitFor200(honoServer, health(ports.hono)),
  ]);
  const info = JSON.parse(await Deno.readTextFile(join(root, "first-0", "api.json")));
  if (info.pid !== node.child.pid) {
    throw new Error(`api.json names pid ${info.pid}, but the spawned process is ${node.child.pid}`);
  }
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const rss = {
    node: mb(await readRss(node.child.pid)),
    bareDenoServe: mb(await readRss(bareServer.child.pid)),
    hono: mb(await readRss(honoServer.child.pid)),
  };
  const split = async (pid: number) => {
    const { anon, file } = await readRssSplit(pid);
    return { privateMB: mb(anon), fileMB: mb(file) };
  };
  const rssSplit = {
    node: await split(node.child.pid),
    bareDenoServe: await split(bareServer.child.pid),
    hono: await split(honoServer.child.pid),
  };
  await stopCounting(node, "idle node");
  servers.length = 0;
  await stop(bareServer);
  await stop(honoServer);

  result = {
    coldCacheMs: round(coldCache, 1),
    firstStartMs: stats(first),
    restartMs: stats(restart),
    baselineStartMs: { bareDenoServe: stats(bare), hono: stats(hono) },
    idleRssMB: rss,
    idleRssSplit: rssSplit,
  };
} finally {
  for (const s of servers) await stop(s);
  await Deno.remove(root, { recursive: true });
}

const startMet = result.firstStartMs.median <= START_TARGET_MS && result.restartMs.median <= START_TARGET_MS;
const rssMet = result.idleRssMB.node <= RSS_TARGET_MB;
const row = (label: string, s: Stats) => [label, s.median.toFixed(0), s.min.toFixed(0), s.max.toFixed(0)];

console.log(`Deno ${Deno.version.deno}; ms from spawn to the first 200 from GET /v1/health (polled every 5 ms)`);
console.log("MB = 10^6 bytes\n");
console.log(table(["start", "median ms", "min ms", "max ms"], [
  row("node, first start (key creation)", result.firstStartMs),
  row("node, restart", result.restartMs),
  row("bare Deno.serve hello", result.baselineStartMs.bareDenoServe),
  row("Hono hello", result.baselineStartMs.hono),
]));
console.log(`(cold-cache first run, not counted: ${result.coldCacheMs.toFixed(0)} ms)\n`);
const memRow = (label: string, total: number, split: { privateMB: number; fileMB: number }) => [
  label,
  total.toFixed(1),
  split.privateMB.toFixed(1),
  split.fileMB.toFixed(1),
];
console.log(table(["idle after 5 s", "VmRSS MB", "private MB", "file-backed MB"], [
  memRow("node", result.idleRssMB.node, result.idleRssSplit.node),
  memRow("bare Deno.serve hello", result.idleRssMB.bareDenoServe, result.idleRssSplit.bareDenoServe),
  memRow("Hono hello", result.idleRssMB.hono, result.idleRssSplit.hono),
]));
console.log(`\nTarget start <= ${START_TARGET_MS} ms: ${startMet ? "met" : "NOT met"}`);
console.log(`Target idle RSS <= ${RSS_TARGET_MB} MB: ${rssMet ? "met" : "NOT met"}`);
console.log(`Clean stops (SIGTERM, exit 0): ${cleanExits}/${exits}`);
for (const u of unclean) console.log(`  not clean: ${u}`);
console.log(`Total ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(JSON.stringify({
  bench: "start",
  deno: Deno.version.deno,
  ...result,
  cleanStops: { clean: cleanExits, total: exits },
  target: { startMs: START_TARGET_MS, startMet, rssMB: RSS_TARGET_MB, rssMet },
}));
