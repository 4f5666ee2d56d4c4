import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { fromUtf8, utf8 } from "../../../kernel/bytes.ts";
import { PeerMismatchError } from "../../../kernel/channel/errors.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import type { PeerManagerOptions } from "../../../kernel/peers/manager.ts";
import { memoryAddress, peer as testPeer, type TestPeer } from "./_peer.ts";

/** A node as the peer manager's own tests want it: the default policy (`tofu`) and quick redials. */
function peer(
  options: { as?: Identity } & Partial<Omit<PeerManagerOptions, "identity">> = {},
): Promise<TestPeer> {
  return testPeer({ policy: "tofu", reconnect: { baseDelayMs: 20, maxDelayMs: 100 }, ...options });
}

Deno.test("two nodes connect, see each other's identity, and exchange messages", async () => {
  await using a = await peer();
  await using b = await peer();
  const [address] = await b.manager.listen([memoryAddress()]);
  const session = await a.manager.connect(address);
  equal(session.nodeId, b.identity.nodeId);
  equal(session.did, b.identity.did);
  equal(session.direction, "outbound");
  const connected = await b.next("peer.connected");
  equal(connected.nodeId, a.identity.nodeId);
  equal(connected.direction, "inbound");
  await a.manager.send(b.identity.did, utf8("hello"));
  await a.manager.send(b.identity.nodeId.slice(0, 10), new Uint8Array([0xff, 0x00]));
  eql(await b.next("peer.message"), { nodeId: a.identity.nodeId, did: a.identity.did, bytes: 5, text: "hello" });
  eql((await b.next("peer.message", (d) => d.bytes === 2)).base64, "/wA=");
  equal(a.book.pinned(address), b.identity.nodeId, "the dialed address is pinned to the identity found there");
  equal(b.book.get(a.identity.nodeId), undefined, "a stranger's inbound session is not written to the address book");
});

Deno.test("a stream carries its protocol; an unserved protocol is reset", async () => {
  await using a = await peer();
  await using b = await peer();
  b.manager.handle("test/echo/1", async (stream) => {
    for await (const message of stream) await stream.send(message);
    await stream.close();
  });
  const [address] = await b.manager.listen([memoryAddress()]);
  const session = await a.manager.connect(address);
  const echo = await session.openStream("test/echo/1");
  await echo.send(utf8("ping"));
  equal(fromUtf8((await echo.receive())!), "ping");
  await echo.close();
  equal(await echo.receive(), null);
  const nobody = await session.openStream("test/nobody/1");
  await rejects(nobody.receive());
});

Deno.test("two nodes that dial each other at once keep one and the same session", async () => {
  await using a = await peer();
  await using b = await peer();
  const [addressA] = await a.manager.listen([memoryAddress()]);
  const [addressB] = await b.manager.listen([memoryAddress()]);
  await Promise.all([a.manager.connect(addressB), b.manager.connect(addressA)]);
  // Let the losing session's close reach both sides.
  for (let i = 0; i < 50 && (a.manager.sessions().length !== 1 || b.manager.sessions().length !== 1); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 50));
  equal(a.manager.sessions().length, 1);
  equal(b.manager.sessions().length, 1);
  const [sa] = a.manager.sessions(), [sb] = b.manager.sessions();
  ok(sa.direction !== sb.direction, "one side dialed the kept session and the other accepted it");
  const smaller = a.identity.nodeId < b.identity.nodeId ? a : b;
  equal((smaller === a ? sa : sb).direction, "outbound", "the node with the smaller ID initiated the kept session");
  await a.manager.send(b.identity.nodeId, utf8("after the race"));
  equal((await b.next("peer.message")).text, "after the race");
});

Deno.test("trust on first use: another identity at a pinned address is refused", async () => {
  await using a = await peer();
  await using b = await peer();
  const address = memoryAddress();
  await b.manager.listen([address]);
  await a.manager.connect(address);
  await a.manager.disconnect(b.identity.nodeId);
  await b.manager.close();
  await using impostor = await peer();
  await impostor.manager.listen([address]);
  await rejects(a.manager.connect(address), PeerMismatchError);
  equal(impostor.manager.sessions().length, 0);
  const refused = await a.next("peer.refused");
  equal(refused.address, address);
});

