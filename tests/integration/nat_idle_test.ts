/**
 * NAT mappings and idle sessions, in the lab: a node behind a NAT whose UDP
 * mappings expire after 20 s of silence keeps its session with a public node
 * open through 30 s of silence (its keep-alives, every 15 s, hold the mapping),
 * so the public node's message reaches it at once; and after the NAT dropped
 * every mapping (as a router reboot does), the session recovers as soon as the
 * node behind it sends (the public node follows its new address).
 */

import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { LAB, labUnavailable, NatLab } from "../../scripts/nat_lab.ts";
import { cli, cliJson, startNode, stopNode, watchEvents } from "../../scripts/nat_matrix.ts";

const reason = await labUnavailable({ upnp: false, coturn: false });
if (reason) console.log(`nat idle: skipped: ${reason}`);

Deno.test({
  name: "NAT idle: keep-alives hold a mapping through silence; a lost mapping recovers when the node speaks",
  ignore: reason !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await NatLab.up({
      natA: "prc",
      upnp: false,
      coturn: false,
      udpTimeout: 20,
      udpStreamTimeout: 20,
    });
    const work = await Deno.makeTempDir({ prefix: "nzcore-idle-" });
    const r = await startNode(lab, "pub", join(work, "r"), ["--listen", `udp://${LAB.pub}:7475`]);
    const a = await startNode(lab, "hostA", join(work, "a"), ["--listen", "udp://0.0.0.0:7475"]);
    try {
      await cliJson(a, ["connect", `udp://${LAB.pub}:7475`, "--once"]);
      const before = (await cliJson<{ sessions: { nodeId: string; path: { remoteAddr: string } }[] }>(r, ["peers"]))
        .sessions.find((s) => s.nodeId === a.nodeId)!.path.remoteAddr;

      // 30 s of silence, longer than the NAT's 20 s: R's message must still get through, at once.
      await new Promise((resolve) => setTimeout(resolve, 30_000));
      let heard = watchEvents(a, "after the silence");
      await heard.ready;
      let started = performance.now();
      equal((await cli(r, ["send", a.nodeId, "after the silence"])).code, 0);
      ok(await heard.seen, "the message crossed the NAT after 30 s of silence");
      ok(performance.now() - started < 3_000, "without waiting for a new mapping");

      // The NAT forgets every mapping; A speaks first and R follows it to whatever address the NAT now gives A.
      await lab.setNat("gwA", "prc");
      heard = watchEvents(r, "after the flush");
      await heard.ready;
      started = performance.now();
      equal((await cli(a, ["send", r.nodeId, "after the flush"])).code, 0);
      ok(await heard.seen, "A's message reached R after the mappings were flushed");
      heard = watchEvents(a, "and back");
      await heard.ready;
      equal((await cli(r, ["send", a.nodeId, "and back"])).code, 0);
      ok(await heard.seen, "R's answer reached A through the new mapping");
      const after = (await cliJson<{ sessions: { nodeId: string; path: { remoteAddr: string } }[] }>(r, ["peers"]))
        .sessions.find((s) => s.nodeId === a.nodeId)!.path.remoteAddr;
      ok(after.startsWith(`udp://${LAB.gwA}:`), `R sees A at its NAT's address (${before} before, ${after} now)`);
    } finally {
      await Promise.all([stopNode(a), stopNode(r)]);
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
