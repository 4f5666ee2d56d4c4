/**
 * Policy gate benchmark (NZ-POLICY-01): decisions through `PolicyGate.check`
 * on a generated policy set of the default policies plus 50 more, on a real
 * store in a temporary directory, each decision queued to the signed
 * decision log as in a node.
 *
 * - fresh: distinct requests, each evaluated by Cedar (cache misses); per-call p50/p99;
 * - cached: 1,000 requests asked over and over (cache hits);
 * - engine: Cedar alone (`PolicyEngine.evaluate`) on the fresh requests, for reference.
 *
 * `deno task bench:policy [--fresh N] [--cached N]`; ends with one JSON line
 * holding `fresh_per_sec`, `cached_per_sec` and `p99_ms`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { Identity } from "../kernel/identity/identity.ts";
import { DEFAULT_POLICIES } from "../kernel/policy/defaults.ts";
import { PolicyGate } from "../kernel/policy/gate.ts";
import { ACTIONS, parsePolicyRequest, type PolicyRequestInput } from "../kernel/policy/request.ts";
import { EncryptedStore } from "../kernel/storage/encrypted_kv.ts";
import { formatInt, round, table } from "./_bench_lib.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { fresh: { type: "string", default: "20000" }, cached: { type: "string", default: "200000" } },
});
const FRESH = Number(values.fresh);
const CACHED = Number(values.cached);
const GENERATED = 50;
const PRINCIPALS = ["token", "plugin", "service", "agent", "node"] as const;
const RESOURCES = ["storage", "peer", "net", "service", "plugin"] as const;

/** 50 policies over every principal type, action and resource kind, with conditions on the resource and context. */
function generatedPolicies(): string {
  const out: string[] = [];
  for (let i = 0; i < GENERATED; i++) {
    const principal = PRINCIPALS[i % PRINCIPALS.length];
    const action = ACTIONS[i % ACTIONS.length];
    const kind = RESOURCES[i % RESOURCES.length];
    const type = principal[0].toUpperCase() + principal.slice(1);
    if (i % 10 === 9) {
      out.push(
        `@id("gen-${i}") @risk("high") @reason("generated forbid ${i}")\n` +
          `forbid (principal is ${type}, action == Action::"${action}", resource)\n` +
          `when { resource.kind == "${kind}" && resource.name like "secret-*" };`,
      );
    } else {
      const approval = i % 7 === 3 ? `@outcome("require_approval") ` : "";
      out.push(
        `@id("gen-${i}") ${approval}@risk("${["low", "medium"][i % 2]}") @reason("generated permit ${i}")\n` +
          `permit (principal is ${type}, action == Action::"${action}", resource)\n` +
          `when { resource.kind == "${kind}" && resource.name like "bucket-${i % 5}-*" && ` +
          `context has bytes && context.bytes < ${(i + 1) * 1000} };`,
      );
    }
  }
  return `${DEFAULT_POLICIES}\n${out.join("\n\n")}\n`;
}

