/**
 * Benchmarks raw Deno KV against the encrypted store on real KV files:
 * single `set` awaited one by one, single `get`, and batched writes of 100
 * per atomic commit, with a ~100-byte JSON-like value under keys
 * `["bench", i]`. Each round opens a fresh raw and a fresh encrypted file
 * and runs every operation on both back to back, the first store alternating
 * by round, so drift hits both alike; the median of the rounds counts.
 * `ratio` is the ratio of the medians, `pairedRatio` the median of the
 * per-round ratios (the steadier of the two on a noisy machine). Prints a
 * table, then one line of JSON with every figure. Target: encrypted/raw >=
 * 0.80 for set and get.
 *
 * `deno run -A scripts/bench_kv.ts` (about 20 s).
 *
 * @module
 */

import { join } from "node:path";
import { EncryptedStore, type Namespace } from "../kernel/storage/encrypted_kv.ts";
import { formatInt, median, round, table } from "./_bench_lib.ts";

const ROUNDS = 5;
const SET_OPS = 3_000;
const GET_OPS = 10_000;
const BATCH_SIZE = 100;
const BATCH_OPS = 10_000;
const WARMUP_OPS = 300;
const TARGET = 0.8;

/** A ~100-byte JSON-like value (its JSON form is measured and printed). */
const VALUE = {
  id: "peer-0001",
  addr: "192.0.2.17:7474",
  seen: 1_767_225_600_000,
  rtt: 42,
  tags: ["relay", "dht"],
  ok: true,
};

type Kind = "raw" | "encrypted";

/** The operations of one store, raw or encrypted, behind one shape. */
interface Target {
  set(i: number): Promise<unknown>;
  get(i: number): Promise<unknown>;
  batch(from: number, count: number): Promise<unknown>;
  close(): void;
}

function rawTarget(kv: Deno.Kv): Target {
  return {
    set: (i) => kv.set(["bench", i], VALUE),
    get: (i) => kv.get(["bench", i]),
    batch: async (from, count) => {
      const op = kv.atomic();
      for (let i = from; i < from + count; i++) op.set(["bench", i], VALUE);
      const res = await op.commit();
      if (!res.ok) throw new Error("Raw atomic commit was rejected");
    },
    close: () => kv.close(),
  };
}

function encryptedTarget(store: EncryptedStore, ns: Namespace): Target {
  return {
    set: (i) => ns.set(["bench", i], VALUE),
    get: (i) => ns.get(["bench", i]),
    batch: (from, count) => {
      const op = store.atomic();
      for (let i = from; i < from + count; i++) op.set(ns, ["bench", i], VALUE);
      return op.commit();
    },
    close: () => store.close(),
  };
}

async function open(kind: Kind, path: string): Promise<Target> {
  if (kind === "raw") return rawTarget(await Deno.openKv(path));
  const master = crypto.getRandomValues(new Uint8Array(32));
  const store = await EncryptedStore.open(path, master);
  master.fill(0);
  return encryptedTarget(store, store.namespace(["bench"]));
}

/** Runs `count` awaited operations and returns ops/s. */
async function timeOps(count: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await op(i);
  return count / ((performance.now() - t0) / 1000);
}

type Op = "set" | "get" | "batch";
const OPS: readonly Op[] = ["set", "get", "batch"];

/** Measures one operation on one store and returns ops/s. */
function measure(kind: Kind, target: Target, op: Op): Promise<number> {
  switch (op) {
    case "set":
      return timeOps(SET_OPS, (i) => target.set(i));
    case "get":
      return timeOps(GET_OPS, async (i) => {
        const v = await target.get(i % SET_OPS);
        if (v === undefined || v === null) throw new Error(`${kind} get lost key ${i % SET_OPS}`);
      });
    case "batch":
      return timeOps(BATCH_OPS / BATCH_SIZE, (b) => target.batch(SET_OPS + b * BATCH_SIZE, BATCH_SIZE))
        .then((commits) => commits * BATCH_SIZE);
  }
}

