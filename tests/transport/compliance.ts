/**
 * The transport compliance suite: every {@linkcode Transport} runs it, so the
 * layers above can count on one behaviour whichever carries the bytes.
 *
 * @module
 */

import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { AddressInUseError, DialError } from "../../transport/errors.ts";
import type { Duplex, Listener, Transport } from "../../transport/types.ts";

/** What a transport tells the suite about itself. */
export interface TransportUnderTest {
  /** The transport. */
  transport: Transport;
  /** A fresh address to listen on (port 0, or a new name). */
  listenAddr(): string;
  /** An address nothing listens on. */
  deadAddr(): Promise<string>;
  /** Whether closing the writable leaves the other direction open (TCP, memory; not WebSocket). */
  halfClose: boolean;
  /** Whether `abort()` reaches the peer as an error rather than a plain end (TCP cannot send one). */
  abortIsError: boolean;
  /** How a writer meets a reader that stopped: its writes wait, or the connection is aborted. */
  backpressure: "block" | "abort";
  /** The most bytes a writer may get ahead of a reader that stopped. */
  maxAhead: number;
  /** Whether its connections offer the fast path (`Duplex.read` and `Duplex.write`); the suite then tests it too. */
  fastPath?: boolean;
}

/** A connection with the fast path. */
type FastDuplex = Duplex & Required<Pick<Duplex, "read" | "write">>;

function fast(conn: Duplex): FastDuplex {
  ok(typeof conn.read === "function" && typeof conn.write === "function", "the connection has read() and write()");
  return conn as FastDuplex;
}

/** Reads through the fast path until the end; each chunk is copied before the next read. */
async function readAllFast(conn: FastDuplex): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let chunk; (chunk = await conn.read()) !== null;) parts.push(chunk.slice());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const MiB = 1024 * 1024;

/** Byte `i` of the test stream; both ends compute it. */
function patternAt(i: number): number {
  return Math.imul(i, 0x9e3779b1) >>> 24;
}

