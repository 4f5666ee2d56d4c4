/**
 * LAN discovery between real peer managers, over mDNS on the loopback
 * interface with a private port (never 5353, never a real interface). The
 * nodes listen on the wildcard address so that their ports are announced;
 * the A records are the loopback addresses, which they dial.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { Identity } from "../../../kernel/identity/identity.ts";
import { LanDiscovery, type LanMode, lanTxt, parseLanTxt } from "../../../kernel/discovery/lan.ts";
import { MdnsSocket, type TxtRecord } from "../../../transport/mdns/mod.ts";
import { peer, type TestPeer, until } from "../peers/_peer.ts";

function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 30_000);
}

interface LanNode extends AsyncDisposable {
  peer: TestPeer;
  lan: LanDiscovery;
  events: { type: string; data: Record<string, unknown> }[];
}

async function lanNode(mdnsPort: number, mode: LanMode, options: { listen?: boolean } = {}): Promise<LanNode> {
  const p = await peer({ policy: "tofu" });
  if (options.listen !== false) await p.manager.listen(["udp://0.0.0.0:0", "tcp://0.0.0.0:0"]);
  const events: LanNode["events"] = [];
  const lan = new LanDiscovery({
    identity: () => p.identity,
    connect: (address, o) => p.manager.connect(address, o),
    connected: (nodeId) => p.manager.sessions().some((s) => s.nodeId === nodeId),
    known: (nodeId) => p.book.get(nodeId) !== undefined,
    listening: () => p.manager.listening,
    events: (type, data) => events.push({ type, data }),
    mode,
    mdns: { interface: "127.0.0.1", port: mdnsPort },
  });
  await lan.start();
  return {
    peer: p,
    lan,
    events,
    async [Symbol.asyncDispose]() {
      await lan.stop();
      await p[Symbol.asyncDispose]();
    },
  };
}

const connectedTo = (a: LanNode, b: LanNode) => a.peer.manager.sessions().some((s) => s.nodeId === b.peer.nodeId);

Deno.test("lanTxt() announces the ports of reachable listeners, and parseLanTxt() reads it back", () => {
  const id = Identity.generate("t");
  const txt = lanTxt(id, ["udp://0.0.0.0:7475", "tcp://127.0.0.1:9", "tcp://[::]:7476", "ws://0.0.0.0:8080/nz"]);
  deepEqual(txt, { v: "1", id: id.nodeId, did: id.did, udp: "7475", tcp: "7476", ws: "8080/nz" });
  deepEqual(parseLanTxt(txt), {
    id: id.nodeId,
    did: id.did,
    ports: { udp: 7475, tcp: 7476, ws: { port: 8080, path: "/nz" } },
  });
});

Deno.test("parseLanTxt() refuses a record whose node ID is not its did:key's, and every malformed one", () => {
  const a = Identity.generate("a");
  const b = Identity.generate("b");
  const good = { v: "1", id: a.nodeId, did: a.did, udp: "7475" };
  ok(parseLanTxt(good));
  equal(parseLanTxt({ ...good, did: b.did }), null, "id and did of two nodes");
  equal(parseLanTxt({ ...good, v: "2" }), null);
  equal(parseLanTxt({ ...good, id: a.nodeId.toUpperCase() }), null);
  equal(parseLanTxt({ ...good, did: "did:key:zNotBase58!" }), null);
  equal(parseLanTxt({ ...good, did: true }), null);
  equal(parseLanTxt({ ...good, udp: "0" }), null);
  equal(parseLanTxt({ ...good, udp: "65536" }), null);
  equal(parseLanTxt({ ...good, udp: "7e3" }), null);
  equal(parseLanTxt({ ...good, udp: true }), null);
  equal(parseLanTxt({ v: "1", id: a.nodeId, did: a.did }), null, "no port at all");
  equal(parseLanTxt({ ...good, ws: "80 /x" }), null);
});

Deno.test({
  name: "two nodes in mode any find each other on the LAN and connect, with lan.peer.found events",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = randomPort();
    await using a = await lanNode(port, "any");
    const started = Date.now();
    await using b = await lanNode(port, "any");
    await until(() => connectedTo(a, b) && connectedTo(b, a), 10_000, "the sessions");
    console.log(`connected ${Date.now() - started} ms after the second node started (its probing took about 1 s)`);
    await until(() => a.lan.list().length === 1 && b.lan.list().length === 1, 5000, "both listings");
    const found = a.events.find((e) => e.type === "lan.peer.found");
    equal(found?.data.nodeId, b.peer.nodeId);
    equal(found?.data.did, b.peer.identity.did);
    ok((found?.data.addresses as string[]).some((x) => x.startsWith("udp://127.0.0.1:")));
    const [listed] = a.lan.list();
    equal(listed.nodeId, b.peer.nodeId);
    equal(listed.instance, `nzcore-${b.peer.nodeId.slice(0, 12)}`);
    equal(a.lan.list().length, 1, "a does not list itself");
    ok(a.lan.stats.self > 0, "a saw its own announcement and left it out");
    await until(() => a.lan.list()[0].dial === "connected" || b.lan.list()[0].dial === "connected", 5000, "a dial");
  },
});

Deno.test({
  name: "mode known dials only peers of the address book; mode off lists and dials none",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = randomPort();
    await using known = await lanNode(port, "known");
    await using off = await lanNode(port, "off");
    await using target = await lanNode(port, "off");
    await until(() => known.lan.list().length === 2 && off.lan.list().length === 2, 10_000, "the listings");
    await new Promise((r) => setTimeout(r, 300));
    equal(known.peer.manager.sessions().length, 0, "known: nobody is in the address book yet");
    equal(off.peer.manager.sessions().length, 0, "off: no dial");
    deepEqual(off.lan.list().map((p) => p.dial), ["none", "none"]);
    // One manual connect puts target in known's address book; the next time target appears, known dials it.
    const [address] = known.lan.list().find((p) => p.nodeId === target.peer.nodeId)!.addresses;
    const session = await known.peer.manager.connect(address, { expectedPeer: target.peer.nodeId });
    await known.peer.manager.disconnect(session.nodeId);
    await until(() => !connectedTo(known, target) && !connectedTo(target, known), 5000, "the disconnect");
    await target.lan.stop();
    await until(() => known.lan.list().length === 1, 5000, "the goodbye");
    equal(known.events.filter((e) => e.type === "lan.peer.lost").length, 1);
    await target.lan.start();
    await until(() => connectedTo(known, target), 10_000, "the dial of a known peer");
    ok(known.lan.list().find((p) => p.nodeId === target.peer.nodeId)?.known);
    equal(connectedTo(known, off), false, "a peer not in the book is still not dialed");
  },
});

Deno.test({
  name: "a spoofed TXT (another node's ID at our port) is dialed with that ID expected and fails the handshake",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = randomPort();
    const victim = Identity.generate("victim");
    await using dialer = await lanNode(port, "any");
    await using impostor = await peer({ policy: "any" });
    const [udp] = await impostor.manager.listen(["udp://0.0.0.0:0"]);
    await using mdns = await MdnsSocket.open({ interface: "127.0.0.1", port });
    await mdns.announce({
      instance: "spoof",
      type: "_nzcore._udp",
      port: 1,
      txt: { v: "1", id: victim.nodeId, did: victim.did, udp: udp.split(":").at(-1)! },
    });
    await until(() => dialer.lan.list()[0]?.dial === "failed", 10_000, "the failed dial");
    const [listed] = dialer.lan.list();
    equal(listed.nodeId, victim.nodeId);
    ok(/expected|mismatch|answer/i.test(listed.error ?? ""), listed.error);
    equal(dialer.peer.manager.sessions().length, 0, "no session under the victim's name");
  },
});

Deno.test({
  name: "instances with malformed TXT are counted and ignored, with no event and no dial",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = randomPort();
    await using node = await lanNode(port, "any");
    const a = Identity.generate("a");
    const b = Identity.generate("b");
    await using mdns = await MdnsSocket.open({ interface: "127.0.0.1", port });
    const bad: TxtRecord[] = [
      {},
      { v: "1" },
      { v: "1", id: a.nodeId, did: b.did, udp: "1" },
      { v: "9", id: a.nodeId, did: a.did, udp: "1" },
      { v: "1", id: a.nodeId, did: a.did, udp: "99999" },
      { v: "1", id: a.nodeId, did: a.did },
    ];
    await Promise.all(
      bad.map((txt, i) => mdns.announce({ instance: `bad-${i}`, type: "_nzcore._udp", port: 1, txt, probe: false })),
    );
    await until(() => node.lan.stats.invalid >= bad.length, 10_000, "the bad records");
    deepEqual(node.lan.list(), []);
    equal(node.events.length, 0);
    equal(node.lan.stats.dials, 0);
  },
});