Deno.test("policy `known` accepts only peers in the address book", async () => {
  await using a = await peer();
  await using b = await peer({ policy: "known" });
  const [address] = await b.manager.listen([memoryAddress()]);
  await rejects(a.manager.connect(address), /known peers only/);
  const refused = await b.next("peer.refused");
  ok(String(refused.reason).includes("known peers only"), String(refused.reason));
  equal(b.manager.sessions().length, 0);
  await b.book.seen({ nodeId: a.identity.nodeId, did: a.identity.did });
  const session = await a.manager.connect(address);
  equal(session.nodeId, b.identity.nodeId);
});

Deno.test("a lost session with an auto-connect peer is dialed again", async () => {
  await using a = await peer();
  const address = memoryAddress();
  const identityB = Identity.generate("b");
  const b1 = await peer({ as: identityB });
  await b1.manager.listen([address]);
  await a.manager.connect(address, { autoConnect: true });
  await b1[Symbol.asyncDispose]();
  await a.next("peer.disconnected");
  await using b2 = await peer({ as: identityB });
  await b2.manager.listen([address]);
  await a.next("peer.connected", () => a.events.filter((e) => e.type === "peer.connected").length >= 2);
  equal(a.manager.sessions()[0]?.nodeId, identityB.nodeId);
  await a.manager.disconnect(identityB.nodeId);
  equal(a.book.get(identityB.nodeId)?.autoConnect, false);
});

Deno.test("stalled handshakes time out and pending handshakes per host are limited", async () => {
  await using b = await peer({ limits: { pendingPerHost: 2, timeoutMs: 300 } });
  const [address] = await b.manager.listen(["tcp://127.0.0.1:0"]);
  const port = Number(new URL(address.replace("tcp:", "http:")).port);
  const conns = await Promise.all([1, 2, 3].map(() => Deno.connect({ hostname: "127.0.0.1", port })));
  const over = await b.next("peer.refused", (d) => String(d.reason).includes("too many pending"));
  ok(over.address);
  const timedOut = await b.next("peer.refused", (d) => /time/i.test(String(d.reason)));
  ok(timedOut.address);
  for (const conn of conns) conn.close();
  // After the stalled ones are gone, a real peer still gets in.
  await using a = await peer();
  const session = await a.manager.connect(address);
  equal(session.nodeId, b.identity.nodeId);
});

Deno.test("garbage instead of a handshake ends that connection only", async () => {
  await using a = await peer();
  await using b = await peer();
  const [address] = await b.manager.listen(["tcp://127.0.0.1:0"]);
  const session = await a.manager.connect(address);
  const port = Number(new URL(address.replace("tcp:", "http:")).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(Uint8Array.of(0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8));
  await b.next("peer.refused");
  conn.close();
  await session.sendMessage(utf8("still here"));
  equal((await b.next("peer.message")).text, "still here");
});

Deno.test("two nodes connect over UDP (datagram mode), exchange messages, and show the path", async () => {
  await using a = await peer();
  await using b = await peer();
  const [address] = await b.manager.listen(["udp://127.0.0.1:0"]);
  ok(address.startsWith("udp://127.0.0.1:"));
  eql(b.manager.listening, [address]);
  const session = await a.manager.connect(address);
  equal(session.nodeId, b.identity.nodeId);
  const path = session.path();
  equal(path.kind, "direct");
  equal(path.transport, "udp");
  equal(path.remoteAddr, address);
  ok(path.rttMs !== null && path.rttMs >= 0);
  ok(a.manager.udpSocket !== null, "the dialer bound a UDP socket of its own");
  await a.manager.send(b.identity.nodeId, utf8("over udp"));
  eql((await b.next("peer.message")).text, "over udp");
  const big = crypto.getRandomValues(new Uint8Array(60_000));
  await a.manager.send(b.identity.nodeId, big);
  equal((await b.next("peer.message", (d) => d.bytes === 60_000)).bytes, 60_000);
  const inbound = b.manager.session(a.identity.nodeId);
  equal(inbound.path().transport, "udp");
  equal(inbound.path().remoteAddr, a.manager.udpSocket!.url.replace("0.0.0.0", "127.0.0.1"));
  await a.manager.disconnect(b.identity.nodeId);
  await b.next("peer.disconnected");
});

Deno.test("a UDP listener refuses strangers under the known policy, and a node that does not listen answers no one", async () => {
  await using a = await peer();
  await using b = await peer({ policy: "known" });
  const [address] = await b.manager.listen(["udp://127.0.0.1:0"]);
  await rejects(a.manager.connect(address), /not known/);
  await using c = await peer();
  const socket = await c.manager.ensureUdpSocket();
  await using d = await peer({ limits: { timeoutMs: 600 } });
  await rejects(d.manager.connect(`udp://127.0.0.1:${socket.addr.port}`), /timed out/);
});
