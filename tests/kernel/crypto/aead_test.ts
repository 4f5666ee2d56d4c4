/**
 * AEAD failure behaviour of both providers: every kind of damage throws
 * IntegrityError and no plaintext comes back.
 */

import { deepStrictEqual as eql, throws } from "node:assert/strict";
import { IntegrityError } from "../../../kernel/errors.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const PLAINTEXT = new TextEncoder().encode("attack at dawn, bring snacks");
const AD = new TextEncoder().encode("header");

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice();
  copy[(index + copy.length) % copy.length] ^= 0x01;
  return copy;
}

for (const p of [nativeProvider, nobleProvider]) {
  for (const [alg, nonceLength] of [["chacha", 12], ["xchacha", 24]] as const) {
    const seal = p[`${alg}Seal`];
    const open = p[`${alg}Open`];
    const nonce = new Uint8Array(nonceLength).fill(9);
    const sealed = seal(KEY, nonce, PLAINTEXT, AD);
    const prefix = `${p.name}: ${alg}Open()`;

    Deno.test(`${prefix} returns the plaintext of an intact box`, () => {
      eql(sealed.length, PLAINTEXT.length + 16);
      eql(open(KEY, nonce, sealed, AD), PLAINTEXT);
    });

    Deno.test(`${prefix} round-trips an empty plaintext with and without associated data`, () => {
      eql(open(KEY, nonce, seal(KEY, nonce, new Uint8Array(0)), undefined), new Uint8Array(0));
      eql(open(KEY, nonce, seal(KEY, nonce, new Uint8Array(0), AD), AD), new Uint8Array(0));
    });

    Deno.test(`${prefix} rejects a tampered tag`, () => {
      throws(() => open(KEY, nonce, flip(sealed, -1), AD), IntegrityError);
      throws(() => open(KEY, nonce, flip(sealed, -16), AD), IntegrityError);
    });

    Deno.test(`${prefix} rejects a tampered ciphertext`, () => {
      throws(() => open(KEY, nonce, flip(sealed, 0), AD), IntegrityError);
      throws(() => open(KEY, nonce, flip(sealed, PLAINTEXT.length - 1), AD), IntegrityError);
    });

    Deno.test(`${prefix} rejects wrong or missing associated data`, () => {
      throws(() => open(KEY, nonce, sealed, flip(AD, 0)), IntegrityError);
      throws(() => open(KEY, nonce, sealed), IntegrityError);
      throws(() => open(KEY, nonce, sealed, new Uint8Array(0)), IntegrityError);
    });

    Deno.test(`${prefix} rejects a wrong key or nonce`, () => {
      throws(() => open(flip(KEY, 0), nonce, sealed, AD), IntegrityError);
      throws(() => open(KEY, flip(nonce, -1), sealed, AD), IntegrityError);
    });

    Deno.test(`${prefix} rejects truncated input`, () => {
      throws(() => open(KEY, nonce, sealed.subarray(0, sealed.length - 1), AD), IntegrityError);
      throws(() => open(KEY, nonce, sealed.subarray(1), AD), IntegrityError);
      throws(() => open(KEY, nonce, sealed.subarray(0, 16), AD), IntegrityError);
      throws(() => open(KEY, nonce, sealed.subarray(0, 15), AD), {
        name: "IntegrityError",
        message: /length is 15, expected >= 16/,
      });
      throws(() => open(KEY, nonce, new Uint8Array(0), AD), IntegrityError);
    });

    Deno.test(`${prefix} names the failure in its error message`, () => {
      throws(() => open(KEY, nonce, flip(sealed, -1), AD), {
        name: "IntegrityError",
        message: /^Cannot open X?ChaCha20-Poly1305 box: authentication tag does not verify$/,
      });
    });

    Deno.test(`${prefix} and ${alg}Seal() reject keys and nonces of the wrong length or type`, () => {
      throws(() => seal(KEY.subarray(1), nonce, PLAINTEXT), { name: "RangeError", message: /Invalid key/ });
      throws(() => open(KEY, nonce.subarray(1), sealed), { name: "RangeError", message: /Invalid nonce/ });
      throws(() => seal(KEY, nonce, "text" as unknown as Uint8Array), { name: "TypeError", message: /plaintext/ });
      throws(() => open(KEY, nonce, sealed, [1] as unknown as Uint8Array), { name: "TypeError", message: /ad/ });
    });
  }
}
