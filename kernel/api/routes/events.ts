/**
 * `GET /v1/events`: the node's event bus as Server-Sent Events. Each event is
 * sent with `id`, `event` (its type) and `data` (the event as JSON); a
 * comment line every 15 s keeps proxies from closing an idle stream.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { type ApiApp, type ApiContext, AUTH_RESPONSES } from "../context.ts";

const HEARTBEAT_MS = 15_000;

const route = createRoute({
  method: "get",
  path: "/v1/events",
  tags: ["node"],
  summary: "Live stream of node events (text/event-stream)",
  security: [{ bearer: [] }],
  request: {
    query: z.object({
      types: z.string().optional().openapi({ description: "Comma-separated type prefixes, e.g. identity.,token." }),
    }),
  },
  responses: {
    200: { description: "A stream of events", content: { "text/event-stream": { schema: z.string() } } },
    ...AUTH_RESPONSES,
  },
});

/** Registers the event stream route. */
export function eventRoutes(app: ApiApp, ctx: ApiContext): void {
  app.openapi(route, (c) => {
    const types = c.req.valid("query").types?.split(",").map((t) => t.trim()).filter(Boolean);
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      const heartbeat = setInterval(() => stream.write(": keep-alive\n\n").catch(() => abort.abort()), HEARTBEAT_MS);
      try {
        await stream.write(": connected\n\n");
        for await (const event of ctx.node.bus.subscribe({ types, signal: abort.signal })) {
          await stream.writeSSE({ id: String(event.id), event: event.type, data: JSON.stringify(event) });
        }
      } finally {
        clearInterval(heartbeat);
      }
    }) as never;
  });
}
