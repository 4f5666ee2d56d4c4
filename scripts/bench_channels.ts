/**
 * `deno task bench:channels`: nzcore's secure channels against js-libp2p
 * (TCP + Noise XX + yamux, run by Node.js from `scripts/libp2p_bench/`, which
 * this script installs with npm when needed) and raw Deno TCP as the ceiling,
 * all on 127.0.0.1, in one run:
 *
 * - throughput: one stream, 256 MiB in 64 KiB messages from this process to a
 *   server process, which answers with the byte count once the stream ends;
 *   MB/s = bytes / (first send -> count received); median of 3.
 * - setup: TCP connect + NZ-HANDSHAKE-01 + the channel's confirming round
 *   trip + a stream opened, 16 bytes sent and echoed, then the session
 *   closed; p50 and p90 of 200 (after 10 warm-ups).
 * - idle: 1,000 authenticated sessions held open by a server process, each
 *   from its own identity (one session per peer); the server's RSS after
 *   `gc()`, (after - before) / 1000 in KiB.
 *
 * Both nzcore ends use the library as a node does: `PeerManager` with an
 * in-memory encrypted store, `TcpTransport`, default channel options.
 * Targets: throughput >= 2x js-libp2p, setup p50 <= js-libp2p's, idle <= 64 KiB.
 * The output ends with one JSON line of every figure.
 *
 * `deno run -A scripts/bench_channels.ts [--quick]` (about 1 minute; `--quick`
 * runs 64 MiB, 50 setups and 200 idle sessions, without js-libp2p; `--ours` measures nzcore alone).
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { utf8 } from "../kernel/bytes.ts";
import { openChannel } from "../kernel/channel/channel.ts";
import { performHandshake } from "../kernel/channel/handshake.ts";
import { Identity } from "../kernel/identity/identity.ts";
import { AddressBook } from "../kernel/peers/address_book.ts";
import { PeerManager } from "../kernel/peers/manager.ts";
import { EncryptedStore } from "../kernel/storage/encrypted_kv.ts";
import { createFrameIO } from "../transport/framing.ts";
import { TcpTransport } from "../transport/tcp.ts";
import { answerLines, type ChannelFigures, median, round, settledRss, spawnLineServer, table } from "./_bench_lib.ts";
import { type Libp2pFigures, runLibp2pBench } from "./bench_channels_libp2p.ts";
import { type RawTcpFigures, runRawTcpBench } from "./bench_channels_raw.ts";

const QUICK = Deno.args.includes("--quick");
/** Only nzcore's side, full size: for working on it. */
const OURS_ONLY = Deno.args.includes("--ours");
const MIB = 1024 * 1024;
const TOTAL_MIB = QUICK ? 64 : 256;
const MESSAGE = 64 * 1024;
const RUNS = 3;
const SETUPS = QUICK ? 50 : 200;
const WARMUPS = 10;
const IDLE = QUICK ? 200 : 1000;
const SINK = "bench/sink/1";
const ECHO = "bench/echo/1";

async function manager(identity = Identity.generate("bench")): Promise<{ peers: PeerManager; close(): Promise<void> }> {
  const store = await EncryptedStore.open(undefined, crypto.getRandomValues(new Uint8Array(32)));
  const peers = new PeerManager({
    identity: () => identity,
    book: await AddressBook.open(store),
    transports: [new TcpTransport()],
    policy: "any",
    limits: { pendingTotal: 4096, pendingPerHost: 4096 },
  });
  return {
    peers,
    async close() {
      await peers.close();
      store.close();
    },
  };
}

// --- the server process ----------------------------------------------------

async function serve(): Promise<void> {
  const { peers } = await manager();
  peers.handle(SINK, async (stream) => {
    let bytes = 0;
    for await (const message of stream) bytes += message.length;
    await stream.send(utf8(String(bytes)));
    await stream.close();
  });
  peers.handle(ECHO, async (stream) => {
    for await (const message of stream) await stream.send(message);
    await stream.close();
  });
  const [address] = await peers.listen(["tcp://127.0.0.1:0"]);
  console.log(JSON.stringify({ address }));
  // RSS moves by megabytes between samples (GC timing, allocator arenas): settledRss() takes the median of five.
  await answerLines(async (command) =>
    command === "memory"
      ? { rss: await settledRss(), heapUsed: Deno.memoryUsage().heapUsed, sessions: peers.sessions().length }
      : { error: `unknown command ${command}` }
  );
}

