/**
 * NZ-INTRODUCE-01 between three in-process nodes: A introduces C to B, B
 * checks the introduction and dials C with C's node ID as the expected peer.
 * Forged, expired, third-party-signed and malformed introductions are refused
 * and nothing is dialed; the policy decides whose introductions B follows.
 */

import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import fc from "fast-check";
import { ChannelError } from "../../../kernel/channel/errors.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import {
  decodeIntroductionAnswer,
  encodeIntroductionAnswer,
  introduce,
  INTRODUCE_PROTOCOL,
  type IntroductionAnswer,
  type IntroductionOutcome,
  type IntroductionPolicy,
  IntroductionService,
  MAX_INTRODUCTION_REASON,
  serveIntroductions,
} from "../../../kernel/discovery/introduction.ts";
import { introduction, MAX_RECORD_SIZE, peerRecord } from "../../../kernel/discovery/record.ts";
import type { Session } from "../../../kernel/peers/manager.ts";
import { link, memoryAddress, peer, type TestPeer, until } from "../peers/_peer.ts";

interface Trio extends AsyncDisposable {
  a: TestPeer;
  b: TestPeer;
  c: TestPeer;
  /** C's address. */
  cAddress: string;
  /** A's session with B. */
  toB: Session;
  /** B's introduction service. */
  service: IntroductionService;
  /** What B reported. */
  outcomes: IntroductionOutcome[];
  /** Every address B dialed. */
  dialed: string[];
}

/**
 * A, B and C in memory: A connected to B and to C (A knows C's address). `trusted` makes B know A (B dialed A);
 * otherwise A dialed B and B does not know A.
 */
async function trio(
  options: { policy?: IntroductionPolicy; bKnowsA?: boolean; ratePerMinute?: number; now?: () => number } = {},
): Promise<Trio> {
  const a = await peer(), b = await peer(), c = await peer();
  const outcomes: IntroductionOutcome[] = [];
  const dialed: string[] = [];
  const connect = b.manager.connect.bind(b.manager);
  b.manager.connect = (address, o) => (dialed.push(address), connect(address, o));
  const service = serveIntroductions(b.manager, {
    policy: options.policy,
    self: () => b.nodeId,
    known: (nodeId) => b.book.get(nodeId) !== undefined,
    events: (_type, data) => outcomes.push(data),
    ratePerMinute: options.ratePerMinute,
    now: options.now,
  });
  const [cAddress] = await c.manager.listen([memoryAddress()]);
  await link(a, c);
  let toB: Session;
  if (options.bKnowsA ?? true) {
    await link(b, a);
    toB = a.manager.sessions().find((s) => s.nodeId === b.nodeId)!;
  } else {
    toB = await link(a, b);
  }
  dialed.length = 0;
  return {
    a,
    b,
    c,
    cAddress,
    toB,
    service,
    outcomes,
    dialed,
    async [Symbol.asyncDispose]() {
      await service.close();
      for (const p of [a, b, c]) await p[Symbol.asyncDispose]();
    },
  };
}

/** Sends `bytes` as the introduction on a new stream and reads the answer. */
async function sendRaw(session: Session, bytes: Uint8Array): Promise<IntroductionAnswer> {
  const stream = await session.openStream(INTRODUCE_PROTOCOL);
  await stream.send(bytes);
  await stream.close();
  const answer = await stream.receive();
  ok(answer !== null, "no answer");
  return decodeIntroductionAnswer(answer);
}

const connected = (p: TestPeer, other: TestPeer) => p.manager.sessions().some((s) => s.nodeId === other.nodeId);

/** Checks that B answered `status`, reported it, and dialed nothing. */
async function refusedWithoutDial(t: Trio, answer: IntroductionAnswer, status: string): Promise<void> {
  equal(answer.status, status, answer.reason);
  equal(answer.accepted, false);
  await until(() => t.outcomes.length > 0, 2_000, "the outcome");
  await new Promise((r) => setTimeout(r, 50));
  eql(t.dialed, []);
  equal(connected(t.b, t.c), false);
  equal(t.outcomes.at(-1)!.outcome, status);
}

Deno.test("A introduces C to B: B answers dialing, dials C and reports the session", async () => {
  await using t = await trio();
  const answer = await introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [t.cAddress] });
  eql(answer, { code: 0, status: "dialing", accepted: true, reason: "" });
  await until(() => connected(t.b, t.c), 5_000, "B's session with C");
  await until(() => t.outcomes.length === 1);
  const outcome = t.outcomes[0];
  equal(outcome.outcome, "connected");
  equal(outcome.introducer, t.a.nodeId);
  equal(outcome.nodeId, t.c.nodeId);
  equal(outcome.did, t.c.identity.did);
  equal(outcome.address, t.cAddress);
  eql(t.dialed, [t.cAddress]);
  // B now knows C at that address.
  eql(t.b.book.get(t.c.nodeId)?.addresses, [t.cAddress]);
});

