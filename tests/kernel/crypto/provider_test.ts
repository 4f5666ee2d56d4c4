/**
 * Behaviour both providers must share beyond the vectors: argument checks,
 * all-zero X25519 rejection, and Ed25519 verification that never throws for
 * malformed bytes.
 */

import { deepStrictEqual as eql, rejects, throws } from "node:assert/strict";
import { fromHex } from "../../../kernel/bytes.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";

// Encodings whose X25519 result is all zero for every secret: the points of
// order 1, 2, 4 and 8 and their non-canonical forms (u + p, and the top bit set).
const LOW_ORDER_U = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].flatMap((h) => {
  const high = fromHex(h);
  high[31] |= 0x80;
  return [fromHex(h), high];
});

// Ed25519 small-order points (RFC 8032 section 5.1.3 encodings): order 1, 2, 4, 8.
const SMALL_ORDER_A = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
].map(fromHex);

const SEED = new Uint8Array(32).fill(0x11);
const MESSAGE = new TextEncoder().encode("message");

for (const p of [nativeProvider, nobleProvider]) {
  Deno.test(`${p.name}: x25519() throws RangeError for every low-order public key`, () => {
    const secret = new Uint8Array(32).fill(0x5a);
    for (const u of LOW_ORDER_U) {
      throws(() => p.x25519(secret, u), {
        name: "RangeError",
        message: "Cannot compute X25519 shared secret: result is all zero, the public key has low order",
      });
    }
  });

  Deno.test(`${p.name}: ed25519Verify() rejects the identity signature under every small-order key`, () => {
    // R = identity, S = 0 satisfies the verification equation for any message under a small-order A.
    const identitySignature = new Uint8Array(64);
    identitySignature[0] = 1;
    for (const publicKey of SMALL_ORDER_A) {
      eql(p.ed25519Verify(publicKey, MESSAGE, identitySignature), false);
      eql(p.ed25519Verify(publicKey, new Uint8Array(0), identitySignature), false);
    }
  });

  Deno.test(`${p.name}: ed25519Verify() returns false for malformed keys and signatures without throwing`, () => {
    const publicKey = p.ed25519PublicKey(SEED);
    const signature = p.ed25519Sign(SEED, MESSAGE);
    eql(p.ed25519Verify(publicKey, MESSAGE, signature), true);
    eql(p.ed25519Verify(publicKey, MESSAGE, signature.subarray(0, 63)), false);
    eql(p.ed25519Verify(publicKey, MESSAGE, new Uint8Array(65)), false);
    eql(p.ed25519Verify(publicKey.subarray(0, 31), MESSAGE, signature), false);
    eql(p.ed25519Verify(new Uint8Array(32).fill(0xff), MESSAGE, signature), false);
    // The non-canonical encoding y = p + 1 of the identity point.
    eql(p.ed25519Verify(fromHex("ee" + "ff".repeat(30) + "7f"), MESSAGE, signature), false);
    // S >= L (RFC 8032 section 5.1.7 requires 0 <= S < L).
    const sBig = signature.slice();
    sBig.fill(0xff, 32);
    eql(p.ed25519Verify(publicKey, MESSAGE, sBig), false);
    // S + L, a malleated form of a valid signature, must not verify (RFC 8032 section 5.1.7).
    const L = fromHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    const malleated = signature.slice();
    let carry = 0;
    for (let i = 0; i < 32; i++) {
      const sum = malleated[32 + i] + L[i] + carry;
      malleated[32 + i] = sum & 0xff;
      carry = sum >> 8;
    }
    eql(p.ed25519Verify(publicKey, MESSAGE, malleated), false);
  });

  Deno.test(`${p.name}: ed25519 and x25519 reject keys of the wrong length or type, naming the parameter`, () => {
    throws(() => p.ed25519PublicKey(SEED.subarray(1)), {
      name: "RangeError",
      message: "Invalid seed: length is 31, expected 32",
    });
    throws(() => p.ed25519Sign("seed" as unknown as Uint8Array, MESSAGE), { name: "TypeError", message: /seed/ });
    throws(() => p.ed25519Verify([] as unknown as Uint8Array, MESSAGE, new Uint8Array(64)), {
      name: "TypeError",
      message: /publicKey/,
    });
    throws(() => p.x25519PublicKey(new Uint8Array(33)), { name: "RangeError", message: /secret/ });
    throws(() => p.x25519(SEED, new Uint8Array(31)), { name: "RangeError", message: /publicKey/ });
  });

  Deno.test(`${p.name}: hkdf() accepts lengths 1..8160 and rejects others`, () => {
    const ikm = new Uint8Array(32);
    eql(p.hkdf(ikm, new Uint8Array(0), new Uint8Array(0), 1).length, 1);
    eql(p.hkdf(ikm, new Uint8Array(0), new Uint8Array(0), 8160).length, 8160);
    throws(() => p.hkdf(ikm, new Uint8Array(0), new Uint8Array(0), 0), RangeError);
    throws(() => p.hkdf(ikm, new Uint8Array(0), new Uint8Array(0), 8161), RangeError);
    throws(() => p.hkdf(ikm, new Uint8Array(0), new Uint8Array(0), 1.5), TypeError);
    throws(() => p.hkdf(ikm, "salt" as unknown as Uint8Array, new Uint8Array(0), 32), {
      name: "TypeError",
      message: /salt/,
    });
  });

  Deno.test(`${p.name}: scrypt() rejects invalid parameters with a rejected promise`, async () => {
    const empty = new Uint8Array(0);
    await rejects(p.scrypt(empty, empty, { N: 3, r: 1, p: 1, dkLen: 32 }), { name: "RangeError", message: /N/ });
    await rejects(p.scrypt(empty, empty, { N: 1, r: 1, p: 1, dkLen: 32 }), RangeError);
    await rejects(p.scrypt(empty, empty, { N: 16, r: 0, p: 1, dkLen: 32 }), { name: "RangeError", message: /r/ });
    await rejects(p.scrypt(empty, empty, { N: 16, r: 1, p: 1, dkLen: 0 }), RangeError);
    await rejects(p.scrypt(empty, empty, { N: 2 ** 20, r: 16, p: 1, dkLen: 32 }), {
      name: "RangeError",
      message: /expected <= 1073741824/,
    });
    await rejects(p.scrypt("pw" as unknown as Uint8Array, empty, { N: 16, r: 1, p: 1, dkLen: 32 }), TypeError);
  });

  Deno.test(`${p.name}: sha256() and hmacSha256() return plain Uint8Arrays of 32 bytes`, () => {
    const digest = p.sha256(MESSAGE);
    const mac = p.hmacSha256(new Uint8Array(0), MESSAGE);
    eql(Object.getPrototypeOf(digest), Uint8Array.prototype);
    eql(Object.getPrototypeOf(mac), Uint8Array.prototype);
    eql([digest.length, mac.length, digest.byteOffset, digest.buffer.byteLength], [32, 32, 0, 32]);
  });
}
