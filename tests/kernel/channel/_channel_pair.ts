/**
 * Two connected channels for tests: random session keys that match
 * (A.sendKey = B.recvKey and back), an in-memory FrameIO pair
 * (`_frame_pair.ts`), a fake clock both share, and the log lines each wrote.
 */

import { type Channel, type ChannelClock, type ChannelOptions, openChannel } from "../../../kernel/channel/channel.ts";
import type { ChannelError } from "../../../kernel/channel/errors.ts";
import type { FrameIO, SessionKeys } from "../../../kernel/channel/types.ts";
import { framePair, type FramePairOptions, type TestFrameIO } from "./_frame_pair.ts";

/** Matching session keys for an initiator and a responder. */
export function sessionKeysPair(): [SessionKeys, SessionKeys] {
  const k1 = crypto.getRandomValues(new Uint8Array(32));
  const k2 = crypto.getRandomValues(new Uint8Array(32));
  const h = crypto.getRandomValues(new Uint8Array(32));
  return [
    { initiator: true, sendKey: k1.slice(), recvKey: k2.slice(), handshakeHash: h.slice() },
    { initiator: false, sendKey: k2, recvKey: k1, handshakeHash: h },
  ];
}

/** A clock that moves only when told; `advance` runs the scheduled ticks. */
export class FakeClock implements ChannelClock {
  #now = 1_000;
  #ticks = new Set<() => void>();

  now(): number {
    return this.#now;
  }

  schedule(tick: () => void): () => void {
    this.#ticks.add(tick);
    return () => this.#ticks.delete(tick);
  }

  /** Moves time on by `ms` in steps of at most `step` ms, ticking after each and letting promises run. */
  async advance(ms: number, step = 1_000): Promise<void> {
    let left = ms;
    while (left > 0) {
      const d = Math.min(step, left);
      this.#now += d;
      left -= d;
      for (const t of [...this.#ticks]) t();
      await settle();
    }
  }

  /** How many channels are scheduled. */
  get scheduled(): number {
    return this.#ticks.size;
  }
}

/** Lets queued promise callbacks and zero-delay timers run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** One side of a pair: its channel, its FrameIO, and what it logged. */
export interface Side {
  channel: Channel;
  io: TestFrameIO;
  logs: { message: string; error?: ChannelError }[];
}

/** Options of {@linkcode channelPair}. */
export interface ChannelPairOptions {
  /** Options of both channels (`clock` and `log` are set by the pair). */
  both?: ChannelOptions;
  /** Options of the initiator only. */
  a?: ChannelOptions;
  /** Options of the responder only. */
  b?: ChannelOptions;
  /** Options of the FrameIO pair. */
  frames?: FramePairOptions;
  /** Wraps B's FrameIO (to tamper with what B reads). */
  wrapB?: (io: TestFrameIO) => FrameIO;
  /** The session keys (default: {@linkcode sessionKeysPair}). */
  keys?: [SessionKeys, SessionKeys];
}

/** Two channels connected in memory, with a shared {@linkcode FakeClock}. */
export function channelPair(options: ChannelPairOptions = {}): { a: Side; b: Side; clock: FakeClock } {
  const clock = new FakeClock();
  const [ioA, ioB] = framePair({ capacity: 64, ...options.frames });
  const [keysA, keysB] = options.keys ?? sessionKeysPair();
  const side = (
    io: TestFrameIO,
    keys: SessionKeys,
    own: ChannelOptions | undefined,
    name: string,
    wrap?: typeof options.wrapB,
  ): Side => {
    const logs: Side["logs"] = [];
    const channel = openChannel(wrap ? wrap(io) : io, keys, {
      peer: name,
      clock,
      log: (message, error) => logs.push({ message, error }),
      ...options.both,
      ...own,
    });
    return { channel, io, logs };
  };
  return {
    a: side(ioA, keysA, options.a, "A", undefined),
    b: side(ioB, keysB, options.b, "B", options.wrapB),
    clock,
  };
}

/** `n` bytes with a recognisable pattern derived from `seed`. */
export function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + (i >>> 8)) & 0xff;
  return out;
}
