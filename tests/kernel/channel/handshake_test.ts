import { deepStrictEqual as eql, notDeepStrictEqual, ok, rejects } from "node:assert/strict";
import fc from "fast-check";
import { fromHex as hex, toHex } from "../../../kernel/bytes.ts";
import { randomBytes } from "../../../kernel/crypto/random.ts";
import { HandshakeError, PeerMismatchError, VersionMismatchError } from "../../../kernel/channel/errors.ts";
import {
  createStaticKey,
  type HandshakeOptions,
  type HandshakeResult,
  MAX_HANDSHAKE_MESSAGE,
  performHandshake,
  PROLOGUE,
  type StaticKey,
} from "../../../kernel/channel/handshake.ts";
import { encodeAccept } from "../../../kernel/channel/handshake_payload.ts";
import { HandshakeState, PATTERN_XX } from "../../../kernel/channel/noise.ts";
import type { FrameIO } from "../../../kernel/channel/types.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import vectors from "../../../spec/vectors/nz_handshake_01.json" with { type: "json" };
import { framePair, scriptedFrameIO, type TestFrameIO } from "./_frame_pair.ts";

const alice = Identity.generate("alice");
const bob = Identity.generate("bob");
const carol = Identity.generate("carol");

type Options = Omit<HandshakeOptions, "role" | "identity">;

/** Runs both sides over a fresh frame pair; settles with both outcomes. */
async function run(
  init: { identity: HandshakeOptions["identity"] } & Options,
  resp: { identity: HandshakeOptions["identity"] } & Options,
) {
  const [a, b] = framePair();
  const [ri, rr] = await Promise.allSettled([
    performHandshake(a, { role: "initiator", ...init }),
    performHandshake(b, { role: "responder", ...resp }),
  ]);
  return { a, b, ri, rr };
}

function value(result: PromiseSettledResult<HandshakeResult>): HandshakeResult {
  if (result.status === "rejected") throw result.reason;
  return result.value;
}

function reason(result: PromiseSettledResult<HandshakeResult>): unknown {
  if (result.status === "fulfilled") throw new Error("Expected the handshake to fail");
  return result.reason;
}

function isFailure(reasonCode: string) {
  return (e: unknown) => e instanceof HandshakeError && e.reason === reasonCode;
}

// --- Success ---

Deno.test("performHandshake() authenticates both sides in exactly three frames and mirrors the keys", async () => {
  const { a, b, ri, rr } = await run({ identity: alice }, { identity: bob });
  const i = value(ri), r = value(rr);
  eql(i.peer, { publicKey: bob.publicKey, nodeId: bob.nodeId, did: bob.did });
  eql(r.peer, { publicKey: alice.publicKey, nodeId: alice.nodeId, did: alice.did });
  eql([i.version, r.version], [1, 1]);
  eql([i.features, r.features], [[], []]);
  eql(a.written.map((f) => f.length), [35, 161]);
  eql(b.written.map((f) => f.length), [198]);
  eql(i.keys.sendKey, r.keys.recvKey);
  eql(i.keys.recvKey, r.keys.sendKey);
  notDeepStrictEqual(i.keys.sendKey, i.keys.recvKey);
  eql(i.keys.handshakeHash, r.keys.handshakeHash);
  eql([i.keys.initiator, r.keys.initiator], [true, false]);
  eql([a.aborted, b.aborted, a.closed, b.closed], [false, false, false, false]);
});

Deno.test("performHandshake() gives fresh keys each time, with one static key per identity", async () => {
  const first = await run({ identity: alice }, { identity: bob });
  const second = await run({ identity: alice }, { identity: bob });
  notDeepStrictEqual(value(first.ri).keys.sendKey, value(second.ri).keys.sendKey);
  notDeepStrictEqual(value(first.ri).keys.handshakeHash, value(second.ri).keys.handshakeHash);
  eql(value(first.ri).remoteStaticKey, value(second.ri).remoteStaticKey);
});

