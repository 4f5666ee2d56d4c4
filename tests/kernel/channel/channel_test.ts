/**
 * Channels end to end over an in-memory FrameIO pair: streams both ways,
 * interleaving, chunking, flow control, rekeying, counter exhaustion,
 * keep-alive and idle timeout (with a fake clock), graceful and abrupt close,
 * stream reset.
 */

import { deepStrictEqual as eql, ok, rejects } from "node:assert/strict";
import { utf8 } from "../../../kernel/bytes.ts";
import { ChannelCipher } from "../../../kernel/channel/cipher.ts";
import { type ChannelOptions, openChannel } from "../../../kernel/channel/channel.ts";
import {
  AUTO_WINDOW_MAX,
  ErrorCode,
  FrameType,
  INITIAL_WINDOW,
  KIB,
  MAX_DATA_PAYLOAD,
  MIB,
} from "../../../kernel/channel/constants.ts";
import { ChannelError } from "../../../kernel/channel/errors.ts";
import {
  type ChannelRecord,
  codeOfFailure,
  decodeFrame,
  decodeGoAway,
  decodeU32,
  encodeFrame,
  encodeGoAway,
  encodeU32,
} from "../../../kernel/channel/frame.ts";
import type { Stream } from "../../../kernel/channel/stream.ts";
import { channelPair, FakeClock, pattern, sessionKeysPair, settle } from "./_channel_pair.ts";
import { scriptedFrameIO } from "./_frame_pair.ts";

/** Every message of `stream` until its FIN. */
async function collect(stream: Stream): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const m of stream) out.push(m);
  return out;
}

function isChannelError(code: ChannelError["code"], remote?: boolean) {
  return (e: unknown) => {
    ok(e instanceof ChannelError, `expected ChannelError, got ${e}`);
    eql(e.code, code, e.message);
    if (remote !== undefined) eql(e.remote, remote, e.message);
    return true;
  };
}

