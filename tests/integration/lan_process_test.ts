/**
 * LAN discovery between real processes, interoperating with avahi: every
 * test builds its own network namespaces on one bridge (10.99.0.0/24, names
 * `nzl<random>-*`, removed in `finally`), runs avahi-daemon in one of them on
 * a private system bus, and node processes (`main.ts start --lan ...`) in the
 * others. Nothing is sent outside these namespaces.
 *
 * Needs root, `ip`, `dbus-daemon`, `avahi-daemon`, `avahi-browse` and
 * `avahi-publish` (Debian: iproute2, dbus, avahi-daemon, avahi-utils); skips
 * with the reason otherwise.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../kernel/identity/identity.ts";
import { cli, PROFILE, ROOT } from "./_node_process.ts";

const TOOLS = ["ip", "dbus-daemon", "avahi-daemon", "avahi-browse", "avahi-publish", "mount"];

async function which(name: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      if ((await Deno.stat(join(dir || ".", name))).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

async function unavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "it needs Linux network namespaces";
  try {
    if (Deno.uid() !== 0) return "it needs root (network namespaces)";
  } catch {
    return "it needs --allow-sys=uid to check for root";
  }
  const missing: string[] = [];
  for (const tool of TOOLS) if (!(await which(tool))) missing.push(tool);
  if (missing.length) return `it needs ${missing.join(", ")} (Debian: iproute2, dbus, avahi-daemon, avahi-utils)`;
  return null;
}

const reason = await unavailable();
if (reason) console.log(`lan process tests: skipped: ${reason}`);

async function run(cmd: string[], options: { env?: Record<string, string>; check?: boolean } = {}) {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), env: options.env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  const result = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (options.check !== false && out.code !== 0) {
    throw new Error(`${cmd.join(" ")}: exit ${out.code}: ${result.stderr || result.stdout}`);
  }
  return result;
}

async function until<T>(probe: () => Promise<T | undefined | null | false>, what: string, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A process with its output collected. */
interface Proc {
  child: Deno.ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

function spawn(cmd: string[], env: Record<string, string> = {}): Proc {
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {});
  let stopped: Promise<void> | undefined;
  return {
    child,
    output: () => text,
    stop() {
      stopped ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }, 5000);
        await child.status;
        clearTimeout(timer);
        await pumps;
      })();
      return stopped;
    },
  };
}

/**
 * The lab: namespaces `<p>-a`, `<p>-b`, `<p>-c` (10.99.0.11-13 on eth0), each
 * wired to the bridge in `<p>-br`; avahi-daemon in `<p>-c` on a private system
 * bus.
 */
class LanLab implements AsyncDisposable {
  readonly prefix = `nzl${crypto.getRandomValues(new Uint32Array(1))[0].toString(36).slice(0, 5)}`;
  readonly dir: string;
  readonly bus: string;
  #procs: Proc[] = [];
  #namespaces: string[] = [];

  private constructor(dir: string) {
    this.dir = dir;
    this.bus = `unix:path=${join(dir, "system_bus_socket")}`;
  }

  static async up(): Promise<LanLab> {
    const lab = new LanLab(await Deno.makeTempDir({ prefix: "nzcore-lan-lab-" }));
    try {
      await lab.#network();
      await lab.#avahi();
    } catch (error) {
      await lab[Symbol.asyncDispose]();
      throw error;
    }
    return lab;
  }

  ns(host: "a" | "b" | "c"): string {
    return `${this.prefix}-${host}`;
  }

  address(host: "a" | "b" | "c"): string {
    return `10.99.0.${{ a: 11, b: 12, c: 13 }[host]}`;
  }

  async #network(): Promise<void> {
    const br = `${this.prefix}-br`;
    await run(["ip", "netns", "add", br]);
    this.#namespaces.push(br);
    await run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"]);
    await run(["ip", "-n", br, "link", "set", "br0", "up"]);
    for (const host of ["a", "b", "c"] as const) {
      const ns = this.ns(host);
      await run(["ip", "netns", "add", ns]);
      this.#namespaces.push(ns);
      await run(["ip", "link", "add", `${ns}-e`, "netns", ns, "type", "veth", "peer", "name", `p${host}`, "netns", br]);
      await run(["ip", "-n", br, "link", "set", `p${host}`, "master", "br0", "up"]);
      await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
      await run(["ip", "-n", ns, "link", "set", `${ns}-e`, "name", "eth0"]);
      await run(["ip", "-n", ns, "addr", "add", `${this.address(host)}/24`, "dev", "eth0"]);
      await run(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }
  }

