import { deepStrictEqual as eql, ok } from "node:assert/strict";
import { ed25519, ED25519_TORSION_SUBGROUP } from "@noble/curves/ed25519.js";
import { fromHex, toHex } from "../../../kernel/bytes.ts";
import { isWeakEd25519Key, nativeProvider, SMALL_ORDER_ENCODINGS } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import { KeyCache } from "../../../kernel/crypto/_key_cache.ts";

Deno.test("KeyCache evicts the least recently used entry", () => {
  const cache = new KeyCache<number>(2);
  let built = 0;
  const make = () => ++built;
  eql(cache.get("a", make), 1);
  eql(cache.get("b", make), 2);
  eql(cache.get("a", make), 1);
  eql(cache.get("c", make), 3);
  eql(cache.size, 2);
  eql(cache.get("a", make), 1);
  eql(cache.get("b", make), 4);
});

Deno.test("nativeProvider signs and agrees correctly after more keys than its caches hold", () => {
  const seeds = Array.from({ length: 200 }, (_, i) => new Uint8Array(32).fill(i + 1));
  const message = new TextEncoder().encode("cache");
  for (const seed of [...seeds, ...seeds.slice(0, 10)]) {
    eql(nativeProvider.ed25519Sign(seed, message), nobleProvider.ed25519Sign(seed, message));
    eql(nativeProvider.x25519PublicKey(seed), nobleProvider.x25519PublicKey(seed));
  }
});

Deno.test("nativeProvider returns copies that callers may wipe without corrupting its caches", () => {
  const seed = new Uint8Array(32).fill(0x33);
  const expected = nobleProvider.ed25519PublicKey(seed);
  nativeProvider.ed25519PublicKey(seed).fill(0);
  nativeProvider.x25519PublicKey(seed).fill(0);
  eql(nativeProvider.ed25519PublicKey(seed), expected);
  eql(nativeProvider.x25519PublicKey(seed), nobleProvider.x25519PublicKey(seed));
});

Deno.test("nativeProvider keys a secret by its content, so a wiped and refilled array is not a stale hit", () => {
  const seed = new Uint8Array(32).fill(0x44);
  const first = nativeProvider.ed25519PublicKey(seed);
  seed.fill(0x45);
  eql(nativeProvider.ed25519PublicKey(seed), nobleProvider.ed25519PublicKey(seed));
  seed.fill(0x44);
  eql(nativeProvider.ed25519PublicKey(seed), first);
});

Deno.test("the small-order blocklist covers exactly noble's 8-torsion subgroup, sign bit cleared", () => {
  const cleared = new Set(ED25519_TORSION_SUBGROUP.map((hex: string) => {
    const b = fromHex(hex);
    b[31] &= 0x7f;
    return toHex(b);
  }));
  eql([...cleared].sort(), [...SMALL_ORDER_ENCODINGS].sort());
  for (const hex of ED25519_TORSION_SUBGROUP) ok(isWeakEd25519Key(fromHex(hex)), `${hex} should be refused`);
  // y = p and y = p + 1, non-canonical encodings of 0 and 1, are refused; a real key is not.
  ok(isWeakEd25519Key(fromHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")));
  ok(isWeakEd25519Key(fromHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")));
  ok(!isWeakEd25519Key(ed25519.getPublicKey(new Uint8Array(32).fill(7))));
});
