import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import fc from "fast-check";
import { NotFoundError } from "../../../kernel/errors.ts";
import { parseManifest, type ServiceManifestInput } from "../../../kernel/runtime/manifest.ts";
import { type Service, type ServiceContext, Supervisor } from "../../../kernel/runtime/supervisor.ts";
import { FakeClock } from "./_fake_clock.ts";

interface Fake extends Service {
  ctx?: ServiceContext;
  starts: number;
  stops: number;
  failStart: boolean;
  healthy: boolean;
  hangStop: boolean;
}

function harness(options: { stopTimeoutMs?: number } = {}) {
  const clock = new FakeClock();
  const log: string[] = [];
  const events: { name: string; from: string; to: string; reason: string }[] = [];
  const sup = new Supervisor({
    clock,
    random: () => 0,
    publish: (type, data) => {
      equal(type, "service.state");
      events.push(data as (typeof events)[number]);
    },
    log: () => {},
    stopTimeoutMs: options.stopTimeoutMs,
  });
  const services = new Map<string, Fake>();
  const add = (input: Partial<ServiceManifestInput> & { name: string }) => {
    const fake: Fake = {
      starts: 0,
      stops: 0,
      failStart: false,
      healthy: true,
      hangStop: false,
      start(ctx) {
        fake.starts++;
        log.push(`start ${input.name}`);
        if (fake.failStart) throw new Error(`${input.name} cannot start`);
        fake.ctx = ctx;
      },
      stop() {
        fake.stops++;
        log.push(`stop ${input.name}`);
        if (fake.hangStop) return new Promise<void>(() => {});
      },
      health: () => fake.healthy,
    };
    sup.register(parseManifest({ version: "1.0.0", entry: `builtin:${input.name}`, ...input }), fake);
    services.set(input.name, fake);
    return fake;
  };
  const states = (name: string) => events.filter((e) => e.name === name).map((e) => e.to);
  return { clock, sup, add, log, events, states, services };
}

const fastRestart = (maxRestarts = 3) => ({
  policy: "on-failure" as const,
  backoff: { initialMs: 100, maxMs: 1000, multiplier: 2 },
  budget: { maxRestarts, windowMs: 60_000 },
});

Deno.test("startAll() starts dependencies first and stopAll() stops in reverse order", async () => {
  const { sup, add, log } = harness();
  add({ name: "web", dependencies: ["api", "db"] });
  add({ name: "api", dependencies: ["db"] });
  add({ name: "db" });
  add({ name: "metrics" });
  eql(await sup.startAll(), []);
  eql(log.splice(0), ["start db", "start api", "start web", "start metrics"]);
  eql(sup.list().map((s) => [s.name, s.state]), [
    ["db", "running"],
    ["api", "running"],
    ["web", "running"],
    ["metrics", "running"],
  ]);
  await sup.stopAll();
  eql(log, ["stop metrics", "stop web", "stop api", "stop db"]);
  ok(sup.list().every((s) => s.state === "stopped"));
});

Deno.test("startAll() refuses a cycle and names it, before starting anything", async () => {
  const { sup, add, log } = harness();
  add({ name: "free" });
  add({ name: "a", dependencies: ["b"] });
  add({ name: "b", dependencies: ["c"] });
  add({ name: "c", dependencies: ["a"] });
  await rejects(sup.startAll(), { name: "RangeError", message: /cycle: a -> b -> c -> a$/ });
  eql(log, []);
});

Deno.test("startAll() refuses a missing dependency and names both services", async () => {
  const { sup, add } = harness();
  add({ name: "web", dependencies: ["db"] });
  await rejects(sup.startAll(), { message: 'Service "web" depends on "db", which is not registered' });
});

Deno.test("a crashed service is restarted after exponential backoff", async () => {
  const { sup, add, clock, states, events } = harness();
  const svc = add({ name: "svc", restart: fastRestart(5) });
  await sup.startAll();
  for (const expected of [100, 200, 400]) {
    svc.ctx!.exit(new Error("boom"));
    equal(sup.status("svc").state, "backoff");
    equal(sup.status("svc").nextRestartAt, clock.now() + expected);
    await clock.advance(expected - 1);
    equal(sup.status("svc").state, "backoff");
    await clock.advance(1);
    equal(sup.status("svc").state, "running");
  }
  equal(svc.starts, 4);
  equal(svc.stops, 3, "each crashed instance is stopped before the restart");
  equal(sup.status("svc").restarts, 3);
  equal(sup.status("svc").lastError, "boom");
  eql(states("svc").slice(0, 5), ["starting", "running", "backoff", "starting", "running"]);
  ok(events.some((e) => e.to === "backoff" && /exited: boom; restart 1 of 5 in 100 ms/.test(e.reason)));
});

