/**
 * The NAT traversal matrix: real node processes in the NAT lab
 * (`scripts/nat_lab.ts`), for each pair of NAT types. A rendezvous and relay
 * node R runs on the public host `pub`; node A runs on `hostA` behind gwA and
 * node B on `hostB` behind gwB, both asking the lab's coturn for their
 * public addresses. A and B connect to R over UDP, then A reaches B with
 * `nzcore connect <B> --via <R>`: hole punching where a direct path exists,
 * a session relayed by R where none does. Each cell tells which, the time to
 * a working session (its first round trip included) and whether a message
 * crossed.
 *
 * `deno task lab matrix [--repeats N] [--pairs fc:sym,prc:prc] [--turn]` prints the
 * matrix and ends with one JSON line; `tests/integration/nat_matrix_test.ts`
 * runs it and checks every cell.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LAB, type LabHost, NatLab, type NatMode } from "./nat_lab.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const PROFILE = ["run", "-P=nzcore", "--no-prompt", "--quiet"];
const MODES: readonly NatMode[] = ["fc", "rc", "prc", "sym"];
const PORT = 7475;

/** One cell of the matrix. */
export interface MatrixCell {
  /** gwA's NAT mode (A's NAT). */
  natA: NatMode;
  /** gwB's NAT mode. */
  natB: NatMode;
  /** The path of the session A ended with: `direct` (hole punching), `relayed` (through R) or `failed`. */
  path: "direct" | "relayed" | "failed";
  /** The session's transport: `udp` (direct), `relay` (through R), `turn` (through coturn). */
  transport?: string;
  /** Milliseconds to a working session, median of the runs (null when it failed). */
  medianMs: number | null;
  /** Each run's time. */
  runsMs: number[];
  /** Whether a message from A reached B on the final session. */
  delivered: boolean;
  /** Why hole punching failed (relayed cells), or why everything failed. */
  error?: string;
  /** The NAT types A and B reported in their `state` (RFC 5780 discovery against the lab's coturn). */
  reported: { a: string; b: string };
}

/** The NAT type a node behind each lab mode should report. */
export const NAT_TYPE_OF: Readonly<Record<NatMode, string>> = {
  fc: "full-cone",
  rc: "restricted-cone",
  prc: "port-restricted-cone",
  sym: "symmetric",
};

/** What a direct path needs: both mappings endpoint-independent, or one side symmetric facing a filter that lets
 * the other's IP through (RFC 4787; the rigs' table). */
export function directExpected(a: NatMode, b: NatMode): boolean {
  if (a === "sym" && b === "sym") return false;
  if (a === "sym") return b === "fc" || b === "rc";
  if (b === "sym") return a === "fc" || a === "rc";
  return true;
}

/** A node process running in a lab host. */
export interface LabNode {
  host: LabHost;
  dataDir: string;
  child: Deno.ChildProcess;
  did: string;
  nodeId: string;
  output: () => string;
}

