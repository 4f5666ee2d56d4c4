import { deepStrictEqual as eql } from "node:assert/strict";
import fc from "fast-check";
import { createKeyedHmac } from "../../../kernel/crypto/keyed_hmac.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";

Deno.test("createKeyedHmac() gives the same bytes as both providers' hmacSha256, message after message", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 100 }),
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 200 }), { minLength: 1, maxLength: 5 }),
      (key, messages) => {
        const mac = createKeyedHmac(key);
        for (const m of messages) {
          const out = mac.digest(m);
          eql(out, nativeProvider.hmacSha256(key, m));
          eql(out, nobleProvider.hmacSha256(key, m));
        }
      },
    ),
    { numRuns: 200 },
  );
});