Deno.test("performHandshake() tells each side the other's features", async () => {
  const { ri, rr } = await run(
    { identity: alice, features: ["relay", "dht/1", "relay"] },
    { identity: bob, features: ["nat.pmp"] },
  );
  eql(value(ri).features, ["nat.pmp"]);
  eql(value(rr).features, ["dht/1", "relay"]);
});

Deno.test("the highest common version wins on both sides", async () => {
  for (
    const [iv, rv, expected] of [
      [[1, 2, 3], [2, 3, 4], 3],
      [[3, 1], [1, 2], 1],
      [[1, 5, 9], [9, 5], 9],
      [[7], [1, 7, 8], 7],
    ] as const
  ) {
    const { ri, rr } = await run({ identity: alice, versions: iv }, { identity: bob, versions: rv });
    eql([value(ri).version, value(rr).version], [expected, expected], `${iv} / ${rv}`);
  }
});

Deno.test("expectedPeer accepts the peer's node ID in either case, its did:key or its public key", async () => {
  for (const expectedPeer of [bob.nodeId, bob.nodeId.toUpperCase(), bob.did, bob.publicKey]) {
    const { ri } = await run({ identity: alice, expectedPeer }, { identity: bob });
    eql(value(ri).peer.nodeId, bob.nodeId);
  }
  const { rr } = await run({ identity: alice }, { identity: bob, expectedPeer: alice.did });
  eql(value(rr).peer.nodeId, alice.nodeId);
});

Deno.test("many handshakes run at once over one frame pair each", async () => {
  const results = await Promise.all(
    Array.from({ length: 32 }, () => run({ identity: alice }, { identity: bob })),
  );
  for (const { ri, rr } of results) eql(value(ri).keys.handshakeHash, value(rr).keys.handshakeHash);
});

// --- Refusals: identity ---

Deno.test("expectedPeer mismatch: the initiator refuses with PeerMismatchError before sending its identity", async () => {
  const lines: string[] = [];
  const { a, b, ri, rr } = await run(
    { identity: alice, expectedPeer: carol.nodeId, log: (line) => lines.push(line) },
    { identity: bob },
  );
  const error = reason(ri);
  ok(error instanceof PeerMismatchError);
  eql(error.name, "PeerMismatchError");
  eql(error.reason, "peer_mismatch");
  eql(error.actual, bob.nodeId);
  ok(error.message.includes(bob.nodeId) && error.message.includes(carol.nodeId), error.message);
  eql(a.written.length, 1, "message 3, with alice's identity, was never sent");
  ok(a.aborted && a.abortReason === error);
  ok(reason(rr) instanceof HandshakeError, "the responder loses the connection");
  ok(b.aborted);
  eql(lines.length, 1);
  ok(lines[0].includes("(peer_mismatch)"), lines[0]);
});

Deno.test("expectedPeer mismatch on the responder side is PeerMismatchError too", async () => {
  const { a, b, ri, rr } = await run({ identity: carol }, { identity: bob, expectedPeer: alice.publicKey });
  ok(reason(rr) instanceof PeerMismatchError);
  ok(b.aborted);
  // The initiator's part ended with message 3; it learns of the refusal when the connection drops.
  eql(value(ri).peer.nodeId, bob.nodeId);
  await rejects(a.read(), /reset by peer/);
});

/** A static key for `identity` with a damaged signature. */
function badlySigned(identity: Identity): StaticKey {
  const good = createStaticKey(identity);
  const signature = good.signature.slice();
  signature[10] ^= 1;
  return { ...good, signature };
}