Deno.test("backoff never exceeds maxMs and jitter adds at most 10 %", async () => {
  const clock = new FakeClock();
  const sup = new Supervisor({ clock, random: () => 0.999, log: () => {} });
  let ctx: ServiceContext | undefined;
  sup.register(
    parseManifest({
      name: "s",
      version: "1.0.0",
      entry: "builtin:s",
      restart: { backoff: { initialMs: 100, maxMs: 250, multiplier: 3 }, budget: { maxRestarts: 10 } },
    }),
    { start: (c) => void (ctx = c), stop: () => {} },
  );
  await sup.startAll();
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    ctx!.exit(new Error("x"));
    delays.push(sup.status("s").nextRestartAt! - clock.now());
    await clock.advance(1000);
  }
  eql(delays, [110, 250, 250, 250]);
});

Deno.test("with its restart budget used up a service is failed until an operator starts it", async () => {
  const { sup, add, clock, states } = harness();
  const svc = add({ name: "svc", restart: fastRestart(2) });
  await sup.startAll();
  svc.ctx!.exit(new Error("boom 1"));
  await clock.advance(100);
  svc.ctx!.exit(new Error("boom 2"));
  await clock.advance(200);
  svc.ctx!.exit(new Error("boom 3"));
  const status = sup.status("svc");
  equal(status.state, "failed");
  match(status.reason, /restart budget exhausted \(2 restarts in 60000 ms\)/);
  await clock.advance(120_000);
  equal(sup.status("svc").state, "failed", "no restart once failed");
  equal(svc.starts, 3);
  eql(states("svc").slice(-2), ["running", "failed"]);
  await sup.start("svc");
  equal(sup.status("svc").state, "running");
  equal(sup.status("svc").budgetUsed, 0);
});

Deno.test("the budget counts only restarts inside its window", async () => {
  const { sup, add, clock } = harness();
  const svc = add({ name: "svc", restart: { ...fastRestart(1), budget: { maxRestarts: 1, windowMs: 1000 } } });
  await sup.startAll();
  for (let i = 0; i < 3; i++) {
    svc.ctx!.exit(new Error("boom"));
    equal(sup.status("svc").state, "backoff");
    await clock.advance(1000);
    equal(sup.status("svc").state, "running");
  }
});

Deno.test("a start that throws is a crash: backoff, then failed at the end of the budget", async () => {
  const { sup, add, clock } = harness();
  const svc = add({ name: "svc", restart: fastRestart(2) });
  svc.failStart = true;
  const failed = await sup.startAll();
  eql(failed.map((f) => f.name), ["svc"]);
  equal(sup.status("svc").state, "backoff");
  await clock.advance(100);
  await clock.advance(200);
  equal(sup.status("svc").state, "failed");
  equal(svc.starts, 3);
  equal(sup.status("svc").lastError, "svc cannot start");
});

Deno.test('policy "never" leaves a crashed service failed; a clean exit stops it; "always" restarts that too', async () => {
  const { sup, add, clock } = harness();
  const never = add({ name: "never", restart: { ...fastRestart(), policy: "never" } });
  const onFailure = add({ name: "onfail", restart: fastRestart() });
  const always = add({ name: "always", restart: { ...fastRestart(), policy: "always" } });
  await sup.startAll();
  never.ctx!.exit(new Error("boom"));
  onFailure.ctx!.exit();
  always.ctx!.exit();
  equal(sup.status("never").state, "failed");
  equal(sup.status("onfail").state, "stopped");
  equal(sup.status("always").state, "backoff");
  await clock.advance(100);
  equal(sup.status("always").state, "running");
});

Deno.test("health checks: failureThreshold failures make a service unhealthy, then it is restarted", async () => {
  const { sup, add, clock, states } = harness();
  const svc = add({
    name: "svc",
    health: { intervalMs: 1000, timeoutMs: 100, failureThreshold: 3, successThreshold: 1 },
    restart: fastRestart(),
  });
  await sup.startAll();
  await clock.advance(0);
  equal(sup.status("svc").health.status, "passing");
  svc.healthy = false;
  await clock.advance(2000);
  equal(sup.status("svc").state, "running", "two failures are below the threshold");
  equal(sup.status("svc").health.failures, 2);
  svc.healthy = true;
  await clock.advance(1000);
  equal(sup.status("svc").health.failures, 0, "a pass resets the count");
  svc.healthy = false;
  await clock.advance(3000);
  eql(states("svc").slice(-2), ["unhealthy", "backoff"]);
  svc.healthy = true;
  await clock.advance(100);
  equal(sup.status("svc").state, "running");
  equal(svc.starts, 2);
});

