import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import fc from "fast-check";
import { utf8 } from "../../../kernel/bytes.ts";
import { NotFoundError } from "../../../kernel/errors.ts";
import {
  type Candidate,
  decodePunchMessage,
  encodePunchMessage,
  MAX_CANDIDATES,
  punch,
  PunchError,
  type PunchMessage,
  RENDEZVOUS_PROTOCOL,
  servePunch,
  upgradeRelayed,
} from "../../../kernel/peers/punch.ts";
import { relayConnect, serveRelay } from "../../../kernel/peers/relay.ts";
import { link, peer, type TestPeer, until } from "./_peer.ts";

/** A, R and B on loopback: A and B connected to R only, each listening on a loopback UDP socket. */
async function triangle(options: { rendezvous?: boolean } = {}) {
  const a = await peer(), r = await peer(), b = await peer();
  const rendezvous = servePunch(r.manager, { rendezvous: { enabled: options.rendezvous ?? true } });
  const services = [rendezvous, servePunch(a.manager), servePunch(b.manager)];
  for (const p of [a, b]) await p.manager.listen(["udp://127.0.0.1:0"]);
  await link(a, r);
  await link(b, r);
  return {
    a,
    r,
    b,
    rendezvous,
    async [Symbol.asyncDispose]() {
      for (const s of services) s.close();
      for (const p of [a, b, r]) await p[Symbol.asyncDispose]();
    },
  };
}

function directPaths(p: TestPeer, other: TestPeer) {
  return p.manager.sessions().filter((s) => s.nodeId === other.nodeId).map((s) => s.path());
}

async function refusal(promise: Promise<unknown>, code: string): Promise<PunchError> {
  const error = await promise.then(() => null, (e) => e);
  ok(error instanceof PunchError, `expected a PunchError, got ${error}`);
  equal(error.code, code, error.message);
  return error;
}

Deno.test("two nodes introduced by a rendezvous punch a direct UDP session on loopback", async () => {
  await using t = await triangle();
  const { a, r, b } = t;
  const session = await punch(a.manager, r.nodeId, b.nodeId);
  equal(session.nodeId, b.nodeId);
  const path = session.path();
  equal(path.kind, "direct");
  equal(path.transport, "udp");
  equal(path.remoteAddr, b.manager.listening.find((l) => l.startsWith("udp://")));
  await until(() => directPaths(b, a).length === 1, 5_000, "b's session with a");
  equal(directPaths(a, b).length, 1, "one session per peer");
  equal(b.manager.session(a.nodeId).path().transport, "udp");
  await a.manager.send(b.nodeId, utf8("punched"));
  equal((await b.next("peer.message")).text, "punched");
  await b.manager.send(a.nodeId, utf8("and back"));
  equal((await a.next("peer.message")).text, "and back");
  equal(t.rendezvous.stats.introduced, 1);
  // A second punch finds the direct session.
  equal(await punch(a.manager, r.nodeId, b.nodeId), a.manager.session(b.nodeId));
});

Deno.test("when both sides dial each other at once, one and the same session remains on both", async () => {
  await using t = await triangle();
  const { a, r, b } = t;
  const [sa, sb] = await Promise.all([punch(a.manager, r.nodeId, b.nodeId), punch(b.manager, r.nodeId, a.nodeId)]);
  equal(sa.nodeId, b.nodeId);
  equal(sb.nodeId, a.nodeId);
  await new Promise((resolve) => setTimeout(resolve, 300));
  equal(a.manager.sessions().filter((s) => s.nodeId === b.nodeId).length, 1);
  equal(b.manager.sessions().filter((s) => s.nodeId === a.nodeId).length, 1);
  const [ka, kb] = [a.manager.session(b.nodeId), b.manager.session(a.nodeId)];
  ok(ka.direction !== kb.direction, "one side initiated the kept session, the other accepted it");
  const smaller = a.nodeId < b.nodeId ? a : b;
  equal((smaller === a ? ka : kb).direction, "outbound", "the smaller node ID initiated the kept session");
  await a.manager.send(b.nodeId, utf8("after the crossing"));
  equal((await b.next("peer.message")).text, "after the crossing");
});

