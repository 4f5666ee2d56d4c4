/**
 * `/v1/services`: the services the supervisor runs (the node's own parts
 * and external services) with their state, restarts, last error and health;
 * `POST /v1/services/{name}/start|stop|restart`. State changes appear on
 * `/v1/events` as `service.state`.
 *
 * The `api` service cannot be stopped or restarted over the API: the
 * request would cut off its own answer, and nothing could start it again.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { SERVICE_STATES } from "../../runtime/supervisor.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { errorResponse } from "../errors.ts";
import { ErrorSchema } from "../schemas.ts";

/** The name of the built-in service that serves the API. */
export const API_SERVICE = "api";

export const ServiceSchema = z.object({
  name: z.string(),
  version: z.string(),
  entry: z.string().openapi({ description: "`builtin:ID` or the module the service runs" }),
  dependencies: z.array(z.string()),
  capabilities: z.array(z.string()),
  state: z.enum(SERVICE_STATES),
  since: z.number().int().openapi({ description: "When it entered its state (ms since the epoch)" }),
  reason: z.string(),
  restarts: z.number().int().openapi({ description: "Restarts after crashes since the node started" }),
  budgetUsed: z.number().int().openapi({ description: "Restarts counted against the budget's window now" }),
  lastError: z.string().optional(),
  nextRestartAt: z.number().int().optional(),
  health: z.object({
    status: z.enum(["unknown", "passing", "failing"]),
    failures: z.number().int(),
    successes: z.number().int(),
    lastCheckAt: z.number().int().optional(),
  }),
}).openapi("Service");

const NameParam = z.object({
  name: z.string().openapi({ param: { name: "name", in: "path" }, example: "api" }),
});

const list = createRoute({
  method: "get",
  path: "/v1/services",
  tags: ["services"],
  summary: "Every service in start order, with its state, restarts, last error and health",
  security: [{ bearer: [] }],
  responses: { 200: { description: "Services", ...json(z.array(ServiceSchema)) }, ...AUTH_RESPONSES },
});

function action(verb: "start" | "stop" | "restart", summary: string) {
  return createRoute({
    method: "post",
    path: `/v1/services/{name}/${verb}`,
    tags: ["services"],
    summary,
    security: [{ bearer: [] }],
    request: { params: NameParam },
    responses: {
      200: { description: "The service after the operation", ...json(ServiceSchema) },
      404: { description: "No such service", ...json(ErrorSchema) },
      409: { description: "The service cannot do that now (or is the API itself)", ...json(ErrorSchema) },
      502: { description: "The service did not start; it follows its restart policy", ...json(ErrorSchema) },
      ...AUTH_RESPONSES,
    },
  });
}

const start = action("start", "Start a service and its stopped dependencies; a failed service gets a fresh budget");
const stop = action("stop", "Stop a service, its running dependents first");
const restart = action("restart", "Stop a service (dependents first), then start it and those dependents");

/** Registers the service routes; without a supervisor in `ctx`, the list is empty and the actions answer 404. */
export function serviceRoutes(app: ApiApp, ctx: ApiContext): void {
  const supervisor = () => ctx.services;
  app.openapi(list, (c) => c.json(supervisor()?.list() ?? [], 200));
  for (const [route, verb] of [[start, "start"], [stop, "stop"], [restart, "restart"]] as const) {
    app.openapi(route, async (c) => {
      const { name } = c.req.valid("param");
      const services = supervisor();
      if (!services?.has(name)) return errorResponse(c, 404, "not_found", `No service named "${name}"`);
      if (name === API_SERVICE && verb !== "start") {
        return errorResponse(c, 409, "conflict", `The API cannot ${verb} itself; stop the node instead`);
      }
      try {
        await services[verb](name);
      } catch (error) {
        if (!(error instanceof Error) || error.name === "ConflictError" || error.name === "NotFoundError") throw error;
        return errorResponse(c, 502, "service_failed", `The service "${name}" did not start: ${error.message}`);
      }
      return c.json(services.status(name), 200);
    });
  }
}
