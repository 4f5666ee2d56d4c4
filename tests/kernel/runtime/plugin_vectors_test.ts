import { deepEqual, equal, throws } from "node:assert/strict";
import vectors from "../../../spec/vectors/nz_plugin_01.json" with { type: "json" };
import { concat, fromHex, toHex, utf8 } from "../../../kernel/bytes.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { decodeDidKey } from "../../../kernel/identity/did.ts";
import { encodeBundle, openBundle } from "../../../kernel/runtime/plugin_bundle.ts";

Deno.test("NZ-PLUGIN-01 vector: the hash and signature check out with the native provider", () => {
  const hash = nativeProvider.sha256(concat(utf8("NZ-PLUGIN-01 bundle"), new Uint8Array([0]), fromHex(vectors.body)));
  equal(toHex(hash), vectors.hash);
  equal(toHex(nativeProvider.ed25519PublicKey(fromHex(vectors.seed))), toHex(decodeDidKey(vectors.signer)));
  equal(toHex(nativeProvider.ed25519Sign(fromHex(vectors.seed), hash)), vectors.sig);
});

Deno.test("NZ-PLUGIN-01 vector: the bundle opens with its signer trusted, and the codec writes the same bytes", () => {
  const opened = openBundle(fromHex(vectors.bundle), new Set([vectors.signer]));
  equal(opened.signer, vectors.signer);
  equal(opened.manifest.name, "hello");
  equal(toHex(opened.manifestBytes), vectors.manifest);
  deepEqual([...opened.files].map(([path, bytes]) => [path, toHex(bytes)]), Object.entries(vectors.files));
  const seed = fromHex(vectors.seed);
  const signer = {
    publicKey: nativeProvider.ed25519PublicKey(seed),
    sign: (message: Uint8Array) => nativeProvider.ed25519Sign(seed, message),
  };
  const files = new Map(Object.entries(vectors.files).map(([path, hex]) => [path, fromHex(hex)]));
  equal(toHex(encodeBundle({ manifestBytes: fromHex(vectors.manifest), files }, signer)), vectors.bundle);
});

Deno.test("NZ-PLUGIN-01 vector: untrusted, tampered and unsigned forms are refused", () => {
  throws(() => openBundle(fromHex(vectors.bundle), new Set()), RangeError);
  const tampered = fromHex(vectors.bundle);
  const at = toHex(tampered).indexOf(toHex(utf8("hello\\n"))) / 2;
  tampered[at] ^= 1;
  throws(() => openBundle(tampered, new Set([vectors.signer])), RangeError);
  throws(() => openBundle(fromHex(vectors.unsigned), new Set([vectors.signer])), SyntaxError);
});
