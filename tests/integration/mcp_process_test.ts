/**
 * The MCP endpoint of a real node process, driven by the Model Context
 * Protocol SDK's client over its Streamable HTTP transport: an agent token
 * made with `nzcore token create NAME --agent` lists the tools, calls an
 * allowed one and is refused a denied one; the same token gets 403 on the
 * admin routes, and an approval grant through the CLI changes the refusal.
 */

import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { MCP_TOOLS } from "../../kernel/api/mcp.ts";
import { cli, startNode, tempDataDir } from "./_node_process.ts";

function textOf(result: unknown): string {
  const content = (result as CallToolResult).content as { type: string; text?: string }[];
  return content.map((c) => c.text ?? "").join("");
}

Deno.test("an MCP SDK client with an agent token lists tools, calls an allowed one, is refused a denied one", async () => {
  await using dir = await tempDataDir();
  await using node = await startNode(dir.path, { args: ["--api", "127.0.0.1:0"] });
  const run = async (...args: string[]) => await cli(["--data-dir", dir.path, ...args]);
  const created = await run("token", "create", "planner", "--agent", "--json");
  equal(created.code, 0, created.stderr);
  const agent = JSON.parse(created.stdout) as { id: string; token: string; scope: string };
  equal(agent.scope, "agent");

  const client = new Client({ name: "nzcore-process-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL("/v1/mcp", node.url), {
    requestInit: { headers: { authorization: `Bearer ${agent.token}` } },
  });
  await client.connect(transport);
  try {
    eql(client.getServerVersion()?.name, "nzcore");
    eql((await client.listTools()).tools.map((t) => t.name).sort(), [...MCP_TOOLS].sort());

    const state = await client.callTool({ name: "nzcore_state", arguments: {} });
    ok(!state.isError, textOf(state));
    const body = JSON.parse(textOf(state));
    const expected = JSON.parse((await run("state", "--json")).stdout);
    eql([body.identity.did, body.version], [expected.identity.did, expected.version]);

    const denied = await client.callTool({ name: "nzcore_approvals", arguments: {} });
    equal(denied.isError, true);
    match(textOf(denied), /approval\.list denied by policy: no policy permits approval\.list/);

    // The agent token reaches nothing but /v1/mcp.
    const admin = await node.api("/v1/state", { token: agent.token });
    equal(admin.status, 403);
    equal((await admin.json()).error.code, "scope_denied");

    // A grant through the CLI lets the same call through.
    equal((await run("grant", `agent:${agent.id}`, "approval.list")).code, 0);
    const allowed = await client.callTool({ name: "nzcore_approvals", arguments: {} });
    ok(!allowed.isError, textOf(allowed));
    eql(JSON.parse(textOf(allowed)), []);
  } finally {
    await client.close();
  }
});