Deno.test("a health check that does not answer within timeoutMs fails", async () => {
  const clock = new FakeClock();
  const sup = new Supervisor({ clock, log: () => {} });
  sup.register(
    parseManifest({
      name: "slow",
      version: "1.0.0",
      entry: "builtin:slow",
      health: { intervalMs: 1000, timeoutMs: 50, failureThreshold: 1 },
      restart: { policy: "never" },
    }),
    { start: () => {}, stop: () => {}, health: () => new Promise<boolean>(() => {}) },
  );
  await sup.startAll();
  await clock.advance(50);
  equal(sup.status("slow").state, "unhealthy");
  equal(sup.status("slow").lastError, "health check timed out after 50 ms");
});

Deno.test('under policy "never" an unhealthy service keeps running and recovers after successThreshold passes', async () => {
  const { sup, add, clock } = harness();
  const svc = add({
    name: "svc",
    health: { intervalMs: 1000, timeoutMs: 100, failureThreshold: 1, successThreshold: 2 },
    restart: { ...fastRestart(), policy: "never" },
  });
  svc.healthy = false;
  await sup.startAll();
  await clock.advance(0);
  equal(sup.status("svc").state, "unhealthy");
  svc.healthy = true;
  await clock.advance(1000);
  equal(sup.status("svc").state, "unhealthy");
  await clock.advance(1000);
  equal(sup.status("svc").state, "running");
  equal(svc.starts, 1);
});

Deno.test("stop() stops the dependents first; restart() brings them back", async () => {
  const { sup, add, log } = harness();
  add({ name: "db" });
  add({ name: "api", dependencies: ["db"] });
  add({ name: "web", dependencies: ["api"] });
  await sup.startAll();
  log.length = 0;
  await sup.stop("db");
  eql(log.splice(0), ["stop web", "stop api", "stop db"]);
  await sup.start("web");
  eql(log.splice(0), ["start db", "start api", "start web"], "start() starts the dependencies first");
  await sup.restart("api");
  eql(log, ["stop web", "stop api", "start api", "start web"]);
});

Deno.test("a stop that hangs is given up after stopTimeoutMs and the next one stops", async () => {
  const { sup, add, clock, log } = harness({ stopTimeoutMs: 500 });
  add({ name: "a" });
  const b = add({ name: "b" });
  await sup.startAll();
  b.hangStop = true;
  const stopping = sup.stopAll();
  await clock.advance(499);
  equal(sup.status("b").state, "stopping");
  await clock.advance(1);
  await stopping;
  equal(sup.status("b").state, "stopped");
  equal(sup.status("b").lastError, "stop timed out after 500 ms");
  eql(log.slice(-2), ["stop b", "stop a"]);
});

Deno.test("dependents wait while their dependency is in backoff and start once it runs", async () => {
  const { sup, add, clock } = harness();
  const db = add({ name: "db", restart: fastRestart() });
  add({ name: "api", dependencies: ["db"] });
  db.failStart = true;
  eql((await sup.startAll()).map((f) => f.name), ["db"]);
  eql([sup.status("api").state, sup.status("api").reason], ["stopped", 'waiting for "db"']);
  db.failStart = false;
  await clock.advance(100);
  equal(sup.status("db").state, "running");
  equal(sup.status("api").state, "running");
});

Deno.test("no restart happens after stopAll(), and stop() of a service in backoff cancels it", async () => {
  const { sup, add, clock } = harness();
  const a = add({ name: "a", restart: fastRestart() });
  await sup.startAll();
  a.ctx!.exit(new Error("boom"));
  await sup.stop("a");
  await clock.advance(10_000);
  equal(sup.status("a").state, "stopped");
  equal(a.starts, 1);
});

Deno.test("unknown names are a NotFoundError; a second registration is refused", () => {
  const { sup, add } = harness();
  add({ name: "a" });
  throws(() => sup.status("zzz"), NotFoundError);
  throws(() => add({ name: "a" }), { name: "ConflictError" });
});

Deno.test("every start order puts each service after its dependencies (random graphs)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12 }).chain((n) =>
        fc.array(fc.array(fc.integer({ min: 0, max: n - 1 }), { maxLength: 4 }), { minLength: n, maxLength: n })
      ),
      (deps) => {
        const sup = new Supervisor({ log: () => {} });
        // Only edges to lower indexes: a DAG; registered in a shuffled (reversed) order.
        const names = deps.map((_, i) => `s${i}`);
        for (let i = deps.length - 1; i >= 0; i--) {
          const dependencies = [...new Set(deps[i].filter((d) => d < i).map((d) => names[d]))];
          sup.register(parseManifest({ name: names[i], version: "1.0.0", entry: "builtin:x", dependencies }), {
            start: () => {},
            stop: () => {},
          });
        }
        const order = sup.order();
        equal(order.length, deps.length);
        for (const [i, d] of deps.entries()) {
          for (const j of d) if (j < i) ok(order.indexOf(names[j]) < order.indexOf(names[i]));
        }
      },
    ),
  );
});

function match(actual: string, pattern: RegExp): void {
  ok(pattern.test(actual), `${JSON.stringify(actual)} does not match ${pattern}`);
}
