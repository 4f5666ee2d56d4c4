import { deepStrictEqual as eql, equal } from "node:assert/strict";
import { EventBus, type NodeEvent } from "../../../kernel/node/event_bus.ts";

async function take(iter: AsyncGenerator<NodeEvent>, n: number): Promise<NodeEvent[]> {
  const out: NodeEvent[] = [];
  for await (const e of iter) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

Deno.test("subscribers receive events published after they subscribe, in order", async () => {
  const bus = new EventBus({ now: () => 42 });
  const sub = bus.subscribe();
  const got = take(sub, 3);
  await Promise.resolve();
  bus.publish("a", { n: 1 });
  bus.publish("b", { n: 2 });
  bus.publish("c", { n: 3 });
  eql((await got).map((e) => [e.id, e.type, e.time, e.data]), [[1, "a", 42, { n: 1 }], [2, "b", 42, { n: 2 }], [
    3,
    "c",
    42,
    { n: 3 },
  ]]);
});

Deno.test("a type filter passes only matching prefixes", async () => {
  const bus = new EventBus();
  const got = take(bus.subscribe({ types: ["identity."] }), 1);
  await Promise.resolve();
  bus.publish("token.created");
  bus.publish("identity.created", { name: "x" });
  equal((await got)[0].type, "identity.created");
});

Deno.test("a slow subscriber loses the oldest events and is told how many", async () => {
  const bus = new EventBus();
  const sub = bus.subscribe({ bufferSize: 2 });
  const first = sub.next();
  await Promise.resolve();
  for (let i = 0; i < 5; i++) bus.publish("e", { i });
  const dropped = (await first).value!;
  equal(dropped.type, "bus.dropped");
  equal(dropped.data.dropped, 3);
  const rest = await take(sub, 2);
  eql(rest.map((e) => e.data.i), [3, 4]);
});

Deno.test("an aborted signal or close() ends subscriptions", async () => {
  const bus = new EventBus();
  const abort = new AbortController();
  const a = take(bus.subscribe({ signal: abort.signal }), 10);
  const b = take(bus.subscribe(), 10);
  await Promise.resolve();
  equal(bus.subscribers, 2);
  abort.abort();
  eql(await a, []);
  bus.close();
  eql(await b, []);
  equal(bus.subscribers, 0);
});
