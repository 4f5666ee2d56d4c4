/**
 * `GET /v1/health`: answers without authentication while the node runs.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context.ts";

const route = createRoute({
  method: "get",
  path: "/v1/health",
  tags: ["node"],
  summary: "Liveness check (no authentication)",
  responses: {
    200: {
      description: "The node runs",
      content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
    },
  },
});

/** Registers the health route. */
export function healthRoutes(app: ApiApp): void {
  app.openapi(route, (c) => c.json({ status: "ok" as const }, 200));
}
