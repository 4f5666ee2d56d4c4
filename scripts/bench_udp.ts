/**
 * `deno task bench:udp`: the secure channel's datagram mode (NZ-DGRAM-01)
 * against raw UDP, on 127.0.0.1, sender and receiver in separate processes
 * (this one sends, a `--serve` process receives), in one run. Each throughput
 * figure is the median of `--runs` runs (default 3):
 *
 * - raw: `Deno.listenDatagram`, 1200-byte payloads for `--raw-seconds` (default
 *   1, after a short uncounted warm-up), at most {@linkcode RAW_IN_FLIGHT}
 *   sends in flight; the receiver counts what arrived, and MB/s and packets/s
 *   are of what it received (between its first and last datagram), with the
 *   loss beside them.
 * - session: a {@linkcode DatagramSession} (1200-byte datagrams, the default)
 *   after a real NZ-HANDSHAKE-01 handshake; one-way bulk of `--mib` MiB
 *   (default 64) in 64 KiB writes; the receiver answers with its count once it
 *   has every byte; MB/s = stream bytes / (first write -> answer), packets/s =
 *   data packets the receiver authenticated per second.
 * - channel: NZ-CHANNEL-01 on a session, one stream of 64 KiB messages per
 *   run, the same byte count, timed the same way.
 * - the session and the channel first carry 16 MiB uncounted (a warm-up, as
 *   raw UDP has one): the first runs are slower while the JIT settles.
 * - latency: a 100-byte message echoed over a channel stream on a session,
 *   p50/p99 of {@linkcode RTT_SAMPLES} round trips (after warm-ups).
 *
 * Target: session/raw >= 0.5. The output ends with one JSON line of every figure.
 *
 * `deno run -A scripts/bench_udp.ts [--quick] [--mib N] [--runs N] [--raw-seconds S]`
 * (about 30 s; `--quick`: one run of 32 MiB, 200 round trips).
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import { openChannel } from "../kernel/channel/channel.ts";
import { DatagramEndpoint, type DatagramHandshake } from "../kernel/channel/datagram_endpoint.ts";
import type { DatagramSession } from "../kernel/channel/datagram_session.ts";
import { performHandshake } from "../kernel/channel/handshake.ts";
import type { SessionKeys } from "../kernel/channel/types.ts";
import { Identity } from "../kernel/identity/identity.ts";
import { createFrameIO } from "../transport/framing.ts";
import { type UdpAddr, UdpSocket } from "../transport/udp.ts";
import { answerLines, formatInt, round, spawnLineServer, table } from "./_bench_lib.ts";

const QUICK = Deno.args.includes("--quick");
const MIB = 1024 * 1024;
const PAYLOAD = 1200;
const MESSAGE = 64 * 1024;
/** Sends the raw sender keeps in flight. */
const RAW_IN_FLIGHT = 32;
/** The raw sender blasts this long before counting starts. */
const RAW_WARMUP_MS = 300;
const RTT_SAMPLES = QUICK ? 200 : 1000;
const RTT_WARMUPS = 50;
const RTT_MESSAGE = 100;

function argNumber(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(Deno.args[i + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`Invalid ${name} "${Deno.args[i + 1] ?? ""}": expected a positive number`);
    Deno.exit(2);
  }
  return value;
}

const TOTAL_MIB = argNumber("--mib", QUICK ? 32 : 64);
const RAW_SECONDS = argNumber("--raw-seconds", 1);
/** Each figure is the median of this many runs. */
const RUNS = argNumber("--runs", QUICK ? 1 : 3);
const TOTAL = Math.floor(TOTAL_MIB * MIB);
/** Sent before the measured runs of the session and of the channel (JIT, windows), not counted. */
const WARMUP_BYTES = (QUICK ? 8 : 16) * MIB;

/** What the receiving process reports once it has every byte of a bulk transfer. */
interface SinkReport {
  bytes: number;
  packetsReceived: number;
  packetsDropped: number;
  /** The receiving process's CPU time (user + system) over the transfer, as a share of its wall time. */
  cpu: number;
}

