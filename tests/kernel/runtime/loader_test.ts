import { deepStrictEqual as eql, equal } from "node:assert/strict";
import { join } from "node:path";
import { loadServiceManifests } from "../../../kernel/runtime/loader.ts";

Deno.test("loadServiceManifests() loads the valid manifests and refuses the others by name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = (name: string, text: string) => Deno.writeTextFile(join(dir, name), text);
    await write("a.json", JSON.stringify({ name: "alpha", version: "1.0.0", entry: "alpha.ts" }));
    await write("b.json", "{ not json");
    await write("c.json", JSON.stringify({ name: "gamma", version: "1", entry: "g.ts", extra: true }));
    await write("d.json", JSON.stringify({ name: "delta", version: "1.0.0", entry: "builtin:api" }));
    await write("e.json", JSON.stringify({ name: "alpha", version: "2.0.0", entry: "other.ts" }));
    await write("notes.txt", "ignored");
    const { manifests, errors } = await loadServiceManifests(dir);
    eql(manifests.map((m) => m.manifest.name), ["alpha"]);
    eql(errors.map((e) => e.path), ["b.json", "c.json", "d.json", "e.json"].map((n) => join(dir, n)));
    equal(errors[0].message.startsWith(`Invalid service manifest "${join(dir, "b.json")}": not valid JSON`), true);
    equal(
      errors[1].message,
      `Invalid service manifest "${
        join(dir, "c.json")
      }": version: Expected a semantic version such as 1.2.3; Unrecognized key: "extra"`,
    );
    equal(errors[2].message.endsWith('entry: "builtin:api" names a built-in service; give a module path'), true);
    equal(errors[3].message.endsWith(`name: "alpha" is taken by ${join(dir, "a.json")}`), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadServiceManifests() of a missing directory finds nothing", async () => {
  eql(await loadServiceManifests("/nonexistent/nzcore/services"), { manifests: [], errors: [] });
});
