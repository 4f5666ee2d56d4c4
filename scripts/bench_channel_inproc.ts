/**
 * One stream's throughput through two NZ-CHANNEL-01 channels in one process,
 * over an in-memory FrameIO pair (no sockets: this measures the channel
 * itself: sealing, opening, framing, flow control). Both channels share the
 * one JavaScript thread, so every byte is sealed and opened on the same core.
 *
 * Also measures the heap held by idle authenticated channels (1,000 pairs).
 *
 *   deno run -A scripts/bench_channel_inproc.ts [--seconds 3] [--json]
 *
 * The last line of output is one JSON object with every result.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createCipheriv } from "node:crypto";
import { type Channel, openChannel } from "../kernel/channel/channel.ts";
import type { FrameIO, SessionKeys } from "../kernel/channel/types.ts";
import { crypto } from "../kernel/crypto/default.ts";
import { formatInt, round, table } from "./_bench_lib.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string", default: "3" }, json: { type: "boolean", default: false } },
});
const SECONDS = Number(values.seconds);

/** An in-memory FrameIO pair that passes frames without copying; at most `capacity` frames wait per direction. */
function memoryPair(capacity = 16): [FrameIO, FrameIO] {
  interface Dir {
    queue: Uint8Array[];
    reader: ((f: Uint8Array | null) => void) | null;
    writers: (() => void)[];
    ended: boolean;
  }
  const dirs: Dir[] = [0, 1].map(() => ({ queue: [], reader: null, writers: [], ended: false }));
  const end = (inbound: Dir, outbound: Dir): FrameIO => ({
    maxFrameSize: 1024 * 1024 + 64,
    read(): Promise<Uint8Array | null> {
      const frame = inbound.queue.shift();
      if (frame) {
        inbound.writers.shift()?.();
        return Promise.resolve(frame);
      }
      if (inbound.ended) return Promise.resolve(null);
      return new Promise((resolve) => inbound.reader = resolve);
    },
    write(frame: Uint8Array): Promise<void> {
      if (outbound.ended) return Promise.reject(new Error("closed"));
      const reader = outbound.reader;
      if (reader) {
        outbound.reader = null;
        reader(frame);
        return Promise.resolve();
      }
      outbound.queue.push(frame);
      if (outbound.queue.length <= capacity) return Promise.resolve();
      return new Promise((resolve) => outbound.writers.push(resolve));
    },
    close(): Promise<void> {
      for (const d of [inbound, outbound]) {
        d.ended = true;
        const r = d.reader;
        d.reader = null;
        if (d.queue.length === 0) r?.(null);
      }
      return Promise.resolve();
    },
    abort(): void {
      void this.close();
    },
  });
  return [end(dirs[1], dirs[0]), end(dirs[0], dirs[1])];
}

function keys(): [SessionKeys, SessionKeys] {
  const k1 = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const k2 = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const h = new Uint8Array(32);
  return [
    { initiator: true, sendKey: k1.slice(), recvKey: k2.slice(), handshakeHash: h },
    { initiator: false, sendKey: k2, recvKey: k1, handshakeHash: h },
  ];
}

/** Streams `messageSize`-byte messages A -> B on one stream for `seconds`; returns payload MB/s. */
async function throughput(messageSize: number, seconds: number): Promise<{ mbps: number; frames: number }> {
  const [ioA, ioB] = memoryPair();
  const [ka, kb] = keys();
  const a = openChannel(ioA, ka, { keepAliveMs: 0, idleTimeoutMs: 0, log: () => {} });
  const b = openChannel(ioB, kb, { keepAliveMs: 0, idleTimeoutMs: 0, log: () => {} });
  const stream = await a.openStream();
  const message = new Uint8Array(messageSize).fill(7);
  let received = 0;
  const reader = (async () => {
    const incoming = (await b.accept())!;
    for await (const m of incoming) received += m.length;
  })();
  // Warm up, then measure.
  const warmEnd = performance.now() + 300;
  while (performance.now() < warmEnd) await stream.send(message);
  const start = performance.now();
  const startBytes = received;
  const stop = start + seconds * 1000;
  const inflight: Promise<void>[] = [];
  while (performance.now() < stop) {
    inflight.push(stream.send(message));
    if (inflight.length >= 4) await inflight.shift();
  }
  await Promise.all(inflight);
  await stream.close();
  await reader;
  const elapsed = (performance.now() - start) / 1000;
  const frames = a.stats.framesSent;
  await a.close();
  await b.closed;
  return { mbps: (received - startBytes) / elapsed / 1e6, frames };
}