Deno.test("a wrong identity signature is refused with bad_signature, on either side", async () => {
  const fromInitiator = await run({ identity: alice, staticKey: badlySigned(alice) }, { identity: bob });
  ok(isFailure("bad_signature")(reason(fromInitiator.rr)));
  ok(/message 3 does not verify/.test((reason(fromInitiator.rr) as Error).message));
  const fromResponder = await run({ identity: alice }, { identity: bob, staticKey: badlySigned(bob) });
  ok(isFailure("bad_signature")(reason(fromResponder.ri)));
  eql(fromResponder.a.written.length, 1, "the initiator does not answer an unauthenticated responder");
});

Deno.test("a peer replaying another node's signed identity with its own static key: bad_signature", async () => {
  const alicesStatic = createStaticKey(alice);
  const mallorysStatic = createStaticKey(carol);
  // Mallory claims alice's identity and signature, but brings her own static key.
  const impostor = { publicKey: alice.publicKey, sign: () => new Uint8Array(64) };
  const forged: StaticKey = { ...mallorysStatic, identityKey: alice.publicKey, signature: alicesStatic.signature };
  const asInitiator = await run({ identity: impostor, staticKey: forged }, { identity: bob });
  ok(isFailure("bad_signature")(reason(asInitiator.rr)));
  const asResponder = await run({ identity: bob }, { identity: impostor, staticKey: forged });
  ok(isFailure("bad_signature")(reason(asResponder.ri)));
});

Deno.test("a peer replaying another node's static key and signature without its secret: decrypt", async () => {
  const alicesStatic = createStaticKey(alice);
  const impostor = { publicKey: alice.publicKey, sign: () => new Uint8Array(64) };
  // Alice's public static key and signature, but a secret that does not belong to them.
  const stolen: StaticKey = { ...alicesStatic, secretKey: randomBytes(32) };
  const asInitiator = await run({ identity: impostor, staticKey: stolen }, { identity: bob });
  ok(isFailure("decrypt")(reason(asInitiator.rr)));
  const asResponder = await run({ identity: bob }, { identity: impostor, staticKey: stolen });
  ok(isFailure("decrypt")(reason(asResponder.ri)));
});

// --- Refusals: versions ---

Deno.test("no common version: both sides fail with VersionMismatchError naming both lists", async () => {
  const { a, b, ri, rr } = await run({ identity: alice, versions: [2, 3] }, { identity: bob, versions: [1] });
  const i = reason(ri), r = reason(rr);
  ok(i instanceof VersionMismatchError && r instanceof VersionMismatchError);
  eql(i.name, "VersionMismatchError");
  eql([i.local, i.remote], [[2, 3], [1]]);
  eql([r.local, r.remote], [[1], [2, 3]]);
  eql(i.message, "No protocol version in common: this node speaks 2, 3, the peer 1");
  eql(a.written.length, 1);
  eql(b.written.length, 1, "the responder still answers, so the initiator learns why");
  ok(b.closed && a.aborted);
});

/** A responder that follows the protocol except for what `accept` puts in message 2. */
async function customResponder(
  io: FrameIO,
  accept: (versions: number[]) => { chosen: number; versions: number[] },
  prologue = PROLOGUE,
) {
  const staticKey = createStaticKey(bob);
  const hs = new HandshakeState({ pattern: PATTERN_XX, initiator: false, prologue, s: staticKey });
  const m1 = await io.read();
  hs.readMessage(m1!);
  const offered = [...m1!.subarray(33)].reduce<number[]>(
    (v, b, i, all) => i % 2 ? v : [...v, (b << 8) | all[i + 1]],
    [],
  );
  await io.write(hs.writeMessage(encodeAccept({
    ...accept(offered),
    identity: bob.publicKey,
    signature: staticKey.signature,
    features: [],
  })));
}

