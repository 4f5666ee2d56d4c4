/**
 * Starts real node processes for integration tests, exactly as the `start`
 * task does (`deno run -P=nzcore --no-prompt main.ts start ...`).
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** The flags of the node's permission profile, as the tasks pass them. */
export const PROFILE = ["run", "-P=nzcore", "--no-prompt", "--quiet"];

/** Output of a finished command. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI (`main.ts`) to completion with the node's permission profile. */
export async function cli(args: string[], options: { env?: Record<string, string> } = {}): Promise<Output> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...PROFILE, join(ROOT, "main.ts"), ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A node process started by {@linkcode startNode}. */
export interface NodeProcess extends AsyncDisposable {
  child: Deno.ChildProcess;
  dataDir: string;
  /** `http://HOST:PORT` of the TCP API. */
  url: string;
  /** The local admin token. */
  token: string;
  /** Everything the process printed so far. */
  output: () => string;
  /** Sends a signal and waits for the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Authenticated fetch against the TCP API. */
  api(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
}

/** Why a node process did not become ready. */
export class StartFailed extends Error {
  constructor(readonly code: number, readonly output: string) {
    super(`The node exited with code ${code} before it was ready:\n${output}`);
  }
}

/**
 * Nodes in tests never listen on the default port, which parallel tests would fight over, and never run LAN
 * discovery unless told to: it multicasts on every interface of the host (the LAN tests run in network namespaces).
 */
function withListen(args: string[]): string[] {
  const listen = args.some((a) => a === "--listen" || a === "--no-listen") ? args : [...args, "--no-listen"];
  return listen.some((a) => a === "--lan" || a.startsWith("--lan=") || a === "--no-lan")
    ? listen
    : [...listen, "--no-lan"];
}

/**
 * Starts `main.ts start` on `dataDir` and waits for "ready".
 *
 * @throws {StartFailed} when the process exits first.
 */
export async function startNode(
  dataDir: string,
  options: { args?: string[]; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<NodeProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...PROFILE,
      join(ROOT, "main.ts"),
      "--data-dir",
      dataDir,
      "start",
      ...withListen(options.args ?? ["--api", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"]),
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => (exited = s));
  while (!/^ready$/m.test(text)) {
    if (exited) {
      await pumps;
      throw new StartFailed(exited.code, text);
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`The node did not become ready in time:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const api = /api:\s+http:\/\/(\S+)\/v1/.exec(text)?.[1];
  const token = (await Deno.readTextFile(join(dataDir, "admin.token"))).trim();
  const url = api ? `http://${api}` : "";
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    stopped ??= (async () => {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
      const status = await child.status;
      await pumps;
      return status;
    })();
    return stopped;
  };
  return {
    child,
    dataDir,
    url,
    token,
    output: () => text,
    stop,
    api(path, init = {}) {
      const headers = new Headers(init.headers);
      headers.set("authorization", `Bearer ${init.token ?? token}`);
      if (init.body && !headers.has("content-type")) headers.set("content-type", "application/json");
      return fetch(url + path, { ...init, headers });
    },
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
    },
  };
}

/** A fresh temporary data directory, removed on dispose. */
export async function tempDataDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "nzcore-test-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
