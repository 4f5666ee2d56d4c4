/**
 * Hostile input for NZ-CHANNEL-01, with fast-check: the decoders alone, then
 * live channels whose incoming frames are truncated, oversized, bit-flipped,
 * reordered, replayed, dropped, cut off, replaced by random bytes, or
 * replaced by well-sealed frames of random records. Every case must end the
 * one channel with a logged ChannelError (or, for a well-sealed frame, leave
 * it working), never throw elsewhere and never hang; a second channel in the
 * same process carries on.
 */

import { deepStrictEqual as eql, ok } from "node:assert/strict";
import fc from "fast-check";
import { utf8 } from "../../../kernel/bytes.ts";
import { ChannelCipher } from "../../../kernel/channel/cipher.ts";
import { FrameType, HEADER_LEN, MAX_FRAME_LEN } from "../../../kernel/channel/constants.ts";
import { ChannelError } from "../../../kernel/channel/errors.ts";
import { type ChannelRecord, decodeFrame, encodeFrame } from "../../../kernel/channel/frame.ts";
import type { Stream } from "../../../kernel/channel/stream.ts";
import type { FrameIO } from "../../../kernel/channel/types.ts";
import { IntegrityError } from "../../../kernel/errors.ts";
import { channelPair, pattern, sessionKeysPair } from "./_channel_pair.ts";

const RUNS = 400;

// ---------------------------------------------------------------------------
// Decoders alone
// ---------------------------------------------------------------------------

/** Records with plausible fields: known and unknown types, any flags, small stream IDs, short payloads. */
const recordArb: fc.Arbitrary<ChannelRecord> = fc.record({
  type: fc.integer({ min: 0, max: 9 }) as fc.Arbitrary<ChannelRecord["type"]>,
  flags: fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.integer({ min: 0, max: 255 })),
  streamId: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(0xffff_ffff)),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 12 }),
    fc.constantFrom(new Uint8Array(4), new Uint8Array([0, 0, 0, 1]), new Uint8Array(8), new Uint8Array(0)),
  ),
});

