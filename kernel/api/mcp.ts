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

import { StreamableHTTPTransport } from "@hono/mcp";
// The SDK's `./*` export maps `x.js` to the types `x.js.d.ts`, which do not exist: take the types from `x.d.ts`.
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import type { Context } from "hono";
import { z } from "zod";
import { createRoute, z as zo } from "@hono/zod-openapi";
import { utf8 } from "../bytes.ts";
import { VERSION } from "../node/node.ts";
import type { TokenInfo } from "../node/tokens.ts";
import type { Decision } from "../policy/gate.ts";
import {
  type ActionName,
  parsePolicyRequest,
  type PolicyContext,
  type PolicyRequestInput,
  requestHash,
  type ResourceType,
} from "../policy/request.ts";
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

/** Approvals already spent on a call, so one approval runs one call (bounded: the oldest are forgotten). */
const MAX_SPENT = 4096;

/** What the MCP endpoint keeps between requests. */
export interface McpHandler {
  /** Answers one request on {@linkcode MCP_PATH}; the bearer middleware has already set `token`. */
  (c: Context): Promise<Response>;
}

/** Builds the handler of {@linkcode MCP_PATH} for `ctx`. */
export function mcpHandler(ctx: ApiContext): McpHandler {
  const spent = new Set<string>();
  return async (c) => {
    const token = c.get("token" as never) as TokenInfo;
    const server = mcpServer(ctx, token, spent);
    const transport = new StreamableHTTPTransport({ enableJsonResponse: true });
    await server.connect(transport);
    try {
      return (await transport.handleRequest(c)) ?? c.body(null, 202);
    } finally {
      await server.close();
    }
  };
}

function text(value: unknown): CallToolResult {
  return { content: [{ type: "text", text: typeof value === "string" ? value : JSON.stringify(value) }] };
}

function refusal(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}

/** The MCP server of one request, acting for `token`. */
function mcpServer(ctx: ApiContext, token: TokenInfo, spent: Set<string>): McpServer {
  const server = new McpServer({ name: "nzcore", version: VERSION });
  const node = ctx.node;
  const principal = { type: "agent" as const, id: token.id };

  /**
   * Asks the gate, then runs `run` when allowed. With `approval`, an approved approval of this very request
   * (same principal, action, resource and context) lets the call run once instead.
   */
  const gated = async (
    action: ActionName,
    resource: { type: ResourceType; id: string },
    context: PolicyContext,
    run: () => unknown | Promise<unknown>,
    approval?: string,
  ): Promise<CallToolResult> => {
    const input: PolicyRequestInput = { principal, action, resource, context: { source: "mcp", ...context } };
    let decision: Decision;
    try {
      if (approval !== undefined) {
        const refused = spend(approval, input);
        if (refused) return refusal(refused);
        return text(await run());
      }
      decision = await node.policy.check(input);
    } catch (error) {
      return refusal(`${action}: ${(error as Error).message}`);
    }
    if (decision.outcome === "DENY") {
      return refusal(`${action} denied by policy: ${decision.reasons.join("; ") || "no policy permits it"}`);
    }
    if (decision.outcome === "REQUIRE_APPROVAL") {
      const id = decision.approval?.id;
      return {
        ...text(
          `${action} needs an operator's approval: approval ${id} is pending (${decision.reasons.join("; ")}). ` +
            `Once approved, call this tool again with the same arguments and approval "${id}".`,
        ),
        structuredContent: { outcome: "REQUIRE_APPROVAL", approval: id, reasons: decision.reasons },
      };
    }
    try {
      return text(await run());
    } catch (error) {
      return refusal(`${action} failed: ${(error as Error).message}`);
    }
  };

  /** Spends the approval `id` on `input`, or says why it cannot be. */
  const spend = (id: string, input: PolicyRequestInput): string | undefined => {
    const approval = node.policy.approvals.get(id);
    if (approval.status !== "approved") return `approval ${id} is ${approval.status}`;
    if (approval.requestHash !== requestHash(parsePolicyRequest(input))) {
      return `approval ${id} was given for another request`;
    }
    if (spent.has(id)) return `approval ${id} was already used`;
    spent.add(id);
    if (spent.size > MAX_SPENT) spent.delete(spent.values().next().value!);
    return undefined;
  };

  const self = { type: "node" as const, id: "local" };
  server.registerTool("nzcore_state", {
    description: "The node's version, uptime, active identity (node ID, DID), listeners and session count",
    annotations: { readOnlyHint: true },
  }, () =>
    gated("node.state", self, {}, () => ({
      version: VERSION,
      uptimeMs: Date.now() - node.startedAt,
      identity: node.identity.info(),
      identities: node.identities.size,
      api: ctx.listeners,
      listen: node.peers.listening,
      sessions: node.peers.sessions().length,
    })));

  server.registerTool("nzcore_peers", {
    description: "The node's peer sessions and the peers it knows",
    annotations: { readOnlyHint: true },
  }, () =>
    gated("peer.list", { type: "peer", id: "*" }, {}, () => {
      const sessions = node.peers.sessions();
      const connected = new Set(sessions.map((s) => s.nodeId));
      return {
        listening: node.peers.listening,
        sessions: sessions.map((s) => s.info()),
        known: node.book.list().map((p) => ({ ...p, connected: connected.has(p.nodeId) })),
      };
    }));

  server.registerTool("nzcore_services", {
    description: "The node's services and their states",
    annotations: { readOnlyHint: true },
  }, () => gated("service.list", { type: "service", id: "*" }, {}, () => ctx.services?.list() ?? []));

  server.registerTool(
    "nzcore_approvals",
    {
      description: "The approvals waiting for an operator",
      annotations: { readOnlyHint: true },
    },
    () =>
      gated(
        "approval.list",
        { type: "approval", id: "*" },
        {},
        () =>
          node.policy.approvals.list({ status: "pending" }).map((a) => ({
            id: a.id,
            principal: a.request.principal,
            action: a.request.action,
            resource: a.request.resource,
            risk: a.risk,
            reasons: a.reasons,
            status: a.status,
          })),
      ),
  );

  server.registerTool("nzcore_send", {
    description: "Sends a text message to a connected peer (by node ID or name). Agents need an operator's " +
      "approval: the first call returns a pending approval ID; call again with it once approved.",
    inputSchema: {
      peer: z.string().min(1).max(256).describe("The peer's node ID, DID or name"),
      text: z.string().max(60_000).describe("The message"),
      approval: z.string().regex(/^[0-9a-f]{16}$/).optional().describe("An approved approval of this send"),
    },
  }, ({ peer, text: message, approval }) => {
    const bytes = utf8(message);
    let id = peer;
    try {
      id = node.peers.session(peer).nodeId;
    } catch {
      // Not connected: the gate still decides on the name; sending then fails.
    }
    const context: PolicyContext = { bytes: bytes.length, ...(/^[0-9a-f]{64}$/.test(id) ? { peer: id } : {}) };
    return gated("peer.send", { type: "peer", id }, context, async () => {
      const session = await node.peers.send(peer, bytes);
      return { nodeId: session.nodeId, bytes: bytes.length };
    }, approval);
  });

  return server;
}
