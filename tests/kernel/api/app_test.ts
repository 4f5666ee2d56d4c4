import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { createApp } from "../../../kernel/api/app.ts";
import { FailureLimiter } from "../../../kernel/api/auth.ts";
import { Node } from "../../../kernel/node/node.ts";

const SMALL_SCRYPT = { N: 2 ** 10, r: 8, p: 1, dkLen: 32 };

async function setup(options: { limiter?: FailureLimiter } = {}) {
  const dataDir = await Deno.makeTempDir({ prefix: "nzcore-api-" });
  const node = await Node.open({ dataDir });
  const app = createApp({ node, listeners: { tcp: null, socket: null }, permissions: { read: "granted" } }, options);
  const admin = await node.tokens.create("admin", { persist: false });
  const request = (
    path: string,
    init: RequestInit & { json?: unknown; token?: string | null; from?: string } = {},
  ) => {
    const headers = new Headers(init.headers);
    const token = init.token === undefined ? admin.token : init.token;
    if (token) headers.set("authorization", `Bearer ${token}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(init.json);
    }
    const info = init.from
      ? { remoteAddr: { transport: "tcp", hostname: init.from, port: 40000 }, completed: Promise.resolve() }
      : undefined;
    return app.request(path, { ...init, headers, body }, info as Deno.ServeHandlerInfo | undefined);
  };
  return {
    node,
    app,
    request,
    async [Symbol.asyncDispose]() {
      await node.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

Deno.test("health answers without a token; everything else needs one", async () => {
  await using t = await setup();
  equal((await t.request("/v1/health", { token: null })).status, 200);
  equal((await t.request("/v1/openapi.json", { token: null })).status, 200);
  for (const path of ["/v1/state", "/v1/identities", "/v1/tokens", "/v1/log/verify", "/v1/events"]) {
    const r = await t.request(path, { token: null });
    equal(r.status, 401, path);
    equal((await r.json()).error.code, "token_missing");
  }
});

Deno.test("state reports version, identity, permissions and storage", async () => {
  await using t = await setup();
  const state = await (await t.request("/v1/state")).json();
  equal(state.identity.did, t.node.identity.did);
  equal(state.identity.active, true);
  equal(state.identities, 1);
  eql(state.permissions, { read: "granted" });
  equal(state.storage.keyMode, "keyfile");
  ok(state.storage.bytes > 0);
  ok(state.memory.rss > 0);
});

Deno.test("identities can be created, listed, switched, exported and imported", async () => {
  await using t = await setup();
  await using other = await setup();
  const created = await t.request("/v1/identities", { method: "POST", json: { name: "office" } });
  equal(created.status, 201);
  const work = await created.json();
  equal(work.active, false);
  const dup = await t.request("/v1/identities", { method: "POST", json: { name: "office" } });
  equal(dup.status, 409);
  equal((await dup.json()).error.code, "conflict");
  const switched = await (await t.request(`/v1/identities/${work.did}/activate`, { method: "POST" })).json();
  equal(switched.active, true);
  equal(t.node.identity.nodeId, work.nodeId);
  const missing = await t.request("/v1/identities/nobody/activate", { method: "POST" });
  equal(missing.status, 404);

  const exported = await t.request("/v1/identities/office/export", {
    method: "POST",
    json: { passphrase: "a long passphrase" },
  });
  equal(exported.status, 200);
  const { file, did } = await exported.json();
  equal(did, work.did);
  const wrong = await other.request("/v1/identities/import", {
    method: "POST",
    json: { file, passphrase: "not it" },
  });
  equal(wrong.status, 403);
  equal((await wrong.json()).error.code, "wrong_key");
  const imported = await other.request("/v1/identities/import", {
    method: "POST",
    json: { file, passphrase: "a long passphrase", activate: true },
  });
  equal(imported.status, 201);
  const body = await imported.json();
  equal(body.did, work.did);
  equal(body.active, true);
  equal(other.node.identity.did, work.did);
  const garbage = await other.request("/v1/identities/import", {
    method: "POST",
    json: { file: "garbage", passphrase: "x" },
  });
  equal(garbage.status, 400);
  equal((await garbage.json()).error.code, "corrupt_file");
});

Deno.test("request bodies are validated: wrong types, unknown fields, bad names and short passphrases", async () => {
  await using t = await setup();
  const cases: [string, unknown][] = [
    ["/v1/identities", { name: 5 }],
    ["/v1/identities", { name: "ok", extra: true }],
    ["/v1/identities", { name: "../etc" }],
    ["/v1/identities", {}],
    ["/v1/identities/default/export", { passphrase: "short" }],
    ["/v1/tokens", { name: "" }],
    ["/v1/tokens", { name: "t", expiresIn: -1 }],
    ["/v1/tokens", { name: "t", expiresIn: 1.5 }],
    ["/v1/identities/import", { file: "x" }],
  ];
  for (const [path, json] of cases) {
    const r = await t.request(path, { method: "POST", json });
    equal(r.status, 400, `${path} ${JSON.stringify(json)}`);
    const body = await r.json();
    equal(body.error.code, "invalid_request");
    ok(body.error.message.length > 0);
  }
});

Deno.test("malformed JSON, a wrong content type and oversized bodies are refused", async () => {
  await using t = await setup();
  const malformed = await t.request("/v1/tokens", {
    method: "POST",
    body: "{",
    headers: { "content-type": "application/json" },
  });
  equal(malformed.status, 400);
  equal((await malformed.json()).error.code, "malformed_json");
  const text = await t.request("/v1/tokens", {
    method: "POST",
    body: "name=x",
    headers: { "content-type": "text/plain" },
  });
  ok(text.status === 400 || text.status === 415, String(text.status));
  const huge = await t.request("/v1/tokens", { method: "POST", json: { name: "x".repeat(70_000) } });
  equal(huge.status, 413);
  equal((await huge.json()).error.code, "body_too_large");
});

Deno.test("tokens are created once, listed without secrets, and revoked", async () => {
  await using t = await setup();
  const created = await (await t.request("/v1/tokens", { method: "POST", json: { name: "ci" } })).json();
  match(created.token, /^nzt_[A-Za-z0-9_-]{43}$/);
  equal((await t.request("/v1/state", { token: created.token })).status, 200);
  const list = await (await t.request("/v1/tokens")).json();
  ok(list.some((x: { id: string }) => x.id === created.id));
  ok(!JSON.stringify(list).includes(created.token));
  equal((await t.request(`/v1/tokens/${created.id}`, { method: "DELETE" })).status, 200);
  const refused = await t.request("/v1/state", { token: created.token });
  equal((await refused.json()).error.code, "token_revoked");
  equal((await t.request("/v1/tokens/0000000000000000", { method: "DELETE" })).status, 404);
  equal((await t.request("/v1/tokens/not-an-id", { method: "DELETE" })).status, 400);
});

Deno.test("an agent-scoped token reaches /v1/mcp only; an admin token reaches everything", async () => {
  await using t = await setup();
  const r = await t.request("/v1/tokens", { method: "POST", json: { name: "planner", scope: "agent" } });
  equal(r.status, 201);
  const agent = await r.json();
  equal(agent.scope, "agent");
  const listed = await (await t.request("/v1/tokens")).json();
  equal(listed.find((x: { id: string }) => x.id === agent.id).scope, "agent");
  const bad = await t.request("/v1/tokens", { method: "POST", json: { name: "x", scope: "root" } });
  equal(bad.status, 400);
  equal((await bad.json()).error.code, "invalid_request");

  const attempts: [string, RequestInit & { json?: unknown }][] = [
    ["/v1/state", {}],
    ["/v1/tokens", { method: "POST", json: { name: "escalate" } }],
    ["/v1/policy", { method: "PUT", json: { policies: "permit(principal, action, resource);" } }],
    ["/v1/capabilities", { method: "POST", json: { principal: { type: "agent", id: agent.id }, capability: "*" } }],
    ["/v1/approvals/x/approve", { method: "POST", json: {} }],
    ["/v1/nonexistent", {}],
  ];
  for (const [path, init] of attempts) {
    const refused = await t.request(path, { ...init, token: agent.token });
    equal(refused.status, 403, path);
    const body = await refused.json();
    equal(body.error.code, "scope_denied", path);
    match(body.error.message, /This token is for agents: it may use \/v1\/mcp only/);
  }
  // The public routes stay public for everyone.
  equal((await t.request("/v1/health", { token: agent.token })).status, 200);
  // Nothing was changed on the agent's behalf.
  equal(t.node.tokens.list().some((x) => x.name === "escalate"), false);

  const initialize = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1.0.0" } },
  };
  const mcp = (token: string) =>
    t.request("/v1/mcp", {
      method: "POST",
      token,
      headers: { accept: "application/json, text/event-stream" },
      json: initialize,
    });
  const viaAgent = await mcp(agent.token);
  equal(viaAgent.status, 200);
  match(await viaAgent.text(), /"serverInfo"/);

  // The admin token still reaches everything, /v1/mcp included.
  const viaAdmin = await mcp(
    (await (await t.request("/v1/tokens", { method: "POST", json: { name: "ops" } })).json()).token,
  );
  equal(viaAdmin.status, 200);
  await viaAdmin.body?.cancel();
  for (const path of ["/v1/state", "/v1/policy", "/v1/capabilities", "/v1/approvals", "/v1/tokens"]) {
    equal((await t.request(path)).status, 200, path);
  }
  const approve = await t.request("/v1/approvals/x/approve", { method: "POST", json: {} });
  ok(approve.status !== 403, `approve: ${approve.status}`);
  await approve.body?.cancel();
});

Deno.test("failed authentications are limited per client", async () => {
  let now = 0;
  await using t = await setup({
    limiter: new FailureLimiter({ maxFailures: 3, windowMs: 1000, blockMs: 5000 }, () => now),
  });
  const bad = "nzt_" + "C".repeat(43);
  const statuses = [];
  const from = "192.0.2.7";
  for (let i = 0; i < 4; i++) statuses.push((await t.request("/v1/state", { token: bad, from })).status);
  eql(statuses, [401, 401, 401, 429]);
  equal((await t.request("/v1/state", { from })).status, 429, "the whole client is blocked, good token or not");
  equal((await t.request("/v1/state", { from: "192.0.2.8" })).status, 200, "other clients carry on");
  now += 5001;
  equal((await t.request("/v1/state", { from })).status, 200);
});

Deno.test("failures over the owner-only Unix socket are never limited", async () => {
  await using t = await setup({
    limiter: new FailureLimiter({ maxFailures: 2, windowMs: 1000, blockMs: 5000 }, () => 0),
  });
  for (let i = 0; i < 5; i++) equal((await t.request("/v1/state", { token: "nzt_" + "D".repeat(43) })).status, 401);
  equal((await t.request("/v1/state")).status, 200);
});

Deno.test("the OpenAPI document is generated from the routes and lists every one", async () => {
  await using t = await setup();
  const doc = await (await t.request("/v1/openapi.json", { token: null })).json();
  equal(doc.openapi, "3.1.0");
  for (
    const path of [
      "/v1/health",
      "/v1/state",
      "/v1/identities",
      "/v1/identities/{ref}/activate",
      "/v1/identities/{ref}/export",
      "/v1/identities/import",
      "/v1/tokens",
      "/v1/tokens/{id}",
      "/v1/events",
      "/v1/log/verify",
    ]
  ) ok(doc.paths[path], path);
  ok(doc.components.schemas.CreateIdentity);
  equal(doc.components.securitySchemes.bearer.scheme, "bearer");
});

Deno.test("events stream as Server-Sent Events", async () => {
  await using t = await setup();
  const abort = new AbortController();
  const response = await t.request("/v1/events?types=identity.", { signal: abort.signal });
  equal(response.status, 200);
  match(response.headers.get("content-type")!, /text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  await t.request("/v1/tokens", { method: "POST", json: { name: "not shown" } });
  await t.request("/v1/identities", { method: "POST", json: { name: "seen" } });
  let text = "";
  while (!text.includes("event: identity.created")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  match(text, /event: identity\.created/);
  ok(!text.includes("token.created"));
  const data = JSON.parse(/data: (.*)/.exec(text)![1]);
  equal(data.data.name, "seen");
  abort.abort();
  await reader.cancel().catch(() => {});
});

Deno.test("unknown routes get a JSON 404", async () => {
  await using t = await setup();
  const r = await t.request("/v1/nothing");
  equal(r.status, 404);
  equal((await r.json()).error.code, "not_found");
});

Deno.test("a passphrase node opens through the same app", async () => {
  const dataDir = await Deno.makeTempDir();
  const node = await Node.open({ dataDir, passphrase: "secret words", scrypt: SMALL_SCRYPT });
  equal(node.keyMode, "passphrase");
  await node.close();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("closing the bus ends an event stream whose client stopped reading", async () => {
  await using t = await setup();
  const response = await t.request("/v1/events");
  equal(response.status, 200);
  // The client reads nothing while events pile up, so the route's writes block.
  for (let i = 0; i < 50; i++) t.node.bus.publish("test.event", { i, pad: "x".repeat(1000) });
  await new Promise((r) => setTimeout(r, 50));
  equal(t.node.bus.subscribers, 1);
  t.node.bus.close();
  await new Promise((r) => setTimeout(r, 50));
  // Without reading a byte more, the route has left its loop and dropped its subscription.
  equal(t.node.bus.subscribers, 0);
  await response.body!.cancel();
});
