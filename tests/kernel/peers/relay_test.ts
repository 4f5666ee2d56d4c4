import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { fromUtf8, utf8 } from "../../../kernel/bytes.ts";
import { NotFoundError } from "../../../kernel/errors.ts";
import {
  decodeRelayStatus,
  encodeRelayRequest,
  RELAY_CONNECT,
  RELAY_PROTOCOL,
  relayConnect,
  RelayError,
  type RelayOptions,
  RelayStatus,
  serveRelay,
} from "../../../kernel/peers/relay.ts";
import { link, peer, type TestPeer, until } from "./_peer.ts";

/** A, R and B with A and B connected to R only; R relays with `relay`. */
async function triangle(relay: RelayOptions = { enabled: true }) {
  const a = await peer(), r = await peer(), b = await peer();
  const service = serveRelay(r.manager, { relay });
  serveRelay(a.manager);
  serveRelay(b.manager);
  await link(a, r);
  await link(b, r);
  return {
    a,
    r,
    b,
    service,
    async [Symbol.asyncDispose]() {
      service.close();
      for (const p of [a, b, r]) await p[Symbol.asyncDispose]();
    },
  };
}

async function refusal(promise: Promise<unknown>, code: string): Promise<RelayError> {
  const error = await promise.then(() => null, (e) => e);
  ok(error instanceof RelayError, `expected a RelayError, got ${error}`);
  equal(error.code, code, error.message);
  return error;
}

Deno.test("a relayed session carries messages both ways, end to end, and shows its path via the relay", async () => {
  await using t = await triangle();
  const { a, r, b } = t;
  const session = await relayConnect(a.manager, r.nodeId, b.nodeId);
  equal(session.nodeId, b.nodeId);
  const path = session.path();
  equal(path.kind, "relayed");
  equal(path.transport, "relay");
  equal(path.via, r.nodeId);
  equal(path.remoteAddr, `relay://${r.nodeId}/${b.nodeId}`);
  ok(session.relayed);
  await b.next("peer.connected", (d) => d.nodeId === a.nodeId);
  const inbound = b.manager.session(a.nodeId);
  eql(inbound.path().via, r.nodeId);
  equal(inbound.path().remoteAddr, `relay://${r.nodeId}/${a.nodeId}`);
  await a.manager.send(b.nodeId, utf8("hello through the relay"));
  equal((await b.next("peer.message")).text, "hello through the relay");
  await b.manager.send(a.nodeId, utf8("and back"));
  equal((await a.next("peer.message")).text, "and back");
  const big = new Uint8Array(300_000).map((_, i) => i * 7);
  await a.manager.send(b.nodeId, big);
  equal((await b.next("peer.message", (d) => d.bytes === 300_000)).bytes, 300_000);
  equal(t.service.stats.active, 1);
  ok(t.service.stats.bytes > 300_000, "the relay forwarded the bytes");
  equal(r.manager.sessions().some((s) => s.nodeId === a.nodeId), true);
  equal(r.events.some((e) => e.type === "peer.message"), false, "the relay read none of the messages");
  // A graceful close reaches the other end through the relay, and the relay forgets the session.
  await a.manager.disconnect(b.nodeId);
  const gone = await b.next("peer.disconnected", (d) => d.nodeId === a.nodeId);
  ok(String(gone.reason).length > 0);
  await until(() => t.service.stats.active === 0, 5_000, "the relay to drop the session");
});

Deno.test("a relay refuses with a reason: disabled, target not connected, target refusing, the requester itself", async () => {
  const a = await peer(), r = await peer(), b = await peer(), c = await peer();
  await using _ = {
    async [Symbol.asyncDispose]() {
      for (const p of [a, b, c, r]) await p[Symbol.asyncDispose]();
    },
  };
  const service = serveRelay(r.manager, { relay: { enabled: false } });
  serveRelay(b.manager, { acceptRelayed: false });
  await link(a, r);
  await link(b, r);
  await rejects(relayConnect(a.manager, c.nodeId, b.nodeId), NotFoundError);
  let error = await refusal(relayConnect(a.manager, r.nodeId, b.nodeId), "DISABLED");
  ok(/does not relay/.test(error.message), error.message);
  service.close();
  serveRelay(r.manager, { relay: { enabled: true } });
  error = await refusal(relayConnect(a.manager, r.nodeId, c.nodeId), "NOT_CONNECTED");
  ok(error.message.includes(c.nodeId.slice(0, 12)), error.message);
  error = await refusal(relayConnect(a.manager, r.nodeId, b.nodeId), "REFUSED");
  ok(/accepts no relayed sessions/.test(error.message), error.message);
  // A target without the protocol resets the relay's stream: the requester learns that it did not answer.
  await link(c, r);
  await refusal(relayConnect(a.manager, r.nodeId, c.nodeId), "UNREACHABLE");
  const stream = await a.manager.session(r.nodeId).openStream(RELAY_PROTOCOL);
  await stream.send(encodeRelayRequest(RELAY_CONNECT, a.nodeId));
  const status = decodeRelayStatus((await stream.receive())!);
  equal(status.code, RelayStatus.BAD_REQUEST);
  equal(status.reason, "The target is the requester itself");
  await rejects(relayConnect(a.manager, r.nodeId, "not a node id"), TypeError);
});

