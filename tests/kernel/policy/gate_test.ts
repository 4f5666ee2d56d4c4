/**
 * The gate end to end in one process: validation, cached evaluation and its
 * invalidation, the signed decision log, policy replacement, and approvals
 * through authorize().
 */

import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { Identity } from "../../../kernel/identity/identity.ts";
import { PolicyGate } from "../../../kernel/policy/gate.ts";
import type { DecisionEntry } from "../../../kernel/policy/decision_log.ts";
import type { LogEntry } from "../../../kernel/storage/event_log.ts";
import { tempStore } from "../storage/_helpers.ts";
import { FakeClock, req, tempGate } from "./_helpers.ts";

async function entries(gate: PolicyGate): Promise<LogEntry[]> {
  await gate.log.flush();
  return await Array.fromAsync(gate.log.read());
}

/** The log as one line per record: decisions unpacked from their `policy.decisions` entries. */
async function records(gate: PolicyGate): Promise<{ type: string; data: DecisionEntry }[]> {
  return (await entries(gate)).flatMap((e) =>
    e.type === "policy.decisions"
      ? (e.data as { decisions: DecisionEntry[] }).decisions.map((data) => ({ type: "decision", data }))
      : [{ type: e.type, data: e.data as DecisionEntry }]
  );
}

Deno.test("check() decides, caches, and records every decision in the signed log", async () => {
  await using t = await tempGate({ checkpointEvery: 2 });
  const { gate } = t;
  const first = await gate.check(req("plugin:x", "storage.write", "storage:k"));
  eql([first.outcome, first.cached], ["DENY", false]);
  await gate.grant({ type: "plugin", id: "x" }, "storage.write");
  const allowed = await gate.check(req("plugin:x", "storage.write", "storage:k"));
  eql([allowed.outcome, allowed.cached, allowed.policies], ["ALLOW", false, ["granted"]]);
  const again = await gate.check(req("plugin:x", "storage.write", "storage:k"));
  eql([again.outcome, again.cached], ["ALLOW", true]);
  const log = await records(gate);
  // A repeat made while the previous entry still waits to be written is folded into it (count 2); under load the
  // first may already be on disk, and the repeat gets an entry of its own. Either way every decision is there.
  eql(log.slice(0, 2).map((e) => e.type), ["decision", "capability.granted"]);
  const allowedEntries = log.slice(2);
  ok(allowedEntries.every((e) => e.type === "decision"));
  equal(allowedEntries.reduce((n, e) => n + (e.data.count as number), 0), 2);
  const d = allowedEntries[0].data;
  eql(
    [d.principal, d.action, d.resource, d.outcome, d.risk, d.policies],
    ["plugin:x", "storage.write", "storage:k", "ALLOW", "low", ["granted"]],
  );
  equal(d.request, allowed.requestHash);
  const report = await gate.log.log.verify({ publicKeys: [t.identity.publicKey] });
  ok(report.ok, report.problems.join("; "));
  equal(report.checkpoints, 1);
  const before = (await records(gate)).length;
  await t.gate.check(req("plugin:x", "storage.write", "storage:k"));
  ok((await records(gate)).length > before || (await records(gate)).at(-1)!.data.count === 3);
});

Deno.test("revoking a grant invalidates the cached decision", async () => {
  await using t = await tempGate();
  const p = { type: "service" as const, id: "s" };
  await t.gate.grant(p, "service.*");
  equal((await t.gate.check(req("service:s", "service.restart", "service:db"))).outcome, "ALLOW");
  equal((await t.gate.check(req("service:s", "service.restart", "service:db"))).cached, true);
  await t.gate.revoke(p, "service.*");
  const after = await t.gate.check(req("service:s", "service.restart", "service:db"));
  eql([after.outcome, after.cached], ["DENY", false]);
});

Deno.test("a request that fails the schema is refused and the gate carries on", async () => {
  await using t = await tempGate();
  await rejects(t.gate.check({ principal: { type: "agent", id: "a" } }), RangeError);
  await rejects(t.gate.check(req("agent:a", "peer.send", "peer:x", { mood: "bad" })), /mood/);
  equal((await t.gate.check(req("service:t", "peer.send"))).outcome, "DENY");
});

Deno.test("setPolicies() refuses a bad set, keeps the active one, and saves a good one", async () => {
  await using temp = await tempStore();
  const identity = Identity.generate("t");
  const gate = await PolicyGate.open(temp.store, { signer: identity });
  await rejects(gate.setPolicies("permit (principal, action, resource"), SyntaxError);
  equal((await gate.check(req("service:t", "peer.send"))).outcome, "DENY");
  await gate.setPolicies(`@id("open") permit (principal, action == Action::"peer.send", resource);`);
  const now = await gate.check(req("service:t", "peer.send"));
  eql([now.outcome, now.cached, now.policies], ["ALLOW", false, ["open"]]);
  await gate.close();
  const reopened = await PolicyGate.open(await temp.reopen(), { signer: identity });
  eql(reopened.engine.policies.map((p) => p.id), ["open"]);
  await reopened.setPolicies(undefined);
  ok(reopened.engine.policies.some((p) => p.id === "granted"));
  await reopened.close();
});

Deno.test("repeats of a decision waiting to be written are folded into one entry", async () => {
  await using t = await tempGate();
  await Promise.all(Array.from({ length: 50 }, () => t.gate.check(req("node:n", "peer.send"))));
  const log = await records(t.gate);
  equal(log.length, 1);
  equal(log[0].data.count, 50);
});

Deno.test("authorize() waits for the operator: approved, denied, expired", async () => {
  const clock = new FakeClock();
  await using t = await tempGate({ now: clock.now, schedule: clock.schedule });
  const { gate } = t;
  const pending = await gate.check(req("agent:a", "peer.send"));
  eql([pending.outcome, pending.approval?.status], ["REQUIRE_APPROVAL", "pending"]);
  gate.approvals.deny(pending.approval!.id);

  const approved = gate.authorize(req("agent:a", "peer.send", "peer:p2"));
  const denied = gate.authorize(req("agent:a", "peer.send", "peer:p3"));
  const expired = gate.authorize(req("agent:a", "peer.send", "peer:p4"), { ttlMs: 1000 });
  await new Promise((r) => setTimeout(r, 0));
  const [a, d] = gate.approvals.list({ status: "pending" });
  gate.approvals.approve(a.id, { by: "ops" });
  gate.approvals.deny(d.id, { note: "not now" });
  clock.advance(1000);
  const [ra, rd, re] = await Promise.all([approved, denied, expired]);
  eql([ra.outcome, ra.approval?.status, ra.reasons.at(-1)], ["ALLOW", "approved", "approved by ops"]);
  eql([rd.outcome, rd.reasons.at(-1)], ["DENY", "denied by operator: not now"]);
  eql([re.outcome, re.approval?.status], ["DENY", "expired"]);
  const types = (await records(gate)).map((e) => e.type);
  equal(types.filter((x) => x === "approval.requested").length, 4);
  equal(types.filter((x) => x === "approval.decided").length, 4);
  equal(types.filter((x) => x === "decision").length, 4);
});