/** Starts `main.ts start --no-api ARGS` in `host` with the node's permission profile; waits for "ready". */
export async function startNode(lab: NatLab, host: LabHost, dataDir: string, args: string[]): Promise<LabNode> {
  const child = lab.spawn(host, [
    Deno.execPath(),
    ...PROFILE,
    join(ROOT, "main.ts"),
    "--data-dir",
    dataDir,
    "start",
    "--no-api",
    // The lab's hosts share LANs (hostA, hostA2): LAN discovery would connect them around the NATs under test.
    "--no-lan",
    ...args,
  ], { env: { NO_COLOR: "1" } });
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  void pump(child.stdout).catch(() => {});
  void pump(child.stderr).catch(() => {});
  let exited = false;
  child.status.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  while (!/^ready$/m.test(text)) {
    if (exited || Date.now() > deadline) throw new Error(`The node on ${host} did not start:\n${text}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const did = /identity:\s+(did:key:\S+)/.exec(text)![1];
  const nodeId = /node id:\s+([0-9a-f]{64})/.exec(text)![1];
  return { host, dataDir, child, did, nodeId, output: () => text };
}

/** SIGTERM, then SIGKILL after 5 s. */
export async function stopNode(node: LabNode): Promise<void> {
  try {
    node.child.kill("SIGTERM");
  } catch { /* gone */ }
  const timer = setTimeout(() => {
    try {
      node.child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 5_000);
  await node.child.status;
  clearTimeout(timer);
}

/** Runs the CLI against a node's Unix socket (the socket is a file: the CLI need not run inside the lab). */
export async function cli(node: LabNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...PROFILE, join(ROOT, "main.ts"), "--data-dir", node.dataDir, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs the CLI with `--json` and parses its output; throws with its error text when it fails. */
export async function cliJson<T>(node: LabNode, args: string[]): Promise<T> {
  const out = await cli(node, [...args, "--json"]);
  if (out.code !== 0) throw new Error(`${args.join(" ")} on ${node.host}: ${out.stderr.trim() || out.stdout.trim()}`);
  return JSON.parse(out.stdout) as T;
}

/** Follows B's `peer.message` events until `text` shows up (true) or 10 s pass (false). */
export function watchEvents(node: LabNode, text: string): { ready: Promise<void>; seen: Promise<boolean> } {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...PROFILE, join(ROOT, "main.ts"), "--data-dir", node.dataDir, "events", "--json", "--types", "peer."],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  // The follower is subscribed once its process is up; give it a moment before the message goes.
  const ready = new Promise<void>((resolve) => setTimeout(resolve, 400));
  const seen = (async () => {
    const timer = setTimeout(() => child.kill("SIGTERM"), 10_000);
    let all = "";
    try {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        all += chunk;
        if (all.includes(text)) return true;
      }
      return false;
    } finally {
      clearTimeout(timer);
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    }
  })();
  return { ready, seen };
}

/** Waits until both nodes hold their TURN allocation (at most 10 s). */
async function turnReady(...nodes: LabNode[]): Promise<void> {
  type State = { reachability: { turn: { relayed: string | null; error?: string } | null } };
  for (const node of nodes) {
    for (let i = 0;; i++) {
      const turn = (await cliJson<State>(node, ["state"])).reachability.turn;
      if (turn?.relayed) break;
      if (turn?.error || i >= 40) throw new Error(`No TURN allocation on ${node.host}: ${turn?.error ?? "timeout"}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** The NAT type a node reports, once its first reachability check is done (at most 15 s). */
async function reportedNatType(node: LabNode): Promise<string> {
  type State = { reachability: { natType: string; checkedAt: number | null } };
  for (let i = 0; i < 60; i++) {
    const state = await cliJson<State>(node, ["state"]);
    if (state.reachability.checkedAt !== null && state.reachability.natType !== "unknown") {
      return state.reachability.natType;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return "unknown";
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Options of {@linkcode runMatrix}. */
export interface MatrixOptions {
  /** The pairs to run (default: the 10 unordered pairs of fc, rc, prc, sym). */
  pairs?: [NatMode, NatMode][];
  /** Connects per pair; the cell reports the median (default 3). */
  repeats?: number;
  /** Receives a line per step. */
  log?: (line: string) => void;
  /**
   * R introduces but does not relay, and A and B each hold a TURN allocation on the lab's coturn instead: where no
   * direct path exists, the session runs through TURN.
   */
  turn?: boolean;
}

/** Every unordered pair of NAT modes, A's no later than B's in fc, rc, prc, sym order. */
export function allPairs(): [NatMode, NatMode][] {
  const pairs: [NatMode, NatMode][] = [];
  for (let i = 0; i < MODES.length; i++) for (let j = i; j < MODES.length; j++) pairs.push([MODES[i], MODES[j]]);
  return pairs;
}

/** Runs the matrix in `lab` (which must run coturn). */
export async function runMatrix(lab: NatLab, options: MatrixOptions = {}): Promise<MatrixCell[]> {
  const log = options.log ?? (() => {});
  const repeats = options.repeats ?? 3;
  const work = await Deno.makeTempDir({ prefix: "nzcore-matrix-" });
  const stun = ["--stun", `${LAB.srv}:${LAB.stunPort}`];
  const r = await startNode(lab, "pub", join(work, "r"), [
    "--listen",
    `udp://${LAB.pub}:${PORT}`,
    "--listen",
    `tcp://${LAB.pub}:${PORT}`,
    ...(options.turn ? [] : ["--relay"]),
  ]);
  const turn = options.turn ? ["--turn", `turn://${LAB.turnUser}:${LAB.turnPassword}@${LAB.srv}:${LAB.stunPort}`] : [];
  const cells: MatrixCell[] = [];
  try {
    let round = 0;
    for (const [natA, natB] of options.pairs ?? allPairs()) {
      round++;
      await lab.setNat("gwA", natA);
      await lab.setNat("gwB", natB);
      const listen = ["--listen", `udp://0.0.0.0:${PORT}`];
      const [a, b] = await Promise.all([
        startNode(lab, "hostA", join(work, `a${round}`), [...listen, ...stun, ...turn]),
        startNode(lab, "hostB", join(work, `b${round}`), [...listen, ...stun, ...turn]),
      ]);
      const cell: MatrixCell = {
        natA,
        natB,
        path: "failed",
        medianMs: null,
        runsMs: [],
        delivered: false,
        reported: { a: "unknown", b: "unknown" },
      };
      try {
        for (const node of [a, b]) await cliJson(node, ["connect", `udp://${LAB.pub}:${PORT}`, "--once"]);
        for (let run = 0; run < repeats; run++) {
          if (options.turn && run === 0) await turnReady(a, b);
          const s = await cliJson<
            { method: string; elapsedMs: number; punchError?: string; path: { kind: string; transport: string } }
          >(
            a,
            ["connect", b.did, "--via", r.nodeId],
          );
          cell.runsMs.push(Math.round(s.elapsedMs));
          cell.path = s.path.kind === "direct" ? "direct" : "relayed";
          cell.transport = s.path.transport;
          if (s.punchError) cell.error = s.punchError;
          log(`${natA}/${natB} run ${run + 1}: ${cell.path} in ${Math.round(s.elapsedMs)} ms`);
          if (run < repeats - 1) {
            await cli(a, ["disconnect", b.nodeId]);
            // Both sides must have let the session go before the next punch.
            for (let i = 0; i < 100; i++) {
              const peers = await cliJson<{ sessions: { nodeId: string }[] }>(b, ["peers"]);
              if (!peers.sessions.some((p) => p.nodeId === a.nodeId)) break;
              await new Promise((res) => setTimeout(res, 50));
            }
          }
        }
        cell.medianMs = median(cell.runsMs);
        const text = `matrix ${natA}/${natB}`;
        const heard = watchEvents(b, text);
        await heard.ready;
        const sent = await cli(a, ["send", b.nodeId, text]);
        cell.delivered = sent.code === 0 && await heard.seen;
        cell.reported = { a: await reportedNatType(a), b: await reportedNatType(b) };
      } catch (error) {
        cell.path = "failed";
        cell.error = (error as Error).message;
        log(`${natA}/${natB}: ${cell.error}`);
      } finally {
        await Promise.all([stopNode(a), stopNode(b)]);
      }
      cells.push(cell);
    }
  } finally {
    await stopNode(r);
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return cells;
}

/** The matrix as text: rows A's NAT, columns B's NAT. */
export function formatMatrix(cells: readonly MatrixCell[]): string {
  const width = 18;
  const lines = [["A \\ B", ...MODES].map((s) => s.padEnd(width)).join("")];
  for (const a of MODES) {
    const row = [a.padEnd(width)];
    for (const b of MODES) {
      const cell = cells.find((c) => (c.natA === a && c.natB === b) || (c.natA === b && c.natB === a));
      const text = !cell
        ? "-"
        : cell.path === "failed"
        ? "FAILED"
        : `${cell.path === "relayed" && cell.transport === "turn" ? "turn" : cell.path} ${
          cell.medianMs === null ? "" : `${(cell.medianMs / 1000).toFixed(2)}s`
        }`;
      row.push(text.padEnd(width));
    }
    lines.push(row.join(""));
  }
  return lines.join("\n");
}

/** The CLI: runs the matrix in a lab of its own and prints it; exit code 1 when a pair failed. */
export async function main(args: string[]): Promise<number> {
  let repeats = 3;
  let turn = false;
  let pairs: [NatMode, NatMode][] | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--repeats") repeats = Number(args[++i]);
    else if (args[i] === "--turn") turn = true;
    else if (args[i] === "--pairs") {
      pairs = args[++i].split(",").map((p) => p.split(":") as [NatMode, NatMode]);
      for (const [x, y] of pairs) {
        if (!MODES.includes(x) || !MODES.includes(y)) throw new RangeError(`Invalid pair ${x}:${y}`);
      }
    } else throw new RangeError(`Unknown option ${args[i]}`);
  }
  if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError("--repeats must be a positive integer");
  await using lab = await NatLab.up({ upnp: false });
  const started = performance.now();
  const cells = await runMatrix(lab, { repeats, pairs, turn, log: (line) => console.log(line) });
  console.log("\n" + formatMatrix(cells));
  const ok = cells.every((c) => c.path !== "failed");
  console.log(
    `\n${cells.length} pairs, ${cells.filter((c) => c.path === "direct").length} direct, ${
      cells.filter((c) => c.path === "relayed").length
    } relayed, ${cells.filter((c) => c.path === "failed").length} failed (${
      ((performance.now() - started) / 1000).toFixed(0)
    } s)`,
  );
  console.log(JSON.stringify({
    matrix: cells.map(({ natA, natB, path, medianMs, runsMs, reported }) => ({
      natA,
      natB,
      path,
      medianMs,
      runsMs,
      reported,
    })),
  }));
  return ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