function fillPattern(buf: Uint8Array, offset: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = patternAt(offset + i);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Settles with "stall" if `promise` takes longer than `ms`; the timer never outlives the race. */
async function within<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | "stall"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stall = new Promise<"stall">((resolve) => timer = setTimeout(() => resolve("stall"), ms));
  try {
    return await Promise.race([promise.then((value) => ({ value }), (error) => ({ error })), stall]);
  } finally {
    clearTimeout(timer);
  }
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of readable) {
    parts.push(chunk.slice());
    length += chunk.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A listener plus the connections it accepted, all torn down by `cleanup()`. */
class Harness {
  readonly accepted: Duplex[] = [];
  readonly dialed: Duplex[] = [];
  listener!: Listener;
  #waiting: ((conn: Duplex) => void)[] = [];
  #queue: Duplex[] = [];

  constructor(readonly t: TransportUnderTest) {}

  async listen(onConnection?: (conn: Duplex) => void): Promise<Listener> {
    this.listener = await this.t.transport.listen(this.t.listenAddr(), {
      onConnection: (conn) => {
        this.accepted.push(conn);
        if (onConnection) return onConnection(conn);
        const waiter = this.#waiting.shift();
        if (waiter) waiter(conn);
        else this.#queue.push(conn);
      },
    });
    return this.listener;
  }

  /** The next accepted connection. */
  next(): Promise<Duplex> {
    const conn = this.#queue.shift();
    if (conn) return Promise.resolve(conn);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  async dial(addr = this.listener.addr): Promise<Duplex> {
    const conn = await this.t.transport.dial(addr);
    this.dialed.push(conn);
    return conn;
  }

  /** Dials and returns both ends. */
  async pair(): Promise<[client: Duplex, server: Duplex]> {
    const client = await this.dial();
    return [client, await this.next()];
  }

  async cleanup(): Promise<void> {
    const all = [...this.dialed, ...this.accepted];
    for (const conn of all) conn.abort(new Error("test cleanup"));
    await Promise.all(all.map((conn) => conn.closed));
    await this.listener?.close();
  }
}

/**
 * Registers the compliance tests of one transport.
 *
 * @param name Prefix of the test names.
 * @param factory Describes the transport; called once per test.
 */
export function runTransportSuite(name: string, factory: () => TransportUnderTest): void {
  function test(title: string, fn: (h: Harness) => Promise<void>): void {
    Deno.test(`${name}: ${title}`, async () => {
      const h = new Harness(factory());
      try {
        await fn(h);
      } finally {
        await h.cleanup();
      }
    });
  }

  test("a dialed connection echoes bytes through the listener", async (h) => {
    const listener = await h.listen((conn) => void conn.readable.pipeTo(conn.writable).catch(() => {}));
    ok(!/:0(\/|$)/.test(listener.addr), `port 0 is resolved in ${listener.addr}`);
    const conn = await h.dial();
    equal(conn.remoteAddr, listener.addr);
    equal(typeof conn.localAddr, "string");
    const writer = conn.writable.getWriter();
    const reader = conn.readable.getReader();
    const sent = new TextEncoder().encode("hello, peer");
    await writer.write(sent);
    const got: number[] = [];
    while (got.length < sent.length) got.push(...(await reader.read()).value!);
    eql(new Uint8Array(got), sent);
    await writer.close();
    equal((await reader.read()).done, true);
    await conn.closed;
  });

  test("64 MiB arrive intact, though the writer reuses its buffer", async (h) => {
    await h.listen();
    const [client, server] = await h.pair();
    const total = 64 * MiB;
    const received = (async () => {
      let offset = 0;
      let bad = -1;
      for await (const chunk of server.readable) {
        for (let i = 0; i < chunk.length && bad < 0; i++) {
          if (chunk[i] !== patternAt(offset + i)) bad = offset + i;
        }
        offset += chunk.length;
      }
      return { offset, bad };
    })();
    const writer = client.writable.getWriter();
    const buf = new Uint8Array(64 * 1024 + 3); // an odd size, so writes and reads never line up
    for (let offset = 0; offset < total; offset += buf.length) {
      const chunk = buf.subarray(0, Math.min(buf.length, total - offset));
      fillPattern(chunk, offset);
      await writer.write(chunk);
    }
    await writer.close();
    eql(await received, { offset: total, bad: -1 });
  });

  test("closing the writable ends the peer's readable after the last byte", async (h) => {
    await h.listen();
    const [client, server] = await h.pair();
    const data = new Uint8Array(MiB + 5);
    fillPattern(data, 0);
    const writer = client.writable.getWriter();
    const done = writer.write(data).then(() => writer.close());
    eql(await readAll(server.readable), data);
    await done;
  });

  test("close() flushes queued writes, then the peer reads the end", async (h) => {
    await h.listen();
    const [client, server] = await h.pair();
    const writer = client.writable.getWriter();
    const parts = Array.from({ length: 20 }, (_, i) => new Uint8Array(10_000).fill(i));
    const writes = parts.map((part) => writer.write(part));
    const received = readAll(server.readable);
    await client.close();
    await Promise.all(writes);
    const got = await received;
    equal(got.length, 200_000);
    for (let i = 0; i < 20; i++) equal(got[i * 10_000 + 9_999], i);
    await rejects(writer.write(new Uint8Array(1)));
    await client.closed;
    await server.close();
    await server.closed;
  });

  test("close() ends this side's pending read, and a second close() is harmless", async (h) => {
    await h.listen();
    const [client, server] = await h.pair();
    const reader = client.readable.getReader();
    const pending = reader.read();
    await client.close();
    equal((await pending).done, true);
    await client.close();
    await client.closed;
    equal((await readAll(server.readable)).length, 0);
  });

  if (factory().halfClose) {
    test("after a half-close the peer can still answer", async (h) => {
      await h.listen();
      const [client, server] = await h.pair();
      const writer = client.writable.getWriter();
      await writer.write(new Uint8Array([1, 2]));
      await writer.close();
      eql(await readAll(server.readable), new Uint8Array([1, 2]));
      const answer = server.writable.getWriter();
      await answer.write(new Uint8Array([3]));
      await answer.close();
      eql(await readAll(client.readable), new Uint8Array([3]));
      await Promise.all([client.closed, server.closed]);
    });
  }

  test("abort() rejects pending reads and writes with its reason and ends the peer's stream", async (h) => {
    await h.listen();
    const [client, server] = await h.pair();
    const reason = new Error("enough");
    const pending = client.readable.getReader().read();
    const writer = client.writable.getWriter();
    client.abort(reason);
    await rejects(pending, (error) => error === reason);
    await rejects(writer.write(new Uint8Array(1)), (error) => error === reason);
    await client.closed;
    const peer = server.readable.getReader();
    const outcome = await within(peer.read(), 2_000);
    ok(outcome !== "stall", "the peer notices the abort");
    if (h.t.abortIsError) ok("error" in outcome, "the peer reads an error");
    else ok("error" in outcome || outcome.value.done, "the peer reads the end or an error");
  });

  test("a writer cannot run far ahead of a reader that stopped", async (h) => {
    await h.listen();
    const [client, server] = await h.pair();
    const writer = client.writable.getWriter();
    const chunk = new Uint8Array(64 * 1024);
    let written = 0;
    let outcome: "stall" | "error" | undefined;
    while (written <= 4 * h.t.maxAhead) {
      const result = await within(writer.write(chunk), 150);
      if (result === "stall") {
        outcome = "stall";
        break;
      }
      if ("error" in result) {
        outcome = "error";
        break;
      }
      written += chunk.length;
    }
    ok(written <= h.t.maxAhead, `the writer got ${written} bytes ahead, at most ${h.t.maxAhead} allowed`);
    if (h.t.backpressure === "block") {
      equal(outcome, "stall");
      // Once the reader reads again, the stalled write goes through.
      const reader = server.readable.getReader();
      let read = 0;
      const ready = writer.ready;
      while (read < written) read += (await reader.read()).value!.length;
      await ready;
    } else {
      ok(outcome === "error" || outcome === "stall", "the writer stopped");
    }
  });

  if (factory().fastPath) {
    test("fast path: bytes echo through read() and write()", async (h) => {
      await h.listen((conn) => {
        const f = fast(conn);
        void (async () => {
          for (let chunk; (chunk = await f.read()) !== null;) await f.write(chunk);
          await f.close();
        })().catch(() => {});
      });
      const conn = fast(await h.dial());
      const sent = new TextEncoder().encode("hello, peer");
      await conn.write(sent);
      const got: number[] = [];
      while (got.length < sent.length) got.push(...(await conn.read())!);
      eql(new Uint8Array(got), sent);
      await conn.close();
      equal(await conn.read(), null);
      await conn.closed;
    });

    test("fast path: 64 MiB arrive intact, though the writer reuses its buffer and keeps writes in flight", async (h) => {
      await h.listen();
      const [client, server] = (await h.pair()).map(fast);
      const total = 64 * MiB;
      const received = (async () => {
        let offset = 0;
        let bad = -1;
        for (let chunk; (chunk = await server.read()) !== null;) {
          for (let i = 0; i < chunk.length && bad < 0; i++) {
            if (chunk[i] !== patternAt(offset + i)) bad = offset + i;
          }
          offset += chunk.length;
        }
        await server.close();
        return { offset, bad };
      })();
      // Two buffers of odd sizes, each rewritten only once its last write resolved: two writes always in flight.
      const buffers = [new Uint8Array(64 * 1024 + 3), new Uint8Array(64 * 1024 + 3)];
      const inFlight: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
      let turn = 0;
      for (let offset = 0; offset < total; offset += buffers[0].length, turn ^= 1) {
        await inFlight[turn];
        const chunk = buffers[turn].subarray(0, Math.min(buffers[turn].length, total - offset));
        fillPattern(chunk, offset);
        inFlight[turn] = client.write(chunk);
      }
      await Promise.all(inFlight);
      await client.close();
      eql(await received, { offset: total, bad: -1 });
    });

    test("fast path: close() flushes writes not yet awaited, then the peer reads the end", async (h) => {
      await h.listen();
      const [client, server] = (await h.pair()).map(fast);
      const parts = Array.from({ length: 20 }, (_, i) => new Uint8Array(10_000).fill(i));
      const writes = parts.map((part) => client.write(part));
      const received = readAllFast(server);
      const closing = client.close();
      await Promise.all(writes);
      const got = await received;
      equal(got.length, 200_000);
      for (let i = 0; i < 20; i++) equal(got[i * 10_000 + 9_999], i);
      await rejects(client.write(new Uint8Array(1)));
      await server.close();
      await closing;
      await Promise.all([client.closed, server.closed]);
    });

    test("fast path: close() ends a pending read with null; one read at a time", async (h) => {
      await h.listen();
      const [client, server] = (await h.pair()).map(fast);
      const pending = client.read();
      await rejects(client.read(), TypeError);
      const closing = client.close();
      equal(await pending, null);
      equal(await client.read(), null);
      equal((await readAllFast(server)).length, 0);
      await server.close();
      await closing;
      await client.closed;
    });

    test("fast path: abort() rejects a pending read and later writes with its reason", async (h) => {
      await h.listen();
      const [client, server] = (await h.pair()).map(fast);
      const reason = new Error("enough");
      const pending = client.read();
      client.abort(reason);
      await rejects(pending, (error) => error === reason);
      await rejects(client.read(), (error) => error === reason);
      await rejects(client.write(new Uint8Array(1)), (error) => error === reason);
      await client.closed;
      const outcome = await within(server.read(), 2_000);
      ok(outcome !== "stall", "the peer notices the abort");
      if (h.t.abortIsError) ok("error" in outcome, "the peer reads an error");
      else ok("error" in outcome || outcome.value === null, "the peer reads the end or an error");
    });

    test("fast path: a writer cannot run far ahead of a reader that stopped", async (h) => {
      await h.listen();
      const [client, server] = (await h.pair()).map(fast);
      const chunk = new Uint8Array(64 * 1024);
      let written = 0;
      let stalled: Promise<void> | undefined;
      while (written <= 4 * h.t.maxAhead) {
        const write = client.write(chunk);
        const result = await within(write, 150);
        if (result === "stall") {
          stalled = write;
          break;
        }
        if ("error" in result) break;
        written += chunk.length;
      }
      ok(written <= h.t.maxAhead, `the writer got ${written} bytes ahead, at most ${h.t.maxAhead} allowed`);
      if (h.t.backpressure === "block") {
        ok(stalled, "the write stalls");
        // Once the reader reads again, the stalled write goes through.
        let read = 0;
        while (read < written + chunk.length) read += (await server.read())!.length;
        await stalled;
      }
    });
  }

  test("dialing an address nobody listens on fails with a DialError naming it", async (h) => {
    const addr = await h.t.deadAddr();
    await rejects(h.t.transport.dial(addr), (error) => {
      ok(error instanceof DialError, `expected DialError, got ${error}`);
      ok(error.message.includes(addr), error.message);
      return true;
    });
  });

  test("a dial rejects with the reason of its aborted signal", async (h) => {
    await h.listen();
    const reason = new Error("changed my mind");
    await rejects(h.t.transport.dial(h.listener.addr, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
  });

  test("a closed listener accepts no more, and its connections stay open", async (h) => {
    const listener = await h.listen((conn) => void conn.readable.pipeTo(conn.writable).catch(() => {}));
    const conn = await h.dial();
    await listener.close();
    await rejects(h.t.transport.dial(listener.addr), DialError);
    const writer = conn.writable.getWriter();
    const reader = conn.readable.getReader();
    await writer.write(new Uint8Array([42]));
    eql((await reader.read()).value, new Uint8Array([42]));
    await writer.close();
    equal((await reader.read()).done, true);
  });

  test("aborting the listen signal closes the listener", async (h) => {
    const controller = new AbortController();
    const listener = await h.t.transport.listen(h.t.listenAddr(), {
      onConnection: (conn) => conn.abort(),
      signal: controller.signal,
    });
    h.listener = listener;
    controller.abort();
    await delay(0);
    await rejects(h.t.transport.dial(listener.addr), DialError);
  });

  test("a second listener on a taken address fails with AddressInUseError naming it", async (h) => {
    const listener = await h.listen();
    await rejects(h.t.transport.listen(listener.addr, { onConnection: () => {} }), (error) => {
      ok(error instanceof AddressInUseError, `expected AddressInUseError, got ${error}`);
      ok(error.message.includes(listener.addr), error.message);
      return true;
    });
  });
}
