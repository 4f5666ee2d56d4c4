/**
 * The approval flow end to end through a real node process: a requester asks
 * through the API for an action that needs approval and waits; the operator
 * lists it and approves or denies it with the CLI; the requester's waiting
 * request resolves. One approval expires. Bad requests are refused and the
 * node carries on.
 */

import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { cli, startNode, tempDataDir } from "./_node_process.ts";

const ask = (peer: string) =>
  JSON.stringify({
    principal: { type: "agent", id: "planner" },
    action: "peer.send",
    resource: { type: "peer", id: peer },
    context: { reason: `send a report to ${peer}` },
  });

interface ApprovalJson {
  id: string;
  status: string;
  request: { resource: { id: string } };
}

async function pendingFor(dataDir: string, peer: string): Promise<ApprovalJson> {
  for (let i = 0; i < 100; i++) {
    const out = await cli(["--data-dir", dataDir, "approvals", "list", "--status", "pending", "--json"]);
    equal(out.code, 0, out.stderr);
    const found = (JSON.parse(out.stdout) as ApprovalJson[]).find((a) => a.request.resource.id === peer);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no pending approval for ${peer}`);
}

Deno.test("an agent's request waits for the operator: approved and denied through the CLI, one expires", async () => {
  await using dir = await tempDataDir();
  await using node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });

  const approved = node.api("/v1/policy/check?wait=true", { method: "POST", body: ask("p1") });
  const denied = node.api("/v1/policy/check?wait=true", { method: "POST", body: ask("p2") });
  const expired = node.api("/v1/policy/check?wait=true&ttl=1", { method: "POST", body: ask("p3") });

  const a = await pendingFor(dir.path, "p1");
  const human = await cli(["--data-dir", dir.path, "approvals", "list"]);
  match(human.stdout, new RegExp(`${a.id}  pending  medium   agent:planner peer.send peer:p1`));
  const ok1 = await cli(["--data-dir", dir.path, "approvals", "approve", a.id, "--note", "fine"]);
  equal(ok1.code, 0, ok1.stderr);
  match(ok1.stdout, /approved/);
  const d = await pendingFor(dir.path, "p2");
  equal((await cli(["--data-dir", dir.path, "approvals", "deny", d.id])).code, 0);

  const ra = await (await approved).json();
  eql([ra.outcome, ra.approval.status, ra.approval.note], ["ALLOW", "approved", "fine"]);
  const rd = await (await denied).json();
  eql([rd.outcome, rd.approval.status], ["DENY", "denied"]);
  const re = await (await expired).json();
  eql([re.outcome, re.approval.status], ["DENY", "expired"]);

  // Deciding twice, or an unknown approval, is refused with a clear message.
  const again = await cli(["--data-dir", dir.path, "approvals", "deny", a.id]);
  equal(again.code, 1);
  match(again.stderr, /already approved/);
  const unknown = await cli(["--data-dir", dir.path, "approvals", "approve", "0123456789abcdef"]);
  equal(unknown.code, 1);
  match(unknown.stderr, /No approval 0123456789abcdef/);
});

Deno.test("the API refuses a request that fails the schema and goes on deciding", async () => {
  await using dir = await tempDataDir();
  await using node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
  const bad = await node.api("/v1/policy/check", {
    method: "POST",
    body: JSON.stringify({
      principal: { type: "wizard", id: "x" },
      action: "peer.send",
      resource: { type: "peer", id: "p" },
    }),
  });
  equal(bad.status, 400);
  const body = await bad.json();
  equal(body.error.code, "invalid_request");
  match(body.error.message, /principal\.type/);
  const extra = await node.api("/v1/policy/check", {
    method: "POST",
    body: JSON.stringify({ ...JSON.parse(ask("p")), admin: true }),
  });
  equal(extra.status, 400);
  const res = await node.api("/v1/policy/check", {
    method: "POST",
    body: JSON.stringify({
      principal: { type: "plugin", id: "x" },
      action: "storage.write",
      resource: { type: "storage", id: "k" },
    }),
  });
  equal(res.status, 200);
  const decision = await res.json();
  eql([decision.outcome, decision.reasons], ["DENY", ["no policy permits storage.write (default deny)"]]);
  const pending = await (await node.api("/v1/policy/check", { method: "POST", body: ask("p9") })).json();
  equal(pending.outcome, "REQUIRE_APPROVAL");
  equal(pending.approval.status, "pending");
  const got = await (await node.api(`/v1/approvals/${pending.approval.id}`)).json();
  equal(got.id, pending.approval.id);
  ok((await node.api("/v1/approvals")).ok);
});
