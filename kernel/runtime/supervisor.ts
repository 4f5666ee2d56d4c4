/**
 * The services supervisor: starts services in dependency order, checks
 * their health, restarts crashed and unhealthy ones with exponential backoff
 * inside a restart budget, and stops them in reverse order.
 *
 * States: `stopped`, `starting`, `running`, `unhealthy`, `stopping`,
 * `backoff`, `failed`. Every transition is published as `service.state`
 * with `{ name, from, to, reason }`.
 *
 * - **Start** (`start(name)`) starts the service's stopped dependencies
 *   first, then the service; it resolves once it runs and rejects with the
 *   error of a failed first attempt (the restart policy still applies).
 *   Starting a `failed` service clears its restart budget: that is how an
 *   operator gives it another chance.
 * - **Stop** (`stop(name)`) stops the running dependents first, newest
 *   first, then the service, each within `stopTimeoutMs`.
 * - **Crash**: `start()` rejects, the service calls `ctx.exit(error)`, or
 *   `failureThreshold` health checks in a row fail. The instance is stopped,
 *   and the policy decides: `never` ends in `failed` (unhealthy services are
 *   left running and `unhealthy`), `on-failure` and `always` wait
 *   `initialMs * multiplier^n` (n = restarts inside the budget window, at most
 *   `maxMs`, plus up to 10 % jitter) and start again. With `maxRestarts`
 *   restarts inside `windowMs` used up, the service is `failed` and stays so.
 *   A clean `ctx.exit()` restarts only under `always`.
 * - A dependency that is not running holds its dependents back: they wait in
 *   `stopped` and start once it runs. A dependency that crashes does not stop
 *   its running dependents.
 *
 * @example Two services in dependency order
 * ```ts
 * import { Supervisor } from "./supervisor.ts";
 * import { parseManifest } from "./manifest.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const order: string[] = [];
 * const sup = new Supervisor();
 * const service = (name: string) => ({ start: () => void order.push(name), stop: () => {} });
 * sup.register(parseManifest({ name: "web", version: "1.0.0", entry: "builtin:web", dependencies: ["db"] }), service("web"));
 * sup.register(parseManifest({ name: "db", version: "1.0.0", entry: "builtin:db" }), service("db"));
 * await sup.startAll();
 * deepEqual(order, ["db", "web"]);
 * await sup.stopAll();
 * ```
 *
 * @module
 */

import { ConflictError, NotFoundError } from "../errors.ts";
import type { ServiceManifest } from "./manifest.ts";

/** The states of a service. */
export const SERVICE_STATES = ["stopped", "starting", "running", "unhealthy", "stopping", "backoff", "failed"] as const;

/** One state of a service. */
export type ServiceState = typeof SERVICE_STATES[number];

/** What a service is handed when it starts. */
export interface ServiceContext {
  /** The service's name. */
  readonly name: string;
  /** Aborted when this instance is stopped (or replaced after a crash). */
  readonly signal: AbortSignal;
  /**
   * Reports that the service ended on its own: with an error it crashed,
   * without one it exited cleanly. Calls from an instance that was already
   * stopped or replaced are ignored.
   */
  exit(error?: unknown): void;
}

/** What a service implements; only `start` and `stop` are required. */
export interface Service {
  /** Called once, before the first start. */
  init?(ctx: ServiceContext): void | Promise<void>;
  /** Starts the service; resolves once it runs, rejects when it cannot. */
  start(ctx: ServiceContext): void | Promise<void>;
  /** Stops it and frees what it holds. */
  stop(ctx: ServiceContext): void | Promise<void>;
  /** Checks its health: `false` or an error is a failed check. */
  health?(ctx: { signal: AbortSignal }): boolean | void | Promise<boolean | void>;
}

/** Timers and time, injectable for tests. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; returns an id for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer of `setTimeout`. */
  clearTimeout(id: unknown): void;
}