Deno.test("a responder that picks a lower or an unoffered version is refused with bad_version", async () => {
  for (
    const [choice, pattern] of [
      [{ chosen: 1, versions: [1, 2] }, /chose version 1, but the highest in common is 2/],
      [{ chosen: 9, versions: [9] }, /chose version 9, but the highest in common is none/],
    ] as const
  ) {
    const [a, b] = framePair();
    const initiator = performHandshake(a, { role: "initiator", identity: alice, versions: [1, 2] });
    await customResponder(b, () => ({ chosen: choice.chosen, versions: [...choice.versions] }));
    await rejects(initiator, (e) => isFailure("bad_version")(e) && pattern.test((e as Error).message));
    eql(a.written.length, 1);
  }
});

Deno.test("a peer with another prologue fails at message 2 with decrypt", async () => {
  const [a, b] = framePair();
  const initiator = performHandshake(a, { role: "initiator", identity: alice });
  await customResponder(b, (v) => ({ chosen: 1, versions: v }), new TextEncoder().encode("NZ-HANDSHAKE-02"));
  await rejects(
    initiator,
    (e) => isFailure("decrypt")(e) && /message 2: it does not authenticate/.test((e as Error).message),
  );
});

// --- Refusals: time, I/O, size, order ---

Deno.test("a stalled peer: the handshake times out within timeoutMs and aborts the connection", async () => {
  for (const role of ["initiator", "responder"] as const) {
    const io = scriptedFrameIO([], { afterLast: "stall" });
    const started = performance.now();
    await rejects(
      performHandshake(io, { role, identity: alice, timeoutMs: 50 }),
      (e) => isFailure("timeout")(e) && (e as Error).message === "Handshake timed out after 50 ms",
    );
    const elapsed = performance.now() - started;
    ok(elapsed >= 45 && elapsed < 1_000, `took ${elapsed} ms`);
    ok(io.aborted && isFailure("timeout")(io.abortReason));
  }
});

Deno.test("a peer that stalls after message 1 times out too", async () => {
  const [a] = framePair(); // nobody answers on the other end
  await rejects(performHandshake(a, { role: "initiator", identity: alice, timeoutMs: 30 }), isFailure("timeout"));
  eql(a.written.length, 1);
});

Deno.test("the caller's signal aborts a pending handshake with aborted", async () => {
  const io = scriptedFrameIO([], { afterLast: "stall" });
  const controller = new AbortController();
  const pending = performHandshake(io, { role: "responder", identity: bob, signal: controller.signal });
  controller.abort(new Error("node stopping"));
  await rejects(pending, (e) => isFailure("aborted")(e) && /node stopping/.test((e as Error).message));
  const already = AbortSignal.abort();
  await rejects(
    performHandshake(scriptedFrameIO([]), { role: "initiator", identity: alice, signal: already }),
    isFailure("aborted"),
  );
});

Deno.test("a peer that closes early: closed; a broken connection: io", async () => {
  await rejects(
    performHandshake(scriptedFrameIO([]), { role: "responder", identity: bob }),
    (e) => isFailure("closed")(e) && /before handshake message 1/.test((e as Error).message),
  );
  const broken: FrameIO = {
    maxFrameSize: 65_535,
    read: () => Promise.reject(new Error("Connection reset by peer")),
    write: () => Promise.resolve(),
    close: () => Promise.resolve(),
    abort: () => {},
  };
  await rejects(
    performHandshake(broken, { role: "initiator", identity: alice }),
    (e) => isFailure("io")(e) && /message 2: Connection reset by peer/.test((e as Error).message),
  );
});

Deno.test("a handshake frame over 4096 bytes is refused with oversized before any processing", async () => {
  const io = scriptedFrameIO([new Uint8Array(MAX_HANDSHAKE_MESSAGE + 1)]);
  await rejects(performHandshake(io, { role: "responder", identity: bob }), isFailure("oversized"));
  eql(io.written.length, 0);
});

Deno.test("a low-order ephemeral key in message 1 is refused with low_order_key", async () => {
  const m1 = new Uint8Array(35);
  m1.set([1, 0, 1], 32); // e = 0 (low order), Offer [1]
  await rejects(
    performHandshake(scriptedFrameIO([m1]), { role: "responder", identity: bob }),
    isFailure("low_order_key"),
  );
});

