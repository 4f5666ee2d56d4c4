import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { compareDistance, type Contact, idKey } from "../../../../kernel/discovery/dht/contact.ts";
import { lookup } from "../../../../kernel/discovery/dht/lookup.ts";
import { sha256 } from "../../../../kernel/crypto/mod.ts";
import { RoutingTable } from "../../../../kernel/discovery/dht/routing_table.ts";

/** A network of `n` contacts, each with a routing table of bucket size `degree` holding whom it could: a query answers from it. */
function network(n: number, degree: number, seed = 1) {
  const nodes: Contact[] = Array.from({ length: n }, (_, i) => ({
    id: sha256(Uint8Array.of(seed, i >> 8, i & 255)),
    addr: { hostname: `10.0.${i >> 8}.${i & 255}`, port: 1 },
  }));
  const tables = new Map<string, RoutingTable>();
  for (const node of nodes) {
    const table = new RoutingTable(node.id, { k: degree, prefixLimitExempt: () => true });
    for (const other of nodes) if (other !== node) table.admit(other, 0);
    tables.set(idKey(node.id), table);
  }
  const answer = (c: Contact, target: Uint8Array, k: number): Contact[] =>
    tables.get(idKey(c.id))!.closest(target, k).map((e) => ({ id: e.id, addr: e.addr }));
  return { nodes, answer };
}

Deno.test("lookup() reaches the target and counts the hops of the chain that reached it", async () => {
  const { nodes, answer } = network(300, 4);
  const known = new Set(answer(nodes[0], nodes[0].id, 1000).map((c) => idKey(c.id)));
  const target = nodes.find((c, i) => i > 0 && !known.has(idKey(c.id)))!.id;
  const asked: string[] = [];
  const result = await lookup({
    target,
    self: nodes[0].id,
    start: answer(nodes[0], target, 20),
    k: 20,
    alpha: 3,
    paths: 3,
    query: (c) => {
      asked.push(idKey(c.id));
      return Promise.resolve({ ok: true, contacts: answer(c, target, 20) });
    },
    stopWhen: (c) => idKey(c.id) === idKey(target),
  });
  ok(result.stoppedAt);
  eql(result.stoppedAt.id, target);
  ok(result.hops >= 2 && result.hops <= 4, `hops ${result.hops}: the target was not among the start contacts`);
  equal(result.queried, asked.length);
  equal(new Set(asked).size, asked.length, "no node asked twice");
});

Deno.test("lookup() without stopWhen returns the k closest responders, closest first", async () => {
  const { nodes, answer } = network(200, 10);
  const target = new Uint8Array(32).fill(0x42);
  const result = await lookup({
    target,
    self: nodes[0].id,
    start: answer(nodes[0], target, 20),
    k: 8,
    alpha: 3,
    paths: 1,
    query: (c) => Promise.resolve({ ok: true, contacts: answer(c, target, 8) }),
  });
  const truth = nodes.slice(1).sort((a, b) => compareDistance(a.id, b.id, target)).slice(0, 8);
  eql(result.closest.map((c) => idKey(c.id)), truth.map((c) => idKey(c.id)));
});

Deno.test("disjoint paths never query one node, or one address under a second ID, twice", async () => {
  const { nodes, answer } = network(150, 8, 7);
  const target = nodes[3].id;
  const first = new Map<string, number>();
  const starts = answer(nodes[0], target, 20);
  const sharedAddr = { id: new Uint8Array(32).fill(0xee), addr: starts[0].addr };
  let order = 0;
  await lookup({
    target,
    self: nodes[0].id,
    start: starts,
    k: 20,
    alpha: 3,
    paths: 3,
    query: (c) => {
      const key = `${c.addr.hostname}|${c.addr.port}`;
      ok(!first.has(key), `address ${key} asked twice`);
      first.set(key, order++);
      // Every answer also names a second ID at the first start contact's address.
      return Promise.resolve({ ok: true, contacts: [...answer(c, target, 20), sharedAddr] });
    },
  });
  ok(first.size > 20);
});

Deno.test("failed queries are left out and the lookup goes on around them", async () => {
  const { nodes, answer } = network(200, 8, 3);
  const target = nodes[50].id;
  const dead = new Set(nodes.slice(100, 160).map((c) => idKey(c.id)));
  const result = await lookup({
    target,
    self: nodes[0].id,
    start: answer(nodes[0], target, 20),
    k: 20,
    alpha: 3,
    paths: 3,
    query: (c) =>
      Promise.resolve(dead.has(idKey(c.id)) ? { ok: false } : { ok: true, contacts: answer(c, target, 20) }),
    stopWhen: (c) => idKey(c.id) === idKey(target),
  });
  ok(result.stoppedAt);
  ok(result.closest.every((c) => !dead.has(idKey(c.id))));
});

Deno.test("lookup() rejects with the signal's reason when aborted", async () => {
  const never = () => new Promise<never>(() => {});
  const controller = new AbortController();
  const running = lookup({
    target: new Uint8Array(32),
    self: new Uint8Array(32).fill(1),
    start: [{ id: new Uint8Array(32).fill(2), addr: { hostname: "10.0.0.1", port: 1 } }],
    k: 20,
    alpha: 3,
    paths: 3,
    query: never,
    signal: controller.signal,
  });
  controller.abort(new Error("stop"));
  await rejects(running, /stop/);
});

Deno.test("lookup() with no contacts to start from ends at once with nothing", async () => {
  const result = await lookup({
    target: new Uint8Array(32),
    self: new Uint8Array(32),
    start: [],
    k: 20,
    alpha: 3,
    paths: 3,
    query: () => Promise.reject(new Error("never called")),
  });
  eql(result, { closest: [], stoppedAt: null, hops: 0, queried: 0, failed: 0 });
});
