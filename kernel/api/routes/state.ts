/**
 * `GET /v1/state` (node facts) and `GET /v1/log/verify` (event log check).
 *
 * @module
 */

import { createRoute } from "@hono/zod-openapi";
import { VERSION } from "../../node/node.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES } from "../context.ts";
import { ErrorSchema, LogVerifySchema, StateSchema } from "../schemas.ts";

const stateRoute = createRoute({
  method: "get",
  path: "/v1/state",
  tags: ["node"],
  summary: "Version, uptime, identity, permissions and storage figures",
  security: [{ bearer: [] }],
  responses: {
    200: { description: "The node's state", content: { "application/json": { schema: StateSchema } } },
    ...AUTH_RESPONSES,
  },
});

const verifyRoute = createRoute({
  method: "get",
  path: "/v1/log/verify",
  tags: ["node"],
  summary: "Verify the node's signed, hash-chained event log",
  security: [{ bearer: [] }],
  responses: {
    200: { description: "The verification report", content: { "application/json": { schema: LogVerifySchema } } },
    500: { description: "Storage failure", content: { "application/json": { schema: ErrorSchema } } },
    ...AUTH_RESPONSES,
  },
});

/** Storage figures are cached this long; they cost three `stat` calls. */
const STORAGE_TTL_MS = 1000;

/** Registers the state routes. */
export function stateRoutes(app: ApiApp, ctx: ApiContext): void {
  let storage: { at: number; value: Awaited<ReturnType<typeof ctx.node.storage>> } | undefined;
  app.openapi(stateRoute, async (c) => {
    const node = ctx.node;
    const now = Date.now();
    if (!storage || now - storage.at > STORAGE_TTL_MS) storage = { at: now, value: await node.storage() };
    const active = node.identity;
    const memory = Deno.memoryUsage();
    return c.json({
      version: VERSION,
      pid: Deno.pid,
      startedAt: node.startedAt,
      uptimeMs: now - node.startedAt,
      identity: { ...active.info(), active: true },
      identities: node.identities.size,
      api: ctx.listeners,
      permissions: ctx.permissions,
      storage: { ...storage.value, logEntries: node.log.length },
      memory: { rss: memory.rss, heapUsed: memory.heapUsed },
    }, 200);
  });
  app.openapi(verifyRoute, async (c) => c.json(await ctx.node.verifyLog(), 200));
}