/** Raw ChaCha20-Poly1305 seal + open of 64 KiB on this thread (the ceiling of a one-thread channel pair). */
function cryptoCeiling(seconds: number): { seal: number; sealOpen: number } {
  const key = new Uint8Array(32), nonce = new Uint8Array(12), block = new Uint8Array(65_507);
  let n = 0;
  const start = performance.now(), stop = start + seconds * 1000;
  while (performance.now() < stop) {
    const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    c.update(block);
    c.final();
    c.getAuthTag();
    n++;
  }
  const seal = (n * block.length) / ((performance.now() - start) / 1000) / 1e6;
  let m = 0;
  const sealed = crypto.chachaSeal(key, nonce, block);
  const start2 = performance.now(), stop2 = start2 + seconds * 1000;
  while (performance.now() < stop2) {
    crypto.chachaOpen(key, nonce, crypto.chachaSeal(key, nonce, block));
    m++;
  }
  void sealed;
  const sealOpen = (m * block.length) / ((performance.now() - start2) / 1000) / 1e6;
  return { seal, sealOpen };
}

/** Heap per idle authenticated channel: 1,000 pairs opened, one stream each used once, then left idle. */
async function idleMemory(pairs = 1000): Promise<{ perChannelBytes: number; perPairBytes: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await settle();
  const before = Deno.memoryUsage().heapUsed;
  const channels: Channel[] = [];
  for (let i = 0; i < pairs; i++) {
    const [ioA, ioB] = memoryPair();
    const [ka, kb] = keys();
    const a = openChannel(ioA, ka, { log: () => {} }), b = openChannel(ioB, kb, { log: () => {} });
    channels.push(a, b);
    const s = await a.openStream();
    await s.send(new Uint8Array(100));
    await (await b.accept())!.receive();
  }
  await settle();
  const after = Deno.memoryUsage().heapUsed;
  for (const c of channels) c.abort("done");
  return { perChannelBytes: (after - before) / (2 * pairs), perPairBytes: (after - before) / pairs };
}

const ceiling = cryptoCeiling(1);
const results: Record<string, number> = {};
for (const size of [64 * 1024, 1024 * 1024, 16 * 1024]) {
  const { mbps } = await throughput(size, SECONDS);
  results[`${size / 1024}KiB`] = round(mbps, 1);
}
const memory = await idleMemory();

if (!values.json) {
  console.log(
    table(
      ["measure", "value"],
      [
        ["seal only, 64 KiB (MB/s)", formatInt(ceiling.seal)],
        ["seal + open, 64 KiB, one thread (MB/s)", formatInt(ceiling.sealOpen)],
        ...Object.entries(results).map(([k, v]) => [`one stream, ${k} messages (MB/s)`, formatInt(v)]),
        ["heap per idle channel (bytes)", formatInt(memory.perChannelBytes)],
      ],
    ),
  );
}
console.log(JSON.stringify({
  bench: "channel_inproc",
  seconds: SECONDS,
  cryptoSealMBps: round(ceiling.seal, 1),
  cryptoSealOpenMBps: round(ceiling.sealOpen, 1),
  streamMBps: results,
  idleChannelHeapBytes: Math.round(memory.perChannelBytes),
}));
