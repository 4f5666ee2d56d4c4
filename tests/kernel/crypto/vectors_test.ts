/**
 * Runs every vector file in spec/vectors through both providers. The JSON is
 * the same data a second implementation would load; spec/vectors/README.md
 * names the source of each file.
 */

import { deepStrictEqual as eql } from "node:assert/strict";
import { fromHex as hex, utf8 } from "../../../kernel/bytes.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import { openSealed, sealTo } from "../../../kernel/crypto/sealed_box.ts";
import { hchacha20 } from "../../../kernel/crypto/_hchacha.ts";
import { concat } from "../../../kernel/bytes.ts";
import ed25519 from "../../../spec/vectors/rfc8032_ed25519.json" with { type: "json" };
import x25519 from "../../../spec/vectors/rfc7748_x25519.json" with { type: "json" };
import chacha from "../../../spec/vectors/rfc8439_chacha20poly1305.json" with { type: "json" };
import xchacha from "../../../spec/vectors/xchacha20poly1305.json" with { type: "json" };
import hkdf from "../../../spec/vectors/rfc5869_hkdf.json" with { type: "json" };
import scrypt from "../../../spec/vectors/rfc7914_scrypt.json" with { type: "json" };
import sealedBox from "../../../spec/vectors/sealed_box.json" with { type: "json" };

const COVERED = [
  "rfc8032_ed25519.json",
  "rfc7748_x25519.json",
  "rfc8439_chacha20poly1305.json",
  "xchacha20poly1305.json",
  "rfc5869_hkdf.json",
  "rfc7914_scrypt.json",
  "sealed_box.json",
  // Run by tests/kernel/channel/noise_test.ts and handshake_vectors_test.ts.
  "noise_cacophony_xx.json",
  "nz_handshake_01.json",
  // Run by tests/kernel/channel/channel_vectors_test.ts.
  "nz_channel_01.json",
  // Run by tests/kernel/channel/datagram_vectors_test.ts.
  "nz_dgram_01.json",
  // Run by tests/transport/stun/message_test.ts.
  "rfc5769_stun.json",
  // Run by tests/kernel/peers/peer_vectors_test.ts.
  "nz_punch_01.json",
  "nz_relay_01.json",
  // Run by tests/kernel/runtime/plugin_vectors_test.ts.
  "nz_plugin_01.json",
  // Run by tests/kernel/discovery/lan_vectors_test.ts.
  "nz_lan_01.json",
  // Run by tests/kernel/discovery/record_test.ts.
  "nz_record_01.json",
  // Run by tests/kernel/discovery/introduce_vectors_test.ts.
  "nz_introduce_01.json",
  // Run by tests/kernel/discovery/dht/dht_vectors_test.ts.
  "nz_dht_01.json",
];

Deno.test("spec/vectors holds no JSON file that this test leaves out", () => {
  const dir = new URL("../../../spec/vectors/", import.meta.url);
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".json")).sort();
  eql(files, [...COVERED].sort());
});

Deno.test("hchacha20() reproduces draft-irtf-cfrg-xchacha-03 section 2.2.1", () => {
  for (const v of xchacha.hchacha20) eql(hchacha20(hex(v.key), hex(v.input)), hex(v.subkey), v.name);
});

