import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { createApp } from "../../../kernel/api/app.ts";
import { MCP_TOOLS } from "../../../kernel/api/mcp.ts";
import { Node } from "../../../kernel/node/node.ts";
import type { DecisionEntry } from "../../../kernel/policy/decision_log.ts";

/** A node with its API served on a loopback port, and an agent's token. */
async function setup() {
  const dataDir = await Deno.makeTempDir({ prefix: "nzcore-mcp-" });
  const node = await Node.open({ dataDir });
  const app = createApp({ node, listeners: { tcp: null, socket: null }, permissions: { read: "granted" } });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const agent = await node.tokens.create("agent", { persist: false, scope: "agent" });
  const url = new URL(`http://127.0.0.1:${server.addr.port}/v1/mcp`);
  const clients: Client[] = [];
  const connect = async (token: string | null) => {
    const client = new Client({ name: "nzcore-test", version: "1.0.0" });
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
    clients.push(client);
    return client;
  };
  return {
    node,
    agent,
    url,
    connect,
    async [Symbol.asyncDispose]() {
      for (const client of clients) await client.close();
      await server.shutdown();
      await node.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** The text of a tool result. */
function textOf(result: unknown): string {
  const content = (result as CallToolResult).content as { type: string; text?: string }[];
  return content.map((c) => c.text ?? "").join("");
}

/** The gate's logged decisions of `principal`, as `[action, outcome]`. */
async function decisions(node: Node, principal: string): Promise<[string, string][]> {
  await node.policy.log.flush();
  const entries = await Array.fromAsync(node.policy.log.read());
  return entries.flatMap((e) =>
    e.type === "policy.decisions" ? (e.data as { decisions: DecisionEntry[] }).decisions : []
  )
    .filter((d) => d.principal === principal).map((d) => [d.action, d.outcome]);
}

Deno.test("mcp: an SDK client lists the tools, calls an allowed one and is refused a denied one", async () => {
  await using t = await setup();
  const client = await t.connect(t.agent.token);
  eql((await client.listTools()).tools.map((tool) => tool.name).sort(), [...MCP_TOOLS].sort());

  // Allowed for agents by the default policies.
  const state = await client.callTool({ name: "nzcore_state", arguments: {} });
  ok(!state.isError, textOf(state));
  equal(JSON.parse(textOf(state)).identity.did, t.node.identity.did);
  const peers = await client.callTool({ name: "nzcore_peers", arguments: {} });
  ok(!peers.isError, textOf(peers));
  eql(JSON.parse(textOf(peers)).sessions, []);

  // Denied: listing approvals needs a grant.
  const approvals = await client.callTool({ name: "nzcore_approvals", arguments: {} });
  equal(approvals.isError, true);
  match(textOf(approvals), /approval\.list denied by policy/);

  // Every decision was the gate's, made for this token as an agent.
  eql(await decisions(t.node, `agent:${t.agent.id}`), [
    ["node.state", "ALLOW"],
    ["peer.list", "ALLOW"],
    ["approval.list", "DENY"],
  ]);
});

Deno.test("mcp: sending waits for an approval, which lets one call through once granted", async () => {
  await using t = await setup();
  const client = await t.connect(t.agent.token);
  const peer = "ab".repeat(32);
  const first = await client.callTool({ name: "nzcore_send", arguments: { peer, text: "hi" } });
  ok(!first.isError, textOf(first));
  const pending = first.structuredContent as { outcome: string; approval: string };
  equal(pending.outcome, "REQUIRE_APPROVAL");
  match(textOf(first), new RegExp(`approval ${pending.approval} is pending`));
  const approval = t.node.policy.approvals.get(pending.approval);
  eql([approval.status, approval.request.principal, approval.request.action], [
    "pending",
    { type: "agent", id: t.agent.id },
    "peer.send",
  ]);

  // Not approved yet: the approval does not let the call through.
  const early = await client.callTool({ name: "nzcore_send", arguments: { peer, text: "hi", approval: approval.id } });
  equal(early.isError, true);
  match(textOf(early), /is pending/);

  t.node.policy.approvals.approve(approval.id, { by: "test" });
  // Approved for another request: refused.
  const other = await client.callTool({
    name: "nzcore_send",
    arguments: { peer, text: "something longer", approval: approval.id },
  });
  match(textOf(other), /another request/);
  // The approved request runs (and fails here only because no such peer is connected), once.
  const run = await client.callTool({ name: "nzcore_send", arguments: { peer, text: "hi", approval: approval.id } });
  equal(run.isError, true);
  ok(!/approval/.test(textOf(run)), textOf(run));
  const again = await client.callTool({ name: "nzcore_send", arguments: { peer, text: "hi", approval: approval.id } });
  match(textOf(again), /already used/);
});

Deno.test("mcp: the endpoint needs a bearer token", async () => {
  await using t = await setup();
  const r = await fetch(t.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
  });
  equal(r.status, 401);
  equal((await r.json()).error.code, "token_missing");
  let refused: unknown;
  try {
    await t.connect(null);
  } catch (error) {
    refused = error;
  }
  match(String(refused), /401|token/i);
  const bad = await t.connect("nzt_" + "A".repeat(43)).catch((error) => error);
  match(String(bad), /401|token/i);
});

Deno.test("mcp: the OpenAPI document describes POST /v1/mcp (JSON-RPC bodies, the tools, bearer security)", async () => {
  await using t = await setup();
  const doc = await (await fetch(new URL("/v1/openapi.json", t.url))).json();
  const post = doc.paths["/v1/mcp"]?.post;
  ok(post, "no POST /v1/mcp in the document");
  match(post.description, /JSON-RPC 2\.0/);
  for (const tool of MCP_TOOLS) match(post.description, new RegExp(tool));
  eql(post.security, [{ bearer: [] }]);
  ok(post.requestBody.content["application/json"].schema);
  ok(post.responses["200"] && post.responses["401"]);
});
