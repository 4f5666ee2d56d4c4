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

/** One SSE message; `data` is JSON, so it holds no line break. */
function sseMessage(id: string, event: string, data: string): string {
  return `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;
}

/** Registers the event stream route. */
export function eventRoutes(app: ApiApp, ctx: ApiContext): void {
  app.openapi(route, (c) => {
    const types = c.req.valid("query").types?.split(",").map((t) => t.trim()).filter(Boolean);
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      const bus = ctx.node.bus;
      stream.onAbort(() => abort.abort());
      const onClose = () => abort.abort();
      bus.signal.addEventListener("abort", onClose, { once: true });
      // A write blocks while the client does not read; it gives way when the client leaves or the bus closes.
      const stopped = new Promise<void>((resolve) => {
        if (abort.signal.aborted || bus.signal.aborted) resolve();
        abort.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      const write = (text: string) => Promise.race([stream.write(text).then(() => {}), stopped]);
      const heartbeat = setInterval(() => write(": keep-alive\n\n").catch(() => abort.abort()), HEARTBEAT_MS);
      try {
        await write(": connected\n\n");
        for await (const event of bus.subscribe({ types, signal: abort.signal })) {
          if (abort.signal.aborted) break;
          await write(sseMessage(String(event.id), event.type, JSON.stringify(event)));
        }
      } finally {
        clearInterval(heartbeat);
        bus.signal.removeEventListener("abort", onClose);
        if (!stream.aborted) stream.abort();
      }
    }) as never;
  });
}