Deno.test("a punch is refused with a reason: no rendezvous, rendezvous disabled, target not connected or refusing", async () => {
  await using t = await triangle({ rendezvous: false });
  const { a, r, b } = t;
  await using c = await peer();
  await rejects(punch(a.manager, c.nodeId, b.nodeId), NotFoundError);
  const disabled = await refusal(punch(a.manager, r.nodeId, b.nodeId), "DISABLED");
  ok(/no rendezvous/.test(disabled.message), disabled.message);
  servePunch(r.manager, { rendezvous: { enabled: true } });
  const absent = await refusal(punch(a.manager, r.nodeId, c.nodeId), "NOT_CONNECTED");
  ok(absent.message.includes(c.nodeId.slice(0, 12)), absent.message);
  servePunch(b.manager, { acceptIntroductions: false });
  const refused = await refusal(punch(a.manager, r.nodeId, b.nodeId), "REFUSED");
  ok(/accepts no introductions/.test(refused.message), refused.message);
  await rejects(punch(a.manager, r.nodeId, "nope"), TypeError);
});

Deno.test("a punch toward candidates where nobody answers times out with what it tried", async () => {
  await using t = await triangle();
  const { a, r, b } = t;
  // b answers the introduction with a dead candidate only, and does not punch back.
  b.manager.handle(RENDEZVOUS_PROTOCOL, async (stream) => {
    await stream.receive();
    const dead: Candidate = { kind: "host", addr: { hostname: "127.0.0.1", port: 9 } };
    await stream.send(encodePunchMessage({ type: "candidates", candidates: [dead] }));
    await stream.close();
  });
  const started = Date.now();
  const error = await refusal(punch(a.manager, r.nodeId, b.nodeId, { timeoutMs: 1_000 }), "TIMEOUT");
  ok(error.message.includes("udp://127.0.0.1:9"), error.message);
  ok(Date.now() - started < 3_000);
  equal(directPaths(a, b).length, 0);
});

Deno.test("garbage, oversized and malformed candidate lists on the rendezvous stream are refused and harm nothing", async () => {
  await using t = await triangle();
  const { a, r, b } = t;
  const toR = a.manager.session(r.nodeId);
  const tooMany = encodePunchMessage({
    type: "introduce",
    nodeId: b.nodeId,
    candidates: Array.from({ length: MAX_CANDIDATES }, (_, i) => ({
      kind: "host" as const,
      addr: { hostname: "127.0.0.1", port: 1000 + i },
    })),
  });
  const overCount = tooMany.slice();
  overCount[33] = 200;
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /empty/],
    [Uint8Array.of(9, 1, 2), /type is 9/],
    [Uint8Array.of(1, 2, 3), /length is 3/],
    [tooMany, /16 candidates, expected <= 15/],
    [overCount, /200, expected <= 16/],
    [tooMany.subarray(0, tooMany.length - 1), /truncated/],
    [Uint8Array.of(...tooMany.subarray(0, 34), 0, 5, 1, 2, 3, 4, 0, 1), /family is 5/],
    [Uint8Array.of(...tooMany.subarray(0, 34), 7, 4, 1, 2, 3, 4, 0, 1), /kind is 7/],
    [Uint8Array.of(...tooMany.subarray(0, 34), 0, 4, 1, 2, 3, 4, 0, 0), /port is 0/],
    [Uint8Array.of(...tooMany.subarray(0, 33), 0, 9), /after the candidates/],
    [Uint8Array.of(3, 0), /CANDIDATES as a request/],
    [new Uint8Array(70_000).fill(1), /Cannot decode/],
  ];
  for (const [garbage, reason] of cases) {
    const stream = await toR.openStream(RENDEZVOUS_PROTOCOL);
    await stream.send(garbage);
    const answer = decodePunchMessage((await stream.receive())!);
    equal(answer.type, "refused");
    ok(answer.type === "refused" && reason.test(answer.reason), `${reason}: ${JSON.stringify(answer)}`);
  }
  // An introduction naming the requester itself.
  const self = await toR.openStream(RENDEZVOUS_PROTOCOL);
  await self.send(encodePunchMessage({ type: "introduce", nodeId: a.nodeId, candidates: [] }));
  eql(decodePunchMessage((await self.receive())!), {
    type: "refused",
    code: 5,
    reason: "The target is the requester itself",
  });
  // A target that answers garbage: the requester learns the target did not answer properly.
  b.manager.handle(RENDEZVOUS_PROTOCOL, async (stream) => {
    await stream.receive();
    await stream.send(Uint8Array.of(3, 1, 0, 4));
  });
  const bad = await refusal(punch(a.manager, r.nodeId, b.nodeId), "UNREACHABLE");
  ok(/did not answer properly/.test(bad.message), bad.message);
  // The rendezvous still introduces.
  servePunch(b.manager);
  const session = await punch(a.manager, r.nodeId, b.nodeId);
  equal(session.path().transport, "udp");
});

