/**
 * A real coturn on loopback inside a network namespace of its own, for the
 * TURN tests, and a runner for Deno fixture scripts inside that namespace
 * (the allocation and its peers must live where coturn's 127.0.0.1 is).
 *
 * @module
 */

import { join } from "node:path";

/** The credentials the coturn of these tests knows. */
export const COTURN_USER = { username: "test", password: "test123", realm: "lab.test" };

/** Why coturn tests cannot run here (not root, a tool missing), or `null`. */
export async function coturnUnavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "coturn tests need Linux network namespaces";
  if (Deno.uid() !== 0) return "coturn tests need root (ip netns)";
  for (const tool of ["ip", "turnserver"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null", stderr: "null" })
      .output();
    if (!found.success) return `coturn tests need ${tool} on PATH`;
  }
  return null;
}

/** A coturn in its own namespace; `stop()` kills it and deletes the namespace. */
export interface Coturn {
  /** The namespace's name (`nzturn-<random>`). */
  ns: string;
  /** coturn's UDP and TCP port on 127.0.0.1. */
  port: number;
  /** The temp dir with the config and the log. */
  dir: string;
  /** coturn's log so far. */
  log(): Promise<string>;
  /** Runs `deno run -A script ...args` inside the namespace and parses the last line of its stdout as JSON. */
  // deno-lint-ignore no-explicit-any
  run(script: string | URL, args?: unknown, timeoutMs?: number): Promise<any>;
  /** Starts a long-running program inside the namespace (stdout and stderr discarded); `stop()` kills it. */
  spawn(cmd: string[]): void;
  /** Kills coturn and whatever `spawn` started, and deletes the namespace and the temp dir. */
  stop(): Promise<void>;
}

async function sh(cmd: string[], check = true): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (check && !out.success) throw new Error(`${cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}

/** Starts coturn on 127.0.0.1:3478 in a fresh namespace, relay ports 49152-49251, long-term credentials. */
export async function startCoturn(extraConfig: string[] = []): Promise<Coturn> {
  const ns = `nzturn-${crypto.randomUUID().slice(0, 8)}`;
  const dir = await Deno.makeTempDir({ prefix: "nzcore-turn-" });
  const port = 3478;
  await sh(["ip", "netns", "add", ns]);
  let child: Deno.ChildProcess | null = null;
  const others: Deno.ChildProcess[] = [];
  const stop = async () => {
    for (const process of [...others, ...(child ? [child] : [])]) {
      try {
        process.kill("SIGKILL");
      } catch { /* exited */ }
      await process.status;
    }
    await sh(["ip", "netns", "del", ns], false);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    await Deno.writeTextFile(
      join(dir, "turnserver.conf"),
      [
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        `listening-port=${port}`,
        "min-port=49152",
        "max-port=49251",
        "lt-cred-mech",
        `user=${COTURN_USER.username}:${COTURN_USER.password}`,
        `realm=${COTURN_USER.realm}`,
        `userdb=${dir}/turndb`,
        "no-tls",
        "no-dtls",
        "no-cli",
        "allow-loopback-peers",
        `log-file=${dir}/turnserver.log`,
        "simple-log",
        `pidfile=${dir}/turnserver.pid`,
        "verbose",
        ...extraConfig,
        "",
      ].join("\n"),
    );
    child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, "turnserver", "-c", join(dir, "turnserver.conf")],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const log = () => Deno.readTextFile(join(dir, "turnserver.log")).catch(() => "");
    // Ready when the UDP and TCP listeners are up (coturn logs each).
    const deadline = Date.now() + 10_000;
    for (
      let text = "";
      !/UDP listener opened on ?: 127\.0\.0\.1:3478/.test(text) ||
      !/TCP listener opened on ?: 127\.0\.0\.1:3478/.test(text);
      text = await log()
    ) {
      if (Date.now() > deadline) throw new Error(`coturn did not start; log:\n${await log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      ns,
      port,
      dir,
      log,
      async run(script, args = {}, timeoutMs = 60_000) {
        const path = script instanceof URL ? script.pathname : script;
        const proc = new Deno.Command("ip", {
          args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", path, JSON.stringify(args)],
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(timeoutMs),
        }).spawn();
        const out = await proc.output();
        const stdout = new TextDecoder().decode(out.stdout).trim();
        const stderr = new TextDecoder().decode(out.stderr).trim();
        if (!out.success) throw new Error(`fixture ${path} failed (${out.code}):\n${stderr}\n${stdout}`);
        return JSON.parse(stdout.split("\n").at(-1)!);
      },
      spawn(cmd) {
        others.push(
          new Deno.Command("ip", { args: ["netns", "exec", ns, ...cmd], stdout: "null", stderr: "null" }).spawn(),
        );
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
