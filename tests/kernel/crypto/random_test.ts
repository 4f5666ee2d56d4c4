import { deepStrictEqual as eql, notDeepStrictEqual, throws } from "node:assert/strict";
import { randomBytes } from "../../../kernel/crypto/random.ts";

Deno.test("randomBytes() returns the requested length, past the 65536-byte getRandomValues quota", () => {
  for (const n of [0, 1, 32, 65536, 65537, 200_000]) eql(randomBytes(n).length, n);
});

Deno.test("randomBytes() fills every chunk", () => {
  const bytes = randomBytes(3 * 65536 + 5);
  for (let offset = 0; offset < bytes.length; offset += 65536) {
    const chunk = bytes.subarray(offset, offset + 65536);
    eql(chunk.some((b) => b !== 0), true, `chunk at ${offset}`);
  }
  eql(bytes.subarray(-5).some((b) => b !== 0), true);
});

Deno.test("randomBytes() returns different bytes each call", () => {
  notDeepStrictEqual(randomBytes(32), randomBytes(32));
});

Deno.test("randomBytes() rejects negative, fractional and non-number lengths", () => {
  throws(() => randomBytes(-1), RangeError);
  throws(() => randomBytes(1.5), RangeError);
  throws(() => randomBytes(Number.NaN), RangeError);
  throws(() => randomBytes("8" as unknown as number), TypeError);
});
