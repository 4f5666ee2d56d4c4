/**
 * The ceiling of `deno task bench:channels`: the same three measurements as
 * the js-libp2p baseline (scripts/libp2p_bench/bench.mjs), over plain
 * `Deno.connect` / `Deno.listen` TCP on 127.0.0.1, no encryption, no framing.
 * This process dials; the accepting side is a separate Deno process (this
 * file with `--serve`), a fresh one for each measurement.
 *
 * - throughput: one connection, 256 MiB in 64 KiB writes, then closeWrite();
 *   the server counts the bytes until EOF and answers with the count (8 bytes).
 *   MB/s (10^6 bytes/s) = bytes / (first write -> count read); median of 3.
 * - setup: 200 times (after 10 unmeasured warm-ups): Deno.connect, write 16
 *   bytes, read the 16-byte echo; the connection is closed after the clock
 *   stops. p50/p90 in ms.
 * - idle: the server process's VmRSS (after gc()) before and after it holds
 *   1,000 accepted connections, each with one read pending into its own 4 KiB
 *   buffer; (after - before) / 1000 in KiB. Kernel socket buffers are not in RSS.
 *
 * `deno run -A scripts/bench_channels_raw.ts` runs it alone (about 5 s) and
 * prints the figures as one JSON line.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { answerLines, type ChannelFigures, round, settledRss, spawnLineServer } from "./_bench_lib.ts";

/** The figures {@link runRawTcpBench} returns. */
export interface RawTcpFigures extends ChannelFigures {
  impl: "raw-tcp";
  /** `Deno.version.deno` of both processes. */
  deno: string;
}

/** Options of {@link runRawTcpBench}; the defaults are the sizes. */
export interface RawTcpBenchOptions {
  /** MiB sent per throughput run (default 256). */
  mib?: number;
  /** Throughput runs, median reported (default 3). */
  runs?: number;
  /** Measured connection setups (default 200). */
  setups?: number;
  /** Idle connections held (default 1000). */
  idleConns?: number;
}

const CHUNK = 64 * 1024;
const IDLE_READ_BUFFER = 4 * 1024;
const SETUP_WARMUP = 10;
const IDLE_DIAL_CONCURRENCY = 25;
const HOST = "127.0.0.1";

