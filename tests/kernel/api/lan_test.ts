/**
 * `GET /v1/lan` on the app, without sockets for HTTP: off when the node runs
 * no LAN discovery; with one (mDNS on the loopback interface, a private port),
 * the nodes it found.
 */

import { deepEqual, equal } from "node:assert/strict";
import { createApp } from "../../../kernel/api/app.ts";
import { LanDiscovery, lanTxt } from "../../../kernel/discovery/lan.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { Node } from "../../../kernel/node/node.ts";
import { MdnsSocket } from "../../../transport/mdns/mod.ts";

async function nodeUnderTest() {
  const dir = await Deno.makeTempDir({ prefix: "nzcore-api-lan-" });
  const node = await Node.open({ dataDir: dir });
  const admin = await node.tokens.create("admin", { persist: false });
  return {
    node,
    get: (app: ReturnType<typeof createApp>, token = admin.token) =>
      app.request("/v1/lan", { headers: { authorization: `Bearer ${token}` } }),
    async [Symbol.asyncDispose]() {
      await node.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("GET /v1/lan says LAN discovery is off when the node runs none", async () => {
  await using t = await nodeUnderTest();
  const app = createApp({ node: t.node, listeners: { tcp: null, socket: null }, permissions: {} });
  const response = await t.get(app);
  equal(response.status, 200);
  deepEqual(await response.json(), { enabled: false, mode: null, instance: null, peers: [], stats: null });
  equal((await t.get(app, "not-a-token")).status, 401);
});

Deno.test({
  name: "GET /v1/lan lists the nodes LAN discovery found, with the mode and counters",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using t = await nodeUnderTest();
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const lan = new LanDiscovery({
      identity: () => t.node.identity,
      connect: () => Promise.reject(new Error("not dialed in mode off")),
      connected: () => false,
      known: () => false,
      listening: () => [],
      mode: "off",
      mdns: { interface: "127.0.0.1", port },
    });
    await lan.start();
    try {
      const app = createApp({ node: t.node, listeners: { tcp: null, socket: null }, permissions: {}, lan: () => lan });
      const other = Identity.generate("other");
      await using mdns = await MdnsSocket.open({ interface: "127.0.0.1", port });
      await mdns.announce({
        instance: "other",
        type: "_nzcore._udp",
        port: 7000,
        txt: lanTxt(other, ["udp://0.0.0.0:7000"]),
        addresses: ["192.0.2.9"],
        probe: false,
      });
      let body: Record<string, unknown> & { peers: Record<string, unknown>[] } = { peers: [] };
      for (let i = 0; i < 100 && body.peers.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        body = await (await t.get(app)).json();
      }
      equal(body.enabled, true);
      equal(body.mode, "off");
      equal(body.instance, null, "a node that listens on nothing announces nothing");
      equal(body.peers.length, 1);
      const [peer] = body.peers;
      equal(peer.nodeId, other.nodeId);
      equal(peer.did, other.did);
      equal(peer.instance, "other");
      deepEqual(peer.addresses, ["udp://192.0.2.9:7000"]);
      equal(peer.known, false);
      equal(peer.dial, "none");
      equal((body.stats as { dials: number }).dials, 0);
    } finally {
      await lan.stop();
    }
  },
});