// --- the measuring process -------------------------------------------------

interface Server {
  address: string;
  ask(command: "memory"): Promise<{ rss: number; heapUsed: number; sessions: number }>;
  stop(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const server = await spawnLineServer<{ address: string }>(fileURLToPath(import.meta.url), ["--serve"]);
  return { address: server.ready.address, ask: (command) => server.ask(command), stop: () => server.stop() };
}

function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function log(line: string): void {
  console.error(`[nzcore] ${line}`);
}

async function throughput(server: Server): Promise<number[]> {
  const client = await manager();
  try {
    const session = await client.peers.connect(server.address);
    const message = crypto.getRandomValues(new Uint8Array(MESSAGE));
    const total = TOTAL_MIB * MIB;
    const runs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const stream = await session.openStream(SINK);
      const started = performance.now();
      for (let sent = 0; sent < total; sent += MESSAGE) await stream.send(message);
      await stream.close();
      const count = Number(new TextDecoder().decode((await stream.receive())!));
      const seconds = (performance.now() - started) / 1000;
      if (count !== total) throw new Error(`The sink counted ${count} bytes, expected ${total}`);
      runs.push(total / seconds / 1e6);
      log(`throughput run ${run + 1}/${RUNS}: ${TOTAL_MIB} MiB at ${round(runs[run], 1)} MB/s`);
    }
    return runs;
  } finally {
    await client.close();
  }
}

async function setup(server: Server): Promise<number[]> {
  const client = await manager();
  const payload = crypto.getRandomValues(new Uint8Array(16));
  const times: number[] = [];
  try {
    for (let i = 0; i < WARMUPS + SETUPS; i++) {
      const started = performance.now();
      const session = await client.peers.connect(server.address);
      const stream = await session.openStream(ECHO);
      await stream.send(payload);
      const echoed = await stream.receive();
      const elapsed = performance.now() - started;
      if (echoed?.length !== payload.length) throw new Error("The echo did not come back");
      await session.close("done");
      if (i >= WARMUPS) times.push(elapsed);
    }
  } finally {
    await client.close();
  }
  log(`setup: p50 ${round(percentile(times, 0.5), 2)} ms over ${SETUPS}`);
  return times;
}

async function idle(server: Server): Promise<{ kib: number; heapKib: number; sessions: number }> {
  const before = await server.ask("memory");
  const transport = new TcpTransport();
  const held: { abort(): void }[] = [];
  // Each session from its own identity, as 1,000 peers would (one session per peer).
  const identities = Array.from({ length: IDLE }, (_, i) => Identity.generate(`idle${i}`));
  for (let i = 0; i < IDLE; i += 16) {
    await Promise.all(
      identities.slice(i, i + 16).map(async (identity) => {
        const io = createFrameIO(await transport.dial(server.address));
        const result = await performHandshake(io, { role: "initiator", identity });
        const channel = openChannel(io, result.keys, { log: () => {} });
        await channel.ping();
        held.push(channel);
      }),
    );
  }
  await new Promise((r) => setTimeout(r, 500));
  const after = await server.ask("memory");
  for (const channel of held) channel.abort();
  if (after.sessions < IDLE) throw new Error(`The server holds ${after.sessions} sessions, expected ${IDLE}`);
  const kib = (after.rss - before.rss) / 1024 / IDLE;
  const heapKib = (after.heapUsed - before.heapUsed) / 1024 / IDLE;
  log(`idle: ${after.sessions} sessions, ${round(kib, 1)} KiB each (JS heap ${round(heapKib, 1)} KiB)`);
  return { kib, heapKib, sessions: after.sessions };
}

