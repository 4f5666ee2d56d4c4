/**
 * Writes spec/vectors/nz_plugin_01.json: a plugin bundle of NZ-PLUGIN-01
 * (spec/plugins.md) signed by a fixed Ed25519 key with the noble reference
 * (not the node's signer): the manifest and one file, the CBOR body, the
 * signed hash, the signature and the whole bundle. Run it only when the format
 * changes on purpose: `deno run -A scripts/gen_plugin_vectors.ts`.
 *
 * @module
 */

import { encode } from "cborg";
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, toHex, utf8 } from "../kernel/bytes.ts";
import { encodeDidKey } from "../kernel/identity/did.ts";

const seed = new Uint8Array(32).fill(7);
const publicKey = ed25519.getPublicKey(seed);
const manifest = utf8(JSON.stringify({
  name: "hello",
  version: "1.0.0",
  description: "A vector",
  entry: "main.js",
  permissions: [],
  host: ["storage"],
}));
const main = utf8("export default (nz) => nz.onCli(() => ({ stdout: 'hello\\n', code: 0 }));\n");
const body = encode({ manifest, files: { "main.js": main } });
const hash = sha256(concat(utf8("NZ-PLUGIN-01 bundle"), new Uint8Array([0]), body));
const sig = ed25519.sign(hash, seed);
const signer = encodeDidKey(publicKey);
const bundle = encode({ v: 1, body, signer, sig });
const unsigned = encode({ v: 1, body });

const out = {
  description:
    "NZ-PLUGIN-01 (spec/plugins.md) bundle: body = CBOR {manifest: bstr, files: {path: bstr}}; hash = SHA-256('NZ-PLUGIN-01 bundle' || 0x00 || body); sig = Ed25519(seed, hash); bundle = CBOR {v: 1, body, signer: did:key, sig}. Opening it with the signer trusted gives the manifest and files; a flipped byte in the body fails the signature; the unsigned form is refused.",
  seed: toHex(seed),
  signer,
  manifest: toHex(manifest),
  files: { "main.js": toHex(main) },
  body: toHex(body),
  hash: toHex(hash),
  sig: toHex(sig),
  bundle: toHex(bundle),
  unsigned: toHex(unsigned),
};
await Deno.writeTextFile(
  new URL("../spec/vectors/nz_plugin_01.json", import.meta.url),
  JSON.stringify(out, null, 2) + "\n",
);
console.log("wrote spec/vectors/nz_plugin_01.json");
