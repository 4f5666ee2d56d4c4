import { deepStrictEqual as eql, equal, throws } from "node:assert/strict";
import fc from "fast-check";
import { isBuiltin, parseManifest } from "../../../kernel/runtime/manifest.ts";

const base = { name: "echo", version: "1.0.0", entry: "./echo.ts" };

Deno.test("parseManifest() fills in the defaults", () => {
  const m = parseManifest(base);
  eql(m.dependencies, []);
  eql(m.capabilities, []);
  equal(m.health, undefined);
  eql(m.restart, {
    policy: "on-failure",
    backoff: { initialMs: 100, maxMs: 30_000, multiplier: 2 },
    budget: { maxRestarts: 5, windowMs: 60_000 },
  });
  eql(parseManifest({ ...base, health: {} }).health, {
    intervalMs: 5000,
    timeoutMs: 2000,
    failureThreshold: 3,
    successThreshold: 1,
  });
  eql(parseManifest({ ...base, restart: { budget: { maxRestarts: 1 } } }).restart.budget, {
    maxRestarts: 1,
    windowMs: 60_000,
  });
});

Deno.test("parseManifest() refuses unknown fields and names them", () => {
  throws(() => parseManifest({ ...base, colour: "red" }), {
    name: "SyntaxError",
    message: /^Invalid service manifest "echo": Unrecognized key: "colour"/,
  });
  throws(() => parseManifest({ ...base, restart: { backoff: { initialMs: 5, jitter: 1 } } }), {
    message: /restart\.backoff: Unrecognized key: "jitter"/,
  });
});

Deno.test("parseManifest() names each field at fault, and the source", () => {
  throws(() => parseManifest({ ...base, version: "1.0" }, "services/echo.json"), {
    message: 'Invalid service manifest "services/echo.json": version: Expected a semantic version such as 1.2.3',
  });
  throws(() => parseManifest({ ...base, name: "Echo!" }), { message: /name: Use 1 to 63 lowercase/ });
  throws(() => parseManifest({ ...base, restart: { policy: "sometimes" } }), { message: /restart\.policy: / });
  throws(() => parseManifest({ ...base, health: { failureThreshold: 0 } }), {
    message: /health\.failureThreshold: Too small/,
  });
  throws(() => parseManifest({ ...base, restart: { backoff: { initialMs: 500, maxMs: 100 } } }), {
    message: /restart\.backoff\.maxMs: maxMs must be >= initialMs/,
  });
  throws(() => parseManifest({ ...base, dependencies: ["echo"] }), {
    message: /dependencies: A service cannot depend on itself/,
  });
  throws(() => parseManifest({ name: "x" }), { message: /version: .*; entry: / });
  throws(() => parseManifest(null), { message: /^Invalid service manifest: / });
});

Deno.test("parseManifest() accepts only the capabilities the node's profile can grant", () => {
  eql(
    parseManifest({ ...base, capabilities: ["net:127.0.0.1:80", "read:/srv", "env:NZCORE_X", "sys:uid"] })
      .capabilities,
    ["net:127.0.0.1:80", "read:/srv", "env:NZCORE_X", "sys:uid"],
  );
  for (const bad of ["run", "ffi", "import", "run:ls", "net:", "everything"]) {
    throws(() => parseManifest({ ...base, capabilities: [bad] }), { message: /capabilities\.0: Unknown capability/ });
  }
});

Deno.test("isBuiltin() tells built-in entries from modules", () => {
  equal(isBuiltin({ entry: "builtin:api" }), true);
  equal(isBuiltin({ entry: "./builtin:api.ts" }), false);
});

Deno.test("parseManifest() never throws anything but a SyntaxError on arbitrary JSON", () => {
  fc.assert(fc.property(fc.jsonValue(), (value) => {
    try {
      parseManifest(value);
    } catch (error) {
      equal((error as Error).name, "SyntaxError");
    }
  }));
});