for (const p of [nativeProvider, nobleProvider]) {
  Deno.test(`${p.name}: ed25519 reproduces RFC 8032 section 7.1`, () => {
    for (const v of ed25519.vectors) {
      const seed = hex(v.seed);
      const message = hex(v.message);
      const signature = hex(v.signature);
      eql(p.ed25519PublicKey(seed), hex(v.publicKey), v.name);
      eql(p.ed25519Sign(seed, message), signature, v.name);
      eql(p.ed25519Verify(hex(v.publicKey), message, signature), true, v.name);
      eql(p.ed25519Verify(hex(v.publicKey), concat(message, new Uint8Array([0])), signature), false, v.name);
    }
  });

  Deno.test(`${p.name}: x25519 reproduces RFC 7748 sections 5.2 and 6.1`, () => {
    for (const v of x25519.scalarMult) eql(p.x25519(hex(v.scalar), hex(v.u)), hex(v.output), v.name);
    for (const v of x25519.diffieHellman) {
      eql(p.x25519PublicKey(hex(v.aliceSecret)), hex(v.alicePublic), v.name);
      eql(p.x25519PublicKey(hex(v.bobSecret)), hex(v.bobPublic), v.name);
      eql(p.x25519(hex(v.aliceSecret), hex(v.bobPublic)), hex(v.shared), v.name);
      eql(p.x25519(hex(v.bobSecret), hex(v.alicePublic)), hex(v.shared), v.name);
    }
  });

  Deno.test(`${p.name}: chachaSeal() and chachaOpen() reproduce RFC 8439 sections 2.8.2 and A.5`, () => {
    for (const v of chacha.vectors) {
      const sealed = hex(v.ciphertext + v.tag);
      eql(p.chachaSeal(hex(v.key), hex(v.nonce), hex(v.plaintext), hex(v.ad)), sealed, v.name);
      eql(p.chachaOpen(hex(v.key), hex(v.nonce), sealed, hex(v.ad)), hex(v.plaintext), v.name);
    }
  });

  Deno.test(`${p.name}: xchachaSeal() and xchachaOpen() reproduce draft-irtf-cfrg-xchacha-03 A.3.1`, () => {
    for (const v of xchacha.vectors) {
      const sealed = hex(v.ciphertext + v.tag);
      eql(p.xchachaSeal(hex(v.key), hex(v.nonce), hex(v.plaintext), hex(v.ad)), sealed, v.name);
      eql(p.xchachaOpen(hex(v.key), hex(v.nonce), sealed, hex(v.ad)), hex(v.plaintext), v.name);
    }
  });

  Deno.test(`${p.name}: hkdf() and hmacSha256() reproduce RFC 5869 test cases 1-3`, () => {
    for (const v of hkdf.vectors) {
      // The PRK of RFC 5869 section 2.2 is HMAC-SHA-256(salt, IKM).
      eql(p.hmacSha256(hex(v.salt), hex(v.ikm)), hex(v.prk), v.name);
      eql(p.hkdf(hex(v.ikm), hex(v.salt), hex(v.info), v.length), hex(v.okm), v.name);
    }
  });

  Deno.test(`${p.name}: scrypt() reproduces RFC 7914 section 12`, async () => {
    for (const v of scrypt.vectors) {
      const { N, r, p: parallel, dkLen } = v;
      eql(await p.scrypt(hex(v.passphrase), hex(v.salt), { N, r, p: parallel, dkLen }), hex(v.output), v.name);
    }
  });

  Deno.test(`${p.name}: sealTo() and openSealed() reproduce sealed_box.json`, () => {
    for (const v of sealedBox.vectors) {
      const recipientSecret = hex(v.recipientSecret);
      const recipientPublic = hex(v.recipientPublic);
      const sealed = hex(v.sealed);
      eql(p.x25519PublicKey(recipientSecret), recipientPublic, v.name);
      eql(sealTo(recipientPublic, hex(v.plaintext), { provider: p, ephemeralSecret: hex(v.ephemeralSecret) }), sealed);
      eql(openSealed(recipientSecret, sealed, { provider: p }), hex(v.plaintext), v.name);
    }
  });

  Deno.test(`${p.name}: sealed_box.json follows the documented construction step by step`, () => {
    for (const v of sealedBox.vectors) {
      const ephemeralPublic = p.x25519PublicKey(hex(v.ephemeralSecret));
      eql(ephemeralPublic, hex(v.ephemeralPublic), v.name);
      const shared = p.x25519(hex(v.ephemeralSecret), hex(v.recipientPublic));
      eql(shared, hex(v.shared), v.name);
      eql(p.x25519(hex(v.recipientSecret), ephemeralPublic), shared, v.name);
      const key = p.hkdf(shared, concat(ephemeralPublic, hex(v.recipientPublic)), utf8(sealedBox.label), 32);
      eql(key, hex(v.key), v.name);
      eql(concat(ephemeralPublic, p.chachaSeal(key, new Uint8Array(12), hex(v.plaintext))), hex(v.sealed), v.name);
    }
  });
}
