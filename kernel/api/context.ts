/**
 * What the API's routes are given: the node and facts about its listeners.
 *
 * @module
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import type { LanDiscovery } from "../discovery/lan.ts";
import type { Node } from "../node/node.ts";
import type { PermissionReport } from "../node/permissions.ts";
import type { PluginManager } from "../runtime/plugins.ts";
import type { Supervisor } from "../runtime/supervisor.ts";

/** Facts the routes read beyond the node itself. */
export interface ApiContext {
  /** The node the routes act on. */
  node: Node;
  /** The addresses the API listens on, once known. */
  listeners: { tcp: string | null; socket: string | null };
  /** The Deno permissions the process holds (queried once at start). */
  permissions: PermissionReport;
  /** The services supervisor, when the node runs one (the daemon does). */
  services?: Supervisor;
  /** The plugin manager, when the node runs one (the daemon does). */
  plugins?: PluginManager;
  /** LAN discovery, when it runs (the daemon's `lan` option). */
  lan?: () => LanDiscovery | null;
}

/** The Hono environment of the API app. */
export type ApiEnv = { Bindings: Deno.ServeHandlerInfo | undefined };

/** The app type every route file registers on. */
export type ApiApp = OpenAPIHono<ApiEnv>;

/** Responses that every authenticated route may return. */
export const AUTH_RESPONSES = {
  401: { description: "Missing, malformed, unknown, expired or revoked token" },
  403: { description: "An agent-scoped token outside /v1/mcp (scope_denied)" },
  429: { description: "Too many failed authentications" },
} as const;

/** The `content` of an OpenAPI request body or response holding JSON of `schema`. */
export function json<T>(schema: T): { content: { "application/json": { schema: T } } } {
  return { content: { "application/json": { schema } } };
}
