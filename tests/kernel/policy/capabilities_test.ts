/** The capability registry: grants persist, forms are checked, facts say whether an action is covered. */

import { deepStrictEqual as eql, equal, rejects, throws } from "node:assert/strict";
import { assertCapability, CapabilityRegistry } from "../../../kernel/policy/capabilities.ts";
import { tempStore } from "../storage/_helpers.ts";

Deno.test("grant() persists, revoke() removes, and changes call onChange", async () => {
  await using temp = await tempStore();
  let changes = 0;
  const reg = await CapabilityRegistry.open(temp.store.namespace(["policy"]), { onChange: () => changes++ });
  await reg.grant({ type: "plugin", id: "x" }, "storage.write");
  await reg.grant({ type: "plugin", id: "x" }, "peer.*");
  await reg.grant({ type: "plugin", id: "x" }, "peer.*");
  await reg.grant({ type: "token", id: "t" }, "role:admin");
  equal(changes, 3);
  equal(reg.generation, 3);
  const again = await CapabilityRegistry.open((await temp.reopen()).namespace(["policy"]));
  eql(again.list(), [
    { principal: { type: "plugin", id: "x" }, capabilities: ["peer.*", "storage.write"] },
    { principal: { type: "token", id: "t" }, capabilities: ["role:admin"] },
  ]);
  await again.revoke({ type: "token", id: "t" }, "role:admin");
  eql(again.capabilitiesOf({ type: "token", id: "t" }), []);
  equal((await CapabilityRegistry.open((await temp.reopen()).namespace(["policy"]))).list().length, 1);
});

Deno.test("facts() covers an action by name, by area and by *, and lists roles", async () => {
  const reg = await CapabilityRegistry.open(undefined);
  const p = { type: "agent" as const, id: "a" };
  eql(reg.facts(p, "peer.send"), { capabilities: [], granted: false, roles: [] });
  await reg.grant(p, "storage.*");
  equal(reg.facts(p, "storage.delete").granted, true);
  equal(reg.facts(p, "peer.send").granted, false);
  await reg.grant(p, "peer.send");
  equal(reg.facts(p, "peer.send").granted, true);
  await reg.grant({ type: "service", id: "s" }, "*");
  equal(reg.facts({ type: "service", id: "s" }, "node.stop").granted, true);
  await reg.grant(p, "role:owner");
  eql(reg.facts(p, "x.y").roles, ["owner"]);
});

Deno.test("malformed capabilities and principals are refused", async () => {
  throws(() => assertCapability("storage.fly"), RangeError);
  throws(() => assertCapability("moon.*"), /Invalid capability "moon\.\*"/);
  throws(() => assertCapability("role:Admin"), RangeError);
  const reg = await CapabilityRegistry.open(undefined);
  await rejects(async () => await reg.grant({ type: "user" as "agent", id: "a" }, "*"), /principal type/);
  await rejects(async () => await reg.grant({ type: "agent", id: "a b" }, "*"), /principal id/);
});
