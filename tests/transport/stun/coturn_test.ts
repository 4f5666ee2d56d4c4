/**
 * Interop with coturn, both directions, in a network namespace of this file's own (`nzstun-<random>`, loopback
 * only: 127.0.0.1 and 127.0.0.2 on its lo): our client against `turnserver` (UDP, TCP, RFC 5780 discovery), and
 * coturn's `turnutils_stunclient` / `turnutils_natdiscovery` against our server. Everything that runs in the
 * namespace is a process started with `ip netns exec` (our side as `_netns_agent.ts`). Needs root, iproute2 and
 * coturn: skips with the reason printed otherwise.
 */

import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";

const AGENT = new URL("./_netns_agent.ts", import.meta.url).pathname;
const CONFIG = new URL("../../../deno.json", import.meta.url).pathname;

async function output(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function run(cmd: string, args: string[]): Promise<string> {
  const r = await output(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** coturn's `turnutils_stunclient` against 127.0.0.1:`port` in `ns`, ended after `seconds` (it may wait forever). */
function stunclient(ns: string, port: number, seconds: number) {
  return output("ip", [
    "netns",
    "exec",
    ns,
    "timeout",
    `${seconds}`,
    "turnutils_stunclient",
    "-p",
    `${port}`,
    "127.0.0.1",
  ]);
}

async function skipReason(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "Linux network namespaces are needed";
  if (Deno.uid() !== 0) return "needs root (ip netns)";
  for (const tool of ["ip", "turnserver", "turnutils_stunclient", "turnutils_natdiscovery", "timeout"]) {
    const found = await output("sh", ["-c", `command -v ${tool}`]).catch(() => ({ code: 1 }));
    if (found.code !== 0) return `${tool} is not installed (apt-get install iproute2 coturn)`;
  }
  return null;
}

const reason = await skipReason();
if (reason !== null) console.log(`coturn interop tests skipped: ${reason}`);

/** Runs `_netns_agent.ts` inside `ns`. */
function agent(ns: string, args: string[], stdin: "piped" | "null" = "null"): Deno.ChildProcess {
  return new Deno.Command("ip", {
    args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", "--config", CONFIG, AGENT, ...args],
    stdin,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Reads stdout line by line. */
function lines(child: Deno.ChildProcess): () => Promise<string | null> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return async () => {
    for (;;) {
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) return buffer === "" ? null : (buffer = "", buffer);
      buffer += value;
    }
  };
}

interface Addr {
  hostname: string;
  port: number;
}

/** Starts our RFC 5780 server in `ns` on 127.0.0.1/127.0.0.2; `stop()` closes its stdin and returns its stats. */
async function startOurServer(ns: string, responsePort: boolean) {
  const child = agent(ns, ["server", "127.0.0.1", "127.0.0.2", ...(responsePort ? ["--response-port"] : [])], "piped");
  const next = lines(child);
  const first = await next();
  if (first === null) {
    throw new Error(`our server did not start: ${new TextDecoder().decode((await child.output()).stderr)}`);
  }
  const addrs = JSON.parse(first) as Record<"primary" | "alternateBoth", Addr>;
  return {
    addrs,
    async stop(): Promise<Record<string, number>> {
      await child.stdin.close();
      const stats = await next();
      await child.status;
      await child.stderr.cancel();
      return JSON.parse(stats ?? "{}");
    },
  };
}

Deno.test({
  name: "coturn interop: our client and coturn's clients against coturn and our server, in a namespace",
  ignore: reason !== null,
  async fn(t) {
    const ns = `nzstun-${crypto.randomUUID().slice(0, 8)}`;
    const dir = await Deno.makeTempDir({ prefix: "nzstun-" });
    let turnserver: Deno.ChildProcess | undefined;
    try {
      await run("ip", ["netns", "add", ns]);
      await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      await Deno.writeTextFile(
        `${dir}/turnserver.conf`,
        [
          "listening-ip=127.0.0.1",
          "listening-ip=127.0.0.2",
          "listening-port=3478",
          "alt-listening-port=3479",
          "no-tls",
          "no-dtls",
          "no-cli",
          "simple-log",
          `log-file=${dir}/turnserver.log`,
          `pidfile=${dir}/turnserver.pid`,
          "",
        ].join("\n"),
      );
      turnserver = new Deno.Command("ip", {
        args: ["netns", "exec", ns, "turnserver", "-c", `${dir}/turnserver.conf`],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();

      await t.step(
        "our client gets its own address from coturn over UDP and TCP, and RFC 5780 finds no NAT",
        async () => {
          // The agent waits up to 10 s for coturn to answer, then runs each transaction once.
          const { code, stdout, stderr } = await agent(ns, ["client", "127.0.0.1", "3478", "127.0.0.1"]).output();
          const text = new TextDecoder();
          equal(code, 0, text.decode(stderr));
          const r = JSON.parse(text.decode(stdout));
          eql(r.binding.mapped, r.socket, "the mapped address is our socket's");
          eql(r.binding.otherAddress, { hostname: "127.0.0.2", port: 3479 });
          eql(r.binding.responseOrigin, { hostname: "127.0.0.1", port: 3478 });
          equal(r.tcp.mapped.hostname, "127.0.0.1");
          ok(r.tcp.mapped.port > 0 && r.tcp.mapped.port !== r.socket.port);
          eql(r.nat, {
            mapping: "endpoint-independent",
            filtering: "endpoint-independent",
            publicAddr: r.socket,
            local: true,
            natType: "open",
          });
        },
      );

      await t.step(
        "turnutils_stunclient gets its reflexive address, RESPONSE-ORIGIN and OTHER-ADDRESS from our server",
        async () => {
          const server = await startOurServer(ns, false);
          // stunclient then asks for RESPONSE-PORT, which our server refuses (420) by default: it waits, so `timeout`.
          const r = await stunclient(ns, server.addrs.primary.port, 5);
          const stats = await server.stop();
          match(r.stdout, /UDP reflexive addr: 127\.0\.0\.1:\d+/);
          match(r.stdout, new RegExp(`Response origin: : 127\\.0\\.0\\.1:${server.addrs.primary.port}`));
          match(r.stdout, new RegExp(`Other addr: : 127\\.0\\.0\\.2:${server.addrs.alternateBoth.port}`));
          equal(stats.answered, 1);
          equal(stats.errors, 1, "its RESPONSE-PORT request got 420");
        },
      );

      await t.step("turnutils_stunclient completes its RFC 5780 exchange when RESPONSE-PORT is enabled", async () => {
        const server = await startOurServer(ns, true);
        const r = await stunclient(ns, server.addrs.primary.port, 10);
        const stats = await server.stop();
        equal(r.code, 0, r.stdout + r.stderr);
        match(r.stdout, /RFC 5780 response 3/);
        match(r.stdout, new RegExp(`Response origin: : 127\\.0\\.0\\.2:${server.addrs.alternateBoth.port}`));
        equal(stats.errors, 0);
      });

      await t.step(
        "turnutils_natdiscovery -m -f against our RFC 5780 server finds endpoint-independent mapping and filtering",
        async () => {
          const server = await startOurServer(ns, false);
          const r = await output("ip", [
            "netns",
            "exec",
            ns,
            "timeout",
            "30",
            "turnutils_natdiscovery",
            "-m",
            "-f",
            "-p",
            `${server.addrs.primary.port}`,
            "127.0.0.1",
          ]);
          const stats = await server.stop();
          equal(r.code, 0, r.stdout + r.stderr);
          match(r.stdout, /NAT with Endpoint Independent Mapping!/);
          match(r.stdout, /NAT with Endpoint Independent Filtering!/);
          equal(stats.malformed, 0);
        },
      );
    } finally {
      if (turnserver) {
        try {
          turnserver.kill("SIGTERM");
        } catch { /* already gone */ }
        const exited = await Promise.race([
          turnserver.status.then(() => true),
          new Promise((r) => setTimeout(r, 5000, false)),
        ]);
        if (!exited) {
          try {
            turnserver.kill("SIGKILL");
          } catch { /* already gone */ }
          await turnserver.status;
        }
      }
      await output("ip", ["netns", "del", ns]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
