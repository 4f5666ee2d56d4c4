/**
 * The Cedar engine: the outcome rule, risk and reasons from annotations, the
 * default policies, policy sets refused with the line of the problem (the
 * previous set staying active), and determinism over random requests.
 */

import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_POLICIES } from "../../../kernel/policy/defaults.ts";
import { PolicyEngine, type PrincipalFacts } from "../../../kernel/policy/engine.ts";
import {
  ACTIONS,
  parsePolicyRequest,
  type PolicyRequest,
  PRINCIPAL_TYPES,
  RESOURCE_TYPES,
} from "../../../kernel/policy/request.ts";
import { req } from "./_helpers.ts";

const NONE: PrincipalFacts = { capabilities: [], granted: false, roles: [] };
const GRANTED: PrincipalFacts = { capabilities: ["peer.send"], granted: true, roles: [] };
const ADMIN: PrincipalFacts = { capabilities: ["role:admin"], granted: false, roles: ["admin"] };
const r = (...args: Parameters<typeof req>) => parsePolicyRequest(req(...args));

Deno.test("evaluate() denies by default, saying no policy permits the action", () => {
  const e = new PolicyEngine("").evaluate(r("agent:a", "peer.send"));
  eql(e, {
    outcome: "DENY",
    risk: "low",
    reasons: ["no policy permits peer.send (default deny)"],
    policies: [],
    errors: [],
  });
});

Deno.test("evaluate() maps permit, forbid and @outcome to ALLOW, DENY and REQUIRE_APPROVAL", () => {
  const engine = new PolicyEngine(`
@id("p") @risk("low") permit (principal, action == Action::"storage.read", resource);
@id("q") @outcome("require_approval") @risk("high") @reason("ask first")
permit (principal, action in Action::"storage", resource) when { resource.kind == "storage" };
@id("f") @risk("critical") @reason("never") forbid (principal is Plugin, action == Action::"storage.delete", resource);
@id("w") permit (principal, action == Action::"storage.delete", resource);
`);
  const read = engine.evaluate(r("agent:a", "storage.read", "storage:k"));
  equal(read.outcome, "REQUIRE_APPROVAL", "one determining permit asks for approval: approval wins");
  eql(read.policies, ["p", "q"]);
  equal(read.risk, "high");
  eql(read.reasons, ["permitted by policy p", "ask first"]);
  equal(engine.evaluate(r("agent:a", "storage.read", "peer:k")).outcome, "ALLOW");
  const del = engine.evaluate(r("plugin:x", "storage.delete", "peer:k"));
  eql([del.outcome, del.risk, del.reasons, del.policies], ["DENY", "critical", ["never"], ["f"]]);
});

