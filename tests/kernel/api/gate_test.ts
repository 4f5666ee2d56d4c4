import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { APPROVAL_HEADER, routeRule, UNGATED_ROUTES } from "../../../kernel/api/gate.ts";
import { Node } from "../../../kernel/node/node.ts";
import type { DecisionEntry } from "../../../kernel/policy/decision_log.ts";
import { DEFAULT_POLICIES } from "../../../kernel/policy/defaults.ts";
import { appUnderTest } from "./_app.ts";

const setup = appUnderTest;

/** The logged decisions of `principal`, as `[action, resource, outcome]`. */
async function decisions(node: Node, principal: string): Promise<[string, string, string][]> {
  await node.policy.log.flush();
  const entries = await Array.fromAsync(node.policy.log.read());
  return entries.flatMap((e) =>
    e.type === "policy.decisions" ? (e.data as { decisions: DecisionEntry[] }).decisions : []
  ).filter((d) => d.principal === principal).map((d) => [d.action, d.resource, d.outcome]);
}

Deno.test("gate: every authenticated route of the app is mapped to an action, or deliberately ungated", async () => {
  await using t = await setup();
  const routes = (t.app as unknown as { routes: { method: string; path: string }[] }).routes
    .filter((r) => r.path !== "*" && r.path !== "/*");
  ok(routes.length >= 30, `only ${routes.length} routes found`);
  const unmapped = routes
    .filter((r) => !UNGATED_ROUTES.has(`${r.method} ${r.path}`) && routeRule(r.method, r.path) === undefined)
    .map((r) => `${r.method} ${r.path}`);
  eql(unmapped, [], `routes without a policy action (map them in kernel/api/gate.ts): ${unmapped.join(", ")}`);
  equal(routeRule("POST", "/v1/peers")?.action, "peer.connect");
  equal(routeRule("DELETE", "/v1/tokens/:id")?.action, "token.revoke");
  equal(routeRule("POST", "/v1/identities/:ref/export")?.action, "identity.export");
  equal(routeRule("POST", "/v1/services/:name/stop")?.action, "service.stop");
  equal(routeRule("PUT", "/v1/policy")?.action, "policy.update");
  equal(routeRule("POST", "/v1/capabilities")?.action, "capability.grant");
  equal(routeRule("POST", "/v1/approvals/:id/approve")?.action, "approval.decide");
  equal(routeRule("GET", "/v1/state")?.action, "node.state");
});

Deno.test("gate: /v1/plugins routes are mapped by pattern, whatever their exact paths", () => {
  equal(routeRule("POST", "/v1/plugins")?.action, "plugin.install");
  equal(routeRule("DELETE", "/v1/plugins/:name")?.action, "plugin.uninstall");
  equal(routeRule("POST", "/v1/plugins/:name/enable")?.action, "plugin.run");
  equal(routeRule("POST", "/v1/plugins/:name/run")?.action, "plugin.run");
  equal(routeRule("GET", "/v1/plugins")?.action, "storage.read");
  equal(routeRule("ALL", "/v1/plugins/:name/http/*")?.action, "plugin.run");
  equal(routeRule("GET", "/v1/plugins/:name/http/*")?.action, "plugin.run");
  equal(routeRule("POST", "/v1/plugins/trust")?.action, "plugin.install");
  equal(routeRule("POST", "/v1/plugins/pack")?.action, "plugin.install");
  equal(routeRule("GET", "/v1/plugins/trust")?.action, "storage.read");
  equal(routeRule("GET", "/v1/pluginsx"), undefined);
});

Deno.test("gate: admin tokens keep every route; their decisions are logged as the token principal", async () => {
  await using t = await setup();
  equal((await t.request("/v1/state")).status, 200);
  equal((await t.request("/v1/tokens", { method: "POST", json: { name: "x" } })).status, 201);
  equal((await t.request("/v1/health", { token: "none" })).status, 200);
  eql(await decisions(t.node, `token:${t.admin.id}`), [
    ["node.state", "node:local", "ALLOW"],
    ["token.create", "token:x", "ALLOW"],
  ]);
});

