/**
 * The policy gate in front of the admin API, through a real node process and
 * the CLI: a policy set with `nzcore policy set FILE` denies a token
 * `peer.connect` (403 `policy_denied`) and requires approval for its
 * `token.create` (202); the operator approves with `nzcore approvals approve`,
 * the repeated request with `x-nzcore-approval` runs once and a second reuse is
 * refused; the signed decision log holds every decision and verifies.
 */

import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { Node } from "../../kernel/node/node.ts";
import type { DecisionEntry } from "../../kernel/policy/decision_log.ts";
import { DEFAULT_POLICIES } from "../../kernel/policy/defaults.ts";
import { cli, startNode, tempDataDir } from "./_node_process.ts";

Deno.test("a token is denied peer.connect and waits for approval of token.create, through the CLI", async () => {
  await using dir = await tempDataDir();
  const run = async (...args: string[]) => await cli(["--data-dir", dir.path, ...args]);
  let opsId: string;
  let approvalId: string;
  {
    await using node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
    const created = await run("token", "create", "ops", "--json");
    equal(created.code, 0, created.stderr);
    const ops = JSON.parse(created.stdout) as { id: string; token: string };
    opsId = ops.id;

    const file = join(dir.path, "ops.cedar");
    await Deno.writeTextFile(
      file,
      DEFAULT_POLICIES + `
@id("ops-no-dial")
@risk("medium")
@reason("the ops token may not dial peers")
forbid (principal == Token::"${ops.id}", action == Action::"peer.connect", resource);

@id("ops-token-approval")
@outcome("require_approval")
@risk("high")
@reason("the ops token needs an operator to create tokens")
permit (principal == Token::"${ops.id}", action == Action::"token.create", resource);
`,
    );
    const set = await run("policy", "set", file);
    equal(set.code, 0, set.stderr);
    match(set.stdout, /ops-token-approval/);

    const dial = await node.api("/v1/peers", {
      method: "POST",
      token: ops.token,
      body: JSON.stringify({ address: "tcp://127.0.0.1:9" }),
    });
    equal(dial.status, 403);
    const error = (await dial.json()).error;
    equal(error.code, "policy_denied");
    match(error.message, /the ops token may not dial peers/);

    const create = (headers: Record<string, string> = {}) =>
      node.api("/v1/tokens", { method: "POST", token: ops.token, headers, body: JSON.stringify({ name: "deploy" }) });
    const pending = await create();
    equal(pending.status, 202);
    const asked = await pending.json();
    eql([asked.outcome, asked.risk], ["REQUIRE_APPROVAL", "high"]);
    approvalId = asked.approval;

    const listed = await run("approvals", "list", "--status", "pending");
    match(listed.stdout, new RegExp(`${approvalId}  pending  high .*token:${ops.id} token\\.create token:deploy`));
    const approved = await run("approvals", "approve", approvalId, "--note", "for the deploy job");
    equal(approved.code, 0, approved.stderr);

    const ran = await create({ "x-nzcore-approval": approvalId });
    equal(ran.status, 201);
    const deploy = await ran.json();
    equal(deploy.name, "deploy");
    match(deploy.token, /^nzt_/);
    const reused = await create({ "x-nzcore-approval": approvalId });
    equal(reused.status, 403);
    eql((await reused.json()).error, { code: "approval_refused", message: `Approval ${approvalId} was already used` });
    const tokens = JSON.parse((await run("token", "list", "--json")).stdout) as { name: string }[];
    equal(tokens.filter((t) => t.name === "deploy").length, 1);

    // The CLI's own (local admin) token still does everything the set does not restrict.
    const verify = await run("log", "verify");
    equal(verify.code, 0, verify.stderr);
    match(verify.stdout, /The log verifies/);
    equal((await node.stop()).code, 0);
  }

  // The decision log of the stopped node: signed, chained, and holding the decisions and the approval's life.
  const node = await Node.open({ dataDir: dir.path });
  try {
    const report = await node.policy.log.log.verify({
      publicKeys: node.identities.list().map((i) => node.identities.resolve(i.nodeId).publicKey),
    });
    ok(report.ok, report.problems.join("; "));
    const entries = await Array.fromAsync(node.policy.log.read());
    const decided = entries.flatMap((e) =>
      e.type === "policy.decisions" ? (e.data as { decisions: DecisionEntry[] }).decisions : []
    ).filter((d) => d.principal === `token:${opsId}`).map((d) => [d.action, d.resource, d.outcome]);
    eql(decided, [
      ["peer.connect", "peer:tcp://127.0.0.1:9", "DENY"],
      ["token.create", "token:deploy", "REQUIRE_APPROVAL"],
    ]);
    const types = entries.map((e) => e.type);
    for (const type of ["policy.loaded", "approval.requested", "approval.decided", "approval.used"]) {
      ok(types.includes(type), `no ${type} in the decision log`);
    }
    const used = entries.filter((e) => e.type === "approval.used").map((e) =>
      (e.data as { approval: string }).approval
    );
    eql(used, [approvalId]);
  } finally {
    await node.close();
  }
});

Deno.test("the CLI is held for approval too, and runs the command once with NZCORE_APPROVAL", async () => {
  await using dir = await tempDataDir();
  await using _node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
  const run = async (args: string[], env: Record<string, string> = {}) =>
    await cli(["--data-dir", dir.path, ...args], { env });
  const file = join(dir.path, "approve-tokens.cedar");
  await Deno.writeTextFile(
    file,
    DEFAULT_POLICIES + `
@id("token-create-approval")
@outcome("require_approval")
@reason("new tokens need an operator")
permit (principal is Token, action == Action::"token.create", resource);
`,
  );
  equal((await run(["policy", "set", file])).code, 0);

  const held = await run(["token", "create", "deploy"]);
  equal(held.code, 1);
  const id = /approval ([0-9a-f]{16}) is pending/.exec(held.stderr)?.[1];
  ok(id, held.stderr);
  match(held.stderr, new RegExp(`NZCORE_APPROVAL=${id}`));
  equal((await run(["approvals", "approve", id])).code, 0);

  const ran = await run(["token", "create", "deploy"], { NZCORE_APPROVAL: id });
  equal(ran.code, 0, ran.stderr);
  match(ran.stdout, /^nzt_/);
  const again = await run(["token", "create", "deploy"], { NZCORE_APPROVAL: id });
  equal(again.code, 1);
  match(again.stderr, new RegExp(`Approval ${id} was already used`));
  const names = (JSON.parse((await run(["token", "list", "--json"])).stdout) as { name: string }[]).map((t) => t.name);
  equal(names.filter((n) => n === "deploy").length, 1);
});
