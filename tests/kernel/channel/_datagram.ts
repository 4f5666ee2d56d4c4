/**
 * Helpers of the datagram-mode tests: a reproducible byte pattern, and
 * reading a session's stream until a length.
 */

import type { DatagramSession } from "../../../kernel/channel/datagram_session.ts";

/** Reads `length` bytes from `session`; throws when the stream ends first. */
export async function readAll(session: DatagramSession, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const chunk = await session.read();
    if (chunk === null) throw new Error(`ended after ${at} of ${length} bytes`);
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** `length` pseudo-random bytes, the same for the same `seed` (a linear congruential generator). */
export function pattern(length: number, seed = 7): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