Deno.test("invalid options throw before any I/O and leave the connection alone", async () => {
  const io = scriptedFrameIO([]);
  await rejects(performHandshake(io, { role: "initiator", identity: alice, versions: [] }), RangeError);
  await rejects(performHandshake(io, { role: "initiator", identity: alice, features: ["UPPER"] }), RangeError);
  await rejects(performHandshake(io, { role: "initiator", identity: alice, expectedPeer: "bob" }), SyntaxError);
  await rejects(performHandshake(io, { role: "initiator", identity: alice, timeoutMs: 0 }), RangeError);
  await rejects(
    performHandshake(io, { role: "initiator", identity: alice, staticKey: createStaticKey(bob) }),
    TypeError,
  );
  await rejects(
    performHandshake(scriptedFrameIO([], { maxFrameSize: 1024 }), { role: "initiator", identity: alice }),
    RangeError,
  );
  eql([io.written.length, io.aborted], [0, false]);
});

// --- A recorded transcript, replayed, reordered and mutated ---

const V = vectors.vectors[0];
const M = V.messages.map(hex); // [m1, m2, m3]

function recordedOptions(side: "initiator" | "responder", fixedEphemeral = true): HandshakeOptions {
  const v = V[side];
  const identity = Identity.fromRecord({
    name: side,
    created: 0,
    seed: hex(v.identitySeed),
    x25519Secret: new Uint8Array(32),
  });
  return {
    role: side,
    identity,
    staticKey: createStaticKey(identity, { secretKey: hex(v.staticSecret) }),
    ephemeralSecret: fixedEphemeral ? hex(v.ephemeralSecret) : undefined,
    versions: v.versions,
    timeoutMs: 2_000,
  };
}

Deno.test("the recorded transcript replays: the victim reproduces it with the same ephemeral", async () => {
  const r = await performHandshake(scriptedFrameIO([M[0], M[2]]), recordedOptions("responder"));
  eql(toHex(r.keys.handshakeHash), V.handshakeHash);
  const i = await performHandshake(scriptedFrameIO([M[1]]), recordedOptions("initiator"));
  eql(toHex(i.keys.handshakeHash), V.handshakeHash);
});

Deno.test("a replayed initiator transcript fails against a responder with a fresh ephemeral: decrypt", async () => {
  const io = scriptedFrameIO([M[0], M[2]]);
  await rejects(performHandshake(io, recordedOptions("responder", false)), isFailure("decrypt"));
  eql(io.written.length, 1);
});

Deno.test("out-of-order and duplicated messages are refused with HandshakeError", async () => {
  const cases: [string, "initiator" | "responder", Uint8Array[], string][] = [
    ["message 3 first", "responder", [M[2], M[0]], "malformed"],
    ["message 1 twice", "responder", [M[0], M[0]], "malformed"],
    ["message 2 reflected to the responder", "responder", [M[0], M[1]], "decrypt"],
    ["message 1 reflected to the initiator", "initiator", [M[0]], "malformed"],
    ["message 3 in place of message 2", "initiator", [M[2]], "decrypt"],
    ["message 2 and then more", "responder", [M[1], M[2]], "malformed"],
  ];
  for (const [name, role, frames, code] of cases) {
    const io = scriptedFrameIO(frames);
    await rejects(performHandshake(io, recordedOptions(role)), (e) => {
      ok(isFailure(code)(e), `${name}: ${e}`);
      return true;
    });
    ok(io.aborted, name);
  }
});

/** The victim side, and the frames it reads, for a mutation of message `index`. */
function victimOf(index: number, mutatedMessage: Uint8Array): [HandshakeOptions, Uint8Array[]] {
  if (index === 1) return [recordedOptions("initiator"), [mutatedMessage]];
  return [recordedOptions("responder"), index === 0 ? [mutatedMessage, M[2]] : [M[0], mutatedMessage]];
}