/** This process's CPU time, user + system, in ms. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

interface Ready {
  raw: number;
  sink: number;
  channel: number;
}

// --- the receiving process -------------------------------------------------

/** Counts raw datagrams on its own socket, between "raw-start" and "raw-stop". */
class RawCounter {
  #conn: Deno.DatagramConn;
  #counting = false;
  received = 0;
  bytes = 0;
  first = 0;
  last = 0;

  constructor() {
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#loop();
  }

  get port(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  start(): void {
    this.received =
      this.bytes =
      this.first =
      this.last =
        0;
    this.#counting = true;
  }

  stop(): { received: number; bytes: number; seconds: number } {
    this.#counting = false;
    return { received: this.received, bytes: this.bytes, seconds: (this.last - this.first) / 1000 };
  }

  async #loop(): Promise<void> {
    const buffer = new Uint8Array(65_536);
    for (;;) {
      const [data] = await this.#conn.receive(buffer);
      if (!this.#counting) continue;
      const now = performance.now();
      if (this.received === 0) this.first = now;
      this.last = now;
      this.received++;
      this.bytes += data.length;
    }
  }
}

/** An endpoint that answers every handshake as bob and hands each session to `serveSession`. */
async function acceptor(
  identity: Identity,
  serveSession: (session: DatagramSession, keys: SessionKeys) => Promise<void>,
): Promise<UdpSocket> {
  const socket = await UdpSocket.bind("udp://127.0.0.1:0");
  new DatagramEndpoint(socket, {
    onHandshake: (hs: DatagramHandshake) => {
      performHandshake(hs, { role: "responder", identity })
        .then((result) => serveSession(hs.establish(result.keys), result.keys))
        .catch((error) => console.error(`bench:udp server: ${error}`));
    },
  });
  return socket;
}

/**
 * Bulk sink, one transfer after another: the first 8 bytes of each give the byte count that follows; answers each
 * with a JSON {@linkcode SinkReport} (the sender waits for it before the next).
 */
async function sink(session: DatagramSession): Promise<void> {
  for (;;) {
    const header = new Uint8Array(8);
    let headerAt = 0;
    let expected = -1;
    let bytes = 0;
    const before = { received: session.stats.packetsReceived, dropped: session.stats.packetsDropped };
    let startedAt = 0, startedCpu = 0;
    while (expected < 0 || bytes < expected) {
      let chunk = await session.read();
      if (chunk === null) return;
      if (startedAt === 0) {
        startedAt = performance.now();
        startedCpu = cpuMs();
      }
      if (expected < 0) {
        const take = Math.min(8 - headerAt, chunk.length);
        header.set(chunk.subarray(0, take), headerAt);
        headerAt += take;
        chunk = chunk.subarray(take);
        if (headerAt === 8) expected = Number(new DataView(header.buffer).getBigUint64(0));
      }
      bytes += chunk.length;
    }
    const report: SinkReport = {
      bytes,
      packetsReceived: session.stats.packetsReceived - before.received,
      packetsDropped: session.stats.packetsDropped - before.dropped,
      cpu: round((cpuMs() - startedCpu) / (performance.now() - startedAt), 2),
    };
    await session.write(new TextEncoder().encode(JSON.stringify(report)));
  }
}

/** A channel on the session: "sink" streams answer with the byte count at their end, others echo. */
async function channelServer(session: DatagramSession, keys: SessionKeys): Promise<void> {
  const channel = openChannel(createFrameIO(session), keys, { log: () => {} });
  for await (const stream of channel) {
    (async () => {
      const first = await stream.receive();
      if (first === null) return;
      if (first.length === 4 && new TextDecoder().decode(first) === "sink") {
        let bytes = 0;
        for await (const message of stream) bytes += message.length;
        await stream.send(new TextEncoder().encode(String(bytes)));
      } else {
        await stream.send(first);
        for await (const message of stream) await stream.send(message);
      }
      await stream.close();
    })().catch(() => {});
  }
}

async function serve(): Promise<void> {
  const bob = Identity.generate("bob");
  const raw = new RawCounter();
  const sinkSocket = await acceptor(bob, (session) => sink(session));
  const channelSocket = await acceptor(bob, channelServer);
  const ready: Ready = { raw: raw.port, sink: sinkSocket.addr.port, channel: channelSocket.addr.port };
  console.log(JSON.stringify(ready));
  await answerLines((command) => {
    if (command === "raw-start") {
      raw.start();
      return { ok: true };
    }
    if (command === "raw-stop") return raw.stop();
    return { error: `unknown command ${command}` };
  });
}

// --- the sending process ---------------------------------------------------

function log(line: string): void {
  console.error(`[bench:udp] ${line}`);
}

function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

interface RawFigures {
  sent: number;
  received: number;
  loss: number;
  MBps: number;
  pps: number;
  seconds: number;
}

async function runRaw(
  server: { ask<T>(c: string): Promise<T> },
  port: number,
): Promise<RawFigures & { runsMBps: number[] }> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const payload = crypto.getRandomValues(new Uint8Array(PAYLOAD));
  let sent = 0;
  const blast = async (ms: number) => {
    const end = performance.now() + ms;
    await Promise.all(Array.from({ length: RAW_IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        await conn.send(payload, to);
        sent++;
      }
    }));
  };
  // Warm-up (JIT, socket buffers), not counted.
  await blast(RAW_WARMUP_MS);
  const runs: RawFigures[] = [];
  for (let run = 0; run < RUNS; run++) {
    await new Promise((r) => setTimeout(r, 100));
    await server.ask("raw-start");
    sent = 0;
    await blast(RAW_SECONDS * 1000);
    await new Promise((r) => setTimeout(r, 200));
    const got = await server.ask<{ received: number; bytes: number; seconds: number }>("raw-stop");
    const figures = {
      sent,
      received: got.received,
      loss: round(1 - got.received / sent, 4),
      MBps: round(got.bytes / got.seconds / 1e6, 1),
      pps: Math.round(got.received / got.seconds),
      seconds: round(got.seconds, 2),
    };
    log(
      `raw run ${run + 1}/${RUNS}: ${formatInt(figures.pps)} packets/s received, ${figures.MBps} MB/s, ` +
        `loss ${round(figures.loss * 100, 2)}%`,
    );
    runs.push(figures);
  }
  conn.close();
  return medianRun(runs);
}