Deno.test("punch messages round-trip, and random bytes never decode to anything but a RangeError or SyntaxError", () => {
  const candidate = fc.record({
    kind: fc.constantFrom("host", "stun", "portmap", "observed") as fc.Arbitrary<Candidate["kind"]>,
    addr: fc.record({
      hostname: fc.oneof(fc.ipV4(), fc.ipV6().map((ip) => ip)),
      port: fc.integer({ min: 1, max: 65535 }),
    }),
  });
  const nodeId = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) =>
    [...b].map((x) => x.toString(16).padStart(2, "0")).join("")
  );
  const message: fc.Arbitrary<PunchMessage> = fc.oneof(
    fc.record({ type: fc.constant("introduce" as const), nodeId, candidates: fc.array(candidate, { maxLength: 16 }) }),
    fc.record({ type: fc.constant("candidates" as const), candidates: fc.array(candidate, { maxLength: 16 }) }),
    fc.record({ type: fc.constant("refused" as const), code: fc.integer({ min: 0, max: 255 }), reason: fc.string() }),
  );
  fc.assert(fc.property(message, (m) => {
    const decoded = decodePunchMessage(encodePunchMessage(m));
    const again = encodePunchMessage(decoded);
    eql(again, encodePunchMessage(m));
  }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
    try {
      decodePunchMessage(bytes);
    } catch (error) {
      ok(error instanceof RangeError || error instanceof SyntaxError, String(error));
    }
  }));
  throws(
    () => encodePunchMessage({ type: "candidates", candidates: [{ kind: "host", addr: { hostname: "x", port: 1 } }] }),
    SyntaxError,
  );
});

Deno.test("a relayed session is upgraded to a direct one without losing or reordering messages sent across the switch", async () => {
  const a = await peer(), r = await peer(), b = await peer();
  await using _ = {
    async [Symbol.asyncDispose]() {
      for (const p of [a, b, r]) await p[Symbol.asyncDispose]();
    },
  };
  serveRelay(r.manager, { relay: { enabled: true } });
  servePunch(r.manager, { rendezvous: { enabled: true } });
  for (const p of [a, b]) {
    serveRelay(p.manager);
    servePunch(p.manager);
    await p.manager.listen(["udp://127.0.0.1:0"]);
    await link(p, r);
  }
  const relayed = await relayConnect(a.manager, r.nodeId, b.nodeId);
  ok(relayed.relayed);
  // Each side sends a steady stream of numbered messages, a few per millisecond, so that the switch happens while
  // messages are in flight both ways; each stops 300 messages after it sees the direct session.
  const stream = (from: TestPeer, to: TestPeer) => {
    const state = { sent: 0, switchedAt: -1, done: Promise.resolve() };
    state.done = (async () => {
      while (state.sent < 20_000) {
        await from.manager.send(to.nodeId, utf8(String(state.sent)));
        state.sent++;
        if (state.sent % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        if (state.switchedAt < 0 && !from.manager.session(to.nodeId).relayed) state.switchedAt = state.sent;
        if (state.switchedAt >= 0 && state.sent >= state.switchedAt + 300) return;
      }
    })();
    return state;
  };
  await b.next("peer.connected", (d) => d.nodeId === a.nodeId);
  const ab = stream(a, b), ba = stream(b, a);
  await until(() => ab.sent >= 200 && ba.sent >= 200, 10_000, "messages on the relayed session");
  const t0 = performance.now();
  const direct = await upgradeRelayed(a.manager, relayed, { attempts: 1 });
  console.log(`upgraded in ${(performance.now() - t0).toFixed(0)} ms after ${ab.sent} + ${ba.sent} messages`);
  ok(direct && !direct.relayed, "the session is direct now");
  await Promise.all([ab.done, ba.done]);
  for (const [state, at, name] of [[ab, b, "a to b"], [ba, a, "b to a"]] as const) {
    ok(state.switchedAt >= 200, `${name}: switched after ${state.switchedAt} messages`);
    const received = () => at.events.filter((e) => e.type === "peer.message");
    await until(() => received().length >= state.sent, 10_000, `all ${state.sent} messages ${name}`);
    const numbers = received().map((e) => Number(e.data.text));
    eql(numbers, Array.from({ length: state.sent }, (_, i) => i), `${name}: complete and in order`);
  }
  const path = a.manager.session(b.nodeId).path();
  equal(path.kind, "direct");
  equal(path.transport, "udp");
  // The relayed session was handed over and closed gracefully.
  const closed = await Promise.race([relayed.channel.closed, new Promise((r) => setTimeout(() => r(null), 5_000))]);
  ok(closed !== null, "the relayed session is closed");
  eql(closed, { reason: "duplicate session", remote: false });
  ok(relayed.replaced);
});
