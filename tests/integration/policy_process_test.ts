/**
 * Managing the policy gate through the CLI against a real node process: a
 * grant and a revoke change a decision, a bad policy file is refused with the
 * previous set still active, a good one loads, and reset returns to the
 * defaults.
 */

import { deepStrictEqual as eql, equal, match } from "node:assert/strict";
import { join } from "node:path";
import { cli, startNode, tempDataDir } from "./_node_process.ts";

const write = JSON.stringify({
  principal: { type: "service", id: "backup" },
  action: "storage.write",
  resource: { type: "storage", id: "backups" },
});

Deno.test("grant, revoke, policy set, show and reset through the CLI", async () => {
  await using dir = await tempDataDir();
  await using node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
  const run = async (...args: string[]) => await cli(["--data-dir", dir.path, ...args]);
  const outcome = async () =>
    (await (await node.api("/v1/policy/check", { method: "POST", body: write })).json()).outcome;

  equal(await outcome(), "DENY");
  const granted = await run("grant", "service:backup", "storage.write");
  equal(granted.code, 0, granted.stderr);
  match(granted.stdout, /service:backup {2}storage\.write/);
  equal(await outcome(), "ALLOW");
  const listed = await run("capabilities", "--json");
  eql(JSON.parse(listed.stdout), [{ principal: { type: "service", id: "backup" }, capabilities: ["storage.write"] }]);
  equal((await run("revoke", "service:backup", "storage.write")).code, 0);
  equal(await outcome(), "DENY");
  match((await run("capabilities")).stdout, /no grants/);

  const bad = join(dir.path, "bad.cedar");
  await Deno.writeTextFile(bad, `@id("oops")\npermit (principal, action == Action::"no.such", resource);\n`);
  const refused = await run("policy", "set", bad);
  equal(refused.code, 1);
  match(refused.stderr, /oops/);
  const shown = JSON.parse((await run("policy", "show", "--json")).stdout);
  eql(shown.ids, shown.defaults);

  const good = join(dir.path, "good.cedar");
  // The set keeps API tokens allowed: every admin route passes the gate as its token (/v1/policy/check included).
  await Deno.writeTextFile(
    good,
    `@id("services-write")\npermit (principal is Service, action, resource);\n` +
      `@id("tokens")\npermit (principal is Token, action, resource);\n`,
  );
  const set = await run("policy", "set", good);
  equal(set.code, 0, set.stderr);
  match(set.stdout, /services-write/);
  equal(await outcome(), "ALLOW");
  match((await run("policy", "show")).stdout, /services-write/);
  equal((await run("policy", "reset")).code, 0);
  equal(await outcome(), "DENY");
});
