/**
 * Twenty real node processes on loopback form a DHT through one bootstrap
 * node: lookups find every node, a value one node publishes is read at
 * another, services are found by capability, and a node is dialed by its DID
 * alone (its addresses come from its peer record in the DHT).
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { DHT_NODES, type DhtNet, type DhtNetNode, startDhtNet } from "./_dht_net.ts";

let net: DhtNet | undefined;

async function json<T>(response: Response): Promise<T> {
  const text = await response.text();
  ok(response.ok, `HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

Deno.test({
  name: "dht processes: twenty nodes on loopback join through one bootstrap node and fill their tables",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    net = await startDhtNet(DHT_NODES);
    for (const node of net.nodes) {
      const state = await json<{ contacts: number; peerRecord: { addresses: string[] } | null }>(
        await node.api("/v1/dht"),
      );
      ok(state.contacts >= 5, `${node.did} has ${state.contacts} contacts`);
    }
  },
});

Deno.test({
  name: "dht processes: a lookup from any node finds any other node",
  ignore: false,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    ok(net, "the network did not start");
    const nodes: DhtNetNode[] = net.nodes;
    for (let i = 0; i < nodes.length; i++) {
      const from: DhtNetNode = nodes[i], to: DhtNetNode = nodes[(i * 7 + 3) % nodes.length];
      if (from === to) continue;
      const r: { found: boolean; hops: number; closest: { nodeId: string }[] } = await json(
        await from.api("/v1/dht/find-node", { method: "POST", body: JSON.stringify({ target: to.nodeId }) }),
      );
      ok(r.found, `node ${i} did not find ${to.nodeId}`);
      equal(r.closest[0].nodeId, to.nodeId);
      ok(r.hops <= 3, `${r.hops} hops`);
    }
  },
});

Deno.test({
  name: "dht processes: a value published at one node is read at another, and a newer one replaces it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    ok(net, "the network did not start");
    const [, publisher] = net.nodes, reader = net.nodes[17];
    for (const text of ["first", "second"]) {
      const put = await json<{ stored: number }>(
        await publisher.api("/v1/dht/values/greeting", { method: "PUT", body: JSON.stringify({ text }) }),
      );
      ok(put.stored >= 3, `stored at ${put.stored} nodes`);
      const got = await json<{ text: string; did: string }>(
        await reader.api(`/v1/dht/values/${encodeURIComponent(publisher.did)}/greeting`),
      );
      deepEqual([got.text, got.did], [text, publisher.did]);
    }
    const missing = await reader.api(`/v1/dht/values/${encodeURIComponent(publisher.did)}/nothing`);
    equal(missing.status, 404);
    await missing.body?.cancel();
  },
});

Deno.test({
  name: "dht processes: services announced at two nodes are found by capability at a third",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    ok(net, "the network did not start");
    const a = net.nodes[5], b = net.nodes[9], finder = net.nodes[12];
    for (const [node, name] of [[a, "front door"], [b, "garage"]] as const) {
      const r = await node.api("/v1/dht/services", {
        method: "POST",
        body: JSON.stringify({ name, tags: ["camera", "video/h264"], protocol: "acme/camera/1" }),
      });
      await json(r);
    }
    const found = await json<{ did: string; name: string; protocol: string }[]>(
      await finder.api("/v1/dht/services?tag=camera"),
    );
    deepEqual(found.map((s) => `${s.did} ${s.name}`).sort(), [`${a.did} front door`, `${b.did} garage`].sort());
    const none = await json<unknown[]>(await finder.api("/v1/dht/services?tag=printer"));
    deepEqual(none, []);
  },
});

Deno.test({
  name: "dht processes: a node is dialed by its DID alone, at the addresses of its peer record",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    ok(net, "the network did not start");
    const from = net.nodes[15], to = net.nodes[7];
    const session = await json<{ nodeId: string; path: { transport: string } }>(
      await from.api("/v1/peers", { method: "POST", body: JSON.stringify({ peer: to.did, autoConnect: false }) }),
    );
    equal(session.nodeId, to.nodeId);
    equal(session.path.transport, "udp");
  },
});

Deno.test({
  name: "dht processes: the nodes stop cleanly",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    if (!net) return;
    const statuses = await net.close();
    deepEqual(statuses.filter((code) => code !== 0), []);
  },
});
