import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import { createApp } from "../../../kernel/api/app.ts";
import { Node } from "../../../kernel/node/node.ts";
import { parseManifest } from "../../../kernel/runtime/manifest.ts";
import { Supervisor } from "../../../kernel/runtime/supervisor.ts";

async function setup() {
  const dataDir = await Deno.makeTempDir({ prefix: "nzcore-api-services-" });
  const node = await Node.open({ dataDir });
  const services = new Supervisor({ publish: (type, data) => node.bus.publish(type, data), log: () => {} });
  let dbFails = false;
  const add = (name: string, dependencies: string[] = [], start = () => {}) =>
    services.register(
      parseManifest({
        name,
        version: "1.0.0",
        entry: `builtin:${name}`,
        dependencies,
        restart: { policy: "never" },
      }),
      { start, stop: () => {} },
    );
  add("api");
  add("db", [], () => {
    if (dbFails) throw new Error("disk on fire");
  });
  add("web", ["db"]);
  await services.startAll();
  const app = createApp({ node, listeners: { tcp: null, socket: null }, permissions: {}, services });
  const admin = await node.tokens.create("admin", { persist: false });
  const request = (path: string, method = "GET") =>
    app.request(path, { method, headers: { authorization: `Bearer ${admin.token}` } });
  return {
    node,
    services,
    request,
    failDb: () => (dbFails = true),
    async [Symbol.asyncDispose]() {
      await services.stopAll();
      await node.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

Deno.test("GET /v1/services lists every service in start order with its state and health", async () => {
  await using t = await setup();
  const r = await t.request("/v1/services");
  equal(r.status, 200);
  const list = await r.json();
  eql(list.map((s: { name: string; state: string }) => [s.name, s.state]), [
    ["api", "running"],
    ["db", "running"],
    ["web", "running"],
  ]);
  eql(list[2].dependencies, ["db"]);
  eql(list[0].health, { status: "unknown", failures: 0, successes: 0 });
  equal(list[0].restarts, 0);
});

Deno.test("POST stop stops the dependents first; start brings them back, events follow each step", async () => {
  await using t = await setup();
  const seen: string[] = [];
  const abort = new AbortController();
  const reading = (async () => {
    for await (const e of t.node.bus.subscribe({ types: ["service."], signal: abort.signal })) {
      seen.push(`${e.data.name}:${e.data.from}->${e.data.to}`);
    }
  })();
  const stopped = await t.request("/v1/services/db/stop", "POST");
  equal(stopped.status, 200);
  equal((await stopped.json()).state, "stopped");
  equal(t.services.status("web").state, "stopped");
  const started = await t.request("/v1/services/web/start", "POST");
  equal((await started.json()).state, "running");
  equal(t.services.status("db").state, "running");
  const restarted = await t.request("/v1/services/web/restart", "POST");
  equal(restarted.status, 200);
  await new Promise((r) => setTimeout(r, 0));
  abort.abort();
  await reading;
  eql(seen, [
    "web:running->stopping",
    "web:stopping->stopped",
    "db:running->stopping",
    "db:stopping->stopped",
    "db:stopped->starting",
    "db:starting->running",
    "web:stopped->starting",
    "web:starting->running",
    "web:running->stopping",
    "web:stopping->stopped",
    "web:stopped->starting",
    "web:starting->running",
  ]);
});

Deno.test("the API refuses to stop itself, unknown services are 404, a failed start is 502", async () => {
  await using t = await setup();
  const self = await t.request("/v1/services/api/stop", "POST");
  equal(self.status, 409);
  equal((await self.json()).error.message, "The API cannot stop itself; stop the node instead");
  equal((await t.request("/v1/services/api/restart", "POST")).status, 409);
  const missing = await t.request("/v1/services/nope/start", "POST");
  equal(missing.status, 404);
  equal((await missing.json()).error.message, 'No service named "nope"');
  await t.request("/v1/services/db/stop", "POST");
  t.failDb();
  const failed = await t.request("/v1/services/db/start", "POST");
  equal(failed.status, 502);
  const body = await failed.json();
  equal(body.error.code, "service_failed");
  equal(body.error.message, 'The service "db" did not start: disk on fire');
  const db = (await (await t.request("/v1/services")).json())[1];
  eql([db.state, db.lastError], ["failed", "disk on fire"]);
});

Deno.test("the OpenAPI document lists the service routes", async () => {
  await using t = await setup();
  const doc = await (await t.request("/v1/openapi.json")).json();
  for (const path of ["/v1/services", "/v1/services/{name}/start", "/v1/services/{name}/stop"]) ok(doc.paths[path]);
  ok(doc.components.schemas.Service);
});