/** The real clock. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

/** Components of a {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** Time and timers (default the system's). */
  clock?: Clock;
  /** Source of jitter in [0, 1) (default `Math.random`). */
  random?: () => number;
  /** Receives every event (`service.state`). */
  publish?: (type: string, data: Record<string, unknown>) => void;
  /** Receives log lines (default `console.error` with an `nzcore:` prefix). */
  log?: (line: string) => void;
  /** How long one service's `stop()` may take before it is given up on (default 5000 ms). */
  stopTimeoutMs?: number;
}

/** The health part of a {@linkcode ServiceStatus}. */
export interface HealthStatus {
  /** `unknown` before the first check and for services without one. */
  status: "unknown" | "passing" | "failing";
  /** Failed checks in a row. */
  failures: number;
  /** Passed checks in a row. */
  successes: number;
  /** When the last check ended (ms since the epoch). */
  lastCheckAt?: number;
}

/** One service as {@linkcode Supervisor.list} reports it. */
export interface ServiceStatus {
  /** The manifest's name. */
  name: string;
  /** The manifest's version. */
  version: string;
  /** The manifest's entry: `builtin:ID` or a module. */
  entry: string;
  /** The services it needs running first. */
  dependencies: string[];
  /** The capabilities it was granted. */
  capabilities: string[];
  /** Its state now. */
  state: ServiceState;
  /** When it entered its state. */
  since: number;
  /** Why it entered its state. */
  reason: string;
  /** Restarts after crashes since the node started. */
  restarts: number;
  /** Restarts counted against the budget now (inside its window). */
  budgetUsed: number;
  /** The last error, if any. */
  lastError?: string;
  /** When the next restart is due, in `backoff`. */
  nextRestartAt?: number;
  /** The results of its health checks. */
  health: HealthStatus;
}

interface Entry {
  manifest: ServiceManifest;
  service: Service;
  state: ServiceState;
  since: number;
  reason: string;
  restarts: number;
  restartTimes: number[];
  lastError?: string;
  nextRestartAt?: number;
  health: HealthStatus;
  initialised: boolean;
  /** The running instance; replaced on every start. */
  instance?: { ctx: ServiceContext; abort: AbortController };
  /** Increases on every start and stop: late callbacks of an older one are ignored. */
  generation: number;
  timer?: unknown;
  healthTimer?: unknown;
  /** The start under way, if any. */
  starting?: Promise<void>;
  /** The stop under way, if any. */
  stopping?: Promise<void>;
  /** Waits for a dependency before it starts. */
  waiting: boolean;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Starts, watches, restarts and stops services. */
export class Supervisor {
  #entries = new Map<string, Entry>();
  #clock: Clock;
  #random: () => number;
  #publish: (type: string, data: Record<string, unknown>) => void;
  #log: (line: string) => void;
  #stopTimeoutMs: number;
  #shuttingDown = false;

  /** Creates a supervisor from its components. */
  constructor(options: SupervisorOptions = {}) {
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#random = options.random ?? Math.random;
    this.#publish = options.publish ?? (() => {});
    this.#log = options.log ?? ((line) => console.error(`nzcore: ${line}`));
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 5_000;
  }

