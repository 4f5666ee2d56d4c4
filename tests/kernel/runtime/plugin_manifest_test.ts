import { deepStrictEqual as eql, equal, throws } from "node:assert/strict";
import { grantedOf, parsePluginManifest, permissionProblem } from "../../../kernel/runtime/plugin_manifest.ts";

const base = { name: "hello", version: "1.0.0", entry: "main.ts" };

Deno.test("parsePluginManifest() fills in defaults", () => {
  const m = parsePluginManifest(base);
  eql(m.permissions, []);
  eql(m.host, []);
  eql(m.limits, { callTimeoutMs: 5000, maxHeapMb: 128 });
  equal(m.description, "");
});

Deno.test("parsePluginManifest() names every field at fault", () => {
  throws(
    () => parsePluginManifest({ name: "Bad", version: "x", entry: "../up.ts", extra: 1 }, "p.json"),
    (e: Error) =>
      e instanceof SyntaxError && e.message.startsWith('Invalid plugin manifest "p.json"') &&
      /name:/.test(e.message) && /version:/.test(e.message) && /entry:/.test(e.message) && /extra/.test(e.message),
  );
});

Deno.test("parsePluginManifest() refuses run, ffi, import, absolute and escaping paths", () => {
  for (
    const p of ["run", "run:/bin/sh", "ffi", "import", "read:/etc", "write:../x", "read:a/../../b", "read", "sys:nope"]
  ) {
    throws(() => parsePluginManifest({ ...base, permissions: [p] }), SyntaxError, p);
  }
});

Deno.test("parsePluginManifest() accepts the documented permission forms", () => {
  const permissions = [
    "net",
    "net:127.0.0.1:8080",
    "net:example.org",
    "read:.",
    "read:cache/x",
    "write:out",
    "env:FOO",
    "sys:uid",
  ];
  eql(parsePluginManifest({ ...base, permissions }).permissions, permissions);
  for (const p of permissions) equal(permissionProblem(p), undefined);
});

Deno.test("parsePluginManifest() refuses an unknown or repeated host capability", () => {
  throws(() => parsePluginManifest({ ...base, host: ["shell"] }), SyntaxError);
  throws(() => parsePluginManifest({ ...base, host: ["http", "http"] }), /Duplicate host capability/);
});

Deno.test("grantedOf() keeps what the grant names and refuses what the manifest does not request", () => {
  const m = parsePluginManifest({ ...base, permissions: ["net", "read:a"], host: ["storage", "cli"] });
  eql(grantedOf(m, ["read:a", "cli"]), { permissions: ["read:a"], host: ["cli"] });
  eql(grantedOf(m, "all"), { permissions: ["net", "read:a"], host: ["storage", "cli"] });
  eql(grantedOf(m, []), { permissions: [], host: [] });
  throws(() => grantedOf(m, ["write:a"]), /does not request it/);
});
