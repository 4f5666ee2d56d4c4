/**
 * Throughput of a transport plus length-prefixed framing on loopback: one
 * side writes frames as fast as `write()` resolves, the other reads them;
 * each round moves 1 GiB (256 MiB for WebSocket and for 1 KiB frames) over a
 * fresh connection, and the median of the rounds counts. Prints one line per
 * case, then one line of JSON with every figure. Target: TCP with 64 KiB
 * frames above 1 GB/s.
 *
 * `deno run -A scripts/bench_transport.ts` (about 15 s on two cores).
 *
 * @module
 */

import { createFrameIO } from "../transport/framing.ts";
import { MemoryTransport } from "../transport/memory.ts";
import { TcpTransport } from "../transport/tcp.ts";
import { WebSocketTransport } from "../transport/websocket.ts";
import type { Duplex, Transport } from "../transport/types.ts";

const ROUNDS = 3;
const GiB = 1024 ** 3;

interface Case {
  name: string;
  transport: Transport;
  addr: string;
  frame: number;
  total: number;
}

const CASES: Case[] = [
  { name: "tcp 64KiB", transport: new TcpTransport(), addr: "tcp://127.0.0.1:0", frame: 64 * 1024, total: GiB },
  { name: "tcp 1MiB", transport: new TcpTransport(), addr: "tcp://127.0.0.1:0", frame: 1024 * 1024, total: GiB },
  { name: "tcp 1KiB", transport: new TcpTransport(), addr: "tcp://127.0.0.1:0", frame: 1024, total: GiB / 4 },
  {
    name: "ws 64KiB",
    transport: new WebSocketTransport(),
    addr: "ws://127.0.0.1:0/",
    frame: 64 * 1024,
    total: GiB / 4,
  },
  {
    name: "memory 64KiB",
    transport: new MemoryTransport({ bufferSize: 1024 * 1024 }),
    addr: "memory://bench",
    frame: 64 * 1024,
    total: GiB,
  },
];

/** Moves `total` bytes in `frame`-byte frames over a fresh connection; returns MB/s. */
async function round(c: Case): Promise<number> {
  const accepted = Promise.withResolvers<Duplex>();
  const listener = await c.transport.listen(c.addr, { onConnection: accepted.resolve });
  const client = createFrameIO(await c.transport.dial(listener.addr), { maxFrameSize: c.frame });
  const server = createFrameIO(await accepted.promise, { maxFrameSize: c.frame });
  const frame = new Uint8Array(c.frame).fill(7);
  const count = Math.floor(c.total / c.frame);
  const started = performance.now();
  const sending = (async () => {
    for (let i = 0; i < count; i++) await client.write(frame);
    await client.close();
  })();
  let received = 0;
  for (let f; (f = await server.read()) !== null;) received += f.length;
  await sending;
  const seconds = (performance.now() - started) / 1000;
  await server.close();
  await listener.close();
  if (received !== count * c.frame) throw new Error(`${c.name}: received ${received} of ${count * c.frame} bytes`);
  return received / seconds / 1e6;
}

const results: Record<string, number> = {};
for (const c of CASES) {
  const rates: number[] = [];
  for (let i = 0; i < ROUNDS; i++) rates.push(await round(c));
  rates.sort((a, b) => a - b);
  results[c.name] = Math.round(rates[Math.floor(ROUNDS / 2)]);
  console.log(`${c.name.padEnd(14)} ${String(results[c.name]).padStart(6)} MB/s  (rounds: ${rates.map(Math.round)})`);
}
console.log(JSON.stringify({ unit: "MB/s", ...results }));
