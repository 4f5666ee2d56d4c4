import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { ConflictError, NotFoundError } from "../../../kernel/errors.ts";
import { Node } from "../../../kernel/node/node.ts";
import { utf8 } from "../../../kernel/bytes.ts";

const sanitize = { sanitizeOps: false, sanitizeResources: false };

/** Nodes in temporary directories, listening on UDP loopback, the first the bootstrap node of the others. */
async function dhtNodes(
  count: number,
  dirs: string[] = [],
): Promise<{ nodes: Node[]; dirs: string[] } & AsyncDisposable> {
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) {
    const dataDir = dirs[i] ?? await Deno.makeTempDir({ prefix: "nzcore-dht-service-" });
    dirs[i] = dataDir;
    const bootstrap = nodes.length ? [nodes[0].peers.udpSocket!.url] : [];
    const node = await Node.open({ dataDir, dht: { enabled: true, bootstrap, addressCheckMs: 200 } });
    await node.peers.listen(["udp://127.0.0.1:0"]);
    await node.dht.start();
    nodes.push(node);
  }
  for (const node of nodes.slice(1)) await node.dht.dht.bootstrap();
  return {
    nodes,
    dirs,
    async [Symbol.asyncDispose]() {
      await Promise.all(nodes.map((n) => n.close()));
    },
  };
}

async function removeAll(dirs: string[]): Promise<void> {
  await Promise.all(dirs.map((d) => Deno.remove(d, { recursive: true }).catch(() => {})));
}

async function eventually<T>(fn: () => Promise<T | null | undefined>, what: string, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  while (true) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name: "DhtService: a node publishes its peer record, and another dials it by node ID alone",
  ...sanitize,
  async fn() {
    const dirs: string[] = [];
    try {
      await using net = await dhtNodes(4, dirs);
      const [, a, , b] = net.nodes;
      const found = await eventually(() => b.dht.findPeer(a.identity.nodeId), "A's peer record");
      deepEqual(found.addresses, [a.peers.udpSocket!.url]);
      const session = await b.dht.connect(a.identity.nodeId);
      equal(session.nodeId, a.identity.nodeId);
      equal(session.path().transport, "udp");
    } finally {
      await removeAll(dirs);
    }
  },
});

Deno.test({
  name: "DhtService: values and services survive a restart of their publisher, and are found by others",
  ...sanitize,
  async fn() {
    const dirs: string[] = [];
    try {
      {
        await using net = await dhtNodes(3, dirs);
        const [, publisher] = net.nodes;
        await publisher.dht.putValue("status", utf8("online"));
        await publisher.dht.announce({ name: "front door", tags: ["camera"], protocol: "acme/camera/1" });
        deepEqual(publisher.dht.state().published, { values: ["status"], services: ["front door"] });
      }
      // Everything restarts: the records the other nodes held are gone with them; the publisher publishes again.
      await using net = await dhtNodes(3, dirs);
      const [, publisher, reader] = net.nodes;
      await eventually(
        () => Promise.resolve(publisher.dht.state().published.services.length === 1),
        "the announcement",
      );
      const value = await eventually(() => reader.dht.getValue(publisher.identity.did, "status"), "the value");
      equal(new TextDecoder().decode(value.value), "online");
      const services = await eventually(async () => {
        const list = await reader.dht.findServices("camera");
        return list.length ? list : null;
      }, "the service");
      deepEqual(services.map((s) => [s.name, s.did, s.protocol]), [[
        "front door",
        publisher.identity.did,
        "acme/camera/1",
      ]]);
      await publisher.dht.withdraw("front door");
      await publisher.dht.removeValue("status");
      deepEqual(publisher.dht.state().published, { values: [], services: [] });
      await rejects(publisher.dht.withdraw("front door"), NotFoundError);
    } finally {
      await removeAll(dirs);
    }
  },
});

Deno.test({
  name: "DhtService: a newer value replaces the older one for readers",
  ...sanitize,
  async fn() {
    const dirs: string[] = [];
    try {
      await using net = await dhtNodes(3, dirs);
      const [, publisher, reader] = net.nodes;
      const first = await publisher.dht.putValue("n", utf8("one"));
      const second = await publisher.dht.putValue("n", utf8("two"));
      ok(second.seq > first.seq);
      const value = await reader.dht.getValue(publisher.identity.did, "n");
      equal(new TextDecoder().decode(value!.value), "two");
    } finally {
      await removeAll(dirs);
    }
  },
});

Deno.test({
  name: "DhtService: without UDP and bootstrap nodes it stays off and says why",
  ...sanitize,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "nzcore-dht-service-" });
    try {
      const node = await Node.open({ dataDir, dht: { enabled: true } });
      try {
        await node.dht.start();
        equal(node.dht.running, false);
        ok(node.peers.udpSocket === null, "no UDP socket was opened");
        await rejects(node.dht.findServices("camera"), ConflictError);
      } finally {
        await node.close();
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