Deno.test("gate: a policy that forbids a token peer.connect answers 403 policy_denied before the route runs", async () => {
  await using t = await setup();
  const other = await t.node.tokens.create("ops", { persist: false });
  const policies = DEFAULT_POLICIES +
    `\n@id("no-connect")\n@reason("ops may not dial")\nforbid (principal == Token::"${other.id}", ` +
    `action == Action::"peer.connect", resource);\n`;
  equal((await t.request("/v1/policy", { method: "PUT", json: { policies } })).status, 200);
  // An address nothing listens on: the route would answer 502 if it ran.
  const body = { address: "tcp://127.0.0.1:9" };
  const denied = await t.request("/v1/peers", { method: "POST", json: body, token: other.token });
  equal(denied.status, 403);
  const error = (await denied.json()).error;
  equal(error.code, "policy_denied");
  match(error.message, /peer\.connect on peer:tcp:\/\/127\.0\.0\.1:9 denied by policy: ops may not dial/);
  equal((await t.request("/v1/peers", { token: other.token })).status, 200);
  equal((await t.request("/v1/peers", { method: "POST", json: body })).status, 502);
  eql((await decisions(t.node, `token:${other.id}`))[0], ["peer.connect", "peer:tcp://127.0.0.1:9", "DENY"]);
});

Deno.test("gate: a restricted token may do only what it is granted", async () => {
  await using t = await setup();
  const ro = await t.node.tokens.create("monitor", { persist: false });
  for (const capability of ["role:restricted", "node.state"]) {
    const principal = { type: "token", id: ro.id };
    equal((await t.request("/v1/capabilities", { method: "POST", json: { principal, capability } })).status, 200);
  }
  equal((await t.request("/v1/state", { token: ro.token })).status, 200);
  const refused = await t.request("/v1/tokens", { token: ro.token });
  equal(refused.status, 403);
  match((await refused.json()).error.message, /storage\.read on token:\* denied by policy: no policy permits/);
  equal((await t.request("/v1/tokens/0123456789abcdef", { method: "DELETE", token: ro.token })).status, 403);
});

Deno.test("gate: REQUIRE_APPROVAL answers 202; the approved request runs once with the header, never twice", async () => {
  await using t = await setup();
  const requester = await t.node.tokens.create("ci", { persist: false });
  const policies = DEFAULT_POLICIES.replace(
    `permit (principal is Token, action, resource)`,
    `permit (
  principal is Token,
  action,
  resource
) unless { action == Action::"token.create" }`,
  ) +
    `\n@id("token-create-approval")\n@outcome("require_approval")\n@risk("high")\n` +
    `@reason("new tokens need an operator")\npermit (principal is Token, action == Action::"token.create", resource);\n`;
  equal((await t.request("/v1/policy", { method: "PUT", json: { policies } })).status, 200);
  const create = (headers: Record<string, string> = {}, name = "deploy") =>
    t.request("/v1/tokens", { method: "POST", json: { name }, token: requester.token, headers });

  const pending = await create();
  equal(pending.status, 202);
  const body = await pending.json();
  eql([body.outcome, body.risk, body.reasons], ["REQUIRE_APPROVAL", "high", ["new tokens need an operator"]]);
  match(body.message, new RegExp(`${APPROVAL_HEADER}: ${body.approval}`));
  ok(!t.node.tokens.list().some((x) => x.name === "deploy"), "the route ran before the approval");

  // Not yet approved, or malformed: refused.
  const early = await create({ [APPROVAL_HEADER]: body.approval });
  eql([early.status, (await early.json()).error.message], [403, `Approval ${body.approval} is pending`]);
  equal((await create({ [APPROVAL_HEADER]: "nope" })).status, 403);

  // The operator (the admin token) approves; another request cannot spend the approval.
  equal((await t.request(`/v1/approvals/${body.approval}/approve`, { method: "POST" })).status, 200);
  const other = await create({ [APPROVAL_HEADER]: body.approval }, "other");
  match((await other.json()).error.message, /was given for another request/);
  const ran = await create({ [APPROVAL_HEADER]: body.approval });
  equal(ran.status, 201);
  equal((await ran.json()).name, "deploy");
  const again = await create({ [APPROVAL_HEADER]: body.approval });
  eql([again.status, (await again.json()).error], [403, {
    code: "approval_refused",
    message: `Approval ${body.approval} was already used`,
  }]);
  equal(t.node.tokens.list().filter((x) => x.name === "deploy").length, 1);

  await t.node.policy.log.flush();
  const types = (await Array.fromAsync(t.node.policy.log.read())).map((e) => e.type);
  ok(types.includes("approval.requested") && types.includes("approval.decided") && types.includes("approval.used"));
  eql((await decisions(t.node, `token:${requester.id}`))[0], ["token.create", "token:deploy", "REQUIRE_APPROVAL"]);
});

