import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { appUnderTest } from "./_app.ts";

const setup = appUnderTest;

const write = {
  principal: { type: "service", id: "backup" },
  action: "storage.write",
  resource: { type: "storage", id: "backups" },
};

const POLICY = `@id("services-write")
@risk("low")
@reason("services may write storage")
permit (principal is Service, action == Action::"storage.write", resource);

@id("tokens")
permit (principal is Token, action, resource);
`;

Deno.test("PUT /v1/policy refuses a bad set naming the policy and line; the previous set stays active", async () => {
  await using t = await setup();
  const before = await (await t.request("/v1/policy")).json();
  ok(before.ids.includes("granted"));
  eql(before.ids, before.defaults);
  const bad = await t.request("/v1/policy", {
    method: "PUT",
    json: { policies: `${POLICY}\n@id("broken")\npermit (principal, action == Action::"no.such", resource);\n` },
  });
  equal(bad.status, 400);
  const error = (await bad.json()).error;
  equal(error.code, "invalid_request");
  match(error.message, /broken/);
  match(error.message, /line \d+/);
  const after = await (await t.request("/v1/policy")).json();
  eql([after.ids, after.policies], [before.ids, before.policies]);
  equal(t.node.policy.evaluate(write).outcome, "DENY");
});

Deno.test("PUT /v1/policy changes decisions, persists across a restart, and reset returns to the defaults", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nzcore-api-policy-" });
  try {
    {
      await using t = await setup(dir);
      const check = async () => (await (await t.request("/v1/policy/check", { method: "POST", json: write })).json());
      equal((await check()).outcome, "DENY");
      const set = await t.request("/v1/policy", { method: "PUT", json: { policies: POLICY } });
      equal(set.status, 200);
      eql((await set.json()).ids, ["services-write", "tokens"]);
      const allowed = await check();
      eql([allowed.outcome, allowed.cached, allowed.policies], ["ALLOW", false, ["services-write"]]);
      await t.node.policy.log.flush();
      ok((await Array.fromAsync(t.node.policy.log.read())).some((e) => e.type === "policy.loaded"));
    }
    {
      await using t = await setup(dir);
      const shown = await (await t.request("/v1/policy")).json();
      eql([shown.ids, shown.policies], [["services-write", "tokens"], POLICY]);
      const reset = await t.request("/v1/policy/reset", { method: "POST" });
      equal(reset.status, 200);
      const ids = (await reset.json()).ids;
      eql(ids, shown.defaults);
      equal(t.node.policy.evaluate(write).outcome, "DENY");
    }
    {
      await using t = await setup(dir);
      const shown = await (await t.request("/v1/policy")).json();
      eql(shown.ids, shown.defaults);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a grant through /v1/capabilities changes a decision of /v1/policy/check; revoking changes it back", async () => {
  await using t = await setup();
  const check = async () => (await (await t.request("/v1/policy/check", { method: "POST", json: write })).json());
  const first = await check();
  equal(first.outcome, "DENY");
  equal((await check()).cached, true);

  const change = { principal: write.principal, capability: "storage.write" };
  const granted = await t.request("/v1/capabilities", { method: "POST", json: change });
  equal(granted.status, 200);
  eql(await granted.json(), { principal: write.principal, capabilities: ["storage.write"] });
  const allowed = await check();
  eql([allowed.outcome, allowed.cached, allowed.policies], ["ALLOW", false, ["granted"]]);
  eql(await (await t.request("/v1/capabilities")).json(), [{
    principal: write.principal,
    capabilities: ["storage.write"],
  }]);

  const revoked = await t.request("/v1/capabilities", { method: "DELETE", json: change });
  equal(revoked.status, 200);
  eql((await revoked.json()).capabilities, []);
  const denied = await check();
  eql([denied.outcome, denied.cached], ["DENY", false]);
  eql(await (await t.request("/v1/capabilities")).json(), []);

  await t.node.policy.log.flush();
  const types = (await Array.fromAsync(t.node.policy.log.read())).map((e) => e.type);
  ok(types.includes("capability.granted") && types.includes("capability.revoked"), types.join());

  const bad = await t.request("/v1/capabilities", {
    method: "POST",
    json: { principal: write.principal, capability: "nothing.real" },
  });
  equal(bad.status, 400);
  match((await bad.json()).error.message, /Invalid capability/);
});