/** Whether `p` is still pending after queued work has run. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => done = true, () => done = true);
  await settle();
  return !done;
}

async function closeBoth(
  a: { channel: { close(r?: string): Promise<unknown> } },
  b: { channel: { closed: Promise<unknown> } },
) {
  await a.channel.close("test over");
  await b.channel.closed;
}

Deno.test("streams open both ways: the initiator's IDs are odd, the responder's even, messages flow both ways", async () => {
  const { a, b } = channelPair();
  const s1 = await a.channel.openStream(), s3 = await a.channel.openStream();
  const s2 = await b.channel.openStream();
  eql([s1.id, s3.id, s2.id], [1, 3, 2]);
  await s1.send(utf8("from A"));
  await s2.send(utf8("from B"));
  const r1 = (await b.channel.accept())!, r2 = (await a.channel.accept())!;
  eql([r1.id, r2.id], [1, 2]);
  eql(await r1.receive(), utf8("from A"));
  eql(await r2.receive(), utf8("from B"));
  await r1.send(utf8("reply"));
  eql(await s1.receive(), utf8("reply"));
  await closeBoth(a, b);
});

Deno.test("an empty message arrives as an empty message", async () => {
  const { a, b } = channelPair();
  const s = await a.channel.openStream();
  await s.send(new Uint8Array(0));
  await s.close();
  eql(await collect((await b.channel.accept())!), [new Uint8Array(0)]);
  await closeBoth(a, b);
});

Deno.test("many concurrent streams in both directions arrive complete and in order per stream", async () => {
  const { a, b } = channelPair();
  const STREAMS = 24, MESSAGES = 30;
  const sizes = (s: number, m: number) => ((s * 7919 + m * 104729) % 70_000) + (m % 3 === 0 ? 0 : 1);
  const sendAll = async (stream: Stream, seed: number) => {
    const sends = [];
    for (let m = 0; m < MESSAGES; m++) sends.push(stream.send(pattern(sizes(seed, m), seed * 1000 + m)));
    await Promise.all(sends);
    await stream.close();
  };
  const checkAll = async (stream: Stream, seed: number) => {
    const got = await collect(stream);
    eql(got.length, MESSAGES);
    for (let m = 0; m < MESSAGES; m++) eql(got[m], pattern(sizes(seed, m), seed * 1000 + m));
  };
  const work: Promise<void>[] = [];
  for (let i = 0; i < STREAMS; i++) {
    const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
    const out = await from.channel.openStream();
    work.push(sendAll(out, out.id));
    work.push(to.channel.accept().then((s) => checkAll(s!, s!.id)));
  }
  // Each accepted stream is read by the task that accepted it; the replies half stays empty.
  await Promise.all(work);
  eql(a.logs.filter((l) => l.error), []);
  await closeBoth(a, b);
});

Deno.test("a 5 MiB message is chunked into frames and reassembled exactly", async () => {
  const { a, b } = channelPair();
  const s = await a.channel.openStream();
  const big = pattern(5 * MIB, 9);
  const sent = s.send(big);
  const r = (await b.channel.accept())!;
  eql(await r.receive(), big);
  await sent;
  const least = Math.ceil((5 * MIB) / MAX_DATA_PAYLOAD);
  ok(a.channel.stats.framesSent >= least, `${a.channel.stats.framesSent} frames, expected >= ${least}`);
  await closeBoth(a, b);
});

Deno.test("send() refuses a message above maxMessageSize with a RangeError naming the limit", async () => {
  const { a, b } = channelPair({ a: { maxMessageSize: 1000 } });
  const s = await a.channel.openStream();
  await rejects(s.send(new Uint8Array(1001)), /length is 1001, expected <= 1000/);
  await s.send(new Uint8Array(1000));
  await closeBoth(a, b);
});

Deno.test("a message above the receiver's maxMessageSize resets that stream only, with message_too_large", async () => {
  const { a, b } = channelPair({ b: { maxMessageSize: 100 * KIB } });
  const big = await a.channel.openStream(), small = await a.channel.openStream();
  // Larger than B's window: A runs out of credit before it could seal it all, and the RESET ends the send.
  const failed = big.send(new Uint8Array(2 * MIB));
  await small.send(utf8("still here"));
  const rBig = (await b.channel.accept())!, rSmall = (await b.channel.accept())!;
  await rejects(rBig.receive(), isChannelError("message_too_large", false));
  await rejects(failed, isChannelError("message_too_large", true));
  eql(await rSmall.receive(), utf8("still here"));
  await closeBoth(a, b);
});

Deno.test("a receiver that does not read stops the sender after its window; reading lets everything through", async () => {
  const { a, b } = channelPair({ b: { initialWindow: INITIAL_WINDOW } });
  const s = await a.channel.openStream();
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 64; i++) sends.push(s.send(pattern(16 * KIB, i)));
  const r = (await b.channel.accept())!;
  await settle(20);
  const sent = a.channel.stats.bytesSent;
  ok(await pending(sends.at(-1)!), "the last send waits for credit");
  ok(sent < INITIAL_WINDOW + 32 * KIB, `sent ${sent} bytes, window ${INITIAL_WINDOW}`);
  await settle(20);
  eql(a.channel.stats.bytesSent, sent, "nothing more is sent while B does not read");
  for (let i = 0; i < 64; i++) eql(await r.receive(), pattern(16 * KIB, i));
  await Promise.all(sends);
  await closeBoth(a, b);
});

Deno.test("messages larger than the window complete on several streams at once, sharing the reassembly budget", async () => {
  // Budget = 2 x 1 MiB; four 1 MiB messages at once: two must wait for the budget the first two give back.
  const { a, b } = channelPair({ b: { initialWindow: INITIAL_WINDOW, maxMessageSize: MIB } });
  const streams = await Promise.all([0, 1, 2, 3].map(() => a.channel.openStream()));
  const sends = streams.map((s, i) => s.send(pattern(MIB, i)));
  // Read concurrently, as an application must: whole-message delivery cannot promise progress to a reader
  // that insists on one stream while others hold the budget.
  const reads = [];
  for (let i = 0; i < 4; i++) {
    const incoming = (await b.channel.accept())!;
    reads.push(incoming.receive().then((m) => eql(m, pattern(MIB, incoming.id >> 1))));
  }
  await Promise.all([...reads, ...sends]);
  await closeBoth(a, b);
});

Deno.test("rekeying after a small byte bound on both sides, mid-traffic, loses and stalls nothing", async () => {
  const { a, b } = channelPair({ both: { rekeyAfterBytes: 50 * KIB } });
  const N = 300;
  const pump = async (from: typeof a, to: typeof b, seed: number) => {
    const out = await from.channel.openStream();
    const reading = to.channel.accept().then((s) => collect(s!));
    const sends = [];
    for (let i = 0; i < N; i++) sends.push(out.send(pattern(1 + (i * 997) % 4000, seed + i)));
    await Promise.all(sends);
    await out.close();
    const got = await reading;
    eql(got.length, N);
    for (let i = 0; i < N; i++) eql(got[i], pattern(1 + (i * 997) % 4000, seed + i));
  };
  await Promise.all([pump(a, b, 0), pump(b, a, 5000)]);
  ok(a.channel.stats.rekeys >= 10, `A: ${a.channel.stats.rekeys} rekeys`);
  ok(b.channel.stats.rekeys >= 10, `B: ${b.channel.stats.rekeys} rekeys`);
  eql(a.channel.stats.rekeys, b.channel.stats.rekeys, "each side counts its own and the peer's rekeys");
  await closeBoth(a, b);
});

Deno.test("rekeying after a frame bound, and on time while idle", async () => {
  const { a, b, clock } = channelPair({ both: { rekeyAfterFrames: 3, keepAliveMs: 0, idleTimeoutMs: 0 } });
  const s = await a.channel.openStream();
  const r = b.channel.accept();
  for (let i = 0; i < 10; i++) await s.send(utf8(`m${i}`));
  const incoming = (await r)!;
  for (let i = 0; i < 10; i++) eql(await incoming.receive(), utf8(`m${i}`));
  const before = b.channel.stats.rekeys;
  ok(before >= 3, `${before} rekeys`);
  await clock.advance(121_000);
  ok(b.channel.stats.rekeys > before, "an idle direction rekeys after rekeyAfterMs");
  await s.send(utf8("after"));
  eql(await incoming.receive(), utf8("after"));
  await closeBoth(a, b);
});

Deno.test("a sender at its counter limit sends GOAWAY(COUNTER_EXHAUSTED) as its last frame and ends the channel", async () => {
  const { a, b } = channelPair({ both: { counterLimit: 12 } });
  const s = await a.channel.openStream();
  const r = b.channel.accept();
  const results = [];
  for (let i = 0; i < 20; i++) results.push(await s.send(utf8(`m${i}`)).then(() => "ok", (e) => e));
  const closedA = await a.channel.closed, closedB = await b.channel.closed;
  eql(closedA.error?.code, "counter_exhausted");
  eql(closedA.remote, false);
  eql(closedB.error?.code, "counter_exhausted");
  eql(closedB.remote, true);
  eql(a.channel.stats.framesSent, 12);
  ok(results.some((x) => x instanceof ChannelError), "sends after the end fail");
  // Everything sealed before the GOAWAY was delivered.
  const incoming = (await r)!;
  const got: Uint8Array[] = [];
  while (true) {
    try {
      got.push((await incoming.receive())!);
    } catch {
      break;
    }
  }
  eql(got, results.flatMap((x, i) => x === "ok" ? [utf8(`m${i}`)] : []));
});

Deno.test("a receiver ends the channel when the peer's counter passes its limit", async () => {
  const { a, b } = channelPair({ b: { counterLimit: 5 } });
  const s = await a.channel.openStream();
  for (let i = 0; i < 8; i++) await s.send(utf8(`m${i}`)).catch(() => {});
  const closedB = await b.channel.closed;
  eql(closedB.error?.code, "counter_exhausted");
  eql((await a.channel.closed).error?.code, "counter_exhausted");
  eql(b.logs.at(-1)?.error?.code, "counter_exhausted", "the end is logged with its reason");
});

Deno.test("keep-alive: after 10 s of silence a PING goes out and its PONG keeps the channel open", async () => {
  const { a, b, clock } = channelPair();
  await settle();
  const framesA = a.channel.stats.framesSent, framesB = b.channel.stats.framesSent;
  await clock.advance(9_000);
  eql(a.channel.stats.framesSent, framesA, "no PING before the interval");
  await clock.advance(2_000);
  ok(a.channel.stats.framesSent > framesA, "A pinged");
  ok(b.channel.stats.framesSent > framesB, "B answered");
  await clock.advance(120_000);
  eql(a.channel.stats.streams, 0);
  ok(await pending(a.channel.closed), "two minutes of silence with keep-alive: still open");
  await closeBoth(a, b);
});

Deno.test("idle timeout: a peer that sends nothing ends the channel with idle_timeout and a GOAWAY saying so", async () => {
  const clock = new FakeClock();
  const [keys] = sessionKeysPair();
  const sendKey = keys.sendKey.slice();
  const io = scriptedFrameIO([], { afterLast: "stall" });
  const logs: string[] = [];
  const channel = openChannel(io, keys, { clock, log: (m) => logs.push(m) });
  await clock.advance(29_000);
  ok(await pending(channel.closed));
  await clock.advance(2_000);
  const closed = await channel.closed;
  eql(closed.error?.code, "idle_timeout");
  ok(/received nothing for 30000 ms/.test(closed.reason), closed.reason);
  eql(logs.length, 1);
  // The frames it wrote: PINGs, then the GOAWAY.
  await settle();
  const cipher = new ChannelCipher(sendKey);
  const records = io.written.flatMap((f) => decodeFrame(cipher.open(f)));
  ok(records.some((r) => r.type === FrameType.PING));
  const last = records.at(-1)!;
  eql(last.type, FrameType.GOAWAY);
  eql(decodeGoAway(last.payload).code, ErrorCode.IDLE_TIMEOUT);
});

Deno.test("graceful close delivers every message sent before it, then ends the peer's streams with closed", async () => {
  const { a, b } = channelPair({ b: { initialWindow: INITIAL_WINDOW } });
  const s = await a.channel.openStream();
  const finished = await a.channel.openStream();
  const sends = [];
  for (let i = 0; i < 100; i++) sends.push(s.send(pattern(8 * KIB, i)));
  const lastSent = finished.send(utf8("last"));
  const finSent = finished.close();
  const closing = a.channel.close("maintenance");
  await rejects(a.channel.openStream(), isChannelError("closed"));
  await rejects(s.send(utf8("too late")), isChannelError("closed"));
  // B reads only now: the sends waiting for credit still complete before the GOAWAY.
  const r = (await b.channel.accept())!, rf = (await b.channel.accept())!;
  for (let i = 0; i < 100; i++) eql(await r.receive(), pattern(8 * KIB, i));
  eql(await rf.receive(), utf8("last"));
  eql(await rf.receive(), null);
  await rejects(r.receive(), isChannelError("closed"));
  eql(await closing, { reason: "maintenance", remote: false });
  eql(await b.channel.closed, { reason: "maintenance", remote: true });
  await Promise.all([...sends, lastSent, finSent]);
  eql(a.logs.filter((l) => l.error), []);
  eql(b.logs.filter((l) => l.error), []);
});

Deno.test("a graceful close whose sends cannot finish aborts after closeTimeoutMs", async () => {
  const { a, b, clock } = channelPair({ a: { closeTimeoutMs: 5_000 }, b: { initialWindow: INITIAL_WINDOW } });
  const s = await a.channel.openStream();
  // An unread message first: the next one is not at the head of B's queue, so only the window admits it.
  await s.send(utf8("unread"));
  const send = s.send(new Uint8Array(INITIAL_WINDOW + 1));
  send.catch(() => {});
  const closing = a.channel.close();
  await clock.advance(4_000);
  ok(await pending(closing));
  await clock.advance(2_000);
  eql((await closing).error?.code, "timeout");
  await rejects(send, isChannelError("timeout"));
  await b.channel.closed;
});

Deno.test("abort() rejects pending operations at once and the peer sees connection_lost", async () => {
  const { a, b } = channelPair({ b: { initialWindow: INITIAL_WINDOW } });
  const s = await a.channel.openStream();
  await s.send(utf8("unread"));
  const blocked = s.send(new Uint8Array(2 * INITIAL_WINDOW));
  const reading = s.receive();
  const accepting = a.channel.accept();
  await settle();
  a.channel.abort(new Error("operator said so"));
  await rejects(blocked, isChannelError("aborted"));
  await rejects(reading, isChannelError("aborted"));
  eql(await accepting, null);
  const closedA = await a.channel.closed;
  eql(closedA.error?.code, "aborted");
  ok(/operator said so/.test(closedA.reason));
  eql((await b.channel.closed).error?.code, "connection_lost");
  await rejects(a.channel.openStream(), isChannelError("closed"));
  eql(a.io.aborted, true);
});

Deno.test("the channel wipes both keys when it ends", async () => {
  const [keysA, keysB] = sessionKeysPair();
  const { framePair } = await import("./_frame_pair.ts");
  const [ioA, ioB] = framePair();
  const opts = { clock: new FakeClock(), log: () => {} };
  const a = openChannel(ioA, keysA, opts), b = openChannel(ioB, keysB, opts);
  await a.close();
  await b.closed;
  eql([keysA.sendKey, keysA.recvKey, keysB.sendKey, keysB.recvKey], Array(4).fill(new Uint8Array(32)));
});

Deno.test("a stream reset fails that stream's operations on both sides, drops its queued data, spares the others", async () => {
  const { a, b } = channelPair({ b: { initialWindow: INITIAL_WINDOW } });
  const s = await a.channel.openStream(), other = await a.channel.openStream();
  await s.send(utf8("one"));
  const queued = s.send(new Uint8Array(3 * INITIAL_WINDOW));
  const r = (await b.channel.accept())!, rOther = (await b.channel.accept())!;
  await settle();
  ok(await pending(queued), "the second message waits for credit");
  s.reset();
  await rejects(queued, isChannelError("cancel", false));
  await rejects(s.send(utf8("x")), isChannelError("cancel"));
  await rejects(s.receive(), isChannelError("cancel"));
  // RESET drops what B buffered, even the complete message it had not read.
  await rejects(r.receive(), isChannelError("cancel", true));
  await other.send(utf8("unaffected"));
  eql(await rOther.receive(), utf8("unaffected"));
  await settle();
  eql(a.channel.stats.streams, 1);
  eql(b.channel.stats.streams, 1);
  await closeBoth(a, b);
});

Deno.test("a stream reset before its OPEN left is never announced to the peer", async () => {
  const { a, b } = channelPair();
  const first = await a.channel.openStream();
  // A megabyte queued ahead keeps the next OPEN in the queue for a while.
  const big = first.send(new Uint8Array(MIB));
  const s = await a.channel.openStream();
  s.reset();
  const t = await a.channel.openStream();
  await t.send(utf8("t"));
  await big;
  eql((await b.channel.accept())!.id, 1);
  const r = (await b.channel.accept())!;
  eql(r.id, 5, "stream 3 was skipped");
  eql(await r.receive(), utf8("t"));
  await closeBoth(a, b);
});

Deno.test("half-close: after A's FIN, B still sends to A; the stream ends when both have closed", async () => {
  const { a, b } = channelPair();
  const s = await a.channel.openStream();
  await s.send(utf8("question"));
  await s.close();
  await rejects(s.send(utf8("more")), isChannelError("closed"));
  const r = (await b.channel.accept())!;
  eql(await r.receive(), utf8("question"));
  eql(await r.receive(), null);
  await r.send(utf8("answer"));
  await r.close();
  eql(await s.receive(), utf8("answer"));
  eql(await s.receive(), null);
  await settle();
  eql([a.channel.stats.streams, b.channel.stats.streams], [0, 0]);
  await closeBoth(a, b);
});

Deno.test("maxStreams: the peer's OPEN beyond the limit is refused, and openStream() refuses locally", async () => {
  const { a, b } = channelPair({ b: { maxStreams: 2 }, a: { maxStreams: 3 } });
  const streams = [await a.channel.openStream(), await a.channel.openStream(), await a.channel.openStream()];
  await rejects(a.channel.openStream(), isChannelError("refused_stream"));
  await rejects(streams[2].receive(), isChannelError("refused_stream", true));
  await streams[0].send(utf8("ok"));
  eql(await (await b.channel.accept())!.receive(), utf8("ok"));
  await closeBoth(a, b);
});

Deno.test("onStream receives the peer's streams instead of accept()", async () => {
  const got: Stream[] = [];
  const { a, b } = channelPair({ b: { onStream: (s) => got.push(s) } });
  const s = await a.channel.openStream();
  await s.send(utf8("x"));
  await settle();
  eql(got.map((x) => x.id), [1]);
  eql(await got[0].receive(), utf8("x"));
  await closeBoth(a, b);
});

Deno.test("receive() stops waiting when its signal aborts; the stream stays usable", async () => {
  const { a, b } = channelPair();
  const s = await a.channel.openStream();
  await s.send(utf8("first"));
  const r = (await b.channel.accept())!;
  eql(await r.receive(), utf8("first"));
  const controller = new AbortController();
  const waiting = r.receive({ signal: controller.signal });
  controller.abort(new Error("gave up"));
  await rejects(waiting, /gave up/);
  await s.send(utf8("second"));
  eql(await r.receive(), utf8("second"));
  await closeBoth(a, b);
});

Deno.test("after the peer's GOAWAY no stream can be opened", async () => {
  const { a, b } = channelPair();
  const closing = b.channel.close("bye");
  await a.channel.closed;
  await rejects(a.channel.openStream(), isChannelError("closed"));
  eql((await closing).reason, "bye");
});

Deno.test("a connection that ends without GOAWAY ends the channel with connection_lost", async () => {
  const { a, b } = channelPair();
  await b.io.close();
  const closed = await a.channel.closed;
  eql(closed.error?.code, "connection_lost");
  eql(closed.remote, true);
  await b.channel.closed;
});

Deno.test("the readable and writable adapters carry one message per chunk", async () => {
  const { a, b } = channelPair();
  const s = await a.channel.openStream();
  const writer = s.writable.getWriter();
  await writer.write(utf8("a"));
  await writer.write(utf8("b"));
  await writer.close();
  const chunks = await Array.fromAsync((await b.channel.accept())!.readable);
  eql(chunks, [utf8("a"), utf8("b")]);
  await closeBoth(a, b);
});

Deno.test("openChannel() refuses options out of range, naming them", () => {
  const [keys] = sessionKeysPair();
  const io = scriptedFrameIO([]);
  for (
    const [options, name] of [
      [{ initialWindow: 1000 }, "initialWindow"],
      [{ maxMessageSize: 32 * MIB }, "maxMessageSize"],
      [{ keepAliveMs: -1 }, "keepAliveMs"],
      [{ counterLimit: 1 }, "counterLimit"],
    ] as const
  ) {
    try {
      openChannel(io, keys, options);
      throw new Error("accepted");
    } catch (e) {
      ok(e instanceof RangeError && e.message.includes(name), String(e));
    }
  }
});

/** A peer played from sealed frames: the initiator's frames under `k1`, read by a responder channel. */
function scriptedPeer(frames: ChannelRecord[][], options: ChannelOptions = {}) {
  const k1 = crypto.getRandomValues(new Uint8Array(32)), k2 = crypto.getRandomValues(new Uint8Array(32));
  const sealer = new ChannelCipher(k1.slice());
  const io = scriptedFrameIO(
    frames.map((records) => {
      const plaintext = encodeFrame(records);
      return sealer.seal([plaintext], plaintext.length);
    }),
    { afterLast: "stall" },
  );
  const logs: string[] = [];
  const channel = openChannel(io, { initiator: false, sendKey: k2.slice(), recvKey: k1, handshakeHash: k2 }, {
    clock: new FakeClock(),
    log: (m) => logs.push(m),
    onStream: () => {}, // never read: complete messages stay queued
    ...options,
  });
  /** The records the channel under test sent back. */
  const replies = () => {
    const opener = new ChannelCipher(k2.slice());
    return io.written.flatMap((f) => decodeFrame(opener.open(f)));
  };
  return { channel, io, logs, replies };
}

