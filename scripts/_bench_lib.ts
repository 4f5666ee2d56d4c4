/**
 * Helpers shared by the benchmark scripts: statistics, a plain text table,
 * and spawning, polling and stopping server processes on loopback.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The project root (where deno.json lives), the working directory of every spawned node. */
export const PROJECT_ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** The median of `xs` (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** `x` rounded to `digits` decimals. */
export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** `x` with thousands separators, no decimals. */
export function formatInt(x: number): string {
  return Math.round(x).toLocaleString("en-US");
}

/** Renders rows under a header; the first column is left-aligned, the others right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A spawned server process whose output is collected in the background. */
export interface Server {
  child: Deno.ChildProcess;
  /** `performance.now()` just before the spawn. */
  spawnedAt: number;
  /** Everything the process printed so far (stdout and stderr interleaved by chunk). */
  output(): string;
  /** Resolves when both output pipes are closed and drained. */
  drained: Promise<void>;
}

/**
 * Spawns `Deno.execPath()` with `args` in the project root; stdout and stderr
 * are drained into a buffer so the process never blocks on a full pipe.
 */
export function spawnDeno(args: string[]): Server {
  const cmd = new Deno.Command(Deno.execPath(), {
    args,
    cwd: PROJECT_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const spawnedAt = performance.now();
  const child = cmd.spawn();
  let text = "";
  const decoder = new TextDecoder();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]).then(() => {}, () => {});
  return { child, spawnedAt, output: () => text, drained };
}

/** The argument list of `deno task start`, with a data directory and API address. */
export function nodeArgs(dataDir: string, port: number): string[] {
  return [
    "run",
    "-P=nzcore",
    "--no-prompt",
    "main.ts",
    "start",
    "--data-dir",
    dataDir,
    "--api",
    `127.0.0.1:${port}`,
    "--no-listen",
    "--no-lan",
  ];
}

/** Spawns the node exactly as the `start` task does. */
export function spawnNode(dataDir: string, port: number): Server {
  return spawnDeno(nodeArgs(dataDir, port));
}

/**
 * Polls `url` every `intervalMs` until it answers 200, and returns the ms
 * elapsed since the server was spawned.
 *
 * @throws {Error} when the process exits first or `timeoutMs` passes.
 */
export async function waitFor200(
  server: Server,
  url: string,
  options: { intervalMs?: number; timeoutMs?: number; headers?: HeadersInit } = {},
): Promise<number> {
  const { intervalMs = 5, timeoutMs = 15_000 } = options;
  let exited: Deno.CommandStatus | undefined;
  server.child.status.then((s) => (exited = s));
  const deadline = server.spawnedAt + timeoutMs;
  while (true) {
    try {
      const res = await fetch(url, { headers: options.headers, signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 200) return performance.now() - server.spawnedAt;
    } catch {
      // not listening yet
    }
    if (exited) {
      throw new Error(`The server exited with code ${exited.code} before answering ${url}:\n${server.output()}`);
    }
    if (performance.now() > deadline) {
      throw new Error(`No 200 from ${url} within ${timeoutMs} ms:\n${server.output()}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits until the server's output matches `pattern`.
 *
 * @throws {Error} when the process exits first or `timeoutMs` passes.
 */
export async function waitForOutput(server: Server, pattern: RegExp, timeoutMs = 15_000): Promise<void> {
  let exited = false;
  server.child.status.then(() => (exited = true));
  const deadline = performance.now() + timeoutMs;
  while (!pattern.test(server.output())) {
    if (exited) throw new Error(`The server exited before printing ${pattern}:\n${server.output()}`);
    if (performance.now() > deadline) throw new Error(`No ${pattern} within ${timeoutMs} ms:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Sends SIGTERM and waits for the exit; SIGKILL after `graceMs`.
 *
 * @returns the exit status (`signal` is "SIGKILL" when it had to be killed).
 */
export async function stop(server: Server, graceMs = 5_000): Promise<Deno.CommandStatus> {
  try {
    server.child.kill("SIGTERM");
  } catch {
    // already exited
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        server.child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
      resolve();
    }, graceMs);
  });
  const status = await Promise.race([server.child.status, killed.then(() => server.child.status)]);
  clearTimeout(timer);
  await server.drained;
  return status;
}

/** Resident set size of process `pid` in bytes, from /proc/PID/status (VmRSS). */
export async function readRss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`No VmRSS line in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/**
 * Resident memory split as the kernel reports it: `anon` is private to the
 * process (heap, stacks, buffers); `file` is pages of mapped files, mostly the
 * deno executable's code and its V8 snapshot, shared with every other deno
 * process and reclaimable under pressure.
 */
export async function readRssSplit(pid: number): Promise<{ anon: number; file: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { anon: field("RssAnon"), file: field("RssFile") };
}

/** Bytes as MB (10^6 bytes) with one decimal. */
export function mb(bytes: number): number {
  return round(bytes / 1e6, 1);
}

/** Whether `name` runs from PATH (spawned with `args`; any exit code counts as present). */
export async function hasProgram(name: string, args: string[] = ["--version"]): Promise<boolean> {
  try {
    await new Deno.Command(name, { args, stdout: "null", stderr: "null", stdin: "null" }).output();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A benchmark's server process, spoken to in lines: it prints one JSON line when ready, then answers commands. */
export interface LineServer<Ready> {
  /** The JSON of its first line. */
  ready: Ready;
  /** Sends `command` and parses the JSON line it answers. */
  ask<T>(command: string): Promise<T>;
  /** Closes its stdin (its cue to exit) and waits, killing it after 5 s. */
  stop(): Promise<void>;
}

/**
 * Spawns `deno run -A --v8-flags=--expose-gc <module> <args>` as a {@linkcode LineServer}.
 *
 * @param module The server's module path.
 * @param args Its arguments (e.g. `--serve`).
 */
export async function spawnLineServer<Ready>(module: string, args: string[]): Promise<LineServer<Ready>> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", module, ...args],
    cwd: PROJECT_ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return line;
      }
      const { done, value } = await lines.read();
      if (done) throw new Error(`The benchmark server ${module} exited`);
      buffered += value;
    }
  };
  const ready = JSON.parse(await nextLine()) as Ready;
  return {
    ready,
    async ask<T>(command: string): Promise<T> {
      await writer.write(new TextEncoder().encode(command + "\n"));
      return JSON.parse(await nextLine()) as T;
    },
    async stop() {
      await writer.close().catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await child.status;
      clearTimeout(timer);
      await lines.cancel().catch(() => {});
    },
  };
}

/**
 * The server side of {@linkcode spawnLineServer}: answers each line of stdin with the JSON of `answer(line)` on
 * stdout, and exits when stdin ends.
 */
export async function answerLines(answer: (command: string) => unknown | Promise<unknown>): Promise<never> {
  let buffered = "";
  const decoder = new TextDecoder();
  for await (const chunk of Deno.stdin.readable) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const command = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      console.log(JSON.stringify(await answer(command)));
    }
  }
  Deno.exit(0);
}

/** This process's resident memory after `gc()` (run with `--expose-gc`): the median of `samples` readings. */
export async function settledRss(samples = 5): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const readings: number[] = [];
  for (let i = 0; i < samples; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
    readings.push(Number(/^VmRSS:\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/self/status"))![1]) * 1024);
  }
  return median(readings);
}

/** The figures every side of `bench:channels` reports (nzcore, js-libp2p, raw TCP), so they line up in one table. */
export interface ChannelFigures {
  /** The stack measured, in words. */
  stack: string;
  /** Median of the runs, 10^6 bytes per second. */
  throughputMBps: number;
  /** Every run, MB/s. */
  throughputRunsMBps: number[];
  /** Bytes sent per run. */
  throughputBytes: number;
  /** Connection setup through the first echoed message, in ms. */
  setupMs: { p50: number; p90: number; n: number };
  /** RSS delta of the accepting process per idle connection, KiB. */
  idleConnKiB: number;
  /** JS heap delta of the accepting process per idle connection, KiB. */
  idleConnHeapKiB: number;
  /** Idle connections held while measuring. */
  idleConns: number;
  /** What idleConnKiB measures, in words. */
  idleMeasures: string;
  /** Wall time, in seconds. */
  seconds: number;
}
