import { deepStrictEqual as eql } from "node:assert/strict";
import { crypto, hkdf, hmacSha256, sha256 } from "../../../kernel/crypto/default.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";

Deno.test("crypto is the native provider on this runtime, since its self-test passes", () => {
  eql(crypto.name, "native");
});

Deno.test("sha256(), hmacSha256() and hkdf() match the reference provider", () => {
  const data = new TextEncoder().encode("abc");
  eql(sha256(data), nobleProvider.sha256(data));
  eql(hmacSha256(data, data), nobleProvider.hmacSha256(data, data));
  eql(hkdf(data, data, data, 77), nobleProvider.hkdf(data, data, data, 77));
});
