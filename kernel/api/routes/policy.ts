/**
 * Managing the policy gate over HTTP (NZ-POLICY-01 "API"): `/v1/policy`
 * shows, replaces and resets the active Cedar policy set, `/v1/capabilities`
 * lists, grants and revokes capabilities. Every change goes through the gate,
 * which saves it, invalidates the decision cache, notes it in the signed
 * decision log and publishes `policy.loaded` or `capability.granted` /
 * `capability.revoked` on `/v1/events`.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { DEFAULT_POLICIES } from "../../policy/defaults.ts";
import { PolicyEngine } from "../../policy/engine.ts";
import { PRINCIPAL_TYPES } from "../../policy/request.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { ErrorSchema } from "../schemas.ts";

const PolicySetSchema = z.object({
  policies: z.string().openapi({ description: "The active policy set's Cedar text" }),
  ids: z.array(z.string()).openapi({ description: "The active policies' IDs, in order" }),
  generation: z.number().int(),
  defaults: z.array(z.string()).openapi({ description: "The IDs of the default policy set" }),
}).openapi("PolicySet");

const SetPoliciesSchema = z.strictObject({
  policies: z.string().max(60_000).openapi({ description: "Cedar text of the new policy set" }),
}).openapi("SetPolicies");

const LoadedSchema = z.object({
  ids: z.array(z.string()),
  generation: z.number().int(),
}).openapi("PoliciesLoaded");

const PrincipalSchema = z.strictObject({
  type: z.enum(PRINCIPAL_TYPES),
  id: z.string().min(1).max(256),
});

const GrantSchema = z.object({
  principal: PrincipalSchema,
  capabilities: z.array(z.string()),
}).openapi("Grant");

const CapabilityChangeSchema = z.strictObject({
  principal: PrincipalSchema,
  capability: z.string().min(1).max(64).openapi({
    description: "An action (storage.write), an area (storage.*), * or role:NAME",
  }),
}).openapi("CapabilityChange");

const show = createRoute({
  method: "get",
  path: "/v1/policy",
  tags: ["policy"],
  summary: "The active policy set (text and IDs) and the default set's IDs",
  security: [{ bearer: [] }],
  responses: { 200: { description: "The policy set", ...json(PolicySetSchema) }, ...AUTH_RESPONSES },
});

const set = createRoute({
  method: "put",
  path: "/v1/policy",
  tags: ["policy"],
  summary: "Replace the policy set (saved; a set that does not load is refused and the previous one stays)",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(SetPoliciesSchema) } },
  responses: {
    200: { description: "The loaded policies", ...json(LoadedSchema) },
    400: {
      description: "The set does not parse or validate (the message names policy and line)",
      ...json(ErrorSchema),
    },
    ...AUTH_RESPONSES,
  },
});

const reset = createRoute({
  method: "post",
  path: "/v1/policy/reset",
  tags: ["policy"],
  summary: "Return to the default policy set",
  security: [{ bearer: [] }],
  responses: { 200: { description: "The loaded policies", ...json(LoadedSchema) }, ...AUTH_RESPONSES },
});

const listGrants = createRoute({
  method: "get",
  path: "/v1/capabilities",
  tags: ["policy"],
  summary: "Every principal's capabilities, ordered by principal",
  security: [{ bearer: [] }],
  responses: { 200: { description: "Grants", ...json(z.array(GrantSchema)) }, ...AUTH_RESPONSES },
});

function change(method: "post" | "delete") {
  return createRoute({
    method,
    path: "/v1/capabilities",
    tags: ["policy"],
    summary: method === "post" ? "Grant a capability to a principal" : "Revoke a capability from a principal",
    security: [{ bearer: [] }],
    request: { body: { required: true, ...json(CapabilityChangeSchema) } },
    responses: {
      200: { description: "The principal's capabilities now", ...json(GrantSchema) },
      400: { description: "A malformed principal or capability", ...json(ErrorSchema) },
      ...AUTH_RESPONSES,
    },
  });
}

let defaultIds: string[] | undefined;

/** Registers `/v1/policy` and `/v1/capabilities`. */
export function policyRoutes(app: ApiApp, ctx: ApiContext): void {
  const gate = () => ctx.node.policy;
  const loaded = () => ({ ids: gate().engine.policies.map((p) => p.id), generation: gate().engine.generation });
  app.openapi(show, (c) => {
    defaultIds ??= new PolicyEngine(DEFAULT_POLICIES).policies.map((p) => p.id);
    return c.json({ policies: gate().engine.text, ...loaded(), defaults: defaultIds }, 200);
  });
  app.openapi(set, async (c) => {
    await gate().setPolicies(c.req.valid("json").policies);
    return c.json(loaded(), 200);
  });
  app.openapi(reset, async (c) => {
    await gate().setPolicies(undefined);
    return c.json(loaded(), 200);
  });
  app.openapi(listGrants, (c) => c.json(gate().capabilities.list(), 200));
  app.openapi(change("post"), async (c) => {
    const { principal, capability } = c.req.valid("json");
    return c.json(await gate().grant(principal, capability), 200);
  });
  app.openapi(change("delete"), async (c) => {
    const { principal, capability } = c.req.valid("json");
    return c.json(await gate().revoke(principal, capability), 200);
  });
}