const R = (type: number, streamId: number, payload: Uint8Array = new Uint8Array(0), flags = 0): ChannelRecord => ({
  type: type as ChannelRecord["type"],
  flags,
  streamId,
  payload,
});

Deno.test("each protocol violation by the peer ends the channel with its code, logged, and a GOAWAY saying so", async () => {
  const EOM = 1, FIN = 2;
  const chunk = new Uint8Array(60_000);
  const cases: [string, ChannelRecord[][], ChannelError["code"], RegExp][] = [
    [
      "DATA beyond the credit granted",
      [[R(FrameType.OPEN, 1)], ...Array.from({ length: 5 }, () => [R(FrameType.DATA, 1, chunk, EOM)])],
      "flow_control_error",
      /carries 60000 bytes, its credit is 22144/,
    ],
    [
      "credit above 2^31 - 1",
      [[R(FrameType.OPEN, 1), R(FrameType.WINDOW_UPDATE, 1, encodeU32(2 ** 31 - 1))]],
      "flow_control_error",
      /raises its credit/,
    ],
    ["OPEN with the wrong parity", [[R(FrameType.OPEN, 2)]], "protocol_error", /OPEN of stream 2, expected an odd ID/],
    [
      "OPEN of an ID already used",
      [[R(FrameType.OPEN, 3)], [R(FrameType.OPEN, 1)]],
      "protocol_error",
      /OPEN of stream 1/,
    ],
    [
      "DATA after FIN",
      [[R(FrameType.OPEN, 1), R(FrameType.DATA, 1, new Uint8Array(0), FIN), R(FrameType.DATA, 1, utf8("x"), EOM)]],
      "protocol_error",
      /DATA on stream 1 after its FIN/,
    ],
    [
      "FIN inside a message",
      [[R(FrameType.OPEN, 1), R(FrameType.DATA, 1, utf8("half")), R(FrameType.DATA, 1, new Uint8Array(0), FIN)]],
      "protocol_error",
      /FIN on stream 1 cuts a message short/,
    ],
    ["DATA on a stream never opened", [[R(FrameType.DATA, 5, utf8("x"))]], "protocol_error", /never opened/],
    ["RESET of our own stream never opened", [[R(FrameType.RESET, 2, encodeU32(6))]], "protocol_error", /never opened/],
    [
      "a frame after GOAWAY",
      [[R(FrameType.GOAWAY, 0, encodeGoAway(0, "bye"))], [R(FrameType.PING, 0, new Uint8Array(8))]],
      "protocol_error",
      /after the peer's GOAWAY/,
    ],
    [
      "GOAWAY with an error code",
      [[R(FrameType.GOAWAY, 0, encodeGoAway(ErrorCode.INTERNAL_ERROR, "disk on fire"))]],
      "internal_error",
      /the peer ended the channel: disk on fire/,
    ],
  ];
  for (const [name, frames, code, message] of cases) {
    const { channel, logs, replies } = scriptedPeer(frames, { initialWindow: INITIAL_WINDOW });
    const closed = await channel.closed;
    eql(closed.error?.code, code, `${name}: ${closed.reason}`);
    ok(message.test(closed.reason), `${name}: ${closed.reason}`);
    ok(closed.reason.startsWith("Channel (unnamed peer)"), closed.reason);
    eql(logs.length, 1, name);
    await settle();
    const last = replies().at(-1);
    if (closed.error?.remote) {
      ok(last?.type !== FrameType.GOAWAY, `${name}: no GOAWAY answers the peer's`);
    } else {
      eql(last?.type, FrameType.GOAWAY, name);
      eql(decodeGoAway(last!.payload).code, codeOfFailure(code), name);
    }
  }
});

