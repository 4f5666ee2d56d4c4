/**
 * The node's tools for AI agents over the Model Context Protocol, at
 * `/v1/mcp` (Streamable HTTP, stateless: every POST is answered on its own).
 * The endpoint needs a bearer token like every other route; the caller acts
 * as the agent principal `{type: "agent", id: <token id>}`, and every tool
 * call first goes through the policy gate:
 *
 * - `ALLOW`: the tool runs;
 * - `DENY`: a tool error (`isError: true`) with the decision's reasons;
 * - `REQUIRE_APPROVAL`: a result naming the pending approval, without waiting;
 *   once an operator approves it, the agent calls the tool again with
 *   `approval: <id>` and the call runs (once per approval).
 *
 * | Tool               | Action          | Default for agents |
 * | ------------------ | --------------- | ------------------ |
 * | `nzcore_state`     | `node.state`    | allowed            |
 * | `nzcore_peers`     | `peer.list`     | allowed            |
 * | `nzcore_services`  | `service.list`  | allowed            |
 * | `nzcore_send`      | `peer.send`     | approval           |
 * | `nzcore_approvals` | `approval.list` | denied (a grant)   |
 *
 * @module
 */

import type { Context } from "hono";
import { createRoute, z as zo } from "@hono/zod-openapi";
import { type ApiContext, AUTH_RESPONSES } from "./context.ts";

/** The path of the MCP endpoint. */
export const MCP_PATH = "/v1/mcp";

/** The names of the tools the node offers. */
export const MCP_TOOLS = [
  "nzcore_state",
  "nzcore_peers",
  "nzcore_services",
  "nzcore_send",
  "nzcore_approvals",
] as const;

const JsonRpcSchema = zo.object({
  jsonrpc: zo.literal("2.0"),
  id: zo.union([zo.string(), zo.number()]).optional().openapi({ description: "Absent in a notification" }),
  method: zo.string().optional().openapi({ example: "tools/call", description: "In a request or notification" }),
  params: zo.record(zo.string(), zo.unknown()).optional(),
  result: zo.record(zo.string(), zo.unknown()).optional().openapi({ description: "In a response" }),
  error: zo.object({ code: zo.number().int(), message: zo.string(), data: zo.unknown().optional() }).optional(),
}).passthrough();

/**
 * The OpenAPI description of {@linkcode MCP_PATH}: bodies are JSON-RPC 2.0
 * messages of the Model Context Protocol, described loosely (the MCP
 * specification defines them).
 */
export const MCP_ROUTE = createRoute({
  method: "post",
  path: MCP_PATH,
  tags: ["mcp"],
  summary: "Model Context Protocol endpoint for AI agents (Streamable HTTP, stateless, JSON responses)",
  description: "Send one JSON-RPC 2.0 message or a batch (`initialize`, `tools/list`, `tools/call`, ...) with " +
    "`Accept: application/json, text/event-stream`; each request is answered on its own. The caller acts as the " +
    'agent principal `{type: "agent", id: <token id>}` and every tool call passes the policy gate: a denied ' +
    "call is a tool error (`isError: true`) naming the reasons, a call that needs approval returns the pending " +
    "approval's ID and runs once when called again with `approval: <id>` after an operator approved. Tools: " +
    `${MCP_TOOLS.join(", ")}. Agent-scoped tokens reach this route only.`,
  security: [{ bearer: [] }],
  request: {
    body: {
      required: true,
      content: { "application/json": { schema: zo.union([JsonRpcSchema, zo.array(JsonRpcSchema)]) } },
    },
  },
  responses: {
    200: {
      description: "The JSON-RPC response(s) to the request(s)",
      content: { "application/json": { schema: zo.union([JsonRpcSchema, zo.array(JsonRpcSchema)]) } },
    },
    202: { description: "Accepted: the body held only notifications or responses" },
    400: { description: "Not a valid JSON-RPC message" },
    406: { description: "The Accept header lacks application/json or text/event-stream" },
    ...AUTH_RESPONSES,
  },
});

/** What the MCP endpoint keeps between requests. */
export interface McpHandler {
  /** Answers one request on {@linkcode MCP_PATH}; the bearer middleware has already set `token`. */
  (c: Context): Promise<Response>;
}

/**
 * Builds the handler of {@linkcode MCP_PATH} for `ctx`. The MCP SDK (a large module graph) is loaded with the first
 * request, not at start: most nodes never see an agent.
 */
export function mcpHandler(ctx: ApiContext): McpHandler {
  const spent = new Set<string>();
  let server: Promise<typeof import("./mcp_server.ts")> | undefined;
  return async (c) => {
    const { serveMcp } = await (server ??= import("./mcp_server.ts"));
    return await serveMcp(ctx, c, spent);
  };
}
