import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { cp } from "node:fs/promises";
import { join } from "node:path";
import type { NodeEvent } from "../../../kernel/node/event_bus.ts";
import { Node } from "../../../kernel/node/node.ts";
import { PluginCallError } from "../../../kernel/runtime/plugin_host.ts";
import { PluginManager } from "../../../kernel/runtime/plugins.ts";

const FIXTURES = join(import.meta.dirname!, "../../fixtures/plugins");

/** A node and its plugin manager in a temporary data directory, closed and removed on dispose. */
async function setup(): Promise<
  { node: Node; plugins: PluginManager; dir: string; events: NodeEvent[] } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "nzcore-plugins-" });
  const node = await Node.open({ dataDir: join(dir, "data") });
  const plugins = await PluginManager.open(node);
  const events: NodeEvent[] = [];
  const stop = new AbortController();
  void (async () => {
    for await (const event of node.bus.subscribe({ types: ["plugin."], signal: stop.signal })) events.push(event);
  })();
  return {
    node,
    plugins,
    dir,
    events,
    async [Symbol.asyncDispose]() {
      stop.abort();
      plugins.close();
      await node.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A copy of a fixture, optionally renamed, in `into`. */
async function fixture(name: string, into: string, rename?: string): Promise<string> {
  const dir = join(into, `src-${rename ?? name}`);
  await cp(join(FIXTURES, name), dir, { recursive: true });
  if (rename) {
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "plugin.json")));
    await Deno.writeTextFile(join(dir, "plugin.json"), JSON.stringify({ ...manifest, name: rename }));
  }
  return dir;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const code = (expected: string) => (e: unknown) => e instanceof PluginCallError && e.code === expected;

Deno.test("a plugin's Worker writes inside its granted folder and is stopped by Deno elsewhere, logged as plugin.denied", async () => {
  await using t = await setup();
  await t.plugins.install(join(FIXTURES, "hello"), { grant: ["read:notes", "write:notes", "cli"] });
  await t.plugins.enable("hello");
  equal((await t.plugins.cli("hello", ["write", "notes/a.txt", "kept"])).stdout, "written\n");
  equal(await Deno.readTextFile(join(t.dir, "data/plugins/hello/data/notes/a.txt")), "kept");
  await rejects(t.plugins.cli("hello", ["write", "other.txt", "x"]), code("not_capable"));
  await rejects(t.plugins.cli("hello", ["read", "/etc/hostname"]), code("not_capable"));
  await waitFor("two plugin.denied events", () => t.events.filter((e) => e.type === "plugin.denied").length === 2);
  const denied = t.events.filter((e) => e.type === "plugin.denied").map((e) => String(e.data.message));
  ok(denied[0].includes("other.txt") && denied[1].includes("/etc/hostname"), denied.join("\n"));
  equal(t.plugins.info("hello").status, "running");
});

Deno.test("install refuses a grant beyond the manifest and a permission the node does not hold", {
  permissions: { read: true, write: true, net: true, env: false, sys: true, run: false, ffi: false },
}, async () => {
  await using t = await setup();
  await rejects(
    t.plugins.install(join(FIXTURES, "hello"), { grant: ["net"] }),
    (e: Error) => e instanceof RangeError && /does not request it/.test(e.message),
  );
  const src = await fixture("hello", t.dir, "secretive");
  const manifest = JSON.parse(await Deno.readTextFile(join(src, "plugin.json")));
  await Deno.writeTextFile(join(src, "plugin.json"), JSON.stringify({ ...manifest, permissions: ["env:NZ_SECRET"] }));
  await rejects(
    t.plugins.install(src, { grant: "all" }),
    (e: Error) =>
      e instanceof RangeError && /more than the node holds/.test(e.message) && /env:NZ_SECRET/.test(e.message),
  );
  eql(t.plugins.list(), []);
});

