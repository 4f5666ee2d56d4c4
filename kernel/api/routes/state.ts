/**
 * `GET /v1/state` (node facts) and `GET /v1/log/verify` (event log check).
 *
 * @module
 */

import { createRoute } from "@hono/zod-openapi";
import { type StorageState, VERSION } from "../../node/node.ts";
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

/**
 * Storage and memory figures are sampled at most this often: they cost three
 * `stat` calls and a read of /proc, which would dominate a request.
 */
const SAMPLE_TTL_MS = 1000;

/** Registers the state routes. */
export function stateRoutes(app: ApiApp, ctx: ApiContext): void {
  let sample: { at: number; storage: StorageState; memory: { rss: number; heapUsed: number } } | undefined;
  // The body is serialised around `uptimeMs`: the parts before and after it change only when the identity, the
  // log or the sample does, so a request usually costs one string concatenation.
  let body: { key: string; head: string; tail: string } | undefined;
  app.openapi(stateRoute, async (c) => {
    const node = ctx.node;
    const now = Date.now();
    if (!sample || now - sample.at > SAMPLE_TTL_MS) {
      const { rss, heapUsed } = Deno.memoryUsage();
      sample = { at: now, storage: await node.storage(), memory: { rss, heapUsed } };
    }
    const active = node.identity;
    const sessions = node.peers.sessions().length;
    const key =
      `${active.nodeId} ${node.identities.size} ${node.log.length} ${sample.at} ${ctx.listeners.tcp} ${sessions} ${node.reachability.version} ${node.traversal.turnState()?.relayed}`;
    if (body?.key !== key) {
      const head = JSON.stringify({ version: VERSION, pid: Deno.pid, startedAt: node.startedAt });
      const tail = JSON.stringify({
        identity: { ...active.info(), active: true },
        identities: node.identities.size,
        api: ctx.listeners,
        listen: node.peers.listening,
        sessions,
        reachability: { ...node.reachability.state(), turn: node.traversal.turnState() },
        permissions: ctx.permissions,
        storage: { ...sample.storage, logEntries: node.log.length },
        memory: sample.memory,
      });
      body = { key, head: head.slice(0, -1) + ',"uptimeMs":', tail: "," + tail.slice(1) };
    }
    return c.body(body.head + (now - node.startedAt) + body.tail, 200, {
      "content-type": "application/json",
    }) as never;
  });
  app.openapi(verifyRoute, async (c) => c.json(await ctx.node.verifyLog(), 200));
}
