import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cli, startNode, tempDataDir } from "./_node_process.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/services/", import.meta.url));

interface ServiceView {
  name: string;
  state: string;
  reason: string;
  restarts: number;
  lastError?: string;
  dependencies: string[];
  health: { status: string };
}

interface StateEvent {
  type: string;
  data: { name: string; from: string; to: string; reason: string };
}

/** Follows the node's `service.` events on `GET /v1/events`; resolves once the stream is connected. */
async function follow(node: { api(path: string, init?: RequestInit): Promise<Response> }) {
  const abort = new AbortController();
  const response = await node.api("/v1/events?types=service.", { signal: abort.signal });
  equal(response.status, 200);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const events = () =>
    text.split("\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5)) as StateEvent);
  const until = async (test: (events: StateEvent[]) => boolean, timeoutMs = 15_000): Promise<StateEvent[]> => {
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      while (!test(events())) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`The event stream ended; events so far:\n${text}`);
        text += value;
      }
    } catch (error) {
      throw new Error(`${(error as Error).message}; events so far:\n${text}`);
    } finally {
      clearTimeout(timer);
    }
    return events();
  };
  while (!text.includes(": connected")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The event stream ended before it connected");
    text += value;
  }
  return {
    until,
    async [Symbol.asyncDispose]() {
      abort.abort();
      await reader.cancel().catch(() => {});
    },
  };
}

async function writeManifests(dataDir: string): Promise<void> {
  const dir = join(dataDir, "services");
  await Deno.mkdir(dir, { recursive: true });
  const write = (file: string, manifest: unknown) => Deno.writeTextFile(join(dir, file), JSON.stringify(manifest));
  const restart = {
    backoff: { initialMs: 100, maxMs: 1000, multiplier: 2 },
    budget: { maxRestarts: 2, windowMs: 60_000 },
  };
  // File names sort the crashing dependent before its dependency: the start order must come from the dependencies.
  await write("a-crashy.json", {
    name: "crashy",
    version: "1.0.0",
    entry: join(FIXTURES, "crashy.ts"),
    dependencies: ["store"],
    restart,
  });
  await write("b-web.json", {
    name: "web",
    version: "0.3.0",
    entry: join(FIXTURES, "steady.ts"),
    dependencies: ["store"],
  });
  await write("c-store.json", {
    name: "store",
    version: "2.1.0",
    entry: join(FIXTURES, "steady.ts"),
    health: { intervalMs: 200, timeoutMs: 1000 },
  });
  await write("d-broken.json", { name: "broken", version: "1.0.0", entry: "x.ts", restart: { policy: "sometimes" } });
  await Deno.writeTextFile(join(dir, "e-garbage.json"), "{ this is not json");
}

async function services(dataDir: string): Promise<ServiceView[]> {
  const out = await cli(["--data-dir", dataDir, "services", "list", "--json"]);
  equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout);
}

async function until<T>(fn: () => Promise<T>, test: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (test(value)) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("services from the data directory run in dependency order; a crashing one backs off until its budget ends", async () => {
  await using dir = await tempDataDir();
  await writeManifests(dir.path);
  await using node = await startNode(dir.path);

  // Malformed manifests are refused with a message naming the file and the field; the node carries on.
  match(node.output(), /Invalid service manifest ".*d-broken\.json": restart\.policy: .*the service is not loaded/);
  match(node.output(), /Invalid service manifest ".*e-garbage\.json": not valid JSON/);

  // Dependency order: the built-in services, then store before its dependents, whatever the file order.
  const listed = await services(dir.path);
  eql(listed.map((s) => s.name), ["transports", "api", "checkpoint", "store", "crashy", "web"]);
  eql(listed.find((s) => s.name === "web")!.dependencies, ["store"]);

  // The crashing service: crash, backoff (100 ms, then 200 ms), and the end of its 2-restart budget.
  const failed = await until(
    () => services(dir.path),
    (list) => list.find((s) => s.name === "crashy")!.state === "failed",
  );
  const crashy = failed.find((s) => s.name === "crashy")!;
  equal(crashy.restarts, 2);
  match(crashy.lastError!, /crashy: crashed on purpose after 200 ms/);
  match(crashy.reason, /restart budget exhausted \(2 restarts in 60000 ms\)/);
  ok(failed.filter((s) => s.name !== "crashy").every((s) => s.state === "running"), "the others carry on");
  const human = await cli(["--data-dir", dir.path, "services", "list"]);
  match(human.stdout, /^crashy +failed +restarts 2 +health unknown/m);

  // An operator start gives it a fresh budget; the event stream shows each transition, with the backoff delays.
  await using events = await follow(node);
  const started = await cli(["--data-dir", dir.path, "services", "start", "crashy"]);
  equal(started.code, 0, started.stderr);
  match(started.stdout, /^crashy +running/);
  const seen = await events.until((list) => list.some((e) => e.data.name === "crashy" && e.data.to === "failed"));
  const crashyEvents = seen.filter((e) => e.data.name === "crashy");
  eql(crashyEvents.map((e) => e.data.to), [
    "starting",
    "running",
    "backoff",
    "starting",
    "running",
    "backoff",
    "starting",
    "running",
    "failed",
  ]);
  match(crashyEvents[2].data.reason, /^exited: .*crashed on purpose.*; restart 1 of 2 in 1(0\d|10) ms$/);
  match(crashyEvents[5].data.reason, /; restart 2 of 2 in 2(0\d|1\d|20) ms$/);
  ok(crashyEvents.every((e) => e.type === "service.state"));

  // Stopping the dependency stops its dependents first; restarting it brings back those that ran.
  const stopped = await node.api("/v1/services/store/stop", { method: "POST" });
  equal(stopped.status, 200);
  const afterStop = await events.until((list) => list.some((e) => e.data.name === "store" && e.data.to === "stopped"));
  const stops = afterStop.filter((e) => e.data.to === "stopped").map((e) => e.data.name);
  eql(stops.slice(-3), ["web", "crashy", "store"], "dependents newest first; the failed one is cleared too");
  const restarted = await cli(["--data-dir", dir.path, "services", "start", "web"]);
  equal(restarted.code, 0, restarted.stderr);
  const list = await services(dir.path);
  eql(list.filter((s) => s.name === "store" || s.name === "web").map((s) => s.state), ["running", "running"]);

  // The API cannot stop itself; the node still stops cleanly, every service with it.
  const self = await cli(["--data-dir", dir.path, "services", "stop", "api"]);
  equal(self.code, 1);
  match(self.stderr, /The API cannot stop itself/);
  const status = await node.stop();
  equal(status.code, 0, node.output());
  match(node.output(), /stopped/);
});

Deno.test("the node's own parts are services with health checks that pass while they work", async () => {
  await using dir = await tempDataDir();
  await using node = await startNode(dir.path, {
    args: ["--api", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:0", "--listen", "udp://127.0.0.1:0"],
  });
  // The first check runs right after each start.
  let builtins: ServiceView[] = [];
  for (let i = 0; i < 50; i++) {
    const list = await (await node.api("/v1/services")).json() as ServiceView[];
    builtins = list.filter((s) => ["transports", "api", "checkpoint"].includes(s.name));
    if (builtins.length === 3 && builtins.every((s) => s.health.status !== "unknown")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  equal(builtins.length, 3);
  for (const s of builtins) {
    equal(s.state, "running", s.name);
    equal(s.health.status, "passing", `${s.name}: ${JSON.stringify(s)}`);
  }
  const human = await cli(["--data-dir", dir.path, "services", "list"]);
  match(human.stdout, /^transports +running .*health passing/m);
});