const log = (line: string) => console.error(`[raw-tcp] ${line}`);

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * p;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await conn.write(data.subarray(off));
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let got = 0; got < n;) {
    const r = await conn.read(out.subarray(got));
    if (r === null) throw new Error(`connection closed after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

// --- the accepting process -------------------------------------------------

/** Ports of the server's three listeners, printed as its first stdout line. */
interface ServerPorts {
  throughput: number;
  echo: number;
  idle: number;
}

async function serve(): Promise<void> {
  const listen = () => Deno.listen({ hostname: HOST, port: 0 });
  const throughput = listen();
  const echo = listen();
  const idle = listen();
  const held: Deno.Conn[] = [];

  (async () => {
    for await (const conn of throughput) {
      (async () => {
        const buf = new Uint8Array(CHUNK);
        let n = 0;
        for (let r; (r = await conn.read(buf)) !== null;) n += r;
        const count = new Uint8Array(8);
        new DataView(count.buffer).setBigUint64(0, BigInt(n));
        await writeAll(conn, count);
        conn.close();
      })().catch((e) => console.error(`throughput connection: ${e}`));
    }
  })();
  (async () => {
    for await (const conn of echo) {
      (async () => {
        const buf = new Uint8Array(CHUNK);
        for (let r; (r = await conn.read(buf)) !== null;) await writeAll(conn, buf.subarray(0, r));
        conn.close();
      })().catch(() => {/* the client hung up */});
    }
  })();
  (async () => {
    for await (const conn of idle) {
      held.push(conn);
      // An idle connection as a server keeps it: one read pending, into its own buffer.
      conn.read(new Uint8Array(IDLE_READ_BUFFER)).then(() => {}, () => {});
    }
  })();

  const ports: ServerPorts = {
    throughput: (throughput.addr as Deno.NetAddr).port,
    echo: (echo.addr as Deno.NetAddr).port,
    idle: (idle.addr as Deno.NetAddr).port,
  };
  console.log(JSON.stringify(ports));

  // Commands, one a line on stdin: "memory" answers {rss, heapUsed, connections} after gc(); EOF ends the process.
  await answerLines(async (cmd) => {
    if (cmd === "memory") {
      return { rss: await settledRss(3), heapUsed: Deno.memoryUsage().heapUsed, connections: held.length };
    }
    return { connections: held.length };
  });
}

// --- the measuring process -------------------------------------------------

/** A spawned server: its ports, and request/reply over its stdin/stdout lines. */
interface RawServer {
  ports: ServerPorts;
  ask(cmd: "memory" | "connections"): Promise<{ rss: number; heapUsed: number; connections: number }>;
  stop(): Promise<void>;
}

async function startServer(): Promise<RawServer> {
  const server = await spawnLineServer<ServerPorts>(fileURLToPath(import.meta.url), ["--serve"]);
  return { ports: server.ready, ask: (cmd) => server.ask(cmd), stop: () => server.stop() };
}

async function throughputOnce(port: number, total: number): Promise<number> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    const chunk = new Uint8Array(CHUNK).fill(0xa5);
    const t0 = performance.now();
    for (let sent = 0; sent < total; sent += CHUNK) await writeAll(conn, chunk);
    await conn.closeWrite();
    const ack = await readExactly(conn, 8);
    const seconds = (performance.now() - t0) / 1000;
    const counted = Number(new DataView(ack.buffer).getBigUint64(0));
    if (counted !== total) throw new Error(`server counted ${counted} bytes, sent ${total}`);
    return total / seconds / 1e6;
  } finally {
    conn.close();
  }
}

async function setupOnce(port: number, payload: Uint8Array): Promise<number> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: HOST, port });
  await writeAll(conn, payload);
  const echo = await readExactly(conn, payload.byteLength);
  const ms = performance.now() - t0;
  conn.close();
  if (!echo.every((b, i) => b === payload[i])) throw new Error("echo differs from what was sent");
  return ms;
}

async function withServer<T>(fn: (server: RawServer) => Promise<T>): Promise<T> {
  const server = await startServer();
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/** Runs the three measurements over plain TCP and returns the figures; progress goes to stderr. */
export async function runRawTcpBench(options: RawTcpBenchOptions = {}): Promise<RawTcpFigures> {
  const { mib = 256, runs = 3, setups = 200, idleConns = 1000 } = options;
  const started = performance.now();
  const total = mib * 1024 * 1024;

  const throughputRuns = await withServer(async (server) => {
    const out: number[] = [];
    for (let i = 0; i < runs; i++) {
      out.push(await throughputOnce(server.ports.throughput, total));
      log(`throughput run ${i + 1}/${runs}: ${mib} MiB at ${round(out[i], 1)} MB/s`);
    }
    return out;
  });

  const setup = await withServer(async (server) => {
    const payload = new Uint8Array(16).map((_, i) => i);
    for (let i = 0; i < SETUP_WARMUP; i++) await setupOnce(server.ports.echo, payload);
    const times: number[] = [];
    for (let i = 0; i < setups; i++) times.push(await setupOnce(server.ports.echo, payload));
    const p50 = percentile(times, 0.5);
    const p90 = percentile(times, 0.9);
    log(`setup: ${setups} connects, p50 ${round(p50, 3)} ms, p90 ${round(p90, 3)} ms`);
    return { p50, p90 };
  });

  const idle = await withServer(async (server) => {
    const conns: Deno.Conn[] = [];
    try {
      const before = await server.ask("memory");
      let next = 0;
      const worker = async () => {
        while (next < idleConns) {
          next++;
          conns.push(await Deno.connect({ hostname: HOST, port: server.ports.idle }));
        }
      };
      await Promise.all(Array.from({ length: IDLE_DIAL_CONCURRENCY }, worker));
      const deadline = Date.now() + 10_000;
      let held = 0;
      while ((held = (await server.ask("connections")).connections) < idleConns && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      if (held < idleConns) throw new Error(`server holds ${held} connections, expected ${idleConns}`);
      await new Promise((r) => setTimeout(r, 500));
      const after = await server.ask("memory");
      const kib = (after.rss - before.rss) / idleConns / 1024;
      const heapKib = (after.heapUsed - before.heapUsed) / idleConns / 1024;
      log(
        `idle: server RSS ${round(before.rss / 2 ** 20, 1)} -> ${round(after.rss / 2 ** 20, 1)} MiB with ` +
          `${after.connections} connections: ${round(kib, 1)} KiB each (JS heap ${round(heapKib, 1)} KiB each)`,
      );
      return { kib, heapKib };
    } finally {
      for (const c of conns) c.close();
    }
  });

  const seconds = (performance.now() - started) / 1000;
  log(`done in ${round(seconds, 1)} s`);
  return {
    impl: "raw-tcp",
    deno: Deno.version.deno,
    stack: "plain TCP (Deno.connect / Deno.listen), 127.0.0.1, server in a separate Deno process",
    throughputMBps: round(percentile(throughputRuns, 0.5), 1),
    throughputRunsMBps: throughputRuns.map((x) => round(x, 1)),
    throughputBytes: total,
    setupMs: { p50: round(setup.p50, 3), p90: round(setup.p90, 3), n: setups },
    idleConnKiB: round(idle.kib, 1),
    idleConnHeapKiB: round(idle.heapKib, 1),
    idleConns,
    idleMeasures: "VmRSS delta (after gc()) of the accepting Deno process holding the idle connections " +
      `(each with one read pending into its own ${IDLE_READ_BUFFER / 1024} KiB buffer), divided by their number; ` +
      "JS heap delta alongside",
    seconds: round(seconds, 1),
  };
}

if (import.meta.main) {
  if (Deno.args.includes("--serve")) {
    await serve();
  } else {
    console.log(JSON.stringify(await runRawTcpBench()));
  }
}
