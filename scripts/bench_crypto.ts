/**
 * Benchmarks every primitive of the native and the noble provider side by
 * side: ops/s for all, MB/s (10^6 bytes) for AEAD and SHA-256 at 64 B and
 * 1 MiB. Prints a table, then one line of JSON with every figure.
 *
 * `deno run -A scripts/bench_crypto.ts` (about 30 s; scrypt runs once per provider).
 *
 * @module
 */

import { DEFAULT_SCRYPT } from "../kernel/crypto/kdf.ts";
import { nativeProvider } from "../kernel/crypto/native.ts";
import { nobleProvider } from "../kernel/crypto/noble.ts";
import type { CryptoProvider } from "../kernel/crypto/provider.ts";

/** Time spent measuring each case per provider, after warm-up. */
const BUDGET_MS = 400;
const WARMUP_MS = 60;
const KIB = 1024;
const MIB = 1024 * KIB;

interface Figure {
  /** Operations per second. */
  ops: number;
  /** Megabytes (10^6 bytes) per second, for cases with a payload size. */
  mbps?: number;
}

interface Case {
  name: string;
  /** Payload bytes per operation, when throughput is meaningful. */
  size?: number;
  /** Builds the operation for one provider; setup cost stays outside the timing. */
  prepare(p: CryptoProvider): () => unknown | Promise<unknown>;
  /** Run exactly once instead of for a time budget (slow KDFs). */
  once?: boolean;
  /** A cheaper call run first for `once` cases, so the figure excludes first-use costs. */
  warmup?(p: CryptoProvider): Promise<unknown>;
}

function filled(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

const KEY = filled(32, 1);
const NONCE = filled(12, 2);
const XNONCE = filled(24, 3);
const AD = filled(16, 4);
const SEED = filled(32, 5);
const MSG64 = filled(64, 6);

/** Key pairs and signatures for the fresh-key verify case: more than the native public-key cache holds. */
const FRESH = Array.from({ length: 1500 }, (_, i) => {
  const seed = filled(32, 1000 + i);
  seed[0] = i & 0xff;
  seed[1] = i >> 8;
  return { publicKey: nativeProvider.ed25519PublicKey(seed), signature: nativeProvider.ed25519Sign(seed, MSG64) };
});

function aeadCases(alg: "chacha" | "xchacha"): Case[] {
  const nonce = alg === "chacha" ? NONCE : XNONCE;
  return [64, MIB].flatMap((size) => {
    const label = size === MIB ? "1MiB" : `${size}B`;
    const plaintext = filled(size, 7);
    return [
      {
        name: `${alg}Seal ${label}`,
        size,
        prepare: (p: CryptoProvider) => () => p[`${alg}Seal`](KEY, nonce, plaintext, AD),
      },
      {
        name: `${alg}Open ${label}`,
        size,
        prepare: (p: CryptoProvider) => {
          const sealed = p[`${alg}Seal`](KEY, nonce, plaintext, AD);
          return () => p[`${alg}Open`](KEY, nonce, sealed, AD);
        },
      },
    ];
  });
}

const CASES: Case[] = [
  // First, before the heap fills with 1 MiB buffers: scrypt's 128 MiB allocation is sensitive to that.
  {
    name: "scrypt N=2^17 r=8 p=1",
    once: true,
    warmup: (p) => p.scrypt(filled(12, 10), filled(16, 11), { ...DEFAULT_SCRYPT, N: 1024 }),
    prepare: (p) => () => p.scrypt(filled(12, 10), filled(16, 11), DEFAULT_SCRYPT),
  },
  ...aeadCases("chacha"),
  ...aeadCases("xchacha"),
  { name: "sha256 64B", size: 64, prepare: (p) => () => p.sha256(MSG64) },
  { name: "sha256 1MiB", size: MIB, prepare: (p) => () => p.sha256(BIG) },
  { name: "hmacSha256 64B", size: 64, prepare: (p) => () => p.hmacSha256(KEY, MSG64) },
  { name: "hkdf 32B out", prepare: (p) => () => p.hkdf(KEY, AD, MSG64, 32) },
  { name: "ed25519Sign 64B", prepare: (p) => () => p.ed25519Sign(SEED, MSG64) },
  {
    name: "ed25519Verify 64B",
    prepare: (p) => {
      const publicKey = p.ed25519PublicKey(SEED);
      const signature = p.ed25519Sign(SEED, MSG64);
      return () => p.ed25519Verify(publicKey, MSG64, signature);
    },
  },
  {
    name: "ed25519Verify 64B, new key each call",
    prepare: (p) => {
      let i = 0;
      return () => {
        const { publicKey, signature } = FRESH[i++ % FRESH.length];
        if (!p.ed25519Verify(publicKey, MSG64, signature)) throw new Error("Cannot verify benchmark signature");
      };
    },
  },
  {
    name: "x25519",
    prepare: (p) => {
      const peer = p.x25519PublicKey(filled(32, 9));
      return () => p.x25519(SEED, peer);
    },
  },
];

const BIG = filled(MIB, 8);

async function measure(c: Case, p: CryptoProvider): Promise<Figure> {
  const op = c.prepare(p);
  if (c.once) {
    await c.warmup?.(p);
    const start = performance.now();
    await op();
    const seconds = (performance.now() - start) / 1000;
    return { ops: 1 / seconds };
  }
  const warmEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmEnd) await op();
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    await op();
    n++;
    elapsed = performance.now() - start;
  } while (elapsed < BUDGET_MS || n < 3);
  const ops = (n * 1000) / elapsed;
  return c.size === undefined ? { ops } : { ops, mbps: (ops * c.size) / 1e6 };
}

function round(x: number): number {
  return x >= 100 ? Math.round(x) : Math.round(x * 100) / 100;
}

function formatOps(x: number): string {
  return round(x).toLocaleString("en-US");
}

const results: Record<string, { native: Figure; noble: Figure }> = {};
const rows: string[][] = [];
const total = performance.now();
for (const c of CASES) {
  const native = await measure(c, nativeProvider);
  const noble = await measure(c, nobleProvider);
  const clean = (
    f: Figure,
  ): Figure => (f.mbps === undefined ? { ops: round(f.ops) } : { ops: round(f.ops), mbps: round(f.mbps) });
  results[c.name] = { native: clean(native), noble: clean(noble) };
  rows.push([
    c.name,
    formatOps(native.ops),
    formatOps(noble.ops),
    native.mbps === undefined ? "" : formatOps(native.mbps),
    noble.mbps === undefined ? "" : formatOps(noble.mbps),
    `${(native.ops / noble.ops).toFixed(1)}x`,
  ]);
}

const header = ["primitive", "native ops/s", "noble ops/s", "native MB/s", "noble MB/s", "native/noble"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) =>
  cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
console.log(`Deno ${Deno.version.deno}, V8 ${Deno.version.v8}; ${BUDGET_MS} ms per case; MB = 10^6 bytes\n`);
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const row of rows) console.log(line(row));
const seconds = (performance.now() - total) / 1000;
for (const c of CASES.filter((c) => c.once)) {
  const { native, noble } = results[c.name];
  console.log(`\n${c.name}: native ${Math.round(1000 / native.ops)} ms, noble ${Math.round(1000 / noble.ops)} ms`);
}
console.log(`Total ${seconds.toFixed(1)} s`);
console.log(JSON.stringify({ bench: "crypto", deno: Deno.version.deno, v8: Deno.version.v8, results }));
