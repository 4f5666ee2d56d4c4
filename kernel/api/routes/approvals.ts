/**
 * The policy gate over HTTP (NZ-POLICY-01): `POST /v1/policy/check`
 * evaluates a request (and with `?wait=true` holds the answer until its
 * approval settles), and `/v1/approvals` lists, approves and denies the
 * requests waiting for an operator. Approvals appear on `/v1/events` as
 * `approval.requested` and `approval.decided`.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { PolicyRequestSchema } from "../../policy/request.ts";
import type { Approval } from "../../policy/approvals.ts";
import type { Decision } from "../../policy/gate.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { ErrorSchema, IdParam } from "../schemas.ts";

const RequestSchema = PolicyRequestSchema.openapi("PolicyRequest");

export const ApprovalSchema = z.object({
  id: z.string().openapi({ description: "16 hex digits" }),
  request: RequestSchema,
  requestHash: z.string(),
  risk: z.enum(["low", "medium", "high", "critical"]),
  reasons: z.array(z.string()),
  policies: z.array(z.string()),
  status: z.enum(["pending", "approved", "denied", "expired"]),
  created: z.number().int(),
  expires: z.number().int(),
  decided: z.number().int().optional(),
  decidedBy: z.string().optional(),
  note: z.string().optional(),
}).openapi("Approval");

export const DecisionSchema = z.object({
  outcome: z.enum(["ALLOW", "DENY", "REQUIRE_APPROVAL"]),
  risk: z.enum(["low", "medium", "high", "critical"]),
  reasons: z.array(z.string()),
  policies: z.array(z.string()).openapi({ description: "The determining policies" }),
  errors: z.array(z.string()),
  requestHash: z.string(),
  generation: z.number().int(),
  cached: z.boolean(),
  approval: ApprovalSchema.optional(),
}).openapi("Decision");

const DecideSchema = z.strictObject({ note: z.string().max(1024).optional() }).openapi("ApprovalDecision");

const check = createRoute({
  method: "post",
  path: "/v1/policy/check",
  tags: ["policy"],
  summary: "Decide a policy request: ALLOW, DENY or REQUIRE_APPROVAL (recorded in the decision log)",
  security: [{ bearer: [] }],
  request: {
    query: z.object({
      wait: z.enum(["true", "false"]).optional().openapi({
        description: "Hold the answer until the approval settles; the outcome is then ALLOW or DENY",
      }),
      ttl: z.coerce.number().int().min(1).max(86_400).optional().openapi({
        description: "Seconds the approval waits for an operator (default 600)",
      }),
    }),
    body: { required: true, ...json(RequestSchema) },
  },
  responses: {
    200: { description: "The decision", ...json(DecisionSchema) },
    400: { description: "The request fails the schema", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

const list = createRoute({
  method: "get",
  path: "/v1/approvals",
  tags: ["policy"],
  summary: "Pending approvals (oldest first), then recently settled ones",
  security: [{ bearer: [] }],
  request: {
    query: z.object({ status: z.enum(["pending", "approved", "denied", "expired"]).optional() }),
  },
  responses: { 200: { description: "Approvals", ...json(z.array(ApprovalSchema)) }, ...AUTH_RESPONSES },
});

const get = createRoute({
  method: "get",
  path: "/v1/approvals/{id}",
  tags: ["policy"],
  summary: "One approval; with ?wait=true, once it is settled",
  security: [{ bearer: [] }],
  request: { params: IdParam, query: z.object({ wait: z.enum(["true", "false"]).optional() }) },
  responses: {
    200: { description: "The approval", ...json(ApprovalSchema) },
    404: { description: "No such approval", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

function decide(verb: "approve" | "deny") {
  return createRoute({
    method: "post",
    path: `/v1/approvals/{id}/${verb}`,
    tags: ["policy"],
    summary: verb === "approve" ? "Approve a pending request" : "Deny a pending request",
    security: [{ bearer: [] }],
    request: { params: IdParam, body: { required: false, ...json(DecideSchema) } },
    responses: {
      200: { description: "The settled approval", ...json(ApprovalSchema) },
      404: { description: "No such approval", ...json(ErrorSchema) },
      409: { description: "Already approved, denied or expired", ...json(ErrorSchema) },
      ...AUTH_RESPONSES,
    },
  });
}

/** Registers `/v1/policy/check` and the `/v1/approvals` routes. */
export function approvalRoutes(app: ApiApp, ctx: ApiContext): void {
  const gate = () => ctx.node.policy;
  app.openapi(check, async (c) => {
    const query = c.req.valid("query");
    const options = { ttlMs: query.ttl === undefined ? undefined : query.ttl * 1000, signal: c.req.raw.signal };
    const body = c.req.valid("json");
    const decision: Decision = query.wait === "true"
      ? await gate().authorize(body, options)
      : await gate().check(body, options);
    return c.json(decision, 200);
  });
  app.openapi(list, (c) => c.json(gate().approvals.list(c.req.valid("query")), 200));
  app.openapi(get, async (c) => {
    const { id } = c.req.valid("param");
    const approval: Approval = c.req.valid("query").wait === "true"
      ? await gate().approvals.wait(id, { signal: c.req.raw.signal })
      : gate().approvals.get(id);
    return c.json(approval, 200);
  });
  for (const verb of ["approve", "deny"] as const) {
    app.openapi(decide(verb), async (c) => {
      const { id } = c.req.valid("param");
      const text = await c.req.text();
      const parsed = DecideSchema.safeParse(text ? JSON.parse(text) : {});
      if (!parsed.success) {
        throw new RangeError(`Invalid body: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
      }
      const note = parsed.data.note;
      const by = "operator";
      const approval = verb === "approve"
        ? gate().approvals.approve(id, { by, note })
        : gate().approvals.deny(id, { by, note });
      return c.json(approval, 200);
    });
  }
}
