import { equal, ok } from "node:assert/strict";
import { sha256 } from "../../../../kernel/crypto/mod.ts";
import { sameId } from "../../../../kernel/discovery/dht/contact.ts";
import type { DhtOptions } from "../../../../kernel/discovery/dht/dht.ts";
import { Identity } from "../../../../kernel/identity/identity.ts";
import type { UdpAddr } from "../../../../transport/udp.ts";
import type { RecordSigner } from "../../../../kernel/discovery/record.ts";
import { grindSigner, JunkNode, OneAddressSybil, SybilSwarm } from "./_adversary.ts";
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
  name:
    "a Sybil swarm ground next to two nodes' IDs does not hide them from lookups on 3 disjoint paths, but does on 1",
  async fn() {
    // Two victims whose IDs share 12 bits, and the adversary: 24 sockets on two IPs of two /24s (a fifth of the
    // network), their
    // IDs ground to share 12 bits with both victims' (closer to them than any other node), in the network early (it
    // contacts every newcomer), answering every lookup only with its own members.
    const first = Identity.generate("victim 1");
    const victims: RecordSigner[] = [first, grindSigner(sha256(first.publicKey), 12)];
    await using swarm = await SybilSwarm.start(["127.66.0.1", "127.66.1.1"], 24, sha256(first.publicKey), 12);
    // k = 8: 95 nodes then behave like a network much larger than k, where most nodes do not know a given node.
    const options = { ...HONEST, k: 8 };
    const nodes = await honestNet(95, options, (addrs) => swarm.join(addrs));
    // The victims join last, each with a few bootstrap addresses, as any node; the swarm does not contact them.
    const joined: TestNode[] = [];
    try {
      for (const [i, signer] of victims.entries()) {
        joined.push(await startNode(loopback(96 + i), { ...options, signer }));
        await joined[i].dht.bootstrap(nodes.slice(0, 6).map((n) => n.socket.addr));
      }
      const held = nodes.reduce(
        (n, x) => n + x.dht.contacts().filter((c) => c.addr.hostname.startsWith("127.66.")).length,
        0,
      );
      ok(held / nodes.length >= 1, `the swarm is in honest tables (${held} entries)`);
      const knowers = joined.map((v) =>
        nodes.filter((x) => x.dht.contacts().some((c) => sameId(c.id, v.dht.id))).length
      );
      // Half the nodes look both victims up on 1 path, then the other half on 3. A node looks each victim up
      // once (one that finds a victim admits it), and the 1-path lookups go first, taught nothing by the others.
      const single = nodes.filter((_, i) => i % 2 === 0), disjoint = nodes.filter((_, i) => i % 2 === 1);
      const found = async (group: TestNode[], paths: number) => {
        let n = 0;
        for (const q of group) for (const v of joined) if ((await q.dht.findNode(v.dht.id, { paths })).found) n++;
        return n / (group.length * joined.length);
      };
      const rate1 = await found(single, 1);
      const rate3 = await found(disjoint, 3);
      console.log(
        `found the victims: ${(rate3 * 100).toFixed(0)}% of lookups on 3 disjoint paths, ${
          (rate1 * 100).toFixed(0)
        }% on 1` +
          ` (${knowers.join(" and ")} nodes held them; the swarm ${held} table entries)`,
      );
      ok(rate3 >= 0.9, `3 paths: ${(rate3 * 100).toFixed(0)}%`);
      ok(
        rate1 <= rate3 - 0.15,
        `1 path (${(rate1 * 100).toFixed(0)}%) does clearly worse than 3 (${(rate3 * 100).toFixed(0)}%)`,
      );
    } finally {
      await closeAll(joined);
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
