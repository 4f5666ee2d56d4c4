import { deepStrictEqual as eql, equal, throws } from "node:assert/strict";
import { decode, encode } from "cborg";
import { join } from "node:path";
import { Identity } from "../../../kernel/identity/identity.ts";
import { encodeBundle, MAX_BUNDLE_BYTES, openBundle, packBundle } from "../../../kernel/runtime/plugin_bundle.ts";

const FIXTURE = join(import.meta.dirname!, "../../fixtures/plugins/hello");
const owner = Identity.generate("owner");
const stranger = Identity.generate("stranger");
const trusted = new Set([owner.did]);
const manifestBytes = new TextEncoder().encode(JSON.stringify({ name: "x", version: "1.0.0", entry: "main.ts" }));
const main = new TextEncoder().encode("export default () => {};");

Deno.test("openBundle() opens what packBundle() packed, byte for byte", async () => {
  const bundle = await packBundle(FIXTURE, owner);
  const opened = openBundle(bundle, trusted);
  equal(opened.signer, owner.did);
  equal(opened.manifest.name, "hello");
  eql([...opened.files.keys()].sort(), ["greeting.js", "main.js"]);
  eql(opened.files.get("main.js"), await Deno.readFile(join(FIXTURE, "main.js")));
});

Deno.test("openBundle() refuses a tampered body", async () => {
  const outer = decode(await packBundle(FIXTURE, owner), { useMaps: true }) as Map<string, unknown>;
  const body = new Uint8Array(outer.get("body") as Uint8Array);
  body[body.length - 1] ^= 1;
  outer.set("body", body);
  throws(
    () => openBundle(encode(outer), trusted),
    (e: Error) => e instanceof RangeError && /does not verify/.test(e.message),
  );
});

Deno.test("openBundle() refuses an unsigned bundle", () => {
  const body = encode({ manifest: manifestBytes, files: { "main.ts": main } });
  throws(() => openBundle(encode({ v: 1, body }), trusted), /unsigned/);
});

Deno.test("openBundle() refuses a bundle signed by someone else than it claims", () => {
  const outer = decode(encodeBundle({ manifestBytes, files: new Map([["main.ts", main]]) }, stranger), {
    useMaps: true,
  }) as Map<string, unknown>;
  outer.set("signer", owner.did);
  throws(() => openBundle(encode(outer), trusted), /does not verify/);
});

Deno.test("openBundle() refuses a signer the node does not trust", () => {
  const bundle = encodeBundle({ manifestBytes, files: new Map([["main.ts", main]]) }, stranger);
  throws(
    () => openBundle(bundle, trusted),
    (e: Error) => /does not trust/.test(e.message) && e.message.includes(stranger.did),
  );
  equal(openBundle(bundle, new Set([stranger.did])).signer, stranger.did);
});

Deno.test("openBundle() refuses path traversal and unsafe names, even when signed", () => {
  for (const path of ["../evil.ts", "/etc/passwd", "a/../../b", "a//b", ".", "a\\b", "plugin.json"]) {
    const bundle = encodeBundle({ manifestBytes, files: new Map([["main.ts", main], [path, main]]) }, owner);
    throws(() => openBundle(bundle, trusted), /not a safe relative path/, path);
  }
});

Deno.test("openBundle() refuses an oversized file, garbage and a missing entry", () => {
  throws(() => openBundle(new Uint8Array(MAX_BUNDLE_BYTES + 1), trusted), /expected at most/);
  throws(() => openBundle(new Uint8Array([0xff, 0x00, 0x13]), trusted), /not valid CBOR/);
  throws(() => openBundle(encode([1, 2]), trusted), /not a CBOR map/);
  const bundle = encodeBundle({ manifestBytes, files: new Map([["other.ts", main]]) }, owner);
  throws(() => openBundle(bundle, trusted), /entry "main.ts" is not in the bundle/);
});

Deno.test("openBundle() refuses a signed but malformed manifest", () => {
  const bad = new TextEncoder().encode(
    JSON.stringify({ name: "x", version: "1.0.0", entry: "main.ts", permissions: ["run"] }),
  );
  const bundle = encodeBundle({ manifestBytes: bad, files: new Map([["main.ts", main]]) }, owner);
  throws(() => openBundle(bundle, trusted), (e: Error) => e instanceof SyntaxError && /permissions\.0/.test(e.message));
});