Deno.test("records for a stream that ended are ignored, and a refused stream's ID counts as ended", async () => {
  const EOM = 1;
  const { channel, replies } = scriptedPeer([
    [R(FrameType.OPEN, 1), R(FrameType.OPEN, 3)], // maxStreams 1: stream 3 is refused
    [R(FrameType.DATA, 3, utf8("late"), EOM), R(FrameType.WINDOW_UPDATE, 3, encodeU32(10))],
    [R(FrameType.RESET, 1, encodeU32(ErrorCode.CANCEL))],
    [R(FrameType.DATA, 1, utf8("after reset"), EOM), R(FrameType.PING, 0, new Uint8Array(8).fill(7))],
  ], { maxStreams: 1 });
  await settle();
  ok(await pending(channel.closed), "still open");
  const sent = replies();
  ok(sent.some((r) => r.type === FrameType.RESET && r.streamId === 3 && decodeU32(r.payload) === 5), "REFUSED_STREAM");
  ok(sent.some((r) => r.type === FrameType.PONG && r.payload[0] === 7), "the PING after them is answered");
  channel.abort("done");
});

Deno.test("ping() resolves with the round-trip time once the peer answers, and rejects when the channel ends", async () => {
  const { a, b } = channelPair();
  const [rtt1, rtt2] = await Promise.all([a.channel.ping(), b.channel.ping()]);
  ok(rtt1 >= 0 && rtt2 >= 0);
  a.io.abort(new Error("cut"));
  await rejects(a.channel.ping(), ChannelError);
  await b.channel.closed;
  await rejects(b.channel.ping(), ChannelError);
});

