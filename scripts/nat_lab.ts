/**
 * A NAT / STUN / TURN / port-mapping lab built from Linux network namespaces, for tests that run real
 * nodes and independent clients behind real NATs on one machine.
 *
 * Topology (every lab has its own namespace prefix, e.g. `nzab12`, so several labs run at once):
 *
 * ```text
 *                   <prefix>-inet: bridge br0 = "public internet" 203.0.113.0/24
 *   ┌──────────────────┬─────────────────┴──┬──────────────────────┐
 * srv                pub                gwA (NAT A)            gwB (NAT B)
 * 203.0.113.10, .11  203.0.113.20, .21  wan 203.0.113.101      wan 203.0.113.102
 * coturn             free public host   lan 10.0.1.1/24        lan 10.0.2.1/24
 *                                       miniupnpd              │
 *                                   ┌──────┴──────┐            │
 *                                 hostA        hostA2        hostB
 *                                 10.0.1.10    10.0.1.11     10.0.2.10
 * ```
 *
 * - srv runs coturn: STUN/TURN on UDP and TCP 3478 at 203.0.113.10 and .11, alternate port 3479, so
 *   RFC 5780 NAT behaviour discovery works (OTHER-ADDRESS 203.0.113.11:3479); relay ports 49152-49999;
 *   long-term credentials (RFC 8489 §9.2) realm `lab.test`, user `test`, password `test123`.
 * - gwA / gwB are NAT gateways (nftables `table ip natlab`) in one of four RFC 4787 modes ({@link NatMode}),
 *   each also a home router's firewall: nothing unsolicited from the WAN reaches the LAN or the gateway
 *   itself (dropped before conntrack confirms it, against the "conntrack clash": an early inbound punch
 *   packet would otherwise claim the port a LAN host is about to use), except packets for a socket open
 *   on the gateway (miniupnpd's STUN probes).
 * - gwA runs miniupnpd (UPnP IGD on http://10.0.1.1:2189/rootDesc.xml, NAT-PMP and PCP on 10.0.1.1:5351).
 *   miniupnpd refuses to forward ports on a reserved WAN address such as 203.0.113.101 unless a STUN test
 *   (`ext_perform_stun`, against the lab's coturn) finds the WAN unfiltered, so it runs one at start.
 * - No namespace has a link to the machine's own network and the gateways have no default route: nothing
 *   sent in the lab can leave it. Names `*.lab.test` resolve in every lab host through
 *   `/etc/netns/<ns>/hosts`; DNS points at 127.0.0.1 so anything else fails at once.
 *
 * CLI (root): `deno run -A scripts/nat_lab.ts up|down|status|nat GW MODE|verify|cleanup`. `up` leaves a
 * keeper process that owns the lab (it ends it on SIGTERM); the file `${TMPDIR:-/tmp}/nzcore-lab.json`
 * names the running lab. Every lab records its owner process in `/run/nzcore-nat-lab/<prefix>.json`; `cleanup`
 * ({@link cleanupStaleLabs}) removes the labs whose owner is gone.
 *
 * @module
 */

import { join } from "node:path";

/** A gateway's NAT behaviour (RFC 4787 §4 mapping / §5 filtering). */
export type NatMode =
  /** full cone: endpoint-independent mapping and filtering */
  | "fc"
  /** restricted cone: endpoint-independent mapping, address-dependent filtering */
  | "rc"
  /** port-restricted cone: endpoint-independent mapping, address-and-port-dependent filtering */
  | "prc"
  /** symmetric: address-and-port-dependent mapping and filtering */
  | "sym";

/** A host of the lab, each its own network namespace. */
export type LabHost = "srv" | "pub" | "gwA" | "gwB" | "hostA" | "hostA2" | "hostB";

/** Options of {@link NatLab.up}. */
export interface NatLabOptions {
  /** gwA's NAT mode (default `"prc"`). */
  natA?: NatMode;
  /** gwB's NAT mode (default `"sym"`). */
  natB?: NatMode;
  /** conntrack UDP timeout in seconds, before any reply (default 30). */
  udpTimeout?: number;
  /** conntrack UDP timeout in seconds once both directions have been seen (default 120). */
  udpStreamTimeout?: number;
  /** Run miniupnpd on gwA (default true). */
  upnp?: boolean;
  /** Run coturn on srv (default true). */
  coturn?: boolean;
}

/** The lab's addresses and coturn's credentials. */
export const LAB = {
  srv: "203.0.113.10",
  srv2: "203.0.113.11",
  pub: "203.0.113.20",
  pub2: "203.0.113.21",
  gwA: "203.0.113.101",
  gwB: "203.0.113.102",
  gwALan: "10.0.1.1",
  gwBLan: "10.0.2.1",
  hostA: "10.0.1.10",
  hostA2: "10.0.1.11",
  hostB: "10.0.2.10",
  turnUser: "test",
  turnPassword: "test123",
  turnRealm: "lab.test",
  stunPort: 3478,
  stunAltPort: 3479,
} as const;

const NAT_MODES: readonly NatMode[] = ["fc", "rc", "prc", "sym"];
const HOSTS: readonly LabHost[] = ["srv", "pub", "gwA", "gwB", "hostA", "hostA2", "hostB"];
/** Every namespace of a lab, in the order `up` creates them. */
const NAMESPACES = ["inet", ...HOSTS] as const;
const PREFIX_RE = /^nz[0-9a-z]{4}$/;
const NS_RE = new RegExp(`^(nz[0-9a-z]{4})-(${NAMESPACES.join("|")})$`);
/** The lab's "public internet" (RFC 5737 TEST-NET-3). */
const INTERNET = "203.0.113.0/24";
const RELAY_MIN_PORT = 49152;
const RELAY_MAX_PORT = 49999;
const DAEMON_READY_MS = 10_000;
const GATEWAYS = {
  gwA: { wan: LAB.gwA, lan: LAB.gwALan, subnet: "10.0.1.0/24" },
  gwB: { wan: LAB.gwB, lan: LAB.gwBLan, subnet: "10.0.2.0/24" },
} as const;

/** Where each lab records its owner process, so `cleanup` can tell a crashed test's lab from a live one. */
function registryDir(): string {
  let base = "/run";
  try {
    if (!Deno.statSync(base).isDirectory) base = tmpDir();
  } catch {
    base = tmpDir();
  }
  return join(base, "nzcore-nat-lab");
}

function tmpDir(): string {
  return Deno.env.get("TMPDIR") || "/tmp";
}

/** The CLI's file naming the running lab. */
export function cliStateFile(): string {
  return join(tmpDir(), "nzcore-lab.json");
}

interface OwnerRecord {
  prefix: string;
  stateDir: string;
  pid: number;
  startTime: string;
}