Deno.test("B dials the introduced addresses in order and the first that answers wins", async () => {
  await using t = await trio();
  const dead = memoryAddress();
  const answer = await introduce(t.toB, t.a.identity, {
    publicKey: t.c.identity.publicKey,
    addresses: [dead, t.cAddress],
  });
  equal(answer.status, "dialing");
  await until(() => t.outcomes.length === 1);
  equal(t.outcomes[0].outcome, "connected");
  equal(t.outcomes[0].address, t.cAddress);
  eql(t.dialed, [dead, t.cAddress]);
});

Deno.test("an introduction whose address leads to another node ends unreachable: the handshake proves the identity", async () => {
  await using t = await trio();
  await using impostor = await peer();
  const [impostorAddress] = await impostor.manager.listen([memoryAddress()]);
  const answer = await introduce(t.toB, t.a.identity, {
    publicKey: t.c.identity.publicKey,
    addresses: [impostorAddress],
  });
  equal(answer.status, "dialing");
  await until(() => t.outcomes.length === 1);
  equal(t.outcomes[0].outcome, "unreachable");
  ok(/expected|mismatch|peer/i.test(t.outcomes[0].reason ?? ""), t.outcomes[0].reason);
  equal(connected(t.b, t.c), false);
  equal(connected(t.b, impostor), false);
});

Deno.test("a forged introduction (signature changed) is refused and nothing is dialed", async () => {
  await using t = await trio();
  const record = introduction(t.a.identity, t.c.identity.publicKey, [t.cAddress]);
  const bytes = record.bytes.slice();
  bytes[bytes.length - 1] ^= 0x01;
  await refusedWithoutDial(t, await sendRaw(t.toB, bytes), "forged");
});

Deno.test("an introduction whose address was changed after signing is refused as forged", async () => {
  await using t = await trio();
  const record = introduction(t.a.identity, t.c.identity.publicKey, ["memory://aaaa"]);
  const bytes = record.bytes.slice();
  const body = new TextDecoder("latin1").decode(bytes.subarray(0, bytes.length - 64));
  const at = body.indexOf("memory://aaaa") + "memory://".length;
  ok(at > "memory://".length);
  bytes[at] = 0x62; // memory://baaa
  await refusedWithoutDial(t, await sendRaw(t.toB, bytes), "forged");
});

Deno.test("an expired introduction is refused and nothing is dialed", async () => {
  await using t = await trio();
  const record = introduction(t.a.identity, t.c.identity.publicKey, [t.cAddress], {
    now: Date.now() - 11 * 60_000,
    ttlMs: 10 * 60_000,
  });
  await refusedWithoutDial(t, await sendRaw(t.toB, record.bytes), "expired");
});

Deno.test("an introduction valid for more than a day is refused as too long-lived", async () => {
  await using t = await trio({ now: () => Date.now() - 3600_000 });
  const record = introduction(t.a.identity, t.c.identity.publicKey, [t.cAddress], { ttlMs: 24 * 3600_000 });
  await refusedWithoutDial(t, await sendRaw(t.toB, record.bytes), "too-long-lived");
});

Deno.test("an introduction signed by a third party, not the introducer, is refused and nothing is dialed", async () => {
  await using t = await trio();
  const mallory = Identity.generate("mallory");
  const record = introduction(mallory, t.c.identity.publicKey, [t.cAddress]);
  await refusedWithoutDial(t, await sendRaw(t.toB, record.bytes), "wrong-signer");
});

Deno.test("garbage, an oversized message and a peer record instead of an introduction are refused as malformed", async () => {
  await using t = await trio();
  for (
    const bytes of [
      new Uint8Array([1, 2, 3]),
      new Uint8Array(MAX_RECORD_SIZE + 1),
      peerRecord(t.a.identity, [t.cAddress]).bytes,
    ]
  ) {
    const answer = await sendRaw(t.toB, bytes);
    equal(answer.status, "malformed", answer.reason);
  }
  await until(() => t.outcomes.length === 3);
  eql(t.dialed, []);
});

Deno.test("introducing B to itself, or A to B, is refused as an invalid target", async () => {
  await using t = await trio();
  for (const target of [t.b, t.a]) {
    const answer = await introduce(t.toB, t.a.identity, {
      publicKey: target.identity.publicKey,
      addresses: ["memory://x"],
    });
    equal(answer.status, "invalid-target", answer.reason);
  }
  eql(t.dialed, []);
});

