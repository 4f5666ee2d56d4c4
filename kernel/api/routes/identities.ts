/**
 * `/v1/identities`: list, create, switch, export and import identities.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import {
  CreateIdentitySchema,
  ErrorSchema,
  ExportedIdentitySchema,
  ExportIdentitySchema,
  IdentitySchema,
  ImportIdentitySchema,
  RefParam,
} from "../schemas.ts";

const errors = {
  400: { description: "Invalid request", ...json(ErrorSchema) },
  404: { description: "No such identity", ...json(ErrorSchema) },
  409: { description: "Conflict", ...json(ErrorSchema) },
  ...AUTH_RESPONSES,
};

const list = createRoute({
  method: "get",
  path: "/v1/identities",
  tags: ["identities"],
  summary: "List the node's identities",
  security: [{ bearer: [] }],
  responses: { 200: { description: "Every identity", ...json(z.array(IdentitySchema)) }, ...AUTH_RESPONSES },
});

const create = createRoute({
  method: "post",
  path: "/v1/identities",
  tags: ["identities"],
  summary: "Create an identity",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(CreateIdentitySchema) } },
  responses: { 201: { description: "The new identity", ...json(IdentitySchema) }, ...errors },
});

const activate = createRoute({
  method: "post",
  path: "/v1/identities/{ref}/activate",
  tags: ["identities"],
  summary: "Make an identity the active one",
  security: [{ bearer: [] }],
  request: { params: RefParam },
  responses: { 200: { description: "The active identity", ...json(IdentitySchema) }, ...errors },
});

const exportRoute = createRoute({
  method: "post",
  path: "/v1/identities/{ref}/export",
  tags: ["identities"],
  summary: "Export an identity, sealed by a passphrase",
  security: [{ bearer: [] }],
  request: { params: RefParam, body: { required: true, ...json(ExportIdentitySchema) } },
  responses: { 200: { description: "The export file", ...json(ExportedIdentitySchema) }, ...errors },
});

const importRoute = createRoute({
  method: "post",
  path: "/v1/identities/import",
  tags: ["identities"],
  summary: "Import an identity export file",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(ImportIdentitySchema) } },
  responses: {
    201: { description: "The imported identity", ...json(IdentitySchema) },
    ...errors,
    403: { description: "Wrong passphrase (wrong_key), or an agent-scoped token (scope_denied)", ...json(ErrorSchema) },
  },
});

/** Registers the identity routes. */
export function identityRoutes(app: ApiApp, ctx: ApiContext): void {
  const ids = () => ctx.node.identities;
  const listing = (nodeId: string) => ids().list().find((i) => i.nodeId === nodeId)!;

  app.openapi(list, (c) => c.json(ids().list(), 200));

  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const identity = await ids().create(body.name, { activate: body.activate });
    await ctx.node.record("identity.created", { nodeId: identity.nodeId, did: identity.did, name: identity.name });
    return c.json(listing(identity.nodeId), 201);
  });

  app.openapi(activate, async (c) => {
    const identity = await ids().switch(c.req.valid("param").ref);
    await ctx.node.record("identity.activated", { nodeId: identity.nodeId, did: identity.did });
    return c.json(listing(identity.nodeId), 200);
  });

  app.openapi(exportRoute, async (c) => {
    const { ref } = c.req.valid("param");
    const identity = ids().resolve(ref);
    const file = await ids().export(ref, c.req.valid("json").passphrase);
    await ctx.node.record("identity.exported", { nodeId: identity.nodeId });
    return c.json({ did: identity.did, file }, 200);
  });

  app.openapi(importRoute, async (c) => {
    const body = c.req.valid("json");
    const identity = await ids().import(body.file, body.passphrase, { name: body.name, activate: body.activate });
    await ctx.node.record("identity.imported", { nodeId: identity.nodeId, did: identity.did, name: identity.name });
    return c.json(listing(identity.nodeId), 201);
  });
}