Deno.test("the default policies: admins do anything, others what they are granted, agents ask", () => {
  const engine = new PolicyEngine(DEFAULT_POLICIES);
  equal(engine.evaluate(r("token:t", "identity.export", "identity:me"), ADMIN).outcome, "ALLOW");
  const token = engine.evaluate(r("token:t", "storage.write", "storage:k"), NONE);
  eql([token.outcome, token.policies], ["ALLOW", ["token-all"]]);
  const restricted: PrincipalFacts = { capabilities: ["role:restricted"], granted: false, roles: ["restricted"] };
  equal(engine.evaluate(r("token:t", "storage.write", "storage:k"), restricted).outcome, "DENY");
  const allowed = { ...restricted, capabilities: ["role:restricted", "storage.write"], granted: true };
  eql(engine.evaluate(r("token:t", "storage.write", "storage:k"), allowed).policies, ["granted"]);
  equal(engine.evaluate(r("service:s", "storage.write", "storage:k"), NONE).outcome, "DENY");
  equal(engine.evaluate(r("plugin:x", "peer.send"), GRANTED).outcome, "ALLOW");
  equal(engine.evaluate(r("plugin:x", "peer.send"), NONE).outcome, "DENY");
  const agent = engine.evaluate(r("agent:a", "peer.send"), NONE);
  eql([agent.outcome, agent.risk, agent.policies], ["REQUIRE_APPROVAL", "medium", ["agent-peer-send"]]);
  equal(engine.evaluate(r("agent:a", "peer.send"), GRANTED).outcome, "REQUIRE_APPROVAL");
  const install: PrincipalFacts = { capabilities: ["plugin.*"], granted: true, roles: [] };
  const i = engine.evaluate(r("agent:a", "plugin.install", "plugin:x"), install);
  eql([i.outcome, i.risk], ["REQUIRE_APPROVAL", "high"]);
  equal(engine.evaluate(r("agent:a", "plugin.install", "plugin:x"), NONE).outcome, "DENY");
  const read = engine.evaluate(r("agent:a", "node.state", "node:local"), NONE);
  eql([read.outcome, read.policies], ["ALLOW", ["agent-read"]]);
  equal(engine.evaluate(r("agent:a", "service.list", "service:*"), NONE).outcome, "ALLOW");
  equal(engine.evaluate(r("agent:a", "approval.list", "approval:*"), NONE).outcome, "DENY");
  equal(engine.evaluate(r("plugin:x", "node.state", "node:local"), NONE).outcome, "DENY");
  const adminPlugin: PrincipalFacts = { capabilities: ["role:admin"], granted: true, roles: ["admin"] };
  const exp = engine.evaluate(r("plugin:x", "identity.export", "identity:me"), adminPlugin);
  eql([exp.outcome, exp.risk, exp.policies], ["DENY", "critical", ["no-identity-export"]]);
});

Deno.test("load() refuses a set that does not parse, naming the line, and keeps the previous set", () => {
  const engine = new PolicyEngine(`@id("a") permit (principal, action, resource);`);
  throws(
    () =>
      engine.load(
        `@id("a") permit (principal, action, resource);\n\npermit (principal, action,\n resource) when { ; };`,
      ),
    (e: Error) => e instanceof SyntaxError && /does not parse: line 4/.test(e.message),
  );
  eql(engine.policies.map((p) => p.id), ["a"]);
  equal(engine.evaluate(r("agent:a", "peer.send")).outcome, "ALLOW");
  equal(engine.generation, 1);
});

Deno.test("load() refuses a set that does not validate against the schema, naming the policy", () => {
  const engine = new PolicyEngine("");
  throws(
    () =>
      engine.load(
        `@id("ok") permit (principal, action, resource);\n@id("bad")\npermit (principal, action, resource) when { principal.salary > 5 };`,
      ),
    (e: Error) => e instanceof SyntaxError && /policy "bad" \(line 2\): .*salary/.test(e.message),
  );
  throws(() => engine.load(`permit (principal, action == Action::"peer.fly", resource);`), /peer\.fly/);
  throws(() => engine.load(`permit (principal, action, resource) when { context.weather == "fine" };`), /weather/);
  equal(engine.policies.length, 0);
});

Deno.test("load() refuses unknown annotations, bad values, duplicate ids and templates", () => {
  const engine = new PolicyEngine("");
  throws(() => engine.load(`@colour("red") permit (principal, action, resource);`), /unknown annotation @colour/);
  throws(() => engine.load(`@risk("extreme") permit (principal, action, resource);`), /@risk must be one of/);
  throws(() => engine.load(`@outcome("maybe") permit (principal, action, resource);`), /@outcome must be/);
  throws(
    () => engine.load(`@outcome("require_approval") forbid (principal, action, resource);`),
    /permit policies only/,
  );
  throws(
    () => engine.load(`@id("x") permit (principal, action, resource);\n@id("x") permit (principal, action, resource);`),
    /used twice/,
  );
  throws(() => engine.load(`permit (principal == ?principal, action, resource);`), /templates are not supported/);
  throws(() => engine.load(42 as unknown as string), TypeError);
});

