/**
 * `/v1/tokens`: create, list and revoke API tokens.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { CreatedTokenSchema, CreateTokenSchema, ErrorSchema, IdParam, TokenSchema } from "../schemas.ts";

const list = createRoute({
  method: "get",
  path: "/v1/tokens",
  tags: ["tokens"],
  summary: "List API tokens (never their secrets)",
  security: [{ bearer: [] }],
  responses: { 200: { description: "Every token", ...json(z.array(TokenSchema)) }, ...AUTH_RESPONSES },
});

const create = createRoute({
  method: "post",
  path: "/v1/tokens",
  tags: ["tokens"],
  summary: "Create an API token; its secret is shown only in this response",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(CreateTokenSchema) } },
  responses: {
    201: { description: "The new token", ...json(CreatedTokenSchema) },
    400: { description: "Invalid request", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

const revoke = createRoute({
  method: "delete",
  path: "/v1/tokens/{id}",
  tags: ["tokens"],
  summary: "Revoke an API token",
  security: [{ bearer: [] }],
  request: { params: IdParam },
  responses: {
    200: { description: "The revoked token", ...json(TokenSchema) },
    404: { description: "No such token", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

/** Registers the token routes. */
export function tokenRoutes(app: ApiApp, ctx: ApiContext): void {
  const tokens = () => ctx.node.tokens;
  app.openapi(list, (c) => c.json(tokens().list(), 200));
  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const created = await tokens().create(body.name, {
      ttlMs: body.expiresIn === undefined ? undefined : body.expiresIn * 1000,
      scope: body.scope,
    });
    await ctx.node.record("token.created", { id: created.id, name: created.name, scope: created.scope });
    return c.json(created, 201);
  });
  app.openapi(revoke, async (c) => {
    const revoked = await tokens().revoke(c.req.valid("param").id);
    await ctx.node.record("token.revoked", { id: revoked.id });
    return c.json(revoked, 200);
  });
}