  async #avahi(): Promise<void> {
    // A system bus of our own: avahi-daemon registers org.freedesktop.Avahi on it, avahi-browse/-publish find it
    // through DBUS_SYSTEM_BUS_ADDRESS. Unix sockets with a path work across network namespaces.
    await Deno.writeTextFile(
      join(this.dir, "bus.conf"),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>${this.bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
`,
    );
    const dbus = this.#spawn([
      "dbus-daemon",
      `--config-file=${join(this.dir, "bus.conf")}`,
      "--nofork",
      "--print-address",
    ]);
    await until(() => Promise.resolve(dbus.output().includes("unix:path=")), "dbus-daemon");
    await Deno.writeTextFile(
      join(this.dir, "avahi.conf"),
      `[server]
host-name=${this.prefix}-avahi
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
[rlimits]
`,
    );
    // avahi-daemon keeps its pid file in /run/avahi-daemon and refuses to start when one names a live daemon: a
    // tmpfs on /run, in the mount namespace `ip netns exec` makes for the command, keeps it to this lab.
    const avahi = this.#spawn(
      [
        "ip",
        "netns",
        "exec",
        this.ns("c"),
        "sh",
        "-c",
        'mount -t tmpfs tmpfs /run && exec avahi-daemon -f "$0" --no-drop-root --no-chroot --no-rlimits --no-proc-title',
        join(this.dir, "avahi.conf"),
      ],
      { DBUS_SYSTEM_BUS_ADDRESS: this.bus },
    );
    await until(
      () => Promise.resolve(/Server startup complete/.test(avahi.output())),
      `avahi-daemon:\n${avahi.output()}`,
    );
  }

  #spawn(cmd: string[], env: Record<string, string> = {}): Proc {
    const proc = spawn(cmd, env);
    this.#procs.push(proc);
    return proc;
  }

  /** Runs an avahi client in `<p>-c` on the lab's bus. */
  avahi(args: string[]): Proc {
    return this.#spawn(["ip", "netns", "exec", this.ns("c"), ...args], { DBUS_SYSTEM_BUS_ADDRESS: this.bus });
  }

  async avahiBrowse(type: string): Promise<string> {
    const out = await run(["ip", "netns", "exec", this.ns("c"), "avahi-browse", "-rtp", type], {
      env: { DBUS_SYSTEM_BUS_ADDRESS: this.bus },
    });
    return out.stdout;
  }

  /** Starts a node in `<p>-HOST` and waits for "ready"; returns its node ID and data directory. */
  async node(host: "a" | "b", args: string[], dataDir?: string): Promise<Proc & { nodeId: string; dataDir: string }> {
    dataDir ??= await Deno.makeTempDir({ dir: this.dir, prefix: `node-${host}-` });
    const proc = this.#spawn([
      "ip",
      "netns",
      "exec",
      this.ns(host),
      Deno.execPath(),
      ...PROFILE,
      join(ROOT, "main.ts"),
      "--data-dir",
      dataDir,
      "start",
      "--no-api",
      "--listen",
      "udp://0.0.0.0:0",
      "--listen",
      "tcp://0.0.0.0:0",
      ...args,
    ]);
    await until(
      () => Promise.resolve(/^ready$/m.test(proc.output())),
      `the node in ${host}:\n${proc.output()}`,
      30_000,
    );
    const nodeId = /node id:\s+([0-9a-f]{64})/.exec(proc.output())![1];
    return Object.assign(proc, { nodeId, dataDir });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const proc of this.#procs.reverse()) await proc.stop().catch(() => {});
    for (const ns of this.#namespaces.reverse()) await run(["ip", "netns", "del", ns], { check: false });
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

interface LanView {
  enabled: boolean;
  mode: string;
  instance: string | null;
  peers: { nodeId: string; did: string; addresses: string[]; dial: string; instance: string; known: boolean }[];
  stats: { invalid: number };
}

async function lanOf(dataDir: string): Promise<LanView> {
  const out = await cli(["--data-dir", dataDir, "lan", "--json"]);
  if (out.code !== 0) throw new Error(`nzcore lan: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

async function sessionsOf(dataDir: string): Promise<string[]> {
  const out = await cli(["--data-dir", dataDir, "peers", "--json"]);
  if (out.code !== 0) throw new Error(`nzcore peers: ${out.stderr}`);
  return (JSON.parse(out.stdout).sessions as { nodeId: string }[]).map((s) => s.nodeId);
}

const options = { ignore: reason !== null, sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name: "avahi-browse lists the node, resolved, with its node ID, DID and ports in TXT",
  ...options,
  async fn() {
    await using lab = await LanLab.up();
    const node = await lab.node("a", ["--lan", "known"]);
    const instance = `nzcore-${node.nodeId.slice(0, 12)}`;
    const line = await until(async () => {
      const out = await lab.avahiBrowse("_nzcore._udp");
      return out.split("\n").find((l) => l.startsWith("=") && l.includes(`;${instance};`));
    }, "avahi-browse to resolve the node");
    // =;eth0;IPv4;NAME;TYPE;DOMAIN;HOST;ADDRESS;PORT;TXT
    const fields = line.split(";");
    equal(fields[4], "_nzcore._udp");
    equal(fields[6], `${instance}.local`);
    equal(fields[7], lab.address("a"));
    const txt = fields.slice(9).join(";");
    ok(txt.includes(`"id=${node.nodeId}"`), txt);
    ok(txt.includes(`"v=1"`), txt);
    ok(/"did=did:key:z[1-9A-HJ-NP-Za-km-z]+"/.test(txt), txt);
    const udp = /"udp=(\d+)"/.exec(txt)?.[1];
    equal(fields[8], udp, "the SRV port is the UDP port");
    ok(/"tcp=\d+"/.test(txt), txt);
  },
});

Deno.test({
  name: "the node lists a service published with avahi-publish, ignores other types and bad TXT, and sees it go",
  ...options,
  async fn() {
    await using lab = await LanLab.up();
    const node = await lab.node("a", ["--lan", "off"]);
    const other = Identity.generate("published");
    const published = lab.avahi([
      "avahi-publish",
      "-s",
      "published by avahi",
      "_nzcore._udp",
      "7000",
      "v=1",
      `id=${other.nodeId}`,
      `did=${other.did}`,
      "udp=7000",
    ]);
    // A valid NZ-LAN-01 TXT under another service type: only the type can keep it off the list.
    const third = Identity.generate("foreign");
    lab.avahi([
      "avahi-publish",
      "-s",
      "foreign",
      "_http._tcp",
      "80",
      "v=1",
      `id=${third.nodeId}`,
      `did=${third.did}`,
      "udp=80",
    ]);
    lab.avahi(["avahi-publish", "-s", "bad txt", "_nzcore._udp", "7001", "v=1", "id=abc"]);
    const lan = await until(async () => {
      const view = await lanOf(node.dataDir);
      return view.peers.length > 0 && view.stats.invalid > 0 ? view : null;
    }, "the published service");
    equal(lan.mode, "off");
    equal(lan.instance, `nzcore-${node.nodeId.slice(0, 12)}`);
    deepEqual(lan.peers.map((p) => [p.nodeId, p.did, p.instance, p.dial]), [
      [other.nodeId, other.did, "published by avahi", "none"],
    ]);
    deepEqual(lan.peers[0].addresses, [`udp://${lab.address("c")}:7000`]);
    ok(lan.stats.invalid >= 1, "the bad TXT is counted; the foreign type never reaches the list");
    // avahi-publish withdraws the service when it ends (a goodbye): the node drops it.
    await published.stop();
    await until(async () => (await lanOf(node.dataDir)).peers.length === 0, "the goodbye", 10_000);
  },
});

Deno.test({
  name: "two nodes on one LAN find each other with no configuration and connect (--lan any)",
  ...options,
  async fn() {
    await using lab = await LanLab.up();
    const a = await lab.node("a", ["--lan", "any"]);
    const started = Date.now();
    const b = await lab.node("b", ["--lan", "any"]);
    await until(async () => (await sessionsOf(a.dataDir)).includes(b.nodeId), "a's session with b");
    await until(async () => (await sessionsOf(b.dataDir)).includes(a.nodeId), "b's session with a");
    console.log(`connected ${Date.now() - started} ms after the second node was spawned`);
    // b may have dialed a before its own announcement reached a: a lists b once it has.
    const lan = await until(async () => {
      const view = await lanOf(a.dataDir);
      return view.peers.length > 0 ? view : null;
    }, "a to list b");
    equal(lan.peers.length, 1, "a lists b and not itself");
    equal(lan.peers[0].nodeId, b.nodeId);
    ok(lan.peers[0].addresses[0].startsWith(`udp://${lab.address("b")}:`), lan.peers[0].addresses.join(" "));
    // avahi sees both.
    const browse = await lab.avahiBrowse("_nzcore._udp");
    ok(
      browse.includes(`nzcore-${a.nodeId.slice(0, 12)}`) && browse.includes(`nzcore-${b.nodeId.slice(0, 12)}`),
      browse,
    );
  },
});

Deno.test({
  name: "in mode known a node dials a LAN peer once it is in the address book (after one manual connect)",
  ...options,
  async fn() {
    await using lab = await LanLab.up();
    const a = await lab.node("a", ["--lan", "known"]);
    let b = await lab.node("b", ["--lan", "known"]);
    const [address] = (await until(async () => (await lanOf(a.dataDir)).peers[0], "a to list b")).addresses;
    await until(async () => (await lanOf(b.dataDir)).peers.length === 1, "b to list a");
    await new Promise((r) => setTimeout(r, 1000));
    deepEqual(await sessionsOf(a.dataDir), [], "strangers: no dial");
    // One manual connect (--once: no redialing by the address book) makes b known to a.
    const connect = await cli(["--data-dir", a.dataDir, "connect", address, "--once"]);
    equal(connect.code, 0, connect.stderr);
    const disconnect = await cli(["--data-dir", a.dataDir, "disconnect", b.nodeId]);
    equal(disconnect.code, 0, disconnect.stderr);
    await b.stop();
    await until(async () => (await lanOf(a.dataDir)).peers.length === 0, "b's goodbye");
    deepEqual(await sessionsOf(a.dataDir), []);
    // b comes back: a finds it on the LAN, knows it, and dials it.
    b = await lab.node("b", ["--lan", "known"], b.dataDir);
    await until(async () => (await sessionsOf(a.dataDir)).includes(b.nodeId), "a to dial b");
    const [listed] = (await lanOf(a.dataDir)).peers;
    equal(listed.nodeId, b.nodeId);
    ok(listed.known, "b is listed as known");
  },
});
