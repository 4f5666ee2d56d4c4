import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseManifest } from "../../../kernel/runtime/manifest.ts";
import { Supervisor } from "../../../kernel/runtime/supervisor.ts";
import { entryUrl, permissionsFor, workerService } from "../../../kernel/runtime/worker_service.ts";

const FIXTURES = fileURLToPath(new URL("../../fixtures/services/", import.meta.url));

function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error("timed out"));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

Deno.test("permissionsFor() grants exactly the capabilities and nothing else", () => {
  eql(permissionsFor(["net:127.0.0.1:80", "net:example.com", "read:data", "env:NZCORE_X"], "/base"), {
    read: ["/base/data"],
    write: false,
    net: ["127.0.0.1:80", "example.com"],
    env: ["NZCORE_X"],
    sys: false,
    run: false,
    ffi: false,
    import: false,
  });
  equal(permissionsFor(["net", "net:x"], "/").net, true);
  eql(permissionsFor([], "/"), {
    read: false,
    write: false,
    net: false,
    env: false,
    sys: false,
    run: false,
    ffi: false,
    import: false,
  });
});

Deno.test("entryUrl() resolves module paths and refuses remote modules", () => {
  equal(entryUrl("svc.ts", "/data/services").href, "file:///data/services/svc.ts");
  equal(entryUrl("/abs/svc.ts", "/x").href, "file:///abs/svc.ts");
  throws(() => entryUrl("https://example.com/svc.ts", "/x"), { message: /local module path or a file: URL/ });
});

Deno.test("a worker service runs, answers health checks, crashes and is restarted", async () => {
  const events: string[] = [];
  const sup = new Supervisor({ publish: (_, d) => void events.push(`${d.to}`), log: () => {} });
  const manifest = parseManifest({
    name: "steady",
    version: "1.0.0",
    entry: "steady.ts",
    health: { intervalMs: 50, timeoutMs: 1000 },
    restart: { backoff: { initialMs: 10, maxMs: 10 } },
  });
  const service = workerService(manifest, { baseDir: FIXTURES });
  sup.register(manifest, service);
  try {
    eql(await sup.startAll(), []);
    await until(() => sup.status("steady").health.status === "passing");
    service.post({ type: "crash" });
    await until(() => sup.status("steady").restarts === 1 && sup.status("steady").state === "running");
    equal(sup.status("steady").lastError, "Uncaught Error: steady: crashed on request");
    service.post({ type: "sick" });
    await until(() => sup.status("steady").restarts === 2);
    ok(/unhealthy/.test(events.join(" ")));
  } finally {
    await sup.stopAll();
  }
  eql(events.slice(0, 5), ["starting", "running", "backoff", "starting", "running"]);
});

Deno.test("a worker that throws is a crash; after its budget it is failed", async () => {
  const sup = new Supervisor({ log: () => {} });
  const manifest = parseManifest({
    name: "crashy",
    version: "1.0.0",
    entry: "crashy.ts",
    restart: { backoff: { initialMs: 10, maxMs: 10 }, budget: { maxRestarts: 1, windowMs: 60_000 } },
  });
  sup.register(manifest, workerService(manifest, { baseDir: FIXTURES }));
  try {
    await sup.startAll();
    await until(() => sup.status("crashy").state === "failed");
    const status = sup.status("crashy");
    equal(status.restarts, 1);
    ok(/crashed on purpose/.test(status.lastError ?? ""), status.lastError);
    ok(/restart budget exhausted/.test(status.reason), status.reason);
  } finally {
    await sup.stopAll();
  }
});

Deno.test("a worker gets no permission it did not request", async () => {
  const manifest = parseManifest({ name: "greedy", version: "1.0.0", entry: "greedy.ts" });
  const service = workerService(manifest, { baseDir: FIXTURES });
  await rejects(
    Promise.resolve(service.start({ name: "greedy", signal: new AbortController().signal, exit: () => {} })),
    { message: "env: NotCapable" },
  );
  await service.stop({ name: "greedy", signal: new AbortController().signal, exit: () => {} });
});

Deno.test("a missing module fails the start", async () => {
  const manifest = parseManifest({ name: "ghost", version: "1.0.0", entry: "no_such_module.ts" });
  const service = workerService(manifest, { baseDir: FIXTURES });
  const ctx = { name: "ghost", signal: new AbortController().signal, exit: () => {} };
  await rejects(Promise.resolve(service.start(ctx)), {
    // `deno test` type-checks the worker's module first, `deno run` only loads it: either says so.
    message: /no_such_module\.ts|Type checking failed/,
  });
  await service.stop(ctx);
});
