import { equal, ok } from "node:assert/strict";
import { sha256 } from "../../../../kernel/crypto/mod.ts";
import type { DhtOptions } from "../../../../kernel/discovery/dht/dht.ts";
import { Identity } from "../../../../kernel/identity/identity.ts";
import type { UdpAddr } from "../../../../transport/udp.ts";
import { JunkNode, OneAddressSybil, SybilSwarm } from "./_adversary.ts";
import { loopback, startNode, type TestNode } from "./_net.ts";

/** Honest nodes are on 127.0.x.y; the prefix limits apply to every other address, as if it were the internet. */
const HONEST: Partial<DhtOptions> = { prefixLimitExempt: (ip) => ip.startsWith("127.0.") };

/**
 * Starts `n` honest nodes in batches of 8, each bootstrapping from the first;
 * `beforeBatch` runs with each batch's addresses before it bootstraps (an
 * adversary that contacts every newcomer gets into tables while they are empty).
 */
async function honestNet(
  n: number,
  options: Partial<DhtOptions>,
  beforeBatch: (addrs: UdpAddr[]) => Promise<void>,
): Promise<TestNode[]> {
  const nodes = [await startNode(loopback(0), options)];
  await beforeBatch([nodes[0].socket.addr]);
  for (let i = 1; i < n; i += 8) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(8, n - i) }, (_, j) => startNode(loopback(i + j), options)),
    );
    await beforeBatch(batch.map((b) => b.socket.addr));
    await Promise.all(batch.map((b) => b.dht.bootstrap([nodes[0].socket.addr])));
    nodes.push(...batch);
  }
  return nodes;
}

async function closeAll(nodes: TestNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n[Symbol.asyncDispose]()));
}

Deno.test({
  name: "a Sybil swarm ground next to a node's ID does not hide it from lookups on 3 disjoint paths, but does on 1",
  async fn() {
    // The adversary: 24 sockets on one IP, their IDs ground to share 12 bits with the victim's,
    // in the network early (it contacts every newcomer), answering every lookup only with its own members.
    const victimIdentity = Identity.generate("victim");
    await using swarm = await SybilSwarm.start("127.66.0.1", 24, sha256(victimIdentity.publicKey), 12);
    const options = { ...HONEST, k: 8 };
    const nodes = await honestNet(95, options, (addrs) => swarm.join(addrs));
    // The victim joins last; the swarm does not contact it.
    const victim = await startNode(loopback(95), { ...options, signer: victimIdentity });
    try {
      await victim.dht.bootstrap([nodes[0].socket.addr]);
      const held = nodes.reduce(
        (n, x) => n + x.dht.contacts().filter((c) => c.addr.hostname === "127.66.0.1").length,
        0,
      );
      ok(held / nodes.length >= 1, `the swarm is in honest tables (${held} entries)`);
      // Each node looks the victim up on 3 paths, then on 1 (which may then profit from what the first taught it).
      let disjoint = 0, single = 0;
      for (const q of nodes) {
        if ((await q.dht.findNode(victim.dht.id, { paths: 3 })).found) disjoint++;
        if ((await q.dht.findNode(victim.dht.id, { paths: 1 })).found) single++;
      }
      console.log(
        `found the victim: ${disjoint}/${nodes.length} on 3 disjoint paths, ${single}/${nodes.length} on 1 path`,
      );
      ok(disjoint >= nodes.length * 0.9, `3 paths: ${disjoint}/${nodes.length}`);
      ok(single <= disjoint - nodes.length * 0.15, `1 path (${single}) does clearly worse than 3 (${disjoint})`);
    } finally {
      await victim[Symbol.asyncDispose]();
      await closeAll(nodes);
    }
  },
});

Deno.test("a node answering with made-up IDs at its own address costs a lookup one query, on 1 path as on 3", async () => {
  await using sybil = await OneAddressSybil.start("127.77.0.1");
  const nodes = await honestNet(32, HONEST, (addrs) => sybil.join(addrs));
  try {
    const admitted = nodes.filter((n) => n.dht.contacts().some((c) => c.addr.hostname === "127.77.0.1")).length;
    ok(admitted >= 16, `the adversary is in ${admitted} tables`);
    let lookups = 0;
    for (const [i, q] of nodes.entries()) {
      for (const paths of [1, 3]) {
        const target = nodes[(i * 7 + paths) % nodes.length];
        if (target === q) continue;
        const before = sybil.lookups;
        const result = await q.dht.findNode(target.dht.id, { paths });
        lookups++;
        ok(result.found, `paths=${paths}`);
        ok(sybil.lookups - before <= 1, "the adversary's address was asked at most once");
        ok(
          result.closest.every((c) => c.addr.hostname !== "127.77.0.1" || c.id.some((b, j) => b !== target.dht.id[j])),
        );
      }
    }
    ok(lookups >= 60);
    ok(sybil.lookups > 0, "lookups did meet the adversary");
  } finally {
    await closeAll(nodes);
  }
});

Deno.test("nodes answering lookups with junk (undecodable bytes, contacts that lead nowhere) do not stop lookups", async () => {
  const nowhere = { hostname: "127.88.0.1", port: 40000 };
  const junk = await Promise.all([1, 2, 3].map((i) => JunkNode.start(`127.99.0.${i}`, nowhere)));
  const options = { ...HONEST, rpcTimeoutMs: 200 };
  const nodes = await honestNet(32, options, (addrs) => Promise.all(junk.map((j) => j.join(addrs))).then(() => {}));
  try {
    const held = nodes.reduce(
      (n, x) => n + x.dht.contacts().filter((c) => c.addr.hostname.startsWith("127.99.")).length,
      0,
    );
    ok(held >= nodes.length, `junk nodes are in honest tables (${held} entries)`);
    const before = junk.reduce((n, j) => n + j.answered, 0);
    const targets = nodes.map((_, i) => nodes[(i * 11 + 5) % nodes.length]);
    const results = await Promise.all(nodes.map((q, i) => targets[i] === q ? null : q.dht.findNode(targets[i].dht.id)));
    for (const r of results) if (r) ok(r.found);
    const asked = junk.reduce((n, j) => n + j.answered, 0) - before;
    ok(asked > 0, `lookups met the junk nodes (${asked} answers)`);
    const failed = results.reduce((n, r) => n + (r?.failed ?? 0), 0);
    ok(failed > 0, "their answers counted as failed queries");
    equal(results.filter((r) => r && !r.found).length, 0);
  } finally {
    await closeAll(nodes);
    for (const j of junk) await j[Symbol.asyncDispose]();
  }
});
