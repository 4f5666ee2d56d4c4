/**
 * Introductions and nz:// URIs end to end, through the CLI of real node
 * processes on loopback: `nzcore identity uri|qr` gives a node's URI (the QR
 * code scans back to it), `nzcore connect nz://...` dials and authenticates
 * it, and `nzcore introduce` makes a peer dial a third node when its policy
 * follows the introducer, and refuses it otherwise.
 */

import { equal, match, ok } from "node:assert/strict";
import { parseNzUri } from "../../kernel/discovery/nz_uri.ts";
import { scan } from "../kernel/cli/_qr_scan.ts";
import { cli, type NodeProcess, startNode, tempDataDir } from "./_node_process.ts";

// Nodes on loopback only: no LAN discovery (multicast on the host's interfaces) and no DHT, where this build has them.
const START_HELP = (await cli(["start", "--help"])).stdout;
const ARGS = [
  "--api",
  "127.0.0.1:0",
  "--listen",
  "tcp://127.0.0.1:0",
  ...["--no-lan", "--no-dht"].filter((flag) => START_HELP.includes(flag)),
];

async function uriOf(dataDir: string): Promise<string> {
  const out = await cli(["--data-dir", dataDir, "identity", "uri"]);
  equal(out.code, 0, out.stderr);
  return out.stdout.trim();
}

async function sessionsOf(node: NodeProcess): Promise<string[]> {
  const peers = await (await node.api("/v1/peers")).json() as { sessions: { nodeId: string }[] };
  return peers.sessions.map((s) => s.nodeId);
}

async function until(test: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("nzcore identity qr/uri, connect nz://..., and introduce, between node processes", async () => {
  await using dirA = await tempDataDir(), dirB = await tempDataDir(), dirC = await tempDataDir();
  await using dirD = await tempDataDir();
  await using _a = await startNode(dirA.path, { args: ARGS });
  await using b = await startNode(dirB.path, { args: ARGS });
  await using c = await startNode(dirC.path, { args: ARGS });
  await using _d = await startNode(dirD.path, { args: ARGS });

  // C's URI names its DID and its listen address; its QR code scans back to the URI printed under it.
  const uriC = await uriOf(dirC.path);
  const state = await (await c.api("/v1/state")).json();
  const parsed = parseNzUri(uriC);
  equal(parsed.did, state.identity.did);
  ok(parsed.addresses.includes(state.listen[0]), `${state.listen[0]} in ${uriC}`);
  const qr = await cli(["--data-dir", dirC.path, "identity", "qr"]);
  equal(qr.code, 0, qr.stderr);
  const lines = qr.stdout.trimEnd().split("\n");
  equal(lines.at(-1), uriC);
  equal(scan(lines.slice(0, -1).join("\n"), true), uriC);
  equal((await cli(["--data-dir", dirC.path, "identity", "qr", "--uri-only"])).stdout.trim(), uriC);

  // A and D dial C by its URI: they know C's address from now on.
  for (const dir of [dirA.path, dirD.path]) {
    const out = await cli(["--data-dir", dir, "connect", uriC]);
    equal(out.code, 0, out.stderr);
    match(out.stdout, new RegExp(`Connected to ${parsed.did}`));
  }
  const uriA = await uriOf(dirA.path);
  const uriB = await uriOf(dirB.path);
  const didB = parseNzUri(uriB).did;

  // D dialed B, so B knows neither D nor C: B's default policy (trusted) refuses D's introduction of C.
  equal((await cli(["--data-dir", dirD.path, "connect", uriB])).code, 0);
  const refused = await cli(["--data-dir", dirD.path, "introduce", didB, parsed.did]);
  equal(refused.code, 1, refused.stdout + refused.stderr);
  match(refused.stdout, /refused \(refused\): neither the introducer nor the introduced node is known/);
  equal((await sessionsOf(b)).includes(parsed.nodeId), false);

  // B dials A (B now knows A): A's introduction of C is followed, and B dials C.
  equal((await cli(["--data-dir", dirB.path, "connect", uriA])).code, 0);
  const introduced = await cli(["--data-dir", dirA.path, "introduce", didB, parsed.did]);
  equal(introduced.code, 0, introduced.stdout + introduced.stderr);
  match(introduced.stdout, /Introduced .* \(1 addresses\) to .*: dialing/);
  await until(async () => (await sessionsOf(b)).includes(parsed.nodeId), "B's session with C");
  await until(async () => (await sessionsOf(c)).includes(parseNzUri(uriB).nodeId), "C's session with B");

  // Introduced again, B is connected already.
  const again = await cli(["--data-dir", dirA.path, "introduce", didB, parsed.did, "--json"]);
  equal(again.code, 0);
  equal(JSON.parse(again.stdout).status, "connected");
});

Deno.test("nzcore connect refuses a malformed nz:// URI with the reason, and exits 1", async () => {
  await using dir = await tempDataDir();
  await using _node = await startNode(dir.path, { args: ARGS });
  const out = await cli(["--data-dir", dir.path, "connect", "nz://z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp#x"]);
  equal(out.code, 1);
  match(out.stderr, /fragment/);
});