/**
 * One round: a fresh raw and a fresh encrypted file side by side; each
 * operation runs on one store right after the other (the first store
 * alternates by round), so a slow spell of the machine hits both alike.
 */
async function runRound(dir: string, n: number): Promise<Record<Kind, Record<Op, number>>> {
  const order: Kind[] = n % 2 ? ["encrypted", "raw"] : ["raw", "encrypted"];
  const targets = {
    raw: await open("raw", join(dir, `raw-${n}.kv`)),
    encrypted: await open("encrypted", join(dir, `encrypted-${n}.kv`)),
  };
  const out = { raw: {}, encrypted: {} } as Record<Kind, Record<Op, number>>;
  try {
    for (const op of OPS) {
      for (const kind of order) out[kind][op] = await measure(kind, targets[kind], op);
    }
  } finally {
    targets.raw.close();
    targets.encrypted.close();
  }
  return out;
}

async function warmUp(kind: Kind, dir: string): Promise<void> {
  const target = await open(kind, join(dir, `${kind}-warmup.kv`));
  try {
    for (let i = 0; i < WARMUP_OPS; i++) await target.set(i);
    for (let i = 0; i < WARMUP_OPS; i++) await target.get(i);
    await target.batch(WARMUP_OPS, BATCH_SIZE);
  } finally {
    target.close();
  }
}

const dir = await Deno.makeTempDir({ prefix: "nzcore-bench-kv-" });
const rounds: Record<Kind, Record<Op, number>>[] = [];
const started = performance.now();
try {
  await warmUp("raw", dir);
  await warmUp("encrypted", dir);
  for (let n = 0; n < ROUNDS; n++) rounds.push(await runRound(dir, n));
} finally {
  await Deno.remove(dir, { recursive: true });
}

const results = {} as Record<Op, { raw: number; encrypted: number; ratio: number; pairedRatio: number }>;
for (const op of OPS) {
  const raw = median(rounds.map((r) => r.raw[op]));
  const encrypted = median(rounds.map((r) => r.encrypted[op]));
  const paired = median(rounds.map((r) => r.encrypted[op] / r.raw[op]));
  results[op] = {
    raw: round(raw),
    encrypted: round(encrypted),
    ratio: round(encrypted / raw, 3),
    pairedRatio: round(paired, 3),
  };
}
const pass = results.set.ratio >= TARGET && results.get.ratio >= TARGET;

const valueBytes = new TextEncoder().encode(JSON.stringify(VALUE)).length;
console.log(`Deno ${Deno.version.deno}; Deno KV (SQLite) files in a temp dir; value ${valueBytes} B as JSON`);
console.log(
  `${ROUNDS} rounds, raw and encrypted back to back, medians shown; set ${SET_OPS} awaited ops, get ${GET_OPS} ops, ` +
    `batch ${BATCH_OPS} writes in commits of ${BATCH_SIZE}\n`,
);
const label = { set: "set (one by one)", get: "get (one by one)", batch: `set (${BATCH_SIZE} per commit)` };
console.log(table(
  ["operation", "raw ops/s", "encrypted ops/s", "enc/raw", "paired", "enc/raw by round"],
  OPS.map((op) => [
    label[op],
    formatInt(results[op].raw),
    formatInt(results[op].encrypted),
    results[op].ratio.toFixed(2),
    results[op].pairedRatio.toFixed(2),
    rounds.map((r) => (r.encrypted[op] / r.raw[op]).toFixed(2)).join(" "),
  ]),
));
console.log(
  `\nTarget enc/raw >= ${TARGET} for set and get: ${pass ? "met" : "NOT met"}` +
    ` (set ${results.set.ratio.toFixed(2)}, get ${results.get.ratio.toFixed(2)})`,
);
console.log(`Total ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(JSON.stringify({
  bench: "kv",
  deno: Deno.version.deno,
  valueBytes,
  rounds: ROUNDS,
  results,
  target: { ratio: TARGET, met: pass },
}));