Deno.test("policies without @id are named policyN by position", () => {
  const engine = new PolicyEngine(
    `permit (principal, action == Action::"peer.send", resource);\npermit (principal, action, resource);`,
  );
  eql(engine.policies.map((p) => p.id), ["policy0", "policy1"]);
  eql(engine.evaluate(r("agent:a", "peer.send")).policies, ["policy0", "policy1"]);
});

Deno.test("time is context: a policy on context.time decides by the request, never by a clock", () => {
  const engine = new PolicyEngine(
    `@id("office") permit (principal, action, resource) when { context has time && context.time < 1000 };`,
  );
  equal(engine.evaluate(r("agent:a", "peer.send", "peer:x", { time: 999 })).outcome, "ALLOW");
  equal(engine.evaluate(r("agent:a", "peer.send", "peer:x", { time: 1000 })).outcome, "DENY");
  equal(engine.evaluate(r("agent:a", "peer.send", "peer:x")).outcome, "DENY");
});

const idArb = fc.stringMatching(/^[a-z0-9]{1,8}$/);
const requestArb: fc.Arbitrary<PolicyRequest> = fc.record({
  principal: fc.record({ type: fc.constantFrom(...PRINCIPAL_TYPES), id: idArb }),
  action: fc.constantFrom(...ACTIONS),
  resource: fc.record({ type: fc.constantFrom(...RESOURCE_TYPES), id: idArb }),
  context: fc.record(
    {
      time: fc.nat(),
      source: fc.constantFrom("api", "cli", "plugin"),
      bytes: fc.nat(),
      reason: fc.string({ maxLength: 20 }),
    },
    { requiredKeys: [] },
  ),
});
const factsArb: fc.Arbitrary<PrincipalFacts> = fc.record({
  capabilities: fc.subarray(["peer.send", "storage.*", "role:admin", "*"]),
  granted: fc.boolean(),
  roles: fc.subarray(["admin", "owner"]),
});

Deno.test("evaluate() gives the same decision for the same request twice (property)", () => {
  const engine = new PolicyEngine(DEFAULT_POLICIES);
  const other = new PolicyEngine(DEFAULT_POLICIES);
  fc.assert(
    fc.property(requestArb, factsArb, (request, facts) => {
      const first = engine.evaluate(parsePolicyRequest(request), facts);
      eql(engine.evaluate(parsePolicyRequest(structuredClone(request)), facts), first);
      eql(other.evaluate(parsePolicyRequest(request), facts), first);
      ok(first.reasons.length > 0);
    }),
    { numRuns: 300 },
  );
});

const SCOPES = `${DEFAULT_POLICIES}
@id("s1") permit (principal == Agent::"a", action == Action::"storage.read", resource);
@id("s2") forbid (principal is Service in Role::"owner", action in Action::"storage", resource);
@id("s3") @outcome("require_approval") permit (principal in Role::"ops", action in [Action::"net", Action::"peer.send"], resource);
@id("s4") permit (principal is Node, action in Action::"net.connect", resource) when { context has port && context.port == 443 };
`;

Deno.test("slicing the policy set by principal type and action never changes a decision (property)", () => {
  const sliced = new PolicyEngine(SCOPES);
  const whole = new PolicyEngine(SCOPES, { slicing: false });
  const facts = fc.record({
    capabilities: fc.constant([]),
    granted: fc.boolean(),
    roles: fc.subarray(["admin", "owner", "ops"]),
  });
  const request = requestArb.map((r) => ({ ...r, principal: { ...r.principal, id: r.principal.id.slice(0, 1) } }));
  fc.assert(
    fc.property(request, facts, (r, f) => {
      const parsed = parsePolicyRequest(r);
      eql(sliced.evaluate(parsed, f), whole.evaluate(parsed, f));
    }),
    { numRuns: 500 },
  );
});
