/**
 * The MCP server behind `/v1/mcp` (see `mcp.ts`): the node's tools, each call
 * through the policy gate. Loaded with the first MCP request, so that the SDK
 * costs nothing on nodes that never serve an agent.
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
import type { ApiContext } from "./context.ts";

/** Approvals already spent on a call, so one approval runs one call (bounded: the oldest are forgotten). */
const MAX_SPENT = 4096;

/** Answers one request on `/v1/mcp` with a fresh, stateless server acting for the request's token. */
export async function serveMcp(ctx: ApiContext, c: Context, spent: Set<string>): Promise<Response> {
  const token = c.get("token" as never) as TokenInfo;
  const server = mcpServer(ctx, token, spent);
  const transport = new StreamableHTTPTransport({ enableJsonResponse: true });
  await server.connect(transport);
  try {
    return (await transport.handleRequest(c)) ?? c.body(null, 202);
  } finally {
    await server.close();
  }
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