Deno.test("gate: a set that shuts every token out can still be shown and reset by the local admin token", async () => {
  await using t = await setup();
  const stored = await t.node.tokens.create("stored");
  const closed = `@id("services-only")\npermit (principal is Service, action, resource);\n`;
  equal((await t.request("/v1/policy", { method: "PUT", json: { policies: closed } })).status, 200);
  equal((await t.request("/v1/state")).status, 403);
  // A stored token gets no override: only the in-memory local admin token does.
  equal((await t.request("/v1/policy", { token: stored.token })).status, 403);
  equal((await t.request("/v1/policy/reset", { method: "POST", token: stored.token })).status, 403);
  eql((await (await t.request("/v1/policy")).json()).ids, ["services-only"]);
  equal((await t.request("/v1/policy/reset", { method: "POST" })).status, 200);
  equal((await t.request("/v1/state")).status, 200);
  await t.node.policy.log.flush();
  const overrides = (await Array.fromAsync(t.node.policy.log.read())).filter((e) => e.type === "policy.override");
  const data = overrides.map((e) => e.data as { action: string; outcome: string });
  eql(data.map((d) => [d.action, d.outcome]), [["storage.read", "DENY"], ["policy.update", "DENY"]]);
});

Deno.test("gate: a repeated request is decided from memory and still logged; a policy change takes effect at once", async () => {
  await using t = await setup();
  const ops = await t.node.tokens.create("ops", { persist: false });
  for (let i = 0; i < 3; i++) equal((await t.request("/v1/tokens", { token: ops.token })).status, 200);
  await t.node.policy.log.flush();
  const counted = (await Array.fromAsync(t.node.policy.log.read())).flatMap((e) =>
    e.type === "policy.decisions" ? (e.data as { decisions: DecisionEntry[] }).decisions : []
  ).filter((d) => d.principal === `token:${ops.id}`).reduce((n, d) => n + d.count, 0);
  equal(counted, 3);
  const policies = DEFAULT_POLICIES +
    `\n@id("no-list")\nforbid (principal == Token::"${ops.id}", action == Action::"storage.read", resource);\n`;
  equal((await t.request("/v1/policy", { method: "PUT", json: { policies } })).status, 200);
  equal((await t.request("/v1/tokens", { token: ops.token })).status, 403);
  equal((await t.request("/v1/policy/reset", { method: "POST" })).status, 200);
  equal((await t.request("/v1/tokens", { token: ops.token })).status, 200);
  // A grant changes the generation as well.
  const principal = { type: "token", id: ops.id };
  await t.request("/v1/capabilities", { method: "POST", json: { principal, capability: "role:restricted" } });
  equal((await t.request("/v1/tokens", { token: ops.token })).status, 403);
});
