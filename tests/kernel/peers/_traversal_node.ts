/**
 * A node for the NAT lab tests of relay and hole punching: one process per
 * lab host, printing JSON lines. Roles:
 *
 * - `r BIND`: a rendezvous and relay listening on `udp://BIND`; prints `{ role, nodeId }` and runs until killed.
 * - `b R_ADDR R_ID`: connects to R over UDP, serves introductions and relayed sessions; prints `{ role, nodeId }`,
 *   then `{ message, path }` for each message it receives.
 * - `a R_ADDR R_ID B_ID PUNCH_MS`: connects to R over UDP, punches toward B through R; when no direct path opens within
 *   PUNCH_MS, connects through R as relay; sends a message to B and prints `{ result, path, punchError? }`.
 * - `a R_ADDR R_ID B_ID PUNCH_MS upgrade`: connects to B through R as relay first, sends a message, then upgrades the
 *   relayed session (punching through R), sends another and prints `{ result, path }`.
 *
 * With STUN=HOST:PORT in the environment, A and B add the address a STUN server maps their UDP socket to as a
 * candidate (as the node's reachability module would); A shows it as `stun` in its result.
 *
 * Usage: deno run -A tests/kernel/peers/_traversal_node.ts ROLE ARGS...
 */

import { utf8 } from "../../../kernel/bytes.ts";
import { type Candidate, punch, servePunch, upgradeRelayed } from "../../../kernel/peers/punch.ts";
import { relayConnect, serveRelay } from "../../../kernel/peers/relay.ts";
import { StunClient } from "../../../transport/stun/client.ts";
import { parseUdpAddr } from "../../../transport/udp.ts";
import { peer } from "./_peer.ts";

const [role, ...args] = Deno.args;
const print = (line: Record<string, unknown>) => console.log(JSON.stringify(line));

const node = await peer();
const manager = node.manager;
const stunServer = Deno.env.get("STUN");
let stunMapped: string | undefined;
/** The STUN-mapped address of the node's UDP socket, as a candidate. */
async function stunCandidates(): Promise<Candidate[]> {
  if (!stunServer) return [];
  using client = new StunClient(await manager.ensureUdpSocket());
  const { mapped } = await client.binding(parseUdpAddr(stunServer));
  stunMapped = `${mapped.hostname}:${mapped.port}`;
  return [{ kind: "stun", addr: mapped }];
}
serveRelay(manager, { relay: { enabled: role === "r" } });
servePunch(manager, { rendezvous: { enabled: role === "r" }, candidates: stunCandidates });

if (role === "r") {
  await manager.listen([`udp://${args[0]}`]);
  print({ role, nodeId: node.nodeId });
  await new Promise(() => {});
}

const [rAddr, rId] = args;
await manager.listen(["udp://0.0.0.0:0"]);
await manager.connect(rAddr, { expectedPeer: rId });

if (role === "b") {
  print({ role, nodeId: node.nodeId });
  for (;;) {
    const message = await node.next("peer.message", (d) => !("seen" in d));
    message.seen = true;
    print({ message: message.text, path: manager.session(String(message.nodeId)).path() });
  }
}

if (role === "a") {
  const [bId, punchMs, mode] = args.slice(2);
  const started = performance.now();
  if (mode === "upgrade") {
    const relayed = await relayConnect(manager, rId, bId);
    await manager.send(bId, utf8(`hello over ${relayed.path().kind}`));
    const direct = await upgradeRelayed(manager, relayed, {
      attempts: 1,
      timeoutMs: Number(punchMs),
      candidates: stunCandidates,
    });
    await manager.send(bId, utf8(`hello over ${manager.session(bId).path().kind}`));
    const path = manager.session(bId).path();
    print({ result: path.kind, path, upgraded: direct !== null, ms: Math.round(performance.now() - started) });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await node[Symbol.asyncDispose]();
    Deno.exit(0);
  }
  let punchError: string | undefined;
  let session;
  try {
    session = await punch(manager, rId, bId, { timeoutMs: Number(punchMs), candidates: stunCandidates });
  } catch (error) {
    punchError = (error as Error).message;
    session = await relayConnect(manager, rId, bId);
  }
  await manager.send(bId, utf8(`hello over ${session.path().kind}`));
  const path = session.path();
  print({ result: path.kind, path, punchError, stun: stunMapped, ms: Math.round(performance.now() - started) });
  await new Promise((resolve) => setTimeout(resolve, 500));
  await node[Symbol.asyncDispose]();
  Deno.exit(0);
}