/** The run of median throughput, with every run's MB/s beside it. */
function medianRun<T extends { MBps: number }>(runs: T[]): T & { runsMBps: number[] } {
  const sorted = [...runs].sort((a, b) => a.MBps - b.MBps);
  return { ...sorted[(sorted.length - 1) >> 1], runsMBps: runs.map((r) => r.MBps) };
}

/** Dials `port` as alice over a fresh socket; returns the session and its keys. */
async function dial(port: number): Promise<{ session: DatagramSession; keys: SessionKeys; close(): Promise<void> }> {
  const socket = await UdpSocket.bind("udp://127.0.0.1:0");
  const endpoint = new DatagramEndpoint(socket, { onHandshake: (hs) => hs.abort() });
  const to: UdpAddr = { hostname: "127.0.0.1", port };
  const hs = endpoint.dial(to);
  const result = await performHandshake(hs, { role: "initiator", identity: Identity.generate("alice") });
  const session = hs.establish(result.keys);
  return {
    session,
    keys: result.keys,
    async close() {
      endpoint.close();
      await socket.close();
    },
  };
}

interface SessionFigures {
  bytes: number;
  MBps: number;
  pps: number;
  packetsSent: number;
  packetsLost: number;
  packetsReceived: number;
  rttMs: number | null;
  cwnd: number;
  seconds: number;
  /** CPU time of each process over the transfer, as a share of the wall time (1 = one core busy). */
  senderCpu: number;
  receiverCpu: number;
}