Deno.test("an introduction of a node B is connected to already is answered connected, without a dial", async () => {
  await using t = await trio();
  await link(t.b, t.c);
  t.dialed.length = 0;
  const answer = await introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [t.cAddress] });
  eql([answer.status, answer.accepted], ["connected", true]);
  await until(() => t.outcomes.length === 1);
  equal(t.outcomes[0].outcome, "already-connected");
  eql(t.dialed, []);
});

Deno.test("policy trusted refuses an introducer B does not know, of a node B does not know", async () => {
  await using t = await trio({ bKnowsA: false });
  equal(t.b.book.get(t.a.nodeId), undefined);
  const answer = await introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [t.cAddress] });
  await refusedWithoutDial(t, answer, "refused");
});

Deno.test("policy trusted follows an unknown introducer's introduction of a node B knows", async () => {
  await using t = await trio({ bKnowsA: false });
  await link(t.b, t.c);
  await t.b.manager.disconnect(t.c.nodeId);
  await until(() => !connected(t.b, t.c));
  t.dialed.length = 0;
  const answer = await introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [t.cAddress] });
  equal(answer.status, "dialing", answer.reason);
  await until(() => connected(t.b, t.c));
});

Deno.test("policy any follows an unknown introducer; policy off refuses even a known one", async () => {
  {
    await using t = await trio({ policy: "any", bKnowsA: false });
    const answer = await introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [t.cAddress] });
    equal(answer.status, "dialing");
    await until(() => connected(t.b, t.c));
  }
  {
    await using t = await trio({ policy: "off" });
    const answer = await introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [t.cAddress] });
    await refusedWithoutDial(t, answer, "refused");
  }
});

Deno.test("an introducer over its rate is refused as rate-limited, before any signature check", async () => {
  await using t = await trio({ ratePerMinute: 2 });
  const mallory = Identity.generate("mallory");
  const wrong = () => introduction(mallory, t.c.identity.publicKey, [t.cAddress]).bytes;
  equal((await sendRaw(t.toB, wrong())).status, "wrong-signer");
  equal((await sendRaw(t.toB, wrong())).status, "wrong-signer");
  equal((await sendRaw(t.toB, wrong())).status, "rate-limited");
  const answer = await introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [t.cAddress] });
  equal(answer.status, "rate-limited");
  eql(t.dialed, []);
  equal(t.outcomes.length, 2, "rate-limited introductions are not reported");
});

Deno.test("introduce() fails with a ChannelError when the peer does not serve nz/introduce/1", async () => {
  await using a = await peer(), c = await peer();
  const session = await link(a, c);
  await rejects(
    introduce(session, a.identity, { publicKey: Identity.generate("x").publicKey, addresses: ["memory://x"] }),
    ChannelError,
  );
});

Deno.test("introduce() refuses to sign an introduction without an address", async () => {
  await using t = await trio();
  await rejects(introduce(t.toB, t.a.identity, { publicKey: t.c.identity.publicKey, addresses: [] }), RangeError);
});

Deno.test("an answer round-trips, a long reason is cut at a character boundary, unknown codes follow the 16 rule", () => {
  eql(decodeIntroductionAnswer(encodeIntroductionAnswer("refused", "no")), {
    code: 22,
    status: "refused",
    accepted: false,
    reason: "no",
  });
  const long = decodeIntroductionAnswer(encodeIntroductionAnswer("refused", "é".repeat(150)));
  equal(long.reason, "é".repeat(MAX_INTRODUCTION_REASON / 2));
  eql(decodeIntroductionAnswer(Uint8Array.of(7)), { code: 7, status: "unknown", accepted: true, reason: "" });
  eql(decodeIntroductionAnswer(Uint8Array.of(99)), { code: 99, status: "unknown", accepted: false, reason: "" });
  throws(() => decodeIntroductionAnswer(new Uint8Array(0)), SyntaxError);
  throws(() => decodeIntroductionAnswer(new Uint8Array(2 + MAX_INTRODUCTION_REASON)), SyntaxError);
  throws(() => decodeIntroductionAnswer(Uint8Array.of(0, 0xff)), SyntaxError);
});

Deno.test("decodeIntroductionAnswer() throws only SyntaxError, whatever the bytes", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    try {
      decodeIntroductionAnswer(bytes);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
    }
  }));
});

Deno.test("serveIntroductions() refuses an unknown policy", async () => {
  await using b = await peer();
  throws(
    () =>
      serveIntroductions(b.manager, { policy: "all" as IntroductionPolicy, self: () => b.nodeId, known: () => false }),
    RangeError,
  );
});