Deno.test("a host call outside the plugin's host capabilities is refused and published as plugin.refused", async () => {
  await using t = await setup();
  await t.plugins.install(join(FIXTURES, "hello"), { grant: ["cli"] });
  await t.plugins.enable("hello");
  await rejects(
    t.plugins.cli("hello", ["set", "k", "v"]),
    (e: Error) => e instanceof PluginCallError && /needs the host capability "storage"/.test(e.message),
  );
  await waitFor("plugin.refused", () => t.events.some((e) => e.type === "plugin.refused"));
  await rejects(
    t.plugins.http("hello", { method: "GET", path: "/", query: {}, headers: {}, body: new Uint8Array() }),
    code("denied"),
  );
});

Deno.test("a plugin whose plugin.run the owner revoked does not start", async () => {
  await using t = await setup();
  await t.plugins.install(join(FIXTURES, "hello"), { grant: "all" });
  await t.node.policy.revoke({ type: "plugin", id: "hello" }, "plugin.run");
  await rejects(t.plugins.enable("hello"), (e: Error) => /plugin\.run of "hello" is denied by policy/.test(e.message));
  equal(t.plugins.info("hello").status, "failed");
});

Deno.test("a plugin allocating without end is stopped at its heap limit, one looping forever at its ping deadline", async () => {
  await using t = await setup();
  for (const name of ["hog", "spinner", "hello"]) {
    await t.plugins.install(join(FIXTURES, name), { grant: "all" });
    await t.plugins.enable(name);
  }
  equal((await t.plugins.cli("hog", ["grow"])).stdout, "growing\n");
  await rejects(t.plugins.cli("spinner", ["spin"]), code("timeout"));
  await waitFor(
    "both stopped",
    () => t.plugins.info("hog").status === "failed" && t.plugins.info("spinner").status === "failed",
  );
  ok(/heap of \d+ MiB passed its limit of 32 MiB/.test(t.plugins.info("hog").reason!), t.plugins.info("hog").reason);
  ok(/stopped answering/.test(t.plugins.info("spinner").reason!), t.plugins.info("spinner").reason);
  ok(t.events.some((e) => e.type === "plugin.stopped" && e.data.plugin === "hog"));
  equal((await t.plugins.cli("hello", ["greet", "survivor"])).stdout, "hello survivor\n");
});

Deno.test("a plugin's events reach a subscribed plugin, under the publisher's own prefix", async () => {
  await using t = await setup();
  await t.plugins.install(join(FIXTURES, "hello"), { grant: "all" });
  await t.plugins.install(await fixture("hello", t.dir, "echo"), { grant: "all" });
  await t.plugins.enable("hello");
  await t.plugins.enable("echo");
  equal((await t.plugins.cli("hello", ["subscribe", "plugin.echo."])).stdout, "subscribed\n");
  await rejects(t.plugins.cli("hello", ["subscribe", "peer."]), /Invalid prefix/);
  equal((await t.plugins.cli("echo", ["publish", "note", "x"])).stdout, "published\n");
  await waitFor("the event seen", async () => (await t.plugins.cli("hello", ["seen"])).stdout !== "");
  equal((await t.plugins.cli("hello", ["seen"])).stdout, 'plugin.echo.note {"note":"x","plugin":"echo"}\n');
});

Deno.test("a plugin enabled with watch reloads when its files change, keeping its storage", async () => {
  await using t = await setup();
  const src = await fixture("hello", t.dir);
  await t.plugins.install(src, { grant: "all" });
  await t.plugins.enable("hello", { watch: true });
  await t.plugins.cli("hello", ["set", "k", "v"]);
  await Deno.writeTextFile(join(src, "greeting.js"), 'export const GREETING = "hi";\n');
  await waitFor("the reload", async () => {
    const out = await t.plugins.cli("hello", ["greet", "there"]).catch(() => undefined);
    return out?.stdout === "hi there\n";
  });
  equal((await t.plugins.cli("hello", ["get", "k"])).stdout, "v\n");
  await waitFor("plugin.reloaded", () => t.events.some((e) => e.type === "plugin.reloaded"));
});