Deno.test("decodeFrame() throws nothing but ChannelError, for random bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeFrame(bytes);
      } catch (e) {
        ok(e instanceof ChannelError, String(e));
        ok(/^Cannot decode frame: /.test(e.message), e.message);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("decodeFrame() returns exactly the records encoded, or a ChannelError, for random records", () => {
  fc.assert(
    fc.property(fc.array(recordArb, { minLength: 1, maxLength: 6 }), (records) => {
      const plaintext = encodeFrame(records);
      try {
        const decoded = decodeFrame(plaintext);
        eql(decoded.map((r) => ({ ...r, payload: r.payload.slice() })), records.map((r) => ({ ...r })));
      } catch (e) {
        ok(e instanceof ChannelError, String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("decodeFrame() refuses every truncation of a valid frame with frame_size_error", () => {
  const plaintext = encodeFrame([
    { type: FrameType.DATA, flags: 1, streamId: 1, payload: utf8("hello") },
    { type: FrameType.PING, flags: 0, streamId: 0, payload: new Uint8Array(8) },
  ]);
  for (let n = 1; n < plaintext.length; n++) {
    if (n === HEADER_LEN + 5) continue; // a whole first record is a valid frame
    try {
      decodeFrame(plaintext.subarray(0, n));
      throw new Error(`accepted ${n} bytes`);
    } catch (e) {
      ok(e instanceof ChannelError && e.code === "frame_size_error", `${n}: ${e}`);
    }
  }
});

Deno.test("ChannelCipher.open() throws only IntegrityError for random or mutated frames, and keeps its counter", () => {
  const key = new Uint8Array(32).fill(1);
  const sealed = new ChannelCipher(key.slice()).seal([utf8("a frame")], 7);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 100 }),
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([i, bit]) => {
          const f = sealed.slice();
          f[i % f.length] ^= 1 << bit;
          return f;
        }),
      ),
      (frame) => {
        const cipher = new ChannelCipher(key.slice());
        try {
          cipher.open(frame);
          throw new Error("opened a forged frame");
        } catch (e) {
          ok(e instanceof IntegrityError, String(e));
        }
        eql(cipher.counter, 0);
        eql(cipher.open(sealed), utf8("a frame"), "the right frame still opens");
      },
    ),
    { numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------
// Live channels
// ---------------------------------------------------------------------------

type Mutation =
  | { kind: "flip"; at: number; pos: number; bit: number }
  | { kind: "truncate"; at: number; keep: number }
  | { kind: "extend"; at: number; extra: Uint8Array }
  | { kind: "oversize"; at: number; size: number }
  | { kind: "swap"; at: number }
  | { kind: "replay"; at: number }
  | { kind: "drop"; at: number }
  | { kind: "cut"; at: number }
  | { kind: "random"; at: number; bytes: Uint8Array }
  | { kind: "forge"; at: number; records: ChannelRecord[] }
  | { kind: "forgeBytes"; at: number; plaintext: Uint8Array };

const at = fc.integer({ min: 0, max: 14 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip"), at, pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("truncate"), at, keep: fc.nat() }),
  fc.record({ kind: fc.constant("extend"), at, extra: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({
    kind: fc.constant("oversize"),
    at,
    size: fc.integer({ min: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN + 5000 }),
  }),
  fc.record({ kind: fc.constant("swap"), at }),
  fc.record({ kind: fc.constant("replay"), at }),
  fc.record({ kind: fc.constant("drop"), at }),
  fc.record({ kind: fc.constant("cut"), at }),
  fc.record({ kind: fc.constant("random"), at, bytes: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ kind: fc.constant("forge"), at, records: fc.array(recordArb, { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant("forgeBytes"), at, plaintext: fc.uint8Array({ minLength: 1, maxLength: 100 }) }),
) as fc.Arbitrary<Mutation>;

/**
 * What B reads: A's frames with one mutation applied at frame `m.at`.
 * `changed` says whether B's sequence differs from what A sent; forged
 * frames are sealed with A's key and the right counter (no rekey happens
 * in these runs), so they authenticate.
 */
function tamper(io: FrameIO, m: Mutation, sendKeyOfA: Uint8Array): FrameIO & { changed: boolean; forged: boolean } {
  let index = 0;
  const held: (Uint8Array | null)[] = [];
  const wrapped = {
    maxFrameSize: io.maxFrameSize,
    changed: false,
    forged: false,
    write: (frame: Uint8Array) => io.write(frame),
    close: () => io.close(),
    abort: (reason?: unknown) => io.abort(reason),
    async read(): Promise<Uint8Array | null> {
      if (held.length > 0) return held.shift()!;
      const frame = await io.read();
      if (frame === null) return null;
      const i = index++;
      if (i !== m.at) return frame;
      switch (m.kind) {
        case "flip": {
          const f = frame.slice();
          f[m.pos % f.length] ^= 1 << m.bit;
          wrapped.changed = true;
          return f;
        }
        case "truncate":
          wrapped.changed = true;
          return frame.subarray(0, m.keep % frame.length);
        case "extend": {
          wrapped.changed = true;
          const f = new Uint8Array(frame.length + m.extra.length);
          f.set(frame);
          f.set(m.extra, frame.length);
          return f;
        }
        case "oversize": {
          wrapped.changed = true;
          const f = new Uint8Array(m.size);
          f.set(frame);
          return f;
        }
        case "swap": {
          const next = await io.read();
          if (next === null) return frame; // nothing to swap with: unchanged
          wrapped.changed = true;
          held.push(frame);
          return next;
        }
        case "replay":
          wrapped.changed = true;
          held.push(frame.slice());
          return frame;
        case "drop":
          wrapped.changed = true;
          return await io.read();
        case "cut":
          wrapped.changed = true;
          return null;
        case "random":
          wrapped.changed = true;
          return m.bytes;
        case "forge":
        case "forgeBytes": {
          wrapped.forged = true;
          const plaintext = m.kind === "forge" ? encodeFrame(m.records) : m.plaintext;
          return new ChannelCipher(sendKeyOfA.slice(), { counter: i }).seal([plaintext], plaintext.length);
        }
      }
    },
  };
  return wrapped;
}

/** Resolves with `p`, or rejects when it has not settled within `ms` of real time (a hang). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`hang: ${what}`)), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads every stream B accepts until it ends, swallowing the errors a broken channel gives. */
function drain(stream: Stream): void {
  (async () => {
    for await (const _ of stream) { /* discard */ }
  })().catch(() => {});
}

Deno.test("tampered frames end the one channel with a logged ChannelError; a second channel carries on", async () => {
  const bystander = channelPair();
  const bystanderStream = await bystander.a.channel.openStream();
  const bystanderIn = bystander.b.channel.accept();
  const seen = new Set<string>();

  await fc.assert(
    fc.asyncProperty(mutationArb, async (m) => {
      const keys = sessionKeysPair();
      const sendKeyOfA = keys[0].sendKey.slice();
      let tampered!: ReturnType<typeof tamper>;
      const { a, b } = channelPair({
        keys,
        wrapB: (io) => tampered = tamper(io, m, sendKeyOfA),
        b: { onStream: drain },
      });
      // A's traffic: two streams, small and multi-frame messages, both half-closed, then a graceful close.
      const traffic = (async () => {
        const s1 = await a.channel.openStream(), s2 = await a.channel.openStream();
        await Promise.all([
          s1.send(utf8("hello")),
          s1.send(pattern(70_000, 1)),
          s2.send(new Uint8Array(0)),
          s1.send(pattern(200_000, 2)),
          s2.send(utf8("bye")),
        ]);
        await Promise.all([s1.close(), s2.close()]);
        await a.channel.close("done");
      })().catch(() => {});

      const [closedA, closedB] = await within(
        Promise.all([a.channel.closed, b.channel.closed, traffic]),
        5_000,
        JSON.stringify({ ...m, kind: m.kind }),
      );
      void closedA;
      if (tampered.changed) {
        // Any change to the authenticated sequence is detected.
        ok(closedB.error instanceof ChannelError, `${m.kind}: B ended with ${JSON.stringify(closedB)}`);
        seen.add(`${m.kind}:${closedB.error.code}`);
        ok(b.logs.some((l) => l.error === closedB.error), "the end is logged with its reason");
        ok(b.logs.at(-1)!.message.includes("B"), "the log names the peer");
      } else if (closedB.error) {
        ok(closedB.error instanceof ChannelError, String(closedB.error));
        seen.add(`${m.kind}:${closedB.error.code}`);
      }

      // The bystander is untouched.
      await bystanderStream.send(utf8("still fine"));
      eql(await (await bystanderIn)!.receive(), utf8("still fine"));
    }),
    { numRuns: RUNS },
  );

  eql(bystander.a.channel.stats.streams, 1);
  await bystander.a.channel.close();
  eql((await bystander.b.channel.closed).error, undefined);
  // Each family of mutation was exercised and detected.
  for (const kind of ["flip", "truncate", "oversize", "replay", "drop", "random"]) {
    ok([...seen].some((s) => s.startsWith(`${kind}:`)), `no ${kind} case ran: ${[...seen]}`);
  }
});

Deno.test("a replayed frame is refused with auth_failed, a reordered pair too, an oversized frame with frame_size_error", async () => {
  const cases: [Mutation, ChannelError["code"]][] = [
    [{ kind: "replay", at: 1 }, "auth_failed"],
    [{ kind: "swap", at: 0 }, "auth_failed"],
    [{ kind: "oversize", at: 2, size: MAX_FRAME_LEN + 1 }, "frame_size_error"],
    [{ kind: "truncate", at: 1, keep: 27 }, "frame_size_error"],
    [{ kind: "cut", at: 2 }, "connection_lost"],
    [
      { kind: "forge", at: 1, records: [{ type: FrameType.DATA, flags: 0, streamId: 99, payload: new Uint8Array(1) }] },
      "protocol_error",
    ],
  ];
  for (const [m, code] of cases) {
    const keys = sessionKeysPair();
    const sendKeyOfA = keys[0].sendKey.slice();
    const { a, b } = channelPair({ keys, wrapB: (io) => tamper(io, m, sendKeyOfA), b: { onStream: drain } });
    const s = await a.channel.openStream();
    for (let i = 0; i < 5; i++) await s.send(pattern(1000, i)).catch(() => {});
    await a.channel.close().catch(() => {});
    const closedB = await within(b.channel.closed, 5_000, m.kind);
    eql(closedB.error?.code, code, `${m.kind}: ${closedB.reason}`);
    await a.channel.closed;
  }
});
