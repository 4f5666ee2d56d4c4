/**
 * Plugins end to end (NZ-PLUGIN-01): real node processes started as the
 * `start` task does, driven through the real CLI and API.
 *
 * @module
 */

import { equal, match, ok } from "node:assert/strict";
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { decode, encode } from "cborg";
import { cli, type NodeProcess, ROOT, startNode, tempDataDir } from "./_node_process.ts";

const FIXTURES = join(ROOT, "tests/fixtures/plugins");

async function copyFixture(name: string, into: string): Promise<string> {
  const dir = join(into, `src-${name}`);
  await cp(join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const plugin = (dataDir: string, ...args: string[]) => cli(["--data-dir", dataDir, "plugin", ...args]);
const plugins = (dataDir: string, ...args: string[]) => cli(["--data-dir", dataDir, "plugins", ...args]);

async function status(node: NodeProcess, name: string): Promise<{ status: string; reason?: string } | undefined> {
  const list = await (await node.api("/v1/plugins")).json() as { name: string; status: string; reason?: string }[];
  return list.find((p) => p.name === name);
}

Deno.test("a plugin answers HTTP and CLI, keeps its storage across a reload and a restart, is denied outside its grant, reloads changed files, and uninstalls completely", async () => {
  await using dir = await tempDataDir();
  const src = await copyFixture("hello", await Deno.makeTempDir({ dir: dir.path }));
  let node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
  try {
    const installed = await plugins(dir.path, "install", src, "--grant-all", "--enable");
    equal(installed.code, 0, installed.stderr);
    match(installed.stdout, /hello\s+1\.0\.0\s+running/);

    // HTTP under /v1/plugins/hello/http/*, without the caller's credentials.
    const echo = await node.api("/v1/plugins/hello/http/echo?x=1", { method: "POST", body: "hi" });
    equal(echo.status, 201);
    equal(echo.headers.get("x-plugin"), "hello");
    const seen = await echo.json();
    equal(seen.body, "hi");
    equal(seen.query.x, "1");
    equal(seen.sawAuthorization, false);
    equal((await (await node.api("/v1/plugins/hello/http/count")).json()).hits, 1);

    // The CLI subcommand prints, and its exit code comes through.
    const greet = await plugin(dir.path, "hello", "greet", "world");
    equal(greet.code, 0, greet.stderr);
    equal(greet.stdout, "hello world\n");
    equal((await plugin(dir.path, "hello", "nonsense")).code, 2);

    // Storage survives a reload.
    equal((await plugin(dir.path, "hello", "set", "k", "v1")).code, 0);
    equal((await plugins(dir.path, "reload", "hello")).code, 0);
    equal((await plugin(dir.path, "hello", "get", "k")).stdout, "v1\n");

    // Outside its grant: Deno stops it (NotCapable) and the node logs plugin.denied.
    const denied = await plugin(dir.path, "hello", "read", "/etc/hostname");
    equal(denied.code, 1);
    match(denied.stderr, /Requires read access to "\/etc\/hostname"/);
    await waitFor("plugin.denied in the log", () => /plugin "hello" was denied by Deno/.test(node.output()));
    equal((await status(node, "hello"))?.status, "running");

    // Hot reload picks up a changed file.
    await Deno.writeTextFile(join(src, "greeting.js"), 'export const GREETING = "howdy";\n');
    equal((await plugins(dir.path, "reload", "hello")).code, 0);
    equal((await plugin(dir.path, "hello", "greet", "again")).stdout, "howdy again\n");

    // Storage survives a node restart; the enabled plugin starts with the node.
    equal((await node.stop()).code, 0);
    node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
    equal((await plugin(dir.path, "hello", "get", "k")).stdout, "v1\n");
    equal((await (await node.api("/v1/plugins/hello/http/count")).json()).hits, 2);

    // Uninstall removes the files and the storage namespace: a reinstall starts empty.
    const gone = await plugins(dir.path, "uninstall", "hello");
    equal(gone.code, 0, gone.stderr);
    await Deno.stat(join(dir.path, "plugins", "hello")).then(() => ok(false, "files remain"), () => {});
    equal((await node.api("/v1/plugins/hello/http/count")).status, 404);
    equal((await plugins(dir.path, "install", src, "--grant", "storage,cli", "--enable")).code, 0);
    equal((await plugin(dir.path, "hello", "get", "k")).stdout, "(none)\n");
    // Granted storage and cli only: the HTTP route is refused.
    equal((await node.api("/v1/plugins/hello/http/count")).status, 403);
  } finally {
    await node.stop("SIGKILL");
  }
});

Deno.test("the plugins of two nodes exchange a message over their session", async () => {
  await using dirA = await tempDataDir();
  await using dirB = await tempDataDir();
  await using a = await startNode(dirA.path);
  await using b = await startNode(dirB.path);
  const stateB = await (await b.api("/v1/state")).json() as { identity: { did: string }; listen: string[] };
  for (const d of [dirA.path, dirB.path]) {
    const r = await plugins(d, "install", join(FIXTURES, "hello"), "--grant-all", "--enable");
    equal(r.code, 0, r.stderr);
  }
  const tcpB = stateB.listen.find((l) => l.startsWith("tcp://"))!;
  equal((await cli(["--data-dir", dirA.path, "connect", tcpB, "--peer", stateB.identity.did])).code, 0);
  const sent = await plugin(dirA.path, "hello", "send", stateB.identity.did, "hi", "b");
  equal(sent.code, 0, sent.stderr);
  const stateA = await (await a.api("/v1/state")).json() as { identity: { nodeId: string } };
  await waitFor("the message in B's plugin", async () => {
    return (await plugin(dirB.path, "hello", "inbox")).stdout === `${stateA.identity.nodeId}: hi b\n`;
  });
});

Deno.test("looping and allocating plugins are terminated while the node serves on; malformed, unsigned and wrongly signed plugins are refused", async () => {
  await using dir = await tempDataDir();
  await using node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
  equal((await plugins(dir.path, "install", join(FIXTURES, "spinner"), "--grant-all", "--enable")).code, 0);
  const spun = await plugin(dir.path, "spinner", "spin");
  equal(spun.code, 1);
  match(spun.stderr, /did not answer in 1000 ms/);
  await waitFor("the spinner terminated", async () => (await status(node, "spinner"))?.status === "failed");
  match((await status(node, "spinner"))!.reason!, /stopped answering/);
  equal((await node.api("/v1/health")).status, 200);

  // A plugin allocating without end is stopped at its heap limit.
  equal((await plugins(dir.path, "install", join(FIXTURES, "hog"), "--grant-all", "--enable")).code, 0);
  equal((await plugin(dir.path, "hog", "grow")).stdout, "growing\n");
  await waitFor("the hog terminated", async () => (await status(node, "hog"))?.status === "failed");
  match((await status(node, "hog"))!.reason!, /heap of \d+ MiB passed its limit of 32 MiB/);
  equal((await node.api("/v1/health")).status, 200);

  const malformed = await plugins(dir.path, "install", join(FIXTURES, "broken"));
  equal(malformed.code, 1);
  match(malformed.stderr, /Invalid plugin manifest .*version: .*entry: .*run:\/bin\/sh.*extra/);

  const bundle = join(dir.path, "hello.nzp");
  const packed = await plugins(dir.path, "pack", join(FIXTURES, "hello"), "--out", bundle);
  equal(packed.code, 0, packed.stderr);
  const outer = decode(await Deno.readFile(bundle), { useMaps: true }) as Map<string, unknown>;

  const unsigned = join(dir.path, "unsigned.nzp");
  await Deno.writeFile(unsigned, encode(new Map([["v", 1], ["body", outer.get("body")]])));
  const refusedUnsigned = await plugins(dir.path, "install", unsigned);
  equal(refusedUnsigned.code, 1);
  match(refusedUnsigned.stderr, /Invalid plugin bundle: it is unsigned/);

  const tampered = join(dir.path, "tampered.nzp");
  const body = new Uint8Array(outer.get("body") as Uint8Array);
  body[body.length - 2] ^= 0x20;
  await Deno.writeFile(tampered, encode(new Map([...outer, ["body", body]])));
  const refusedTampered = await plugins(dir.path, "install", tampered);
  equal(refusedTampered.code, 1);
  match(refusedTampered.stderr, /signature does not verify/);

  const good = await plugins(dir.path, "install", bundle, "--grant", "cli", "--enable");
  equal(good.code, 0, good.stderr);
  match(good.stdout, /signed by did:key:/);
  equal((await plugin(dir.path, "hello", "greet", "signed")).stdout, "hello signed\n");
  equal((await status(node, "hello"))?.status, "running");
});