  /**
   * Adds a service; it starts with the next `startAll()` or `start(name)`.
   *
   * @throws {ConflictError} when a service of that name exists.
   */
  register(manifest: ServiceManifest, service: Service): void {
    if (this.#entries.has(manifest.name)) {
      throw new ConflictError(`A service named "${manifest.name}" is registered already`);
    }
    this.#entries.set(manifest.name, {
      manifest,
      service,
      state: "stopped",
      since: this.#clock.now(),
      reason: "registered",
      restarts: 0,
      restartTimes: [],
      health: { status: "unknown", failures: 0, successes: 0 },
      initialised: false,
      generation: 0,
      waiting: false,
    });
  }

  /** Whether a service of that name is registered. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The state of one service. @throws {NotFoundError} */
  status(name: string): ServiceStatus {
    return this.#statusOf(this.#entry(name));
  }

  /** Every service, in start order. */
  list(): ServiceStatus[] {
    let order: string[];
    try {
      order = this.order();
    } catch {
      order = [...this.#entries.keys()];
    }
    return order.map((name) => this.#statusOf(this.#entries.get(name)!));
  }

  /**
   * The start order: dependencies first, otherwise registration order.
   *
   * @throws {RangeError} on a missing dependency or a cycle, which it names (`a -> b -> a`).
   */
  order(): string[] {
    const order: string[] = [];
    const mark = new Map<string, "visiting" | "done">();
    const path: string[] = [];
    const visit = (name: string, from?: string) => {
      const entry = this.#entries.get(name);
      if (!entry) throw new RangeError(`Service "${from}" depends on "${name}", which is not registered`);
      if (mark.get(name) === "done") return;
      if (mark.get(name) === "visiting") {
        const cycle = [...path.slice(path.indexOf(name)), name];
        throw new RangeError(`Services depend on each other in a cycle: ${cycle.join(" -> ")}`);
      }
      mark.set(name, "visiting");
      path.push(name);
      for (const dep of entry.manifest.dependencies) visit(dep, name);
      path.pop();
      mark.set(name, "done");
      order.push(name);
    };
    for (const name of this.#entries.keys()) visit(name);
    return order;
  }

  /**
   * Starts every service in dependency order. A service that cannot start
   * does not stop the others: it follows its restart policy, and its
   * dependents wait for it.
   *
   * @returns the services that failed their first start, with the error.
   * @throws {RangeError} before starting anything, on a missing dependency or a cycle.
   */
  async startAll(): Promise<{ name: string; error: unknown }[]> {
    this.#shuttingDown = false;
    const failed: { name: string; error: unknown }[] = [];
    for (const name of this.order()) {
      const entry = this.#entries.get(name)!;
      if (entry.state !== "stopped" || entry.waiting) continue;
      if (!this.#dependenciesRunning(entry)) {
        this.#wait(entry);
        continue;
      }
      await this.#attempt(entry, "start").catch((error) => failed.push({ name, error }));
    }
    return failed;
  }

  /**
   * Starts one service, its stopped dependencies first.
   *
   * @throws {NotFoundError} for an unknown name.
   * @throws the error of its (or a dependency's) failed first attempt.
   */
  async start(name: string): Promise<void> {
    const entry = this.#entry(name);
    this.order(); // refuse cycles and missing dependencies before anything starts
    this.#shuttingDown = false;
    for (const dep of entry.manifest.dependencies) {
      const d = this.#entries.get(dep)!;
      if (d.state === "running" || d.state === "unhealthy") continue;
      try {
        await this.start(dep);
      } catch (error) {
        throw new Error(`Cannot start "${name}": its dependency "${dep}" did not start: ${message(error)}`, {
          cause: error,
        });
      }
    }
    switch (entry.state) {
      case "running":
      case "unhealthy":
        return;
      case "starting":
        return await entry.starting;
      case "stopping":
        throw new ConflictError(`The service "${name}" is stopping; start it once it has stopped`);
      case "failed":
        entry.restartTimes = [];
        break;
      case "backoff":
        this.#clearTimer(entry);
        break;
    }
    entry.waiting = false;
    await this.#attempt(entry, "started by operator");
  }

  /**
   * Stops one service, its running dependents first. A service waiting in
   * `backoff` or `failed` becomes `stopped` (no more restarts).
   *
   * @throws {NotFoundError} for an unknown name.
   */
  async stop(name: string, reason = "stopped by operator"): Promise<void> {
    const entry = this.#entry(name);
    for (const dependent of this.#dependentsOf(name).reverse()) {
      await this.#stopOne(this.#entries.get(dependent)!, `its dependency "${name}" is stopping`);
    }
    await this.#stopOne(entry, reason);
  }

  /**
   * Stops a service (dependents first), then starts it and the dependents
   * that ran before.
   */
  async restart(name: string): Promise<void> {
    const entry = this.#entry(name);
    const running = (n: string) => ["running", "unhealthy", "starting"].includes(this.#entries.get(n)!.state);
    const dependents = this.#dependentsOf(name).filter(running);
    await this.stop(name, "restarted by operator");
    entry.restartTimes = [];
    await this.start(name);
    for (const dependent of dependents) await this.start(dependent).catch(() => {});
  }

  /** Stops every service in reverse start order; no restarts happen from now on. */
  async stopAll(): Promise<void> {
    this.#shuttingDown = true;
    let order: string[];
    try {
      order = this.order();
    } catch {
      order = [...this.#entries.keys()];
    }
    for (const name of order.reverse()) await this.#stopOne(this.#entries.get(name)!, "shutdown");
  }

  // ---- internals ----

  #entry(name: string): Entry {
    const entry = this.#entries.get(name);
    if (!entry) throw new NotFoundError(`No service named "${name}"`);
    return entry;
  }

  /** Every service that depends on `name`, directly or not, in start order. */
  #dependentsOf(name: string): string[] {
    const found = new Set<string>();
    let grew = true;
    while (grew) {
      grew = false;
      for (const [other, entry] of this.#entries) {
        if (found.has(other)) continue;
        if (entry.manifest.dependencies.some((d) => d === name || found.has(d))) {
          found.add(other);
          grew = true;
        }
      }
    }
    let order: string[];
    try {
      order = this.order();
    } catch {
      order = [...this.#entries.keys()];
    }
    return order.filter((n) => found.has(n));
  }

  #dependenciesRunning(entry: Entry): boolean {
    return entry.manifest.dependencies.every((d) => {
      const state = this.#entries.get(d)?.state;
      return state === "running" || state === "unhealthy";
    });
  }

  #statusOf(entry: Entry): ServiceStatus {
    const { manifest } = entry;
    return {
      name: manifest.name,
      version: manifest.version,
      entry: manifest.entry,
      dependencies: [...manifest.dependencies],
      capabilities: [...manifest.capabilities],
      state: entry.state,
      since: entry.since,
      reason: entry.reason,
      restarts: entry.restarts,
      budgetUsed: this.#budgetUsed(entry),
      ...(entry.lastError === undefined ? {} : { lastError: entry.lastError }),
      ...(entry.nextRestartAt === undefined ? {} : { nextRestartAt: entry.nextRestartAt }),
      health: { ...entry.health },
    };
  }

  #budgetUsed(entry: Entry): number {
    const since = this.#clock.now() - entry.manifest.restart.budget.windowMs;
    entry.restartTimes = entry.restartTimes.filter((t) => t > since);
    return entry.restartTimes.length;
  }

  #set(entry: Entry, to: ServiceState, reason: string): void {
    const from = entry.state;
    entry.state = to;
    entry.since = this.#clock.now();
    entry.reason = reason;
    if (to !== "backoff") entry.nextRestartAt = undefined;
    this.#publish("service.state", { name: entry.manifest.name, from, to, reason });
    if (to === "running") this.#wakeDependents();
  }

  #wait(entry: Entry): void {
    const missing = entry.manifest.dependencies.filter((d) => {
      const state = this.#entries.get(d)?.state;
      return state !== "running" && state !== "unhealthy";
    });
    entry.waiting = true;
    entry.reason = `waiting for ${missing.map((m) => `"${m}"`).join(", ")}`;
  }

  #wakeDependents(): void {
    if (this.#shuttingDown) return;
    for (const entry of this.#entries.values()) {
      if (!entry.waiting || entry.state !== "stopped" || !this.#dependenciesRunning(entry)) continue;
      entry.waiting = false;
      void this.#attempt(entry, "its dependencies run").catch(() => {});
    }
  }

  #clearTimer(entry: Entry): void {
    if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.healthTimer !== undefined) this.#clock.clearTimeout(entry.healthTimer);
    entry.healthTimer = undefined;
  }

  /** One start attempt; on failure the restart policy takes over and the error is rethrown. */
  #attempt(entry: Entry, reason: string): Promise<void> {
    const generation = ++entry.generation;
    const abort = new AbortController();
    const ctx: ServiceContext = {
      name: entry.manifest.name,
      signal: abort.signal,
      exit: (error?: unknown) => {
        if (entry.generation !== generation || abort.signal.aborted) return;
        this.#ended(entry, error, "exited");
      },
    };
    entry.instance = { ctx, abort };
    entry.waiting = false;
    entry.health = { status: "unknown", failures: 0, successes: 0 };
    this.#set(entry, "starting", reason);
    const run = (async () => {
      if (!entry.initialised) {
        await entry.service.init?.(ctx);
        entry.initialised = true;
      }
      await entry.service.start(ctx);
    })();
    entry.starting = run.then(
      () => {
        if (entry.generation !== generation) return;
        entry.starting = undefined;
        this.#set(entry, "running", "started");
        this.#scheduleHealth(entry, generation, 0);
      },
      (error) => {
        if (entry.generation !== generation) throw error;
        entry.starting = undefined;
        this.#log(`service ${entry.manifest.name} did not start: ${message(error)}`);
        this.#ended(entry, error, "did not start");
        throw error;
      },
    );
    return entry.starting;
  }

  /** The instance ended: crashed (error), exited cleanly (no error) or went unhealthy. */
  #ended(entry: Entry, error: unknown, how: string): void {
    const name = entry.manifest.name;
    const crashed = error !== undefined;
    if (crashed) entry.lastError = message(error);
    const { policy } = entry.manifest.restart;
    const generation = ++entry.generation;
    this.#clearTimer(entry);
    const instance = entry.instance;
    entry.instance = undefined;
    entry.starting = undefined;
    instance?.abort.abort(crashed ? error : new Error(how));
    // Free what the dead instance holds (a half-started one too); its stop errors matter less than the restart.
    if (instance) {
      void this.#stopWithTimeout(entry, instance.ctx).catch((e) =>
        this.#log(`service ${name}: stop after it ended failed: ${message(e)}`)
      );
    }
    const reason = crashed ? `${how}: ${message(error)}` : how;
    if (this.#shuttingDown) {
      this.#set(entry, "stopped", reason);
      return;
    }
    if (!crashed && policy !== "always") {
      this.#set(entry, "stopped", reason);
      return;
    }
    if (policy === "never") {
      this.#set(entry, "failed", `${reason} (restart policy "never")`);
      return;
    }
    const { backoff, budget } = entry.manifest.restart;
    const used = this.#budgetUsed(entry);
    if (used >= budget.maxRestarts) {
      this.#set(
        entry,
        "failed",
        `${reason}; restart budget exhausted (${used} restarts in ${budget.windowMs} ms)`,
      );
      return;
    }
    const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** used);
    const delay = Math.round(Math.min(backoff.maxMs, base * (1 + 0.1 * this.#random())));
    entry.restartTimes.push(this.#clock.now());
    entry.nextRestartAt = this.#clock.now() + delay;
    this.#set(entry, "backoff", `${reason}; restart ${used + 1} of ${budget.maxRestarts} in ${delay} ms`);
    entry.timer = this.#clock.setTimeout(() => {
      entry.timer = undefined;
      if (entry.generation !== generation || entry.state !== "backoff") return;
      if (!this.#dependenciesRunning(entry)) {
        this.#set(entry, "stopped", "restart held back: a dependency is not running");
        this.#wait(entry);
        return;
      }
      entry.restarts++;
      void this.#attempt(entry, `restart after backoff (${delay} ms)`).catch(() => {});
    }, delay);
  }

  #scheduleHealth(entry: Entry, generation: number, delay: number): void {
    const health = entry.manifest.health;
    if (!health || !entry.service.health) return;
    entry.healthTimer = this.#clock.setTimeout(() => {
      entry.healthTimer = undefined;
      if (entry.generation !== generation) return;
      void this.#check(entry, generation);
    }, delay);
  }

  async #check(entry: Entry, generation: number): Promise<void> {
    const health = entry.manifest.health!;
    const abort = new AbortController();
    let timer: unknown;
    let ok: boolean;
    let why = "";
    try {
      const result = await Promise.race([
        Promise.resolve().then(() => entry.service.health!({ signal: abort.signal })),
        new Promise<never>((_, reject) => {
          timer = this.#clock.setTimeout(
            () => reject(new Error(`health check timed out after ${health.timeoutMs} ms`)),
            health.timeoutMs,
          );
        }),
      ]);
      ok = result !== false;
      if (!ok) why = "health check failed";
    } catch (error) {
      ok = false;
      why = message(error);
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      abort.abort();
    }
    if (entry.generation !== generation) return;
    const h = entry.health;
    h.lastCheckAt = this.#clock.now();
    if (ok) {
      h.successes++;
      h.failures = 0;
      if (h.status !== "failing" || h.successes >= health.successThreshold) h.status = "passing";
      if (entry.state === "unhealthy" && h.successes >= health.successThreshold) {
        this.#set(entry, "running", `${h.successes} health checks passed`);
      }
    } else {
      h.failures++;
      h.successes = 0;
      entry.lastError = why;
      if (h.failures >= health.failureThreshold) {
        h.status = "failing";
        if (entry.state === "running") {
          this.#set(entry, "unhealthy", `${h.failures} health checks failed: ${why}`);
          if (entry.manifest.restart.policy !== "never") {
            this.#ended(entry, new Error(`unhealthy: ${why}`), "unhealthy");
            return;
          }
        }
      }
    }
    this.#scheduleHealth(entry, generation, health.intervalMs);
  }

  async #stopWithTimeout(entry: Entry, ctx: ServiceContext): Promise<void> {
    let timer: unknown;
    try {
      await Promise.race([
        Promise.resolve().then(() => entry.service.stop(ctx)),
        new Promise<never>((_, reject) => {
          timer = this.#clock.setTimeout(
            () => reject(new Error(`stop timed out after ${this.#stopTimeoutMs} ms`)),
            this.#stopTimeoutMs,
          );
        }),
      ]);
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
    }
  }

  async #stopOne(entry: Entry, reason: string): Promise<void> {
    entry.waiting = false;
    if (entry.state === "stopped") return;
    if (entry.state === "stopping") return await entry.stopping;
    if (entry.state === "backoff" || entry.state === "failed") {
      entry.generation++;
      this.#clearTimer(entry);
      this.#set(entry, "stopped", reason);
      return;
    }
    if (entry.state === "starting") await entry.starting?.catch(() => {});
    if (entry.state !== "running" && entry.state !== "unhealthy") return await this.#stopOne(entry, reason);
    entry.generation++;
    this.#clearTimer(entry);
    const instance = entry.instance;
    entry.instance = undefined;
    this.#set(entry, "stopping", reason);
    instance?.abort.abort(new Error(reason));
    entry.stopping = (async () => {
      try {
        if (instance) await this.#stopWithTimeout(entry, instance.ctx);
        this.#set(entry, "stopped", reason);
      } catch (error) {
        entry.lastError = message(error);
        this.#log(`service ${entry.manifest.name}: ${message(error)}`);
        this.#set(entry, "stopped", `${reason}; ${message(error)}`);
      } finally {
        entry.stopping = undefined;
      }
    })();
    await entry.stopping;
  }
}