async function runSession(port: number): Promise<SessionFigures & { runsMBps: number[] }> {
  const { session, close } = await dial(port);
  try {
    await sessionRun(session, -1, WARMUP_BYTES);
    const runs: SessionFigures[] = [];
    for (let run = 0; run < RUNS; run++) runs.push(await sessionRun(session, run, TOTAL));
    return medianRun(runs);
  } finally {
    await close();
  }
}

/** One bulk transfer of `total` bytes to the sink; `run` -1 is the warm-up. */
async function sessionRun(session: DatagramSession, run: number, total: number): Promise<SessionFigures> {
  const message = crypto.getRandomValues(new Uint8Array(MESSAGE));
  const header = new Uint8Array(8);
  new DataView(header.buffer).setBigUint64(0, BigInt(total));
  const before = { sent: session.stats.packetsSent, lost: session.stats.packetsLost };
  const started = performance.now();
  const startedCpu = cpuMs();
  await session.write(header);
  for (let sent = 0; sent < total; sent += MESSAGE) {
    await session.write(sent + MESSAGE <= total ? message : message.subarray(0, total - sent));
  }
  let answer = "";
  for (;;) {
    const chunk = await session.read();
    if (chunk === null) throw new Error("The sink ended the session before answering");
    answer += new TextDecoder().decode(chunk);
    if (answer.endsWith("}")) break;
  }
  const seconds = (performance.now() - started) / 1000;
  const senderCpu = round((cpuMs() - startedCpu) / (seconds * 1000), 2);
  const report = JSON.parse(answer) as SinkReport;
  if (report.bytes !== total) throw new Error(`The sink counted ${report.bytes} bytes, expected ${total}`);
  const figures = {
    bytes: total,
    MBps: round(total / seconds / 1e6, 1),
    pps: Math.round(report.packetsReceived / seconds),
    packetsSent: session.stats.packetsSent - before.sent,
    packetsLost: session.stats.packetsLost - before.lost,
    packetsReceived: report.packetsReceived,
    rttMs: session.rttMs === null ? null : round(session.rttMs, 3),
    cwnd: session.info().cwnd,
    seconds: round(seconds, 2),
    senderCpu,
    receiverCpu: report.cpu,
  };
  log(
    `session ${run < 0 ? "warm-up" : `run ${run + 1}/${RUNS}`}: ${round(total / MIB, 1)} MiB at ${figures.MBps} MB/s, ${
      formatInt(figures.pps)
    } packets/s, ` +
      `${figures.packetsLost} of ${figures.packetsSent} packets lost, CPU sender ${senderCpu} receiver ${report.cpu}`,
  );
  return figures;
}

interface ChannelRunFigures {
  bytes: number;
  MBps: number;
  runsMBps: number[];
  seconds: number;
  packetsLost: number;
  rttP50Ms: number;
  rttP99Ms: number;
  rttSamples: number;
}

