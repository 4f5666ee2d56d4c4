import { deepStrictEqual as eql, notDeepStrictEqual, throws } from "node:assert/strict";
import { IntegrityError } from "../../../kernel/errors.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import { openSealed, SEALED_BOX_OVERHEAD, sealTo } from "../../../kernel/crypto/sealed_box.ts";
import { randomBytes } from "../../../kernel/crypto/random.ts";

const SECRET = randomBytes(32);
const PUBLIC = nobleProvider.x25519PublicKey(SECRET);
const PLAINTEXT = new TextEncoder().encode("the identity export key");

Deno.test("sealTo() output is 48 bytes longer than the plaintext and starts with a fresh ephemeral key", () => {
  const a = sealTo(PUBLIC, PLAINTEXT);
  const b = sealTo(PUBLIC, PLAINTEXT);
  eql(SEALED_BOX_OVERHEAD, 48);
  eql(a.length, PLAINTEXT.length + 48);
  notDeepStrictEqual(a.subarray(0, 32), b.subarray(0, 32));
  notDeepStrictEqual(a, b);
});

Deno.test("openSealed() opens what sealTo() sealed, across providers in both directions", () => {
  for (const sealer of [nativeProvider, nobleProvider]) {
    for (const opener of [nativeProvider, nobleProvider]) {
      const sealed = sealTo(PUBLIC, PLAINTEXT, { provider: sealer });
      eql(openSealed(SECRET, sealed, { provider: opener }), PLAINTEXT, `${sealer.name} -> ${opener.name}`);
    }
  }
});

Deno.test("openSealed() opens an empty and a 1 MiB plaintext", () => {
  eql(openSealed(SECRET, sealTo(PUBLIC, new Uint8Array(0))), new Uint8Array(0));
  const big = randomBytes(1 << 20);
  eql(openSealed(SECRET, sealTo(PUBLIC, big)), big);
});

Deno.test("sealTo() leaves an injected ephemeral secret intact and is deterministic with it", () => {
  const ephemeralSecret = new Uint8Array(32).fill(0x42);
  const a = sealTo(PUBLIC, PLAINTEXT, { ephemeralSecret });
  eql(ephemeralSecret, new Uint8Array(32).fill(0x42));
  eql(sealTo(PUBLIC, PLAINTEXT, { ephemeralSecret }), a);
});

for (const p of [nativeProvider, nobleProvider]) {
  const options = { provider: p };

  Deno.test(`${p.name}: openSealed() rejects a box sealed to another key`, () => {
    const other = nobleProvider.x25519PublicKey(randomBytes(32));
    throws(() => openSealed(SECRET, sealTo(other, PLAINTEXT, options), options), IntegrityError);
  });

  Deno.test(`${p.name}: openSealed() rejects a tampered ephemeral key, ciphertext or tag`, () => {
    const sealed = sealTo(PUBLIC, PLAINTEXT, options);
    for (const at of [0, 31, 32, sealed.length - 17, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[at] ^= 0x80;
      throws(() => openSealed(SECRET, bad, options), IntegrityError, `byte ${at}`);
    }
  });

  Deno.test(`${p.name}: openSealed() rejects truncated input`, () => {
    const sealed = sealTo(PUBLIC, PLAINTEXT, options);
    throws(() => openSealed(SECRET, sealed.subarray(0, sealed.length - 1), options), IntegrityError);
    throws(() => openSealed(SECRET, sealed.subarray(0, 47), options), {
      name: "IntegrityError",
      message: "Cannot open sealed box: length is 47, expected >= 48",
    });
  });

  Deno.test(`${p.name}: openSealed() rejects a low-order ephemeral key with IntegrityError`, () => {
    const sealed = sealTo(PUBLIC, PLAINTEXT, options);
    sealed.fill(0, 0, 32);
    throws(() => openSealed(SECRET, sealed, options), {
      name: "IntegrityError",
      message: /ephemeral public key has low order/,
    });
  });

  Deno.test(`${p.name}: sealTo() rejects a low-order recipient key with RangeError`, () => {
    const lowOrder = new Uint8Array(32);
    lowOrder[0] = 1;
    throws(() => sealTo(lowOrder, PLAINTEXT, options), RangeError);
  });
}

Deno.test("sealTo() and openSealed() reject arguments of the wrong length or type", () => {
  throws(() => sealTo(PUBLIC.subarray(1), PLAINTEXT), { name: "RangeError", message: /recipientPublic/ });
  throws(() => sealTo(PUBLIC, "x" as unknown as Uint8Array), { name: "TypeError", message: /plaintext/ });
  throws(() => sealTo(PUBLIC, PLAINTEXT, { ephemeralSecret: new Uint8Array(31) }), {
    name: "RangeError",
    message: /ephemeralSecret/,
  });
  throws(() => openSealed(SECRET.subarray(1), new Uint8Array(64)), { name: "RangeError", message: /recipientSecret/ });
});
