import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import fc from "fast-check";
import { backoffDelay, dialWithRetry, type RetryEvent } from "../../transport/retry.ts";
import { DialError } from "../../transport/errors.ts";
import { MemoryTransport } from "../../transport/memory.ts";
import { WebSocketTransport } from "../../transport/websocket.ts";
import type { DialOptions, Duplex, Transport } from "../../transport/types.ts";

/** A transport whose dials fail `failures` times, then succeed with a stub duplex. */
function flaky(failures: number, error: () => unknown = () => new DialError("refused")) {
  const signals: (AbortSignal | undefined)[] = [];
  const transport: Transport = {
    schemes: ["tcp"],
    dial: (_addr: string, options?: DialOptions) => {
      signals.push(options?.signal);
      if (signals.length <= failures) return Promise.reject(error());
      return Promise.resolve({ remoteAddr: "ok" } as Duplex);
    },
    listen: () => Promise.reject(new Error("unused")),
  };
  return { transport, signals };
}

Deno.test("backoffDelay() doubles from baseDelayMs up to maxDelayMs, with half of it jittered", () => {
  const fixed = (attempt: number) => backoffDelay(attempt, { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
  eql([1, 2, 3, 4, 5, 6].map(fixed), [50, 100, 200, 400, 500, 500]);
  equal(backoffDelay(1, { baseDelayMs: 100, random: () => 0.5 }), 75);
  equal(backoffDelay(60, { baseDelayMs: 100, maxDelayMs: 30_000, random: () => 0 }), 15_000);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 100 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
      const cap = Math.min(30_000, 250 * 2 ** (attempt - 1));
      const delay = backoffDelay(attempt, { random: () => r });
      ok(delay >= Math.floor(cap / 2) && delay <= cap, `${delay} outside [${cap / 2}, ${cap}]`);
    }),
  );
});

Deno.test("dialWithRetry() dials again after failures and returns the first connection", async () => {
  const { transport, signals } = flaky(3);
  const events: RetryEvent[] = [];
  const conn = await dialWithRetry(transport, "tcp://h:1", {
    baseDelayMs: 2,
    random: () => 0,
    onRetry: (event) => events.push(event),
  });
  equal(conn.remoteAddr, "ok");
  equal(signals.length, 4);
  ok(signals.every((s) => s instanceof AbortSignal), "every attempt has a timeout signal");
  eql(events.map((e) => [e.attempt, e.delayMs]), [[1, 1], [2, 2], [3, 4]]);
  ok(events.every((e) => e.error instanceof DialError));
});

Deno.test("dialWithRetry() gives up after maxAttempts with a DialError holding the last failure", async () => {
  let n = 0;
  const { transport, signals } = flaky(Infinity, () => new DialError(`refused #${++n}`));
  await rejects(dialWithRetry(transport, "tcp://h:1", { maxAttempts: 3, baseDelayMs: 0 }), (error) => {
    ok(error instanceof DialError);
    equal(error.message, "Cannot dial tcp://h:1: 3 attempts failed, the last with: refused #3");
    equal((error.cause as Error).message, "refused #3");
    return true;
  });
  equal(signals.length, 3);
});

Deno.test("dialWithRetry() does not retry an address no attempt can dial", async () => {
  const { transport, signals } = flaky(Infinity, () => new SyntaxError("Cannot parse address"));
  await rejects(dialWithRetry(transport, "tcp://h", { baseDelayMs: 0 }), SyntaxError);
  equal(signals.length, 1);
});

Deno.test("dialWithRetry() stops waiting as soon as its signal aborts", async () => {
  const controller = new AbortController();
  const reason = new Error("shutting down");
  const { transport, signals } = flaky(Infinity);
  const started = performance.now();
  await rejects(
    dialWithRetry(transport, "tcp://h:1", {
      baseDelayMs: 60_000,
      signal: controller.signal,
      onRetry: () => queueMicrotask(() => controller.abort(reason)),
    }),
    (error) => error === reason,
  );
  ok(performance.now() - started < 1_000);
  equal(signals.length, 1);
  await rejects(dialWithRetry(transport, "tcp://h:1", { signal: AbortSignal.abort(reason) }), (e) => e === reason);
});

Deno.test("dialWithRetry() times out each attempt on its own and tries again", async () => {
  let attempts = 0;
  const hanging: Transport = {
    schemes: ["tcp"],
    dial: (_addr, options) =>
      new Promise((_, reject) => {
        attempts++;
        options!.signal!.addEventListener("abort", () => reject(options!.signal!.reason), { once: true });
      }),
    listen: () => Promise.reject(new Error("unused")),
  };
  await rejects(
    dialWithRetry(hanging, "tcp://h:1", { maxAttempts: 2, attemptTimeoutMs: 5, baseDelayMs: 0 }),
    (error) => error instanceof DialError && (error.cause as Error).name === "TimeoutError",
  );
  equal(attempts, 2);
});

Deno.test("dialWithRetry() checks its options", async () => {
  const { transport } = flaky(0);
  await rejects(dialWithRetry(transport, "tcp://h:1", { maxAttempts: 0 }), RangeError);
  await rejects(dialWithRetry(transport, "tcp://h:1", { maxAttempts: 1.5 }), RangeError);
  await rejects(dialWithRetry(transport, "tcp://h:1", { baseDelayMs: -1 }), RangeError);
  await rejects(dialWithRetry(transport, "tcp://h:1", { attemptTimeoutMs: 0 }), RangeError);
  equal(backoffDelay(1, { random: () => 2 }), 250, "jitter outside [0, 1] is clamped");
});

Deno.test("dialWithRetry() reaches a memory listener that comes up after the first attempts", async () => {
  const memory = new MemoryTransport();
  const events: RetryEvent[] = [];
  let listener: Awaited<ReturnType<Transport["listen"]>> | undefined;
  const conn = await dialWithRetry(memory, "memory://retry-late", {
    baseDelayMs: 1,
    maxAttempts: 10,
    onRetry: async (event) => {
      events.push(event);
      if (event.attempt === 2) {
        listener = await memory.listen("memory://retry-late", { onConnection: (c) => void c.close() });
      }
    },
  });
  equal(events.length, 2);
  await conn.close();
  await listener?.close();
});

Deno.test("WebSocketTransport with retry dials a dead address maxAttempts times", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const events: RetryEvent[] = [];
  const ws = new WebSocketTransport({ retry: { maxAttempts: 3, baseDelayMs: 1, onRetry: (e) => events.push(e) } });
  await rejects(ws.dial(`ws://127.0.0.1:${port}/p2p`), /3 attempts failed/);
  equal(events.length, 2);
});