/** Sends 64 KiB messages on `s` until they stop going out; returns how many bytes went out unread. */
async function pushUntilBlocked(s: Stream, limit: number): Promise<{ sent: number; sends: Promise<void>[] }> {
  const sends: Promise<void>[] = [];
  let sent = 0;
  for (let i = 0; i < limit / (64 * KIB); i++) {
    const send = s.send(new Uint8Array(64 * KIB));
    sends.push(send);
    send.then(() => sent += 64 * KIB, () => {});
  }
  await settle(40);
  return { sent, sends };
}

Deno.test("a stream whose reader keeps up grows its receive window; a reader that then stalls stops it there", async () => {
  // The fake clock stands still: every half window is read "within two round trips", as on a fast link.
  const { a, b } = channelPair();
  const s = await a.channel.openStream();
  const sending = (async () => {
    for (let i = 0; i < 256; i++) await s.send(new Uint8Array(64 * KIB));
  })();
  const r = (await b.channel.accept())!;
  for (let i = 0; i < 256; i++) await r.receive();
  await sending;
  const { sent, sends } = await pushUntilBlocked(s, 2 * AUTO_WINDOW_MAX);
  ok(sent > 4 * MIB, `the grown window let ${sent} bytes through unread, the default window is ${MIB}`);
  ok(sent <= AUTO_WINDOW_MAX, `${sent} bytes unread, at most AUTO_WINDOW_MAX ${AUTO_WINDOW_MAX}`);
  ok(await pending(sends.at(-1)!), "the sender waits for the stalled reader");
  s.reset();
  await closeBoth(a, b);
});

Deno.test("a reader that never reads, or reads slowly, keeps the default receive window", async () => {
  const { a, b, clock } = channelPair();
  const stalled = await a.channel.openStream();
  const first = await pushUntilBlocked(stalled, 4 * MIB);
  ok(first.sent <= MIB, `a stalled reader let ${first.sent} bytes through, window ${MIB}`);
  // A slow reader: a second between messages is no window-limited link.
  const slow = await a.channel.openStream();
  const sending = (async () => {
    for (let i = 0; i < 64; i++) await slow.send(new Uint8Array(64 * KIB));
  })();
  await b.channel.accept();
  const r = (await b.channel.accept())!;
  for (let i = 0; i < 64; i++) {
    await r.receive();
    await clock.advance(1_000);
  }
  await sending;
  const second = await pushUntilBlocked(slow, 4 * MIB);
  ok(second.sent <= MIB, `a slow reader let ${second.sent} bytes through, window ${MIB}`);
  stalled.reset();
  slow.reset();
  await closeBoth(a, b);
});
