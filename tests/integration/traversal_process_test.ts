import { equal, match, ok } from "node:assert/strict";
import { cli, startNode, tempDataDir } from "./_node_process.ts";

interface State {
  identity: { did: string; nodeId: string };
  listen: string[];
  reachability: {
    udp: string | null;
    stun: { server: string; mapped?: string }[];
    natType: string;
    servingStun: boolean;
  };
}

Deno.test("three node processes: UDP sessions, STUN from a peer, and a session through a rendezvous", async () => {
  await using dirR = await tempDataDir();
  await using dirA = await tempDataDir();
  await using dirB = await tempDataDir();
  const udp = ["--api", "127.0.0.1:0", "--listen", "udp://127.0.0.1:0"];
  await using r = await startNode(dirR.path, { args: [...udp, "--listen", "tcp://127.0.0.1:0", "--relay"] });
  const sr = await (await r.api("/v1/state")).json() as State;
  const udpR = sr.listen.find((l) => l.startsWith("udp://"))!;
  ok(sr.reachability.servingStun, "a node with a UDP socket answers STUN");
  await using a = await startNode(dirA.path, { args: [...udp, "--stun", udpR.slice("udp://".length)] });
  await using b = await startNode(dirB.path, { args: udp });
  const sa = await (await a.api("/v1/state")).json() as State;
  const sb = await (await b.api("/v1/state")).json() as State;

  // Both connect to R over UDP.
  for (const dir of [dirA.path, dirB.path]) {
    const out = await cli(["--data-dir", dir, "connect", udpR, "--json"]);
    equal(out.code, 0, out.stderr);
    const session = JSON.parse(out.stdout);
    equal(session.nodeId, sr.identity.nodeId);
    equal(session.path.transport, "udp");
  }

  // A learned its address from R's STUN server (the configured one) and from R as a connected UDP peer.
  const state = await cli(["--data-dir", dirA.path, "state"]);
  equal(state.code, 0, state.stderr);
  match(state.stdout, /nat:\s+open/);
  match(state.stdout, new RegExp(`stun ${udpR.slice("udp://".length).replace(/\./g, "\\.")}: ${sa.reachability.udp}`));

  // A reaches B through R: on loopback the punch opens a direct UDP path (both punch: either side may have dialed it).
  const via = await cli([
    "--data-dir",
    dirA.path,
    "connect",
    sb.identity.did,
    "--via",
    sr.identity.nodeId.slice(0, 12),
    "--json",
  ]);
  equal(via.code, 0, via.stderr);
  const session = JSON.parse(via.stdout);
  equal(session.nodeId, sb.identity.nodeId);
  equal(session.method, "direct");
  equal(session.path.kind, "direct");
  equal(session.path.transport, "udp");
  ok(session.elapsedMs < 5_000);
  const sent = await cli(["--data-dir", dirA.path, "send", sb.identity.nodeId, "through the punched path"]);
  equal(sent.code, 0, sent.stderr);
  const peers = await cli(["--data-dir", dirB.path, "peers"]);
  match(
    peers.stdout,
    new RegExp(`${sa.identity.nodeId.slice(0, 16)}\\s+(inbound|outbound)\\s+udp://127\\.0\\.0\\.1:\\d+\\s+direct udp`),
  );

  // Bad requests are refused clearly.
  const noPeer = await a.api("/v1/peers", { method: "POST", body: JSON.stringify({ via: sr.identity.nodeId }) });
  equal(noPeer.status, 400);
  await noPeer.body?.cancel();
  const unknownVia = await a.api("/v1/peers", {
    method: "POST",
    body: JSON.stringify({ peer: sb.identity.nodeId, via: "f".repeat(64) }),
  });
  equal(unknownVia.status, 404);
  await unknownVia.body?.cancel();
  // A peer the rendezvous does not know: neither punching nor the relay can reach it, and the answer says why.
  const nowhere = await a.api("/v1/peers", {
    method: "POST",
    body: JSON.stringify({ peer: "a".repeat(64), via: sr.identity.nodeId }),
  });
  equal(nowhere.status, 502);
  const body = await nowhere.json();
  equal(body.error.code, "peer_unreachable");
  match(body.error.message, /hole punching failed \(.*NOT_CONNECTED.*\), and so did the relay \(.*NOT_CONNECTED/);
});