async function runOurs(): Promise<ChannelFigures & { impl: "nzcore"; deno: string }> {
  const started = performance.now();
  let server = await startServer();
  let runs: number[], times: number[];
  try {
    runs = await throughput(server);
    times = await setup(server);
  } finally {
    await server.stop();
  }
  server = await startServer();
  let idleFigures;
  try {
    idleFigures = await idle(server);
  } finally {
    await server.stop();
  }
  return {
    impl: "nzcore",
    deno: Deno.version.deno,
    stack: "TCP + NZ-HANDSHAKE-01 (Noise XX) + NZ-CHANNEL-01",
    throughputMBps: round(median(runs), 1),
    throughputRunsMBps: runs.map((x) => round(x, 1)),
    throughputBytes: TOTAL_MIB * MIB,
    setupMs: { p50: round(percentile(times, 0.5), 3), p90: round(percentile(times, 0.9), 3), n: SETUPS },
    idleConnKiB: round(idleFigures.kib, 1),
    idleConnHeapKiB: round(idleFigures.heapKib, 1),
    idleConns: idleFigures.sessions,
    idleMeasures:
      "VmRSS delta of the accepting process (median of 5 samples, each after gc()), divided by the sessions it holds",
    seconds: round((performance.now() - started) / 1000, 1),
  };
}

if (import.meta.main) {
  if (Deno.args.includes("--serve")) {
    await serve();
  } else {
    const started = performance.now();
    const ours = await runOurs();
    if (OURS_ONLY) {
      console.log(JSON.stringify({ bench: "channels", ours }));
      Deno.exit(0);
    }
    const raw: RawTcpFigures = await runRawTcpBench(
      QUICK ? { mib: TOTAL_MIB, setups: SETUPS, idleConns: IDLE } : {},
    );
    const libp2p: Libp2pFigures | { skipped: string } = QUICK ? { skipped: "--quick" } : await runLibp2pBench();
    const theirs = "skipped" in libp2p ? undefined : libp2p;
    const ratio = {
      throughput: theirs ? round(ours.throughputMBps / theirs.throughputMBps, 2) : null,
      setup_p50: theirs ? round(ours.setupMs.p50 / theirs.setupMs.p50, 2) : null,
      throughputOfRaw: round(ours.throughputMBps / raw.throughputMBps, 2),
    };
    const targets = {
      throughput: { want: ">= 2x js-libp2p", met: ratio.throughput === null ? null : ratio.throughput >= 2 },
      setup_p50: { want: "<= js-libp2p", met: ratio.setup_p50 === null ? null : ratio.setup_p50 <= 1 },
      idleConnKiB: { want: "<= 64", met: ours.idleConnKiB <= 64 },
    };
    const fmt = (x: number | undefined, digits = 1) => (x === undefined ? "-" : round(x, digits).toString());
    console.log(
      `\nDeno ${Deno.version.deno}; ${
        "skipped" in libp2p ? `js-libp2p skipped: ${libp2p.skipped}` : `js-libp2p on Node.js ${libp2p.node}`
      }\n`,
    );
    console.log(table(["", "throughput MB/s", "setup p50 ms", "setup p90 ms", "idle KiB/conn"], [
      [
        "nzcore",
        fmt(ours.throughputMBps),
        fmt(ours.setupMs.p50, 2),
        fmt(ours.setupMs.p90, 2),
        fmt(ours.idleConnKiB),
      ],
      [
        "js-libp2p",
        fmt(theirs?.throughputMBps),
        fmt(theirs?.setupMs.p50, 2),
        fmt(theirs?.setupMs.p90, 2),
        fmt(theirs?.idleConnKiB),
      ],
      [
        "raw TCP",
        fmt(raw.throughputMBps),
        fmt(raw.setupMs.p50, 2),
        fmt(raw.setupMs.p90, 2),
        fmt(raw.idleConnKiB),
      ],
    ]));
    console.log(
      `\nthroughput ${ratio.throughput ?? "-"}x js-libp2p (target >= 2: ${
        targets.throughput.met ?? "not measured"
      }); setup p50 ${ratio.setup_p50 ?? "-"}x (target <= 1: ${
        targets.setup_p50.met ?? "not measured"
      }); idle ${ours.idleConnKiB} KiB (target <= 64: ${targets.idleConnKiB.met})`,
    );
    console.log(`Total ${round((performance.now() - started) / 1000, 1)} s`);
    console.log(JSON.stringify({ bench: "channels", ours, libp2p, raw, ratio, targets }));
  }
}