const mutation = fc.integer({ min: 0, max: 2 }).chain((index) => {
  const m = M[index];
  return fc.oneof(
    fc.integer({ min: 0, max: m.length * 8 - 1 }).map((bit) => {
      const out = m.slice();
      out[bit >> 3] ^= 1 << (bit & 7);
      return { index, kind: `bit ${bit} flipped`, bytes: out };
    }),
    fc.integer({ min: 0, max: m.length - 1 }).map((n) => ({ index, kind: `truncated to ${n}`, bytes: m.slice(0, n) })),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((tail) => {
      const out = new Uint8Array(m.length + tail.length);
      out.set(m);
      out.set(tail, m.length);
      return { index, kind: `extended by ${tail.length}`, bytes: out };
    }),
    fc.tuple(fc.nat({ max: m.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 16 }))
      .filter(([at, bytes]) => bytes.some((b, i) => at + i < m.length && m[at + i] !== b))
      .map(([at, bytes]) => {
        const out = m.slice();
        out.set(bytes.subarray(0, m.length - at), at);
        return { index, kind: `overwritten at ${at}`, bytes: out };
      }),
  );
});

Deno.test("fuzz: a flipped, truncated, extended or overwritten message is always refused with HandshakeError", async () => {
  await fc.assert(
    fc.asyncProperty(mutation, async ({ index, kind, bytes }) => {
      const [options, frames] = victimOf(index, bytes);
      const io = scriptedFrameIO(frames);
      try {
        await performHandshake(io, options);
      } catch (error) {
        if (!(error instanceof HandshakeError)) throw new Error(`message ${index + 1} ${kind}: ${error}`);
        ok(io.aborted && io.abortReason === error);
        return;
      }
      throw new Error(`message ${index + 1} ${kind} was accepted`);
    }),
    { numRuns: 300 },
  );
});

Deno.test("fuzz: any sequence of recorded messages succeeds only in the protocol's order", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom("initiator" as const, "responder" as const),
      fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 4 }),
      async (role, order) => {
        const io = scriptedFrameIO(order.map((i) => M[i]));
        const valid = role === "initiator" ? order[0] === 1 : order[0] === 0 && order[1] === 2;
        try {
          await performHandshake(io, recordedOptions(role));
        } catch (error) {
          if (!(error instanceof HandshakeError)) throw error;
          ok(!valid, `${role} refused the valid order ${order}: ${error.message}`);
          return;
        }
        ok(valid, `${role} accepted the order ${order}`);
      },
    ),
    { numRuns: 200 },
  );
});

// --- The in-memory pair itself ---

Deno.test("framePair() applies backpressure once a direction holds `capacity` frames", async () => {
  const [a, b] = framePair({ capacity: 2 });
  await a.write(Uint8Array.of(1));
  await a.write(Uint8Array.of(2));
  let third = false;
  const pending = a.write(Uint8Array.of(3)).then(() => third = true);
  await Promise.resolve();
  eql(third, false);
  eql(await b.read(), Uint8Array.of(1));
  await pending;
  eql(third, true);
  await a.close();
  eql([await b.read(), await b.read(), await b.read()], [Uint8Array.of(2), Uint8Array.of(3), null]);
});

Deno.test("framePair(): abort() rejects the peer's reads and writes, and frames over maxFrameSize are refused", async () => {
  const [a, b]: [TestFrameIO, TestFrameIO] = framePair({ maxFrameSize: 4 });
  await rejects(a.write(new Uint8Array(5)), RangeError);
  const read = b.read();
  a.abort(new Error("bye"));
  await rejects(read, /reset by peer/);
  await rejects(b.write(Uint8Array.of(1)), /reset by peer/);
  await rejects(a.read(), /bye/);
  a.abort(); // twice is harmless
});