function request(i: number): PolicyRequestInput {
  const principal = PRINCIPALS[i % PRINCIPALS.length];
  return {
    principal: { type: principal, id: `${principal}-${i}` },
    action: ACTIONS[(i * 7) % ACTIONS.length],
    resource: { type: RESOURCES[(i * 3) % RESOURCES.length], id: `${i % 3 === 0 ? "secret" : "bucket"}-${i % 5}-${i}` },
    context: { bytes: (i * 37) % 60_000, time: 1_700_000_000_000 + i, source: "bench" },
  } as PolicyRequestInput;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

const dir = await Deno.makeTempDir({ prefix: "nzcore-bench-policy-" });
const store = await EncryptedStore.open(join(dir, "store.kv"), crypto.getRandomValues(new Uint8Array(32)));
try {
  const identity = Identity.generate("bench");
  const policies = generatedPolicies();
  const gate = await PolicyGate.open(store, { signer: identity, policies, cacheSize: 10_000, maxPending: 1_000_000 });
  const policyCount = gate.engine.policies.length;
  for (let i = 0; i < 100; i++) await gate.grant({ type: "plugin", id: `plugin-${i * 5 + 1}` }, "storage.*");

  // Warm up Cedar and the JIT on requests the measured runs do not use.
  for (let i = 0; i < 2000; i++) await gate.check(request(10_000_000 + i));
  await gate.log.flush();

  const outcomes: Record<string, number> = {};
  const latencies = new Float64Array(FRESH);
  let started = performance.now();
  for (let i = 0; i < FRESH; i++) {
    const t = performance.now();
    const d = await gate.check(request(i));
    latencies[i] = performance.now() - t;
    outcomes[d.outcome] = (outcomes[d.outcome] ?? 0) + 1;
    if (d.cached) throw new Error("a fresh request hit the cache");
  }
  const freeSec = (performance.now() - started) / 1000;
  gate.approvals.close();
  latencies.sort();
  const freshPerSec = FRESH / freeSec;

  const hot = Array.from({ length: 1000 }, (_, i) => request(20_000_000 + i));
  for (const r of hot) await gate.check(r);
  gate.approvals.close();
  const hitsBefore = gate.cache.hits;
  const cachedLatencies = new Float64Array(CACHED);
  started = performance.now();
  for (let i = 0; i < CACHED; i++) {
    const t = performance.now();
    await gate.check(hot[i % hot.length]);
    cachedLatencies[i] = performance.now() - t;
  }
  const cachedSec = (performance.now() - started) / 1000;
  gate.approvals.close();
  if (gate.cache.hits - hitsBefore !== CACHED) throw new Error("a repeated request missed the cache");
  cachedLatencies.sort();
  const cachedPerSec = CACHED / cachedSec;

  const flushStart = performance.now();
  await gate.log.flush();
  const flushMs = performance.now() - flushStart;

  // Cedar alone, for reference: the same distinct requests, parsed beforehand.
  const parsed = Array.from({ length: Math.min(FRESH, 10_000) }, (_, i) => parsePolicyRequest(request(30_000_000 + i)));
  const facts = { capabilities: [], granted: false, roles: [] };
  started = performance.now();
  for (const r of parsed) gate.engine.evaluate(r, facts);
  const enginePerSec = parsed.length / ((performance.now() - started) / 1000);

  const result = {
    bench: "policy",
    policies: policyCount,
    fresh: FRESH,
    cached: CACHED,
    fresh_per_sec: round(freshPerSec),
    fresh_p50_ms: round(percentile(latencies, 0.5), 3),
    p99_ms: round(percentile(latencies, 0.99), 3),
    cached_per_sec: round(cachedPerSec),
    cached_p99_ms: round(percentile(cachedLatencies, 0.99), 4),
    engine_per_sec: round(enginePerSec),
    outcomes,
    log_entries: gate.log.log.length,
    log_flush_ms: round(flushMs, 1),
    targets: {
      fresh_per_sec: { target: 5000, met: freshPerSec >= 5000 },
      p99_ms: { target: 1, met: percentile(latencies, 0.99) < 1 },
      cached_per_sec: { target: 50_000, met: cachedPerSec >= 50_000 },
    },
  };
  console.log(table(["measure", "value"], [
    ["policies", String(policyCount)],
    ["fresh decisions/s (gate.check)", formatInt(result.fresh_per_sec)],
    ["fresh p50 / p99 ms", `${result.fresh_p50_ms} / ${result.p99_ms}`],
    ["cached decisions/s", formatInt(result.cached_per_sec)],
    ["cached p99 ms", String(result.cached_p99_ms)],
    ["Cedar alone decisions/s", formatInt(result.engine_per_sec)],
    ["decision log entries", formatInt(result.log_entries)],
  ]));
  await gate.close();
  console.log(JSON.stringify(result));
} finally {
  store.close();
  await Deno.remove(dir, { recursive: true });
}