async function runChannel(port: number): Promise<ChannelRunFigures> {
  const { session, keys, close } = await dial(port);
  const channel = openChannel(createFrameIO(session), keys, { log: () => {} });
  try {
    // Bulk: one stream of 64 KiB messages per run.
    const message = crypto.getRandomValues(new Uint8Array(MESSAGE));
    const bulk = async (total: number) => {
      const stream = await channel.openStream();
      const started = performance.now();
      await stream.send(new TextEncoder().encode("sink"));
      for (let sent = 0; sent < total; sent += MESSAGE) {
        await stream.send(sent + MESSAGE <= total ? message : message.subarray(0, total - sent));
      }
      await stream.close();
      const count = Number(new TextDecoder().decode((await stream.receive())!));
      if (count !== total) throw new Error(`The channel sink counted ${count} bytes, expected ${total}`);
      return (performance.now() - started) / 1000;
    };
    await bulk(WARMUP_BYTES);
    const lostBefore = session.stats.packetsLost;
    const runs: { MBps: number; seconds: number }[] = [];
    for (let run = 0; run < RUNS; run++) {
      const seconds = await bulk(TOTAL);
      runs.push({ MBps: round(TOTAL / seconds / 1e6, 1), seconds: round(seconds, 2) });
      log(`channel run ${run + 1}/${RUNS}: ${TOTAL_MIB} MiB at ${runs[run].MBps} MB/s`);
    }
    const { MBps, seconds, runsMBps } = medianRun(runs);

    // Latency: 100-byte messages echoed on one stream.
    const echo = await channel.openStream();
    const small = crypto.getRandomValues(new Uint8Array(RTT_MESSAGE));
    const times: number[] = [];
    for (let i = 0; i < RTT_WARMUPS + RTT_SAMPLES; i++) {
      const t0 = performance.now();
      await echo.send(small);
      const back = await echo.receive();
      const elapsed = performance.now() - t0;
      if (back?.length !== RTT_MESSAGE) throw new Error("The echo did not come back");
      if (i >= RTT_WARMUPS) times.push(elapsed);
    }
    await echo.close();
    const figures = {
      bytes: TOTAL,
      MBps,
      runsMBps,
      seconds,
      packetsLost: session.stats.packetsLost - lostBefore,
      rttP50Ms: round(percentile(times, 0.5), 3),
      rttP99Ms: round(percentile(times, 0.99), 3),
      rttSamples: RTT_SAMPLES,
    };
    log(`latency: ${RTT_MESSAGE}-byte round trip p50 ${figures.rttP50Ms} ms, p99 ${figures.rttP99Ms} ms`);
    return figures;
  } finally {
    channel.abort();
    await close();
  }
}

if (import.meta.main) {
  if (Deno.args.includes("--serve")) {
    await serve();
  } else {
    const started = performance.now();
    const server = await spawnLineServer<Ready>(fileURLToPath(import.meta.url), ["--serve"]);
    let raw: RawFigures & { runsMBps: number[] }, session: SessionFigures, channel: ChannelRunFigures;
    try {
      raw = await runRaw(server, server.ready.raw);
      session = await runSession(server.ready.sink);
      channel = await runChannel(server.ready.channel);
    } finally {
      await server.stop();
    }
    const ratio = {
      sessionOfRaw: round(session.MBps / raw.MBps, 2),
      channelOfRaw: round(channel.MBps / raw.MBps, 2),
    };
    const targets = { sessionOfRaw: { want: ">= 0.5", met: ratio.sessionOfRaw >= 0.5 } };
    console.log(
      `\nDeno ${Deno.version.deno}; 127.0.0.1, ${PAYLOAD}-byte datagrams, sender and receiver in two processes\n`,
    );
    console.log(table(["", "MB/s", "packets/s", "of raw", "loss"], [
      ["raw UDP", String(raw.MBps), formatInt(raw.pps), "1", `${round(raw.loss * 100, 2)}%`],
      [
        "NZ-DGRAM-01 session",
        String(session.MBps),
        formatInt(session.pps),
        String(ratio.sessionOfRaw),
        `${round((session.packetsLost / session.packetsSent) * 100, 2)}%`,
      ],
      ["NZ-CHANNEL-01 on it", String(channel.MBps), "-", String(ratio.channelOfRaw), "-"],
    ]));
    console.log(
      `\n${RTT_MESSAGE}-byte round trip over the channel on a session: p50 ${channel.rttP50Ms} ms, ` +
        `p99 ${channel.rttP99Ms} ms (${RTT_SAMPLES} samples)`,
    );
    console.log(`session/raw ${ratio.sessionOfRaw} (target >= 0.5: ${targets.sessionOfRaw.met})`);
    console.log(`Total ${round((performance.now() - started) / 1000, 1)} s`);
    console.log(JSON.stringify({
      bench: "udp",
      deno: Deno.version.deno,
      payload: PAYLOAD,
      raw: { ...raw, inFlight: RAW_IN_FLIGHT },
      session,
      channel,
      ratio,
      targets,
    }));
  }
}
