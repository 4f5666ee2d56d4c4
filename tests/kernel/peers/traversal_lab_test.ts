/**
 * Relay and hole punching between real NATs: the NAT lab (scripts/nat_lab.ts)
 * with R on `pub`, A on `hostA` behind gwA and B on `hostB` behind gwB, one
 * process per node (`_traversal_node.ts`). Needs root and the lab's tools;
 * skips with the reason otherwise.
 */

import { equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LAB, type LabHost, labUnavailable, NatLab } from "../../../scripts/nat_lab.ts";

const options = { natA: "prc", natB: "prc", upnp: false } as const;
const unavailable = await labUnavailable(options);
if (unavailable) console.log(`traversal_lab_test skipped: ${unavailable}`);

const FIXTURE = fileURLToPath(new URL("./_traversal_node.ts", import.meta.url));

/** Starts the fixture in `host`; returns a reader of its JSON lines. */
function start(lab: NatLab, host: LabHost, args: string[]) {
  const child = lab.spawn(host, [Deno.execPath(), "run", "-A", "--quiet", FIXTURE, ...args], {
    env: { STUN: `${LAB.srv}:3478` },
  });
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  child.stderr.cancel().catch(() => {});
  let buffer = "";
  return {
    child,
    async next(ms = 20_000): Promise<Record<string, unknown>> {
      const deadline = Date.now() + ms;
      for (;;) {
        const newline = buffer.indexOf("\n");
        if (newline >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.startsWith("{")) return JSON.parse(line);
          continue;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`No line from ${host} within ${ms} ms`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const chunk = await Promise.race([
          lines.read(),
          new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`${host}: timed out`)), left)),
        ]).finally(() => clearTimeout(timer));
        if (chunk.done) throw new Error(`${host}'s node exited`);
        buffer += chunk.value;
      }
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await lines.cancel().catch(() => {});
      await child.status;
    },
  };
}

async function reach(lab: NatLab, mode: string[] = []) {
  const rAddr = `udp://${LAB.pub}:7475`;
  const r = start(lab, "pub", ["r", `${LAB.pub}:7475`]);
  try {
    const { nodeId: rId } = await r.next();
    const b = start(lab, "hostB", ["b", rAddr, String(rId)]);
    try {
      const { nodeId: bId } = await b.next();
      const a = start(lab, "hostA", ["a", rAddr, String(rId), String(bId), "4000", ...mode]);
      try {
        const result = await a.next(30_000);
        const atB = [await b.next()];
        if (mode.length > 0) atB.push(await b.next());
        return { result, atB: atB[0], later: atB[1] };
      } finally {
        await a.stop();
      }
    } finally {
      await b.stop();
    }
  } finally {
    await r.stop();
  }
}

Deno.test({
  name:
    "behind two port-restricted cone NATs, punching gives a direct UDP session; with a symmetric NAT, the relay; a relayed session between cones is upgraded",
  ignore: unavailable !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await NatLab.up(options);
    const prc = await reach(lab);
    console.log("prc/prc:", JSON.stringify(prc));
    equal(prc.result.result, "direct", String(prc.result.punchError));
    const path = prc.result.path as Record<string, unknown>;
    equal(path.transport, "udp");
    ok(String(path.remoteAddr).startsWith(`udp://${LAB.gwB}:`), `B is reached at gwB's address: ${path.remoteAddr}`);
    ok(String(prc.result.stun).startsWith(`${LAB.gwA}:`), `A's STUN-mapped candidate: ${prc.result.stun}`);
    equal(prc.atB.message, "hello over direct");
    equal((prc.atB.path as Record<string, unknown>).kind, "direct");

    await lab.setNat("gwB", "sym");
    const sym = await reach(lab);
    console.log("prc/sym:", JSON.stringify(sym));
    equal(sym.result.result, "relayed");
    ok(String(sym.result.punchError).includes("No handshake"), String(sym.result.punchError));
    equal((sym.result.path as Record<string, unknown>).transport, "relay");
    equal(sym.atB.message, "hello over relayed");
    equal((sym.atB.path as Record<string, unknown>).via, (sym.result.path as Record<string, unknown>).via);

    // A relayed session between two port-restricted cones is upgraded: punched through the relay as rendezvous.
    await lab.setNat("gwB", "prc");
    const upgrade = await reach(lab, ["upgrade"]);
    console.log("upgrade prc/prc:", JSON.stringify(upgrade));
    equal(upgrade.result.upgraded, true);
    equal(upgrade.result.result, "direct");
    equal(upgrade.atB.message, "hello over relayed");
    equal(upgrade.later?.message, "hello over direct");
    equal((upgrade.later?.path as Record<string, unknown>).transport, "udp");
  },
});
