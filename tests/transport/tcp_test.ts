import { equal, ok, rejects } from "node:assert/strict";
import { runTransportSuite } from "./compliance.ts";
import { TcpTransport } from "../../transport/tcp.ts";
import { TransportError } from "../../transport/errors.ts";
import type { Duplex, ListenOptions } from "../../transport/types.ts";

const MiB = 1024 * 1024;

/** A port that was free a moment ago. */
function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

runTransportSuite("tcp", () => ({
  transport: new TcpTransport(),
  listenAddr: () => "tcp://127.0.0.1:0",
  deadAddr: () => Promise.resolve(`tcp://127.0.0.1:${deadPort()}`),
  halfClose: true,
  abortIsError: false,
  backpressure: "block",
  // The kernel's socket buffers on loopback grow to a few MiB each way.
  maxAhead: 32 * MiB,
  fastPath: true,
}));

Deno.test("tcp: both ends report each other's addresses", async () => {
  const tcp = new TcpTransport();
  const accepted = Promise.withResolvers<Duplex>();
  await using listener = await tcp.listen("tcp://127.0.0.1:0", { onConnection: accepted.resolve });
  const client = await tcp.dial(listener.addr);
  const server = await accepted.promise;
  equal(client.remoteAddr, listener.addr);
  equal(server.localAddr, listener.addr);
  equal(server.remoteAddr, client.localAddr);
  ok(/^tcp:\/\/127\.0\.0\.1:[1-9][0-9]*$/.test(client.localAddr), client.localAddr);
  client.abort();
  server.abort();
  await Promise.all([client.closed, server.closed]);
});

Deno.test("tcp: listens and dials over IPv6 loopback, when the host has it", async (t) => {
  const tcp = new TcpTransport();
  let listener;
  try {
    listener = await tcp.listen("tcp://[::1]:0", { onConnection: (conn) => void conn.close() });
  } catch {
    return void t.step({ name: "no IPv6 loopback here", ignore: true, fn: () => {} });
  }
  await using _ = listener;
  ok(/^tcp:\/\/\[::1\]:[1-9][0-9]*$/.test(listener.addr), listener.addr);
  const conn = await tcp.dial(listener.addr);
  equal((await conn.readable.getReader().read()).done, true);
  await conn.close();
});

Deno.test("tcp: a throwing onConnection aborts that connection and the listener goes on", async () => {
  const tcp = new TcpTransport();
  let calls = 0;
  await using listener = await tcp.listen("tcp://127.0.0.1:0", {
    onConnection: () => {
      calls++;
      throw new Error("handler bug");
    },
  });
  for (let i = 0; i < 2; i++) {
    const conn = await tcp.dial(listener.addr);
    const { done } = await conn.readable.getReader().read().catch(() => ({ done: true }));
    equal(done, true);
    await conn.close();
  }
  equal(calls, 2);
});

Deno.test("tcp: dial and listen refuse other schemes and bad options", async () => {
  const tcp = new TcpTransport();
  await rejects(tcp.dial("ws://127.0.0.1:1/"), RangeError);
  await rejects(tcp.dial("tcp://127.0.0.1"), SyntaxError);
  await rejects(tcp.listen("memory://x", { onConnection: () => {} }), RangeError);
  await rejects(tcp.listen("ws://127.0.0.1:0/", { onConnection: () => {} }), RangeError);
  await rejects(tcp.listen("tcp://127.0.0.1:0", {} as ListenOptions), TypeError);
  const reason = new Error("no");
  await rejects(
    tcp.listen("tcp://127.0.0.1:0", { onConnection: () => {}, signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
});

Deno.test("tcp: a write after the peer closed fails and resolves closed", async () => {
  const tcp = new TcpTransport();
  const accepted = Promise.withResolvers<Duplex>();
  await using listener = await tcp.listen("tcp://127.0.0.1:0", { onConnection: accepted.resolve });
  const client = await tcp.dial(listener.addr);
  const server = await accepted.promise;
  await server.close();
  equal((await client.readable.getReader().read()).done, true);
  const writer = client.writable.getWriter();
  await rejects(
    (async () => {
      for (let i = 0; i < 100; i++) {
        await writer.write(new Uint8Array(64 * 1024));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })(),
    TransportError,
  );
  await client.closed;
});

Deno.test("tcp: close() with unread bytes from the peer still delivers everything written before it", async () => {
  const tcp = new TcpTransport();
  const accepted = Promise.withResolvers<Duplex>();
  await using listener = await tcp.listen("tcp://127.0.0.1:0", { onConnection: (c) => accepted.resolve(c) });
  const a = await tcp.dial(listener.addr);
  const b = await accepted.promise;
  // A sends B data that B never reads; B then writes its last bytes and closes.
  const aWriter = a.writable.getWriter();
  const flood = aWriter.write(new Uint8Array(512 * 1024)).catch(() => {});
  const last = new Uint8Array(256 * 1024).fill(7);
  const bWriter = b.writable.getWriter();
  await bWriter.write(last);
  bWriter.releaseLock();
  await new Promise((r) => setTimeout(r, 50));
  const closing = b.close();
  // A reads only now: without a lingering close, B's kernel answers the unread bytes with a reset, and A loses
  // what it had not read yet.
  let received = 0;
  for await (const chunk of a.readable) received += chunk.length;
  equal(received, last.length);
  await closing;
  await flood;
  aWriter.releaseLock();
  await a.close();
});

Deno.test("tcp: chunks of readable are never rewritten by later reads (read() lends its chunks, readable does not)", async () => {
  const tcp = new TcpTransport();
  const accepted = Promise.withResolvers<Duplex>();
  await using listener = await tcp.listen("tcp://127.0.0.1:0", { onConnection: accepted.resolve });
  const client = await tcp.dial(listener.addr);
  const server = await accepted.promise;
  const data = Uint8Array.from({ length: 4 * MiB + 17 }, (_, i) => (i * 7919) >>> 5);
  const sending = (async () => {
    // Writes of every size, so that reads both fill the buffer (it grows) and leave it mostly empty (copied).
    for (let offset = 0, size = 1; offset < data.length; offset += size, size = (size * 3) % 300_001 + 1) {
      await client.write!(data.subarray(offset, Math.min(offset + size, data.length)));
    }
    await client.close();
  })();
  const chunks: Uint8Array[] = [];
  for await (const chunk of server.readable) chunks.push(chunk); // kept as they are, not copied
  await Promise.all([sending, server.close()]);
  let offset = 0;
  for (const chunk of chunks) {
    ok(chunk.every((byte, i) => byte === data[offset + i]), `the chunk at ${offset} is intact`);
    offset += chunk.length;
  }
  equal(offset, data.length);
});