Deno.test("a relay refuses the (maxSessions+1)th session and the (maxPerPeer+1)th of one node", async () => {
  await using t = await triangle({ enabled: true, maxSessions: 2, maxPerPeer: 1 });
  const { a, r, b } = t;
  await using c = await peer();
  await using d = await peer();
  await using e = await peer();
  for (const p of [c, d, e]) {
    serveRelay(p.manager);
    await link(p, r);
  }
  await relayConnect(a.manager, r.nodeId, b.nodeId);
  const perPeer = await refusal(relayConnect(c.manager, r.nodeId, b.nodeId), "LIMIT");
  ok(/maxPerPeer/.test(perPeer.message), perPeer.message);
  await relayConnect(c.manager, r.nodeId, d.nodeId);
  equal(t.service.stats.active, 2);
  const total = await refusal(relayConnect(e.manager, r.nodeId, (await peer()).nodeId), "LIMIT");
  ok(/maxSessions/.test(total.message), total.message);
  // A slot freed is a slot to take again.
  await a.manager.disconnect(b.nodeId);
  await until(() => t.service.stats.active === 1, 5_000, "the relay to free a slot");
  const again = await relayConnect(e.manager, r.nodeId, b.nodeId);
  equal(again.nodeId, b.nodeId);
});

Deno.test("a relay cuts a session at maxBytes and at maxDurationMs", async () => {
  {
    await using t = await triangle({ enabled: true, maxBytes: 200_000 });
    const { a, r, b } = t;
    await relayConnect(a.manager, r.nodeId, b.nodeId);
    await a.manager.send(b.nodeId, utf8("small"));
    await b.next("peer.message");
    a.manager.send(b.nodeId, new Uint8Array(400_000)).catch(() => {});
    await b.next("peer.disconnected", (d) => d.nodeId === a.nodeId);
    await a.next("peer.disconnected", (d) => d.nodeId === b.nodeId);
    equal(t.service.stats.cut, 1);
    ok(!b.events.some((e) => e.type === "peer.message" && e.data.bytes === 400_000), "the message was cut");
    equal(t.service.stats.active, 0);
  }
  {
    await using t = await triangle({ enabled: true, maxDurationMs: 600 });
    const { a, r, b } = t;
    const started = Date.now();
    await relayConnect(a.manager, r.nodeId, b.nodeId);
    await b.next("peer.disconnected", (d) => d.nodeId === a.nodeId);
    const lasted = Date.now() - started;
    ok(lasted >= 550 && lasted < 3_000, `lasted ${lasted} ms`);
    equal(t.service.stats.cut, 1);
  }
});

Deno.test("a relay caps each direction of a session at maxBytesPerSecond", async () => {
  const rate = 400 * 1024;
  const total = 1200 * 1024;
  async function measure(t: { a: TestPeer; r: TestPeer; b: TestPeer }): Promise<number> {
    await relayConnect(t.a.manager, t.r.nodeId, t.b.nodeId);
    await t.a.manager.send(t.b.nodeId, utf8("warm-up"));
    await t.b.next("peer.message");
    const started = performance.now();
    for (let i = 0; i < total / (60 * 1024); i++) await t.a.manager.send(t.b.nodeId, new Uint8Array(60 * 1024));
    await until(
      () => t.b.events.filter((e) => e.type === "peer.message").length === 1 + total / (60 * 1024),
      10_000,
      "every message",
    );
    return total / ((performance.now() - started) / 1000);
  }
  {
    await using t = await triangle({ enabled: true, maxBytesPerSecond: rate });
    const measured = await measure(t);
    console.log(`relayed at ${(measured / 1024).toFixed(0)} KiB/s with a cap of ${rate / 1024} KiB/s`);
    ok(measured <= rate * 1.15, `measured ${measured.toFixed(0)} B/s over a cap of ${rate}`);
    ok(measured >= rate * 0.6, `measured ${measured.toFixed(0)} B/s, far below the cap of ${rate}`);
  }
  {
    await using t = await triangle({ enabled: true });
    const measured = await measure(t);
    console.log(`relayed at ${(measured / 1024).toFixed(0)} KiB/s with the default cap of 1024 KiB/s`);
    ok(measured > rate * 1.5, `the default cap allows more: ${measured.toFixed(0)} B/s`);
  }
});

Deno.test("garbage on a relay stream is answered BAD_REQUEST and harms nothing else", async () => {
  await using t = await triangle();
  const { a, r, b } = t;
  const toRelay = a.manager.session(r.nodeId);
  for (const garbage of [new Uint8Array(0), Uint8Array.of(1, 2, 3), new Uint8Array(100_000).map((_, i) => i * 13)]) {
    const stream = await toRelay.openStream(RELAY_PROTOCOL);
    await stream.send(garbage);
    const status = decodeRelayStatus((await stream.receive())!);
    equal(status.code, RelayStatus.BAD_REQUEST);
    ok(/Cannot decode the request/.test(status.reason), status.reason);
  }
  // A stream that ends before its request is simply dropped.
  const silent = await toRelay.openStream(RELAY_PROTOCOL);
  await silent.close();
  await rejects(silent.receive());
  // A target that answers garbage instead of a STATUS: the requester learns it did not answer properly.
  await using c = await peer();
  c.manager.handle(RELAY_PROTOCOL, async (stream) => {
    await stream.receive();
    await stream.send(utf8("not a status"));
  });
  await link(c, r);
  const error = await refusal(relayConnect(a.manager, r.nodeId, c.nodeId), "UNREACHABLE");
  ok(/malformed STATUS/.test(error.message), error.message);
  // A relay that answers garbage to the requester.
  await using fake = await peer();
  fake.manager.handle(RELAY_PROTOCOL, async (stream) => {
    await stream.receive();
    await stream.send(Uint8Array.of(3));
  });
  await link(a, fake);
  await refusal(relayConnect(a.manager, fake.nodeId, b.nodeId), "BAD_REQUEST");
  // The relay still relays.
  const session = await relayConnect(a.manager, r.nodeId, b.nodeId);
  await session.sendMessage(utf8("still fine"));
  equal(fromUtf8(utf8((await b.next("peer.message")).text as string)), "still fine");
});
