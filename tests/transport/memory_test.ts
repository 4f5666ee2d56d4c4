import { deepStrictEqual as eql, ok, rejects, throws } from "node:assert/strict";
import { runTransportSuite } from "./compliance.ts";
import type { Duplex, ListenOptions } from "../../transport/types.ts";
import { MemoryTransport } from "../../transport/memory.ts";

let names = 0;

runTransportSuite("memory", () => ({
  transport: new MemoryTransport({ bufferSize: 64 * 1024 }),
  listenAddr: () => `memory://suite-${++names}`,
  deadAddr: () => Promise.resolve(`memory://nobody-${++names}`),
  halfClose: true,
  abortIsError: true,
  backpressure: "block",
  // The peer's queue (below 64 KiB before a write, plus one 64 KiB piece) and one write in flight.
  maxAhead: 256 * 1024,
}));

Deno.test("memory: addresses are memory://NAME with a plain name", async () => {
  const memory = new MemoryTransport();
  await rejects(memory.dial("tcp://127.0.0.1:1"), RangeError);
  await rejects(memory.dial("memory://"), SyntaxError);
  await rejects(memory.listen("memory://a/b", { onConnection: () => {} }), /NAME must be 1 to 200 letters/);
  await rejects(memory.dial(7 as unknown as string), TypeError);
  await rejects(memory.listen("memory://ok", {} as ListenOptions), TypeError);
  throws(() => new MemoryTransport({ bufferSize: 0 }), RangeError);
});

Deno.test("memory: a closed listener frees its name", async () => {
  const memory = new MemoryTransport();
  const first = await memory.listen("memory://reused", { onConnection: (conn) => conn.abort() });
  await first.close();
  const second = await memory.listen("memory://reused", { onConnection: (conn) => conn.abort() });
  await first.close(); // closing again leaves the new owner alone
  const conn = await memory.dial("memory://reused");
  conn.abort();
  await second.close();
});

Deno.test("memory: chunks larger than the buffer pass in pieces, and a write's buffer can be reused", async () => {
  const memory = new MemoryTransport({ bufferSize: 1000 });
  const accepted = Promise.withResolvers<Duplex>();
  await using listener = await memory.listen("memory://pieces", { onConnection: accepted.resolve });
  const client = await memory.dial(listener.addr);
  const server = await accepted.promise;
  const writer = client.writable.getWriter();
  const data = Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff);
  const expected = data.slice();
  const reading = (async () => {
    const sizes: number[] = [];
    const got: number[] = [];
    for await (const chunk of server.readable) {
      sizes.push(chunk.length);
      got.push(...chunk);
    }
    return { sizes, got: new Uint8Array(got) };
  })();
  await writer.write(data);
  data.fill(0);
  await writer.write(new Uint8Array(0));
  await writer.close();
  const { sizes, got } = await reading;
  eql(got, expected);
  ok(sizes.every((n) => n <= 1000), `pieces ${sizes}`);
  await server.close();
  await Promise.all([client.closed, server.closed]);
});
