import { deepStrictEqual as eql } from "node:assert/strict";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import type { CryptoProvider } from "../../../kernel/crypto/provider.ts";
import { selfTest } from "../../../kernel/crypto/self_test.ts";

Deno.test("selfTest() passes for both providers", () => {
  eql(selfTest(nativeProvider), true);
  eql(selfTest(nobleProvider), true);
});

Deno.test("selfTest() fails for a provider that returns wrong bytes", () => {
  const broken: CryptoProvider = {
    ...nobleProvider,
    ed25519Sign: (seed, message) => {
      const signature = nobleProvider.ed25519Sign(seed, message);
      signature[0] ^= 1;
      return signature;
    },
  };
  eql(selfTest(broken), false);
});

Deno.test("selfTest() fails, without throwing, for a provider that throws", () => {
  const broken: CryptoProvider = {
    ...nobleProvider,
    x25519: () => {
      throw new Error("Cannot load native code");
    },
  };
  eql(selfTest(broken), false);
});

Deno.test("selfTest() fails for a provider whose verify accepts anything", () => {
  eql(selfTest({ ...nobleProvider, ed25519Verify: () => true }), false);
});