// ---------------------------------------------------------------------------------------------------
// process helpers

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], options: { stdin?: string; check?: boolean } = {}): Promise<RunResult> {
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (options.check !== false && result.code !== 0) {
    throw new Error(
      `Cannot run ${cmd.join(" ")}: exit ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
  return result;
}

async function which(name: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      const info = await Deno.stat(join(dir || ".", name));
      if (info.isFile && (info.mode ?? 0o111) & 0o111) return true;
    } catch {
      // not here
    }
  }
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The kernel's start time of a process (field 22 of /proc/PID/stat), or null when it is gone. */
function processStartTime(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the process that recorded itself as `pid` with that start time still runs (a zombie does not). */
function ownerAlive(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime && !isZombie(pid);
}

function kill(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run(["ip", "netns", "list"], { check: false });
  return stdout.split("\n").map((line) => line.split(" ")[0]).filter((name) => name !== "");
}

async function namespacePids(ns: string): Promise<number[]> {
  const { stdout } = await run(["ip", "netns", "pids", ns], { check: false });
  return stdout.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number);
}

/** Ends every process in the namespaces (TERM, then KILL after up to 3 s), deletes them and their /etc/netns folders. */
async function removeNamespaces(names: string[]): Promise<void> {
  const present = new Set(await listNamespaces());
  const existing = names.filter((name) => present.has(name));
  const pidsOf = async () => (await Promise.all(existing.map(namespacePids))).flat();
  let pids = await pidsOf();
  for (const pid of pids) kill(pid, "SIGTERM");
  for (let i = 0; i < 30 && pids.length > 0; i++) {
    await sleep(100);
    pids = pids.filter((pid) => processStartTime(pid) !== null && !isZombie(pid));
  }
  for (const pid of await pidsOf()) kill(pid, "SIGKILL");
  for (const name of existing) await run(["ip", "netns", "del", name], { check: false });
  for (const name of names) await Deno.remove(`/etc/netns/${name}`, { recursive: true }).catch(() => {});
  // the folder /etc/netns itself only when no other namespace uses it
  await Deno.remove("/etc/netns").catch(() => {});
}

/** Creates /etc/netns/NS; retried, since another lab's `down` may remove an empty /etc/netns meanwhile. */
async function makeNetnsEtc(ns: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.mkdir(`/etc/netns/${ns}`, { recursive: true });
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound) || attempt >= 5) throw e;
    }
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------
// configuration text

function validateMode(mode: unknown, name: string): NatMode {
  if (!NAT_MODES.includes(mode as NatMode)) {
    throw new TypeError(`Invalid ${name}: expected one of ${NAT_MODES.join(", ")}, got ${JSON.stringify(mode)}`);
  }
  return mode as NatMode;
}

function validateSeconds(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 86_400) {
    throw new RangeError(`Invalid ${name}: expected whole seconds in 1..86400, got ${String(value)}`);
  }
  return value;
}

interface ResolvedOptions {
  natA: NatMode;
  natB: NatMode;
  udpTimeout: number;
  udpStreamTimeout: number;
  upnp: boolean;
  coturn: boolean;
}

function resolveOptions(options: NatLabOptions = {}): ResolvedOptions {
  if (typeof options !== "object" || options === null) throw new TypeError("Invalid options: expected an object");
  return {
    natA: validateMode(options.natA ?? "prc", "natA"),
    natB: validateMode(options.natB ?? "sym", "natB"),
    udpTimeout: validateSeconds(options.udpTimeout, "udpTimeout", 30),
    udpStreamTimeout: validateSeconds(options.udpStreamTimeout, "udpStreamTimeout", 120),
    upnp: options.upnp ?? true,
    coturn: options.coturn ?? true,
  };
}

const HOSTS_FILE = `127.0.0.1 localhost
${LAB.srv} srv.lab.test stun.lab.test turn.lab.test
${LAB.srv2} srv2.lab.test
${LAB.pub} pub.lab.test
${LAB.pub2} pub2.lab.test
${LAB.gwA} gwA.lab.test
${LAB.gwB} gwB.lab.test
`;

/**
 * The nftables ruleset of a gateway in a mode; loading it replaces `table ip natlab` atomically (one
 * transaction: create, delete, define).
 */
export function natRules(gw: "gwA" | "gwB", mode: NatMode, udpStreamTimeout = 120): string {
  const { subnet } = GATEWAYS[gw];
  const t = `${udpStreamTimeout}s`;
  let masquerade = "masquerade";
  let pre = "";
  let learn = "";
  // fc / rc: the post-NAT (external) port is learned from conntrack's reply tuple and mapped back to the
  // internal endpoint, for anyone (fc) or for the remote addresses the host has sent to (rc).
  if (mode === "sym") masquerade = "masquerade fully-random";
  else if (mode === "fc") {
    pre = 'iifname "wan" dnat ip to meta l4proto . th dport map @eif';
    learn = `oifname "wan" ct direction original ct original ip saddr ${subnet} meta l4proto { tcp, udp } ` +
      `update @eif { meta l4proto . ct reply proto-dst timeout ${t} : ct original ip saddr . ct original proto-src }`;
  } else if (mode === "rc") {
    pre = 'iifname "wan" dnat ip to ip saddr . meta l4proto . th dport map @adf';
    learn = `oifname "wan" ct direction original ct original ip saddr ${subnet} meta l4proto { tcp, udp } ` +
      `update @adf { ip daddr . meta l4proto . ct reply proto-dst timeout ${t} : ct original ip saddr . ct original proto-src }`;
  }
  return `table ip natlab
delete table ip natlab
table ip natlab {
  comment "nat-lab mode ${mode}"
  map eif { type inet_proto . inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout ${t}; }
  map adf { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout ${t}; }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ${pre}
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ip saddr ${subnet} ${masquerade}
  }
  chain learn {
    type filter hook postrouting priority 300; policy accept;
    ${learn}
  }
  chain filter_in {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" meta l4proto icmp accept
    iifname "wan" socket transparent 0 accept
    iifname "wan" counter drop
  }
  chain filter_fwd {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    iifname "wan" ct status dnat accept
    iifname "wan" counter drop
  }
}
`;
}

function coturnConfig(dir: string): string {
  return `listening-ip=${LAB.srv}
listening-ip=${LAB.srv2}
relay-ip=${LAB.srv}
listening-port=${LAB.stunPort}
alt-listening-port=${LAB.stunAltPort}
no-tls
no-dtls
min-port=${RELAY_MIN_PORT}
max-port=${RELAY_MAX_PORT}
fingerprint
lt-cred-mech
realm=${LAB.turnRealm}
user=${LAB.turnUser}:${LAB.turnPassword}
userdb=${dir}/turndb
log-file=${dir}/turnserver.log
simple-log
pidfile=${dir}/turnserver.pid
no-cli
no-multicast-peers
verbose
`;
}

const MINIUPNPD_NFT = `table inet miniupnpd
delete table inet miniupnpd
table inet miniupnpd {
  chain forward { type filter hook forward priority -10; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
`;

function miniupnpdConfig(dir: string, prefix: string): string {
  const uuidTail = [...prefix].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
  return `ext_ifname=wan
listening_ip=lan
http_port=2189
enable_natpmp=yes
enable_upnp=yes
ext_perform_stun=yes
ext_stun_host=${LAB.srv}
ext_stun_port=${LAB.stunPort}
upnp_table_name=miniupnpd
upnp_nat_table_name=miniupnpd
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
secure_mode=yes
system_uptime=no
notify_interval=60
clean_ruleset_interval=600
lease_file=${dir}/leases
min_lifetime=60
max_lifetime=86400
uuid=3a1bde60-0a7c-4f6e-9a3b-${uuidTail.padStart(12, "0").slice(-12)}
friendly_name=nzcore nat lab gwA
allow 1024-65535 10.0.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`;
}

// ---------------------------------------------------------------------------------------------------
// availability

/**
 * Tells whether the lab can run on this machine.
 *
 * @param options the options the lab will be started with (coturn / miniupnpd are only needed when on)
 * @returns null when it can, else why not (not root, a missing program...)
 */
export async function labUnavailable(options?: NatLabOptions): Promise<string | null> {
  let resolved: ResolvedOptions;
  try {
    resolved = resolveOptions(options);
  } catch (e) {
    return (e as Error).message;
  }
  if (Deno.build.os !== "linux") return "the NAT lab needs Linux network namespaces";
  try {
    if (Deno.uid() !== 0) return "the NAT lab needs root (network namespaces)";
  } catch {
    return "the NAT lab needs --allow-sys=uid to check for root";
  }
  const tools = ["ip", "ss", "nft", "sysctl", "conntrack"];
  if (resolved.coturn) tools.push("turnserver", "turnutils_stunclient");
  if (resolved.upnp) tools.push("miniupnpd");
  const missing: string[] = [];
  for (const tool of tools) if (!(await which(tool))) missing.push(tool);
  if (missing.length > 0) return `the NAT lab needs ${missing.join(", ")} (Debian: see .ci/run PACKAGES)`;
  return null;
}

// ---------------------------------------------------------------------------------------------------
// the lab

interface Daemon {
  child: Deno.ChildProcess;
  done: Promise<unknown>;
}

/** A running NAT lab; {@link NatLab.up} builds one, {@link NatLab.down} removes it. */
export class NatLab implements AsyncDisposable {
  /** The namespace prefix, e.g. `nzab12` (namespaces `nzab12-srv`...). */
  readonly prefix: string;
  /** This lab's folder for configs, logs and pid files. */
  readonly stateDir: string;
  #options: ResolvedOptions;
  #modes: Record<"gwA" | "gwB", NatMode>;
  #daemons: Daemon[] = [];
  #children = new Set<Deno.ChildProcess>();
  #down: Promise<void> | null = null;

  private constructor(prefix: string, stateDir: string, options: ResolvedOptions) {
    this.prefix = prefix;
    this.stateDir = stateDir;
    this.#options = options;
    this.#modes = { gwA: options.natA, gwB: options.natB };
  }

  /**
   * Builds a lab and starts its daemons; resolves once coturn answers STUN and miniupnpd is listening
   * (after its STUN test). On failure everything built so far is removed again.
   *
   * @param options NAT modes, conntrack timeouts, which daemons to run
   * @returns the running lab
   * @throws TypeError / RangeError for bad options; Error when the lab cannot be built (see {@link labUnavailable})
   */
  static async up(options?: NatLabOptions): Promise<NatLab> {
    const resolved = resolveOptions(options);
    const why = await labUnavailable(options);
    if (why !== null) throw new Error(`Cannot start the NAT lab: ${why}`);
    const registry = registryDir();
    await Deno.mkdir(registry, { recursive: true });
    const stateDir = await Deno.makeTempDir({ prefix: "nzcore-nat-lab-" });
    let prefix = "";
    for (let attempt = 0; prefix === "" && attempt < 100; attempt++) {
      const candidate = "nz" + crypto.getRandomValues(new Uint32Array(1))[0].toString(36).padStart(4, "0").slice(-4);
      const record: OwnerRecord = {
        prefix: candidate,
        stateDir,
        pid: Deno.pid,
        startTime: processStartTime(Deno.pid) ?? "",
      };
      try {
        // claims the prefix before any namespace exists, so `cleanup` never takes a lab being built
        await Deno.writeTextFile(join(registry, `${candidate}.json`), JSON.stringify(record), { createNew: true });
        if ((await listNamespaces()).some((ns) => ns.startsWith(`${candidate}-`))) {
          await Deno.remove(join(registry, `${candidate}.json`));
          continue;
        }
        prefix = candidate;
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
    }
    if (prefix === "") throw new Error("Cannot start the NAT lab: no free namespace prefix");
    const lab = new NatLab(prefix, stateDir, resolved);
    try {
      await lab.#build();
    } catch (e) {
      await lab.down();
      throw e;
    }
    return lab;
  }

  /**
   * A handle on a lab another process built and owns (the CLI keeper's): `exec`, `spawn` and `setNat` work;
   * end it with {@link NatLab.detach}, not `down`, to leave the lab running.
   */
  static attach(prefix: string, stateDir: string, options?: NatLabOptions): NatLab {
    if (!PREFIX_RE.test(prefix)) throw new TypeError(`Invalid prefix: expected nz + 4 base36 chars, got ${prefix}`);
    const lab = new NatLab(prefix, stateDir, resolveOptions(options));
    for (const gw of ["gwA", "gwB"] as const) {
      try {
        lab.#modes[gw] = validateMode(Deno.readTextFileSync(join(stateDir, `${gw}.mode`)).trim(), gw);
      } catch {
        // keeps the option's mode
      }
    }
    return lab;
  }

  /** Ends the processes this handle spawned and forgets the lab, leaving it running. */
  async detach(): Promise<void> {
    this.#down ??= (async () => {
      const waits: Promise<unknown>[] = [];
      for (const child of this.#children) {
        kill(child.pid, "SIGKILL");
        for (const stream of [child.stdout, child.stderr]) {
          if (!stream.locked) waits.push(stream.cancel().catch(() => {}));
        }
        waits.push(child.status.catch(() => {}));
      }
      await Promise.all(waits);
    })();
    await this.#down;
  }

  /** The network namespace of a host. */
  netns(host: LabHost): string {
    if (!HOSTS.includes(host)) throw new TypeError(`Invalid host: expected one of ${HOSTS.join(", ")}, got ${host}`);
    return `${this.prefix}-${host}`;
  }

  /** A gateway's current NAT mode. */
  natMode(gw: "gwA" | "gwB"): NatMode {
    if (gw !== "gwA" && gw !== "gwB") throw new TypeError(`Invalid gw: expected gwA or gwB, got ${gw}`);
    return this.#modes[gw];
  }

  /**
   * Changes a gateway's NAT mode: its ruleset is replaced in one nft transaction and its conntrack table
   * flushed, so every existing mapping through it is forgotten.
   */
  async setNat(gw: "gwA" | "gwB", mode: NatMode): Promise<void> {
    if (gw !== "gwA" && gw !== "gwB") throw new TypeError(`Invalid gw: expected gwA or gwB, got ${gw}`);
    validateMode(mode, "mode");
    this.#assertUp();
    await applyNat(this.#ns(gw), this.stateDir, gw, mode, this.#options.udpStreamTimeout);
    this.#modes[gw] = mode;
  }

  /**
   * Runs a command in a host and collects its output.
   *
   * @param host the lab host
   * @param cmd program and arguments
   * @param options `timeoutMs`: the command is ended (TERM, then KILL a second later) and `code` is 124, as
   *   with timeout(1); `env`: added to this process's environment; `stdin`: text written to it
   * @returns exit code (128 + signal when killed by a signal), stdout and stderr as text
   */
  async exec(
    host: LabHost,
    cmd: string[],
    options: { timeoutMs?: number; env?: Record<string, string>; stdin?: string } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const ns = this.netns(host);
    if (!Array.isArray(cmd) || cmd.length === 0) throw new TypeError("Invalid cmd: expected a non-empty array");
    this.#assertUp();
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, ...cmd],
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#children.add(child);
    let timedOut = false;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      kill(child.pid, "SIGTERM");
      killTimer = setTimeout(() => kill(child.pid, "SIGKILL"), 1000);
    }, options.timeoutMs);
    try {
      if (options.stdin !== undefined) {
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
        await writer.close().catch(() => {});
      }
      const [stdout, stderr, status] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.status,
      ]);
      return { code: timedOut ? 124 : status.code, stdout, stderr };
    } finally {
      clearTimeout(timer);
      clearTimeout(killTimer);
      this.#children.delete(child);
    }
  }

  /**
   * Starts a long-running process in a host, stdout and stderr piped (stdin closed). {@link NatLab.down}
   * ends whatever is still running.
   */
  spawn(host: LabHost, cmd: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Deno.ChildProcess {
    const ns = this.netns(host);
    if (!Array.isArray(cmd) || cmd.length === 0) throw new TypeError("Invalid cmd: expected a non-empty array");
    this.#assertUp();
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, ...cmd],
      env: options.env,
      cwd: options.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#children.add(child);
    child.status.finally(() => this.#children.delete(child));
    return child;
  }

  /**
   * Ends every process in the lab's namespaces (its daemons, spawned and foreign ones), deletes the
   * namespaces, their /etc/netns folders and the state folder. Safe to call twice.
   */
  down(): Promise<void> {
    this.#down ??= this.#teardown();
    return this.#down;
  }

  /** Same as {@link NatLab.down}, for `await using lab = await NatLab.up()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.down();
  }

  #ns(name: (typeof NAMESPACES)[number]): string {
    return `${this.prefix}-${name}`;
  }

  #assertUp(): void {
    if (this.#down !== null) throw new Error(`NAT lab ${this.prefix} is down`);
  }

  async #ip(ns: string, ...args: string[]): Promise<void> {
    await run(["ip", "-n", ns, ...args]);
  }

  async #nsExec(ns: string, ...cmd: string[]): Promise<RunResult> {
    return await run(["ip", "netns", "exec", ns, ...cmd]);
  }

  async #build(): Promise<void> {
    const o = this.#options;
    for (const name of NAMESPACES) {
      const ns = this.#ns(name);
      await run(["ip", "netns", "add", ns]);
      await makeNetnsEtc(ns);
      await Deno.writeTextFile(`/etc/netns/${ns}/resolv.conf`, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
      await Deno.writeTextFile(`/etc/netns/${ns}/hosts`, HOSTS_FILE);
      await this.#ip(ns, "link", "set", "lo", "up");
      // IPv4 only: no IPv6 addresses anywhere, so no test can succeed over IPv6 by accident
      await this.#nsExec(
        ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
      );
    }
    // the "internet": a bridge inside <prefix>-inet, one veth port per attached namespace
    const inet = this.#ns("inet");
    await this.#ip(inet, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0");
    await this.#ip(inet, "link", "set", "br0", "up");
    const attach = async (bridgeNs: string, bridge: string, port: string, hostNs: string, ifname: string) => {
      await this.#ip(bridgeNs, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", hostNs);
      await this.#ip(bridgeNs, "link", "set", port, "master", bridge, "up");
      await this.#ip(hostNs, "link", "set", ifname, "up");
    };
    await attach(inet, "br0", "srv", this.#ns("srv"), "eth0");
    await attach(inet, "br0", "pub", this.#ns("pub"), "eth0");
    await attach(inet, "br0", "gwA", this.#ns("gwA"), "wan");
    await attach(inet, "br0", "gwB", this.#ns("gwB"), "wan");
    await this.#ip(this.#ns("srv"), "addr", "add", `${LAB.srv}/24`, "dev", "eth0");
    await this.#ip(this.#ns("srv"), "addr", "add", `${LAB.srv2}/24`, "dev", "eth0");
    await this.#ip(this.#ns("pub"), "addr", "add", `${LAB.pub}/24`, "dev", "eth0");
    await this.#ip(this.#ns("pub"), "addr", "add", `${LAB.pub2}/24`, "dev", "eth0");
    for (const gw of ["gwA", "gwB"] as const) {
      const ns = this.#ns(gw);
      await this.#ip(ns, "addr", "add", `${GATEWAYS[gw].wan}/24`, "dev", "wan");
      await this.#ip(ns, "link", "add", "lan", "type", "bridge", "stp_state", "0", "forward_delay", "0");
      await this.#ip(ns, "link", "set", "lan", "up");
      await this.#ip(ns, "addr", "add", `${GATEWAYS[gw].lan}/24`, "dev", "lan");
      // the rules first: they load conntrack, whose sysctls exist only then
      await applyNat(ns, this.stateDir, gw, gw === "gwA" ? o.natA : o.natB, o.udpStreamTimeout, false);
      await this.#nsExec(
        ns,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        `net.netfilter.nf_conntrack_udp_timeout=${o.udpTimeout}`,
        `net.netfilter.nf_conntrack_udp_timeout_stream=${o.udpStreamTimeout}`,
      );
    }
    const hosts = [["gwA", "hA", "hostA", LAB.hostA], ["gwA", "hA2", "hostA2", LAB.hostA2], [
      "gwB",
      "hB",
      "hostB",
      LAB.hostB,
    ]] as const;
    for (const [gw, port, host, addr] of hosts) {
      const ns = this.#ns(host);
      await attach(this.#ns(gw), "lan", port, ns, "eth0");
      await this.#ip(ns, "addr", "add", `${addr}/24`, "dev", "eth0");
      // no default route: only the lab's "internet" is reachable, so `ip route get` to anything else fails
      // (multicast stays on the LAN, for SSDP)
      await this.#ip(ns, "route", "add", INTERNET, "via", GATEWAYS[gw].lan);
      await this.#ip(ns, "route", "add", "224.0.0.0/4", "dev", "eth0");
    }
    await Deno.writeTextFile(join(this.stateDir, "lab.json"), JSON.stringify({ prefix: this.prefix, options: o }));
    const starts: Promise<void>[] = [];
    if (o.coturn) starts.push(this.#startCoturn());
    if (o.upnp) starts.push(this.#startMiniupnpd(o.coturn));
    await Promise.all(starts);
  }

  #startDaemon(ns: string, cmd: string[], log: string | null): Daemon {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, ...cmd],
      stdin: "null",
      stdout: log === null ? "null" : "piped",
      stderr: log === null ? "null" : "piped",
    }).spawn();
    let done: Promise<unknown> = child.status;
    if (log !== null) {
      const pump = async (stream: ReadableStream<Uint8Array>) => {
        using file = await Deno.open(log, { append: true, create: true });
        for await (const chunk of stream) await file.write(chunk).catch(() => 0);
      };
      done = Promise.all([child.status, pump(child.stdout).catch(() => {}), pump(child.stderr).catch(() => {})]);
    }
    const daemon = { child, done };
    this.#daemons.push(daemon);
    return daemon;
  }

  async #startCoturn(): Promise<void> {
    const dir = join(this.stateDir, "coturn");
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "turnserver.conf"), coturnConfig(dir));
    await Deno.writeTextFile(join(dir, "turnserver.log"), "");
    const daemon = this.#startDaemon(this.#ns("srv"), ["turnserver", "-c", join(dir, "turnserver.conf")], null);
    await Deno.writeTextFile(join(dir, "pid"), `${daemon.child.pid}\n`);
    // ready once it answers a STUN Binding request (RFC 8489 §6) on the primary address
    const deadline = Date.now() + DAEMON_READY_MS;
    while (true) {
      if (processStartTime(daemon.child.pid) === null) {
        throw new Error(`coturn did not start; see ${dir}/turnserver.log`);
      }
      const out = await run(
        ["ip", "netns", "exec", this.#ns("pub"), "timeout", "1", "turnutils_stunclient", LAB.srv],
        { check: false },
      );
      if (out.stdout.includes(`UDP reflexive addr: ${LAB.pub}:`)) return;
      if (Date.now() > deadline) throw new Error(`coturn does not answer STUN; see ${dir}/turnserver.log`);
      await sleep(100);
    }
  }

  async #startMiniupnpd(afterStun: boolean): Promise<void> {
    const dir = join(this.stateDir, "miniupnpd");
    await Deno.mkdir(dir, { recursive: true });
    const gwA = this.#ns("gwA");
    await Deno.writeTextFile(join(dir, "init.nft"), MINIUPNPD_NFT);
    await this.#nsExec(gwA, "nft", "-f", join(dir, "init.nft"));
    await Deno.writeTextFile(join(dir, "miniupnpd.conf"), miniupnpdConfig(dir, this.prefix));
    await Deno.writeTextFile(join(dir, "leases"), "");
    const log = join(dir, "miniupnpd.log");
    await Deno.writeTextFile(log, "");
    // its STUN test needs coturn: wait for it (started in parallel)
    if (afterStun) {
      const deadline = Date.now() + DAEMON_READY_MS;
      while (!(await this.#listening("srv", LAB.srv, LAB.stunPort)) && Date.now() < deadline) await sleep(50);
      const started = Date.now();
      while (Date.now() - started < DAEMON_READY_MS) {
        const out = await run(
          ["ip", "netns", "exec", this.#ns("pub"), "timeout", "1", "turnutils_stunclient", LAB.srv],
          { check: false },
        );
        if (out.stdout.includes("UDP reflexive addr")) break;
        await sleep(100);
      }
    }
    const daemon = this.#startDaemon(
      gwA,
      ["miniupnpd", "-f", join(dir, "miniupnpd.conf"), "-d", "-P", join(dir, "miniupnpd.pid")],
      log,
    );
    await Deno.writeTextFile(join(dir, "pid"), `${daemon.child.pid}\n`);
    const deadline = Date.now() + DAEMON_READY_MS;
    while (true) {
      const text = await Deno.readTextFile(log).catch(() => "");
      if (
        /HTTP listening/.test(text) && (!afterStun || /Port forwarding is now enabled/.test(text)) &&
        await this.#listening("gwA", LAB.gwALan, 5351)
      ) return;
      if (processStartTime(daemon.child.pid) === null || isZombie(daemon.child.pid)) {
        throw new Error(`miniupnpd did not start; see ${log}`);
      }
      if (/Port forwarding is now disabled/.test(text)) {
        throw new Error(`miniupnpd's STUN test found the WAN filtered: port forwarding is disabled; see ${log}`);
      }
      if (Date.now() > deadline) throw new Error(`miniupnpd is not ready; see ${log}`);
      await sleep(100);
    }
  }

  async #listening(host: LabHost, addr: string, port: number): Promise<boolean> {
    const out = await run(
      ["ip", "netns", "exec", this.netns(host), "ss", "-Hlun", `src ${addr} and sport = :${port}`],
      {
        check: false,
      },
    );
    return out.stdout.trim() !== "";
  }

  async #teardown(): Promise<void> {
    for (const child of this.#children) kill(child.pid, "SIGTERM");
    for (const { child } of this.#daemons) kill(child.pid, "SIGTERM");
    await removeNamespaces(NAMESPACES.map((name) => this.#ns(name)));
    const waits: Promise<unknown>[] = [];
    for (const child of this.#children) {
      kill(child.pid, "SIGKILL");
      for (const stream of [child.stdout, child.stderr]) {
        if (!stream.locked) waits.push(stream.cancel().catch(() => {}));
      }
      waits.push(child.status.catch(() => {}));
    }
    for (const { child, done } of this.#daemons) {
      kill(child.pid, "SIGKILL");
      waits.push(done.catch(() => {}));
    }
    await Promise.all(waits);
    await Deno.remove(this.stateDir, { recursive: true }).catch(() => {});
    await Deno.remove(join(registryDir(), `${this.prefix}.json`)).catch(() => {});
  }
}

async function applyNat(
  ns: string,
  stateDir: string,
  gw: "gwA" | "gwB",
  mode: NatMode,
  udpStreamTimeout: number,
  flush = true,
): Promise<void> {
  const rules = natRules(gw, mode, udpStreamTimeout);
  // from stdin: two concurrent calls never load a half-written file; the file is for reading only
  await run(["ip", "netns", "exec", ns, "nft", "-f", "-"], { stdin: rules });
  await Deno.writeTextFile(join(stateDir, `${gw}.nft`), rules);
  await Deno.writeTextFile(join(stateDir, `${gw}.mode`), `${mode}\n`);
  // conntrack -F exits 1 on an empty table in some versions: not an error
  if (flush) await run(["ip", "netns", "exec", ns, "conntrack", "-F"], { check: false });
}

/**
 * Removes the labs whose owner process is gone (a test that crashed, a killed CLI keeper): their
 * `nz????-*` namespaces with everything running in them, /etc/netns folders and state folders.
 *
 * @returns the prefixes removed
 */
export async function cleanupStaleLabs(): Promise<string[]> {
  const prefixes = new Set<string>();
  for (const ns of await listNamespaces()) {
    const m = NS_RE.exec(ns);
    if (m) prefixes.add(m[1]);
  }
  const registry = registryDir();
  // records without namespaces (the owner died before building any)
  try {
    for await (const entry of Deno.readDir(registry)) {
      const m = /^(nz[0-9a-z]{4})\.json$/.exec(entry.name);
      if (m) prefixes.add(m[1]);
    }
  } catch {
    // no lab ever ran here
  }
  const removed: string[] = [];
  for (const prefix of prefixes) {
    const recordFile = join(registry, `${prefix}.json`);
    let record: OwnerRecord | null = null;
    try {
      record = JSON.parse(await Deno.readTextFile(recordFile));
    } catch {
      record = null;
    }
    if (record && typeof record.pid === "number" && ownerAlive(record.pid, record.startTime)) continue;
    await removeNamespaces(NAMESPACES.map((name) => `${prefix}-${name}`));
    if (record && typeof record.stateDir === "string" && record.stateDir.includes("nzcore-nat-lab-")) {
      await Deno.remove(record.stateDir, { recursive: true }).catch(() => {});
    }
    await Deno.remove(recordFile).catch(() => {});
    removed.push(prefix);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------------
// checks (CLI `verify`), with independent clients only: coturn's turnutils_*, miniupnpc's upnpc, socat

/** One independent check of a running lab: resolves with a detail line, rejects when the lab misbehaves. */
export interface LabCheck {
  /** What it proves. */
  name: string;
  /** Runs it. */
  run(lab: NatLab): Promise<string>;
}

/** The reflexive address `turnutils_stunclient` reports from a host (it waits for RFC 5780 replies: ended after 3 s). */
export async function stunReflexive(lab: NatLab, host: LabHost, server: string = LAB.srv): Promise<string | null> {
  const out = await lab.exec(host, ["turnutils_stunclient", server], { timeoutMs: 3000 });
  return /UDP reflexive addr: ([0-9.]+:[0-9]+)/.exec(out.stdout)?.[1] ?? null;
}

/** `turnutils_natdiscovery` (RFC 5780 §4.3 / §4.4) from a host: `"<mapping> / <filtering>"` as coturn words them. */
export async function natDiscovery(lab: NatLab, host: LabHost, filtering = true): Promise<string> {
  const m = await lab.exec(host, ["turnutils_natdiscovery", "-m", LAB.srv], { timeoutMs: 20_000 });
  const mapping = /NAT with [A-Za-z ]*Mapping/.exec(m.stdout + m.stderr)?.[0] ?? `no mapping verdict (exit ${m.code})`;
  if (!filtering) return mapping;
  const f = await lab.exec(host, ["turnutils_natdiscovery", "-f", LAB.srv], { timeoutMs: 20_000 });
  const filter = /NAT with [A-Za-z ]*Filtering/.exec(f.stdout + f.stderr)?.[0] ??
    `no filtering verdict (exit ${f.code})`;
  return `${mapping} / ${filter}`;
}

/**
 * Sends one UDP datagram with socat from one host to `to:port` and returns what socat on another host,
 * bound to `bindAddr:port`, received (its first datagram) within `timeoutMs`; "" when nothing arrived.
 */
export async function deliver(
  lab: NatLab,
  from: LabHost,
  at: LabHost,
  to: string,
  bindAddr: string,
  port: number,
  text: string,
  timeoutMs = 3000,
): Promise<string> {
  const recv = lab.exec(at, ["socat", "-u", `UDP4-RECVFROM:${port},bind=${bindAddr}`, "STDOUT"], { timeoutMs });
  // socat binds within a few ms; then the datagram
  for (let i = 0; i < 40; i++) {
    const ss = await run(["ip", "netns", "exec", lab.netns(at), "ss", "-Hlun", `sport = :${port}`], { check: false });
    if (ss.stdout.trim() !== "") break;
    await sleep(25);
  }
  await lab.exec(from, ["socat", "-u", "-", `UDP4-SENDTO:${to}:${port}`], { stdin: text });
  return (await recv).stdout;
}

function expect(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

/** What `verify` runs, in order; each gateway is back in its mode afterwards (its mappings flushed). */
export const LAB_CHECKS: readonly LabCheck[] = [
  {
    name: "STUN from hostA reports gwA's address, from hostB gwB's",
    async run(lab) {
      const [a, b] = await Promise.all([stunReflexive(lab, "hostA"), stunReflexive(lab, "hostB")]);
      expect(a?.startsWith(`${LAB.gwA}:`) === true, `hostA reflexive ${a}, expected ${LAB.gwA}:P`);
      expect(b?.startsWith(`${LAB.gwB}:`) === true, `hostB reflexive ${b}, expected ${LAB.gwB}:P`);
      return `hostA ${a}, hostB ${b}`;
    },
  },
  {
    name: "turnutils_natdiscovery classifies prc, sym, fc and rc as RFC 4787 says",
    async run(lab) {
      const before = { gwA: lab.natMode("gwA"), gwB: lab.natMode("gwB") };
      try {
        await lab.setNat("gwA", "prc");
        await lab.setNat("gwB", "sym");
        const [a, b] = await Promise.all([natDiscovery(lab, "hostA"), natDiscovery(lab, "hostB", false)]);
        expect(
          a === "NAT with Endpoint Independent Mapping / NAT with Address and Port Dependent Filtering",
          `prc: ${a}`,
        );
        expect(b === "NAT with Address and Port Dependent Mapping", `sym: ${b}`);
        await lab.setNat("gwA", "fc");
        await lab.setNat("gwB", "rc");
        const [fc, rc] = await Promise.all([natDiscovery(lab, "hostA"), natDiscovery(lab, "hostB")]);
        expect(fc === "NAT with Endpoint Independent Mapping / NAT with Endpoint Independent Filtering", `fc: ${fc}`);
        expect(rc === "NAT with Endpoint Independent Mapping / NAT with Address Dependent Filtering", `rc: ${rc}`);
        return `prc: ${a}; sym: ${b}; fc: ${fc}; rc: ${rc}`;
      } finally {
        await lab.setNat("gwA", before.gwA);
        await lab.setNat("gwB", before.gwB);
      }
    },
  },
  {
    name: "a TURN allocation from hostB (symmetric NAT) relays to a peer on pub",
    async run(lab) {
      const peer = lab.spawn("pub", ["turnutils_peer", "-L", LAB.pub, "-p", "3480"]);
      try {
        await sleep(300);
        const args = [
          "-v",
          "-u",
          LAB.turnUser,
          "-w",
          LAB.turnPassword,
          "-e",
          LAB.pub,
          "-r",
          "3480",
          "-n",
          "5",
          "-m",
          "1",
        ];
        const ok = await lab.exec("hostB", ["turnutils_uclient", ...args, LAB.srv], { timeoutMs: 20_000 });
        const relay = /Received relay addr: ([0-9.]+:[0-9]+)/.exec(ok.stdout)?.[1];
        const lost = /Total lost packets (\d+)/.exec(ok.stdout)?.[1];
        expect(relay?.startsWith(`${LAB.srv}:`) === true, `no relay address (exit ${ok.code})`);
        expect(lost === "0", `lost ${lost} packets`);
        const bad = await lab.exec("hostB", [
          "turnutils_uclient",
          ...args.slice(0, 3),
          "wrong",
          ...args.slice(4),
          LAB.srv,
        ], {
          timeoutMs: 20_000,
        });
        expect(!/Received relay addr/.test(bad.stdout), "a wrong password got an allocation");
        return `relay ${relay}, 0 lost; a wrong password gets none`;
      } finally {
        kill(peer.pid, "SIGTERM");
        await Promise.all([peer.stdout.cancel(), peer.stderr.cancel(), peer.status]);
      }
    },
  },
  {
    name: "a UPnP mapping on gwA's miniupnpd lets a datagram from pub reach hostA",
    async run(lab) {
      const before = await deliver(lab, "pub", "hostA", LAB.gwA, LAB.hostA, 40000, "before-mapping", 1500);
      expect(before === "", `an unmapped datagram reached hostA: ${JSON.stringify(before)}`);
      const add = await lab.exec(
        "hostA",
        ["upnpc", "-i", "-e", "t", "-a", LAB.hostA, "40000", "40000", "UDP", "600"],
        { timeoutMs: 10_000 },
      );
      expect(
        add.stdout.includes(`is redirected to internal ${LAB.hostA}:40000`),
        `upnpc -a: ${add.stdout.trim().split("\n").slice(-2).join(" ")}`,
      );
      const got = await deliver(lab, "pub", "hostA", LAB.gwA, LAB.hostA, 40000, "via-40000");
      await lab.exec("hostA", ["upnpc", "-i", "-d", "40000", "UDP"], { timeoutMs: 10_000 });
      expect(got === "via-40000", `hostA received ${JSON.stringify(got)}`);
      return `pub -> ${LAB.gwA}:40000 reached ${LAB.hostA}:40000`;
    },
  },
  {
    name: "no lab namespace has a route out of the lab",
    async run(lab) {
      const leaks: string[] = [];
      for (const host of HOSTS) {
        const out = await run(["ip", "-n", lab.netns(host), "route", "get", "198.18.0.1"], { check: false });
        if (out.code === 0) leaks.push(`${host}: ${out.stdout.trim()}`);
      }
      const inet = await run(["ip", "-n", `${lab.prefix}-inet`, "route", "get", "198.18.0.1"], { check: false });
      if (inet.code === 0) leaks.push(`inet: ${inet.stdout.trim()}`);
      expect(leaks.length === 0, `routes out: ${leaks.join("; ")}`);
      return "198.18.0.1 is unreachable from every namespace";
    },
  },
];

// ---------------------------------------------------------------------------------------------------
// CLI

interface CliState {
  prefix: string;
  stateDir: string;
  pid: number;
  startTime: string;
}

async function readCliState(): Promise<CliState | null> {
  try {
    const state = JSON.parse(await Deno.readTextFile(cliStateFile()));
    if (typeof state?.prefix !== "string" || !PREFIX_RE.test(state.prefix) || typeof state.pid !== "number") {
      return null;
    }
    return state;
  } catch {
    return null;
  }
}

function keeperAlive(state: CliState): boolean {
  return ownerAlive(state.pid, state.startTime);
}

function printAddresses(prefix: string, stateDir: string): void {
  console.log(`nat lab ${prefix} up (state in ${stateDir})`);
  console.log(
    `  srv    ${LAB.srv}, ${LAB.srv2}  coturn :${LAB.stunPort}/:${LAB.stunAltPort} user ${LAB.turnUser}/${LAB.turnPassword} realm ${LAB.turnRealm}`,
  );
  console.log(`  pub    ${LAB.pub}, ${LAB.pub2}`);
  console.log(`  gwA    wan ${LAB.gwA}, lan ${LAB.gwALan} (miniupnpd)`);
  console.log(`  gwB    wan ${LAB.gwB}, lan ${LAB.gwBLan}`);
  console.log(`  hostA  ${LAB.hostA}, hostA2 ${LAB.hostA2} (behind gwA); hostB ${LAB.hostB} (behind gwB)`);
  console.log(`  run in a host: ip netns exec ${prefix}-hostA CMD`);
}

function cliOptions(): NatLabOptions {
  const env = (name: string) => Deno.env.get(name);
  const num = (name: string) => env(name) === undefined ? undefined : Number(env(name));
  return {
    natA: (env("NAT_A") ?? "prc") as NatMode,
    natB: (env("NAT_B") ?? "sym") as NatMode,
    udpTimeout: num("UDP_TIMEOUT"),
    udpStreamTimeout: num("UDP_STREAM_TIMEOUT"),
    upnp: env("NATLAB_UPNP") !== "0",
    coturn: env("NATLAB_COTURN") !== "0",
  };
}

/** The keeper: owns a CLI lab until SIGTERM / SIGINT, then removes it. */
function keeperErrorFile(): string {
  return `${cliStateFile()}.error`;
}

/** The keeper: owns a CLI lab until SIGTERM / SIGINT, then removes it. Its errors go to {@link keeperErrorFile}. */
async function keep(options: NatLabOptions): Promise<number> {
  const { promise: stop, resolve } = Promise.withResolvers<void>();
  // listening before the lab exists, so that a TERM during `up` still removes it
  Deno.addSignalListener("SIGTERM", resolve);
  Deno.addSignalListener("SIGINT", resolve);
  let lab: NatLab;
  try {
    lab = await NatLab.up(options);
    const state: CliState = {
      prefix: lab.prefix,
      stateDir: lab.stateDir,
      pid: Deno.pid,
      startTime: processStartTime(Deno.pid) ?? "",
    };
    await Deno.writeTextFile(cliStateFile(), JSON.stringify(state));
  } catch (e) {
    await Deno.writeTextFile(keeperErrorFile(), (e as Error).message).catch(() => {});
    return 1;
  }
  await stop;
  await lab.down().catch(async (e) => {
    await Deno.writeTextFile(keeperErrorFile(), `down: ${(e as Error).message}`).catch(() => {});
  });
  const now = await readCliState();
  if (now?.prefix === lab.prefix) await Deno.remove(cliStateFile()).catch(() => {});
  return 0;
}

async function cliUp(): Promise<number> {
  const running = await readCliState();
  if (running && keeperAlive(running)) {
    printAddresses(running.prefix, running.stateDir);
    console.log("  (already running; `down` first to change options)");
    return 0;
  }
  const options = cliOptions();
  resolveOptions(options);
  const why = await labUnavailable(options);
  if (why !== null) {
    console.error(`nat_lab: ${why}`);
    return 1;
  }
  await Deno.remove(cliStateFile()).catch(() => {});
  await Deno.remove(keeperErrorFile()).catch(() => {});
  const keeper = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "__keep", JSON.stringify(options)],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const state = await readCliState();
    if (state && state.pid === keeper.pid) {
      printAddresses(state.prefix, state.stateDir);
      keeper.unref();
      return 0;
    }
    if (processStartTime(keeper.pid) === null || isZombie(keeper.pid)) {
      await keeper.status;
      const why = await Deno.readTextFile(keeperErrorFile()).catch(() => "the keeper process ended");
      console.error(`nat_lab: up failed: ${why}`);
      return 1;
    }
    await sleep(100);
  }
  kill(keeper.pid, "SIGTERM");
  console.error("nat_lab: up timed out");
  return 1;
}

async function cliDown(): Promise<number> {
  const state = await readCliState();
  if (state === null) {
    console.log("nat_lab: no lab is running (see also `cleanup`)");
    return 0;
  }
  if (keeperAlive(state)) {
    kill(state.pid, "SIGTERM");
    for (let i = 0; i < 150 && keeperAlive(state); i++) await sleep(100);
  }
  // a dead keeper leaves its lab to us
  await removeNamespaces(NAMESPACES.map((name) => `${state.prefix}-${name}`));
  await Deno.remove(state.stateDir, { recursive: true }).catch(() => {});
  await Deno.remove(join(registryDir(), `${state.prefix}.json`)).catch(() => {});
  await Deno.remove(cliStateFile()).catch(() => {});
  console.log(`nat lab ${state.prefix} down`);
  return 0;
}

async function cliStatus(): Promise<number> {
  const state = await readCliState();
  if (state === null) {
    console.log("nat lab: DOWN");
    return 3;
  }
  const present = new Set(await listNamespaces());
  const missing = NAMESPACES.filter((name) => !present.has(`${state.prefix}-${name}`));
  console.log(
    `nat lab ${state.prefix}: keeper ${keeperAlive(state) ? `pid ${state.pid}` : "GONE"}, ` +
      `${NAMESPACES.length - missing.length}/${NAMESPACES.length} namespaces` +
      (missing.length ? ` (missing ${missing.join(", ")})` : ""),
  );
  for (const gw of ["gwA", "gwB"] as const) {
    const mode = (await Deno.readTextFile(join(state.stateDir, `${gw}.mode`)).catch(() => "?")).trim();
    const count = await run(["ip", "netns", "exec", `${state.prefix}-${gw}`, "conntrack", "-C"], { check: false });
    console.log(`  ${gw} NAT mode ${mode}, conntrack entries ${count.stdout.trim() || "?"}`);
  }
  for (const daemon of ["coturn", "miniupnpd"]) {
    const pid = Number((await Deno.readTextFile(join(state.stateDir, daemon, "pid")).catch(() => "")).trim());
    const alive = pid > 0 && processStartTime(pid) !== null && !isZombie(pid);
    console.log(`  ${daemon}: ${alive ? `running (pid ${pid})` : "not running"}`);
  }
  return missing.length === 0 && keeperAlive(state) ? 0 : 1;
}

async function cliNat(gw: string | undefined, mode: string | undefined): Promise<number> {
  if (gw !== "gwA" && gw !== "gwB") throw new TypeError(`Invalid GW: expected gwA or gwB, got ${gw}`);
  const natMode = validateMode(mode, "MODE");
  const state = await readCliState();
  if (state === null) {
    console.error("nat_lab: no lab is running");
    return 1;
  }
  const lab = JSON.parse(await Deno.readTextFile(join(state.stateDir, "lab.json")));
  await applyNat(`${state.prefix}-${gw}`, state.stateDir, gw, natMode, lab.options.udpStreamTimeout);
  console.log(`${gw} NAT mode now ${natMode} (conntrack flushed)`);
  return 0;
}

async function cliVerify(): Promise<number> {
  const state = await readCliState();
  let lab: NatLab;
  if (state && keeperAlive(state)) {
    console.log(`verifying the running lab ${state.prefix}`);
    const saved = JSON.parse(await Deno.readTextFile(join(state.stateDir, "lab.json")));
    lab = NatLab.attach(state.prefix, state.stateDir, saved.options);
  } else {
    lab = await NatLab.up();
    console.log(`verifying a new lab ${lab.prefix}`);
  }
  let passed = 0, failed = 0;
  try {
    for (const check of LAB_CHECKS) {
      const t0 = performance.now();
      try {
        const detail = await check.run(lab);
        passed++;
        console.log(`PASS  ${check.name} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n      ${detail}`);
      } catch (e) {
        failed++;
        console.log(`FAIL  ${check.name}\n      ${(e as Error).message}`);
      }
    }
  } finally {
    if (state === null || !keeperAlive(state)) await lab.down();
    else await lab.detach();
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

async function cliCleanup(): Promise<number> {
  const removed = await cleanupStaleLabs();
  console.log(removed.length ? `removed stale labs: ${removed.join(", ")}` : "no stale labs");
  const state = await readCliState();
  if (state && removed.includes(state.prefix)) await Deno.remove(cliStateFile()).catch(() => {});
  return 0;
}

const USAGE =
  "usage: deno run -A scripts/nat_lab.ts up|down|status|nat gwA|gwB prc|rc|fc|sym|verify|cleanup|matrix [--repeats N]\n" +
  "  up reads NAT_A, NAT_B, UDP_TIMEOUT, UDP_STREAM_TIMEOUT, NATLAB_UPNP=0, NATLAB_COTURN=0";

async function main(args: string[]): Promise<number> {
  switch (args[0]) {
    case "up":
      return await cliUp();
    case "down":
      return await cliDown();
    case "status":
      return await cliStatus();
    case "nat":
      return await cliNat(args[1], args[2]);
    case "verify":
      return await cliVerify();
    case "cleanup":
      return await cliCleanup();
    case "matrix":
      // Real nodes in a lab of their own, for every pair of NAT types (scripts/nat_matrix.ts).
      return await (await import("./nat_matrix.ts")).main(args.slice(1));
    case "__keep":
      return await keep(JSON.parse(args[1] ?? "{}"));
    default:
      console.error(USAGE);
      return 2;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`nat_lab: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
