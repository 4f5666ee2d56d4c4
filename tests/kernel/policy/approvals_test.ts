/** Approvals: approve, deny and expire settle once, tell the waiter, and emit events; a fake clock drives expiry. */

import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import { Approvals } from "../../../kernel/policy/approvals.ts";
import { parsePolicyRequest } from "../../../kernel/policy/request.ts";
import { ConflictError, NotFoundError } from "../../../kernel/errors.ts";
import { FakeClock, req } from "./_helpers.ts";

const decision = { requestHash: "ab".repeat(32), risk: "medium" as const, reasons: ["ask"], policies: ["p"] };
const request = parsePolicyRequest(req("agent:a", "peer.send"));

function setup() {
  const clock = new FakeClock();
  const events: [string, Record<string, unknown>][] = [];
  const approvals = new Approvals({ now: clock.now, schedule: clock.schedule, events: (t, d) => events.push([t, d]) });
  return { clock, events, approvals };
}

Deno.test("approve() settles the approval and tells whoever waits", async () => {
  const { approvals, events, clock } = setup();
  const { approval, settled } = approvals.open(request, decision);
  equal(approval.status, "pending");
  equal(approval.expires, clock.time + 600_000);
  eql(approvals.list().map((a) => a.id), [approval.id]);
  const waiting = approvals.wait(approval.id);
  clock.advance(1000);
  const done = approvals.approve(approval.id, { by: "ops", note: "fine" });
  equal(done.status, "approved");
  equal((await settled).status, "approved");
  equal((await waiting).decidedBy, "ops");
  eql(events.map(([t]) => t), ["approval.requested", "approval.decided"]);
  equal(events[1][1].status, "approved");
  throws(() => approvals.deny(approval.id), ConflictError);
  equal(approvals.pending, 0);
  equal(approvals.list({ status: "approved" }).length, 1);
});

Deno.test("deny() and expiry settle as denied and expired", async () => {
  const { approvals, clock } = setup();
  const a = approvals.open(request, decision);
  const b = approvals.open(request, decision, { ttlMs: 5000 });
  approvals.deny(a.approval.id);
  equal((await a.settled).status, "denied");
  clock.advance(4999);
  equal(approvals.get(b.approval.id).status, "pending");
  clock.advance(1);
  const expired = await b.settled;
  eql([expired.status, expired.decidedBy], ["expired", "expiry"]);
  throws(() => approvals.approve(b.approval.id), /already expired/);
});

Deno.test("unknown ids, bad timeouts and too many pending are refused", async () => {
  const clock = new FakeClock();
  const approvals = new Approvals({ now: clock.now, schedule: clock.schedule, maxPending: 1 });
  throws(() => approvals.approve("0000000000000000"), NotFoundError);
  await rejects(() => approvals.wait("0000000000000000"), NotFoundError);
  throws(() => approvals.open(request, decision, { ttlMs: 0 }), RangeError);
  approvals.open(request, decision);
  throws(() => approvals.open(request, decision), /Too many approvals pending/);
});

Deno.test("wait() rejects with the signal's reason, and close() expires what is pending", async () => {
  const { approvals } = setup();
  const { approval, settled } = approvals.open(request, decision);
  const controller = new AbortController();
  const waiting = approvals.wait(approval.id, { signal: controller.signal });
  controller.abort(new Error("gone"));
  await rejects(waiting, /gone/);
  approvals.close();
  const done = await settled;
  eql([done.status, done.decidedBy], ["expired", "shutdown"]);
  ok(done.decided);
});
