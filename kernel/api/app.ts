/**
 * The API app: one Hono app, served on TCP and on the Unix socket by
 * `server.ts`. Tests call `createApp(ctx).request(...)` without sockets.
 *
 * Every request body is validated against its schema (unknown fields are
 * refused), bodies are limited to {@linkcode MAX_BODY_BYTES}, and every
 * route but `/v1/health` and `/v1/openapi.json` needs a bearer token,
 * `/v1/mcp` (the Model Context Protocol endpoint, `mcp.ts`) included. A token
 * of scope `agent` reaches `/v1/mcp` only (403 `scope_denied` elsewhere), so an
 * agent cannot bypass the policy gate its tool calls pass through.
 *
 * @module
 */

import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { VERSION } from "../node/node.ts";
import { bearerAuth, FailureLimiter, scopeGuard } from "./auth.ts";
import type { ApiContext, ApiEnv } from "./context.ts";
import { errorResponse, onError } from "./errors.ts";
import { policyGate } from "./gate.ts";
import { MCP_PATH, MCP_ROUTE, mcpHandler } from "./mcp.ts";
import { approvalRoutes } from "./routes/approvals.ts";
import { eventRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { identityRoutes } from "./routes/identities.ts";
import { lanRoutes } from "./routes/lan.ts";
import { introductionRoutes } from "./routes/introductions.ts";
import { stateRoutes } from "./routes/state.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import { peerRoutes } from "./routes/peers.ts";
import { pluginRoutes } from "./routes/plugins.ts";
import { policyRoutes } from "./routes/policy.ts";
import { serviceRoutes } from "./routes/services.ts";
import { dhtRoutes } from "./routes/dht.ts";

/** Largest request body accepted. */
export const MAX_BODY_BYTES = 64 * 1024;

const PUBLIC_PATHS = new Set(["/v1/health", "/v1/openapi.json"]);
/** The only authenticated paths an agent-scoped token reaches. */
const AGENT_PATHS: ReadonlySet<string> = new Set([MCP_PATH]);

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** The failed-authentication limiter (tests pass their own clock). */
  limiter?: FailureLimiter;
}

/** The API as its listeners and tests use it. */
export interface ApiHandler {
  /** Answers one request; `info` is what `Deno.serve` passes (the client's address). */
  fetch(request: Request, info?: Deno.ServeHandlerInfo): Response | Promise<Response>;
  /**
   * Answers a request built from a path or URL, without a socket (for tests);
   * `info` stands for what `Deno.serve` would pass (none: as if over the Unix socket).
   */
  request(
    input: string | URL | Request,
    init?: RequestInit,
    info?: Deno.ServeHandlerInfo,
  ): Response | Promise<Response>;
}

/** Builds the API app for `ctx`. */
export function createApp(ctx: ApiContext, options: AppOptions = {}): ApiHandler {
  const app = new OpenAPIHono<ApiEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const issues = result.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ` : "") + i.message);
        return errorResponse(c, 400, "invalid_request", issues.join("; "));
      }
    },
  });
  const auth = bearerAuth(ctx.node.tokens, options.limiter ?? new FailureLimiter());
  const scope = scopeGuard(AGENT_PATHS);
  const gate = policyGate(ctx);
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => errorResponse(c, 413, "body_too_large", `The request body exceeds ${MAX_BODY_BYTES} bytes`),
  });
  // Authenticate first, so no body of an unauthenticated client is read; then keep agent tokens to their paths;
  // then limit bodies of the methods that carry one; then ask the policy gate (gate.ts). One middleware keeps the
  // per-request cost of GET routes low.
  const limited: MiddlewareHandler = (c, next) =>
    c.req.method === "GET" || c.req.method === "HEAD" ? next() : limit(c, next);
  app.use("*", (c, next) => (PUBLIC_PATHS.has(c.req.path) ? limited(c, next) : auth(c, async () => {
    const refused = await scope(c, async () => {
      const tooLarge = await limited(c, async () => {
        const denied = await gate(c, next);
        if (denied instanceof Response) c.res = denied;
      });
      if (tooLarge instanceof Response) c.res = tooLarge;
    });
    if (refused instanceof Response) c.res = refused;
  })));
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });

  healthRoutes(app);
  stateRoutes(app, ctx);
  identityRoutes(app, ctx);
  tokenRoutes(app, ctx);
  peerRoutes(app, ctx);
  lanRoutes(app, ctx);
  introductionRoutes(app, ctx);
  serviceRoutes(app, ctx);
  dhtRoutes(app, ctx);
  approvalRoutes(app, ctx);
  policyRoutes(app, ctx);
  eventRoutes(app, ctx);
  pluginRoutes(app, ctx);
  app.all(MCP_PATH, mcpHandler(ctx));
  app.openAPIRegistry.registerPath(MCP_ROUTE);

  // Generated from the route definitions once, on first request.
  let openapi: unknown;
  app.get("/v1/openapi.json", (c) => {
    openapi ??= app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: { title: "NewZoneCore node API", version: VERSION },
    });
    return c.json(openapi as object);
  });
  app.notFound((c) => errorResponse(c, 404, "not_found", `No route ${c.req.method} ${c.req.path}`));
  app.onError(onError);
  return app;
}
