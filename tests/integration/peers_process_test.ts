import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { cli, PROFILE, ROOT, startNode, tempDataDir } from "./_node_process.ts";

const LISTEN = ["--api", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:0", "--listen", "ws://127.0.0.1:0/nz"];

async function stateOf(node: { api(path: string): Promise<Response> }) {
  return await (await node.api("/v1/state")).json() as { identity: { did: string; nodeId: string }; listen: string[] };
}

/** Two node processes listening on TCP and WebSocket, with B's state and addresses; stopped and removed on dispose. */
async function twoNodes() {
  const dirA = await tempDataDir(), dirB = await tempDataDir();
  const a = await startNode(dirA.path, { args: LISTEN });
  const b = await startNode(dirB.path, { args: LISTEN });
  const sa = await stateOf(a), sb = await stateOf(b);
  return {
    dirA,
    dirB,
    a,
    b,
    sa,
    sb,
    tcpB: sb.listen.find((l) => l.startsWith("tcp://"))!,
    wsB: sb.listen.find((l) => l.startsWith("ws://"))!,
    async [Symbol.asyncDispose]() {
      for (const d of [a, b, dirA, dirB]) await d[Symbol.asyncDispose]();
    },
  };
}

/** Follows `nzcore events --json` of a node until `until` holds for the text seen. */
function follow(dataDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...PROFILE, join(ROOT, "main.ts"), "--data-dir", dataDir, "events", "--json", "--types", "peer.,token."],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  // A read outlives a timed-out wait: the next wait takes it over, so no chunk is lost.
  let pending: Promise<ReadableStreamReadResult<string>> | undefined;
  return {
    async until(test: (text: string) => boolean, timeoutMs = 15_000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (!test(seen)) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`Timed out; events so far:\n${seen}`);
        pending ??= reader.read();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), left)));
        const next = await Promise.race([pending, timeout]);
        clearTimeout(timer);
        if (next === "timeout") throw new Error(`Timed out; events so far:\n${seen}`);
        pending = undefined;
        if (next.done) throw new Error(`The follower ended; events so far:\n${seen}`);
        seen += next.value;
      }
      return seen;
    },
    async stop() {
      child.kill("SIGTERM");
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

Deno.test("two node processes connect over TCP and WebSocket, send messages, and disconnect, through the CLI", async () => {
  await using nodes = await twoNodes();
  const { dirA, dirB, a, b, sa, sb, tcpB, wsB } = nodes;
  equal(sb.listen.length, 2);
  match(tcpB, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  const events = follow(dirB.path);
  try {
    // The follower starts in its own process: wait until it is subscribed (it reports a token created for that).
    for (let i = 0; i < 100; i++) {
      const r = await b.api("/v1/tokens", { method: "POST", body: JSON.stringify({ name: `probe${i}` }) });
      await r.body?.cancel();
      if (await events.until((t) => t.includes('"token.created"'), 200).then(() => true, () => false)) break;
    }
    const connected = await cli(["--data-dir", dirA.path, "connect", tcpB, "--peer", sb.identity.did]);
    equal(connected.code, 0, connected.stderr);
    ok(connected.stdout.includes(sb.identity.did));
    await events.until((t) => t.includes('"peer.connected"'));

    const sent = await cli(["--data-dir", dirA.path, "send", sb.identity.nodeId.slice(0, 12), "hello from A"]);
    equal(sent.code, 0, sent.stderr);
    const file = join(dirA.path, "payload.bin");
    await Deno.writeFile(file, Uint8Array.of(0, 255, 1, 254));
    const sentFile = await cli(["--data-dir", dirA.path, "send", sb.identity.did, `@${file}`]);
    equal(sentFile.code, 0, sentFile.stderr);
    const text = await events.until((t) => t.includes("hello from A") && t.includes("AP8B/g=="));
    const message = text.split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.type === "peer.message");
    equal(message.data.nodeId, sa.identity.nodeId);
    equal(message.data.text, "hello from A");

    const peers = await cli(["--data-dir", dirB.path, "peers", "--json"]);
    const listed = JSON.parse(peers.stdout);
    equal(listed.sessions.length, 1);
    equal(listed.sessions[0].did, sa.identity.did);
    equal(listed.sessions[0].direction, "inbound");

    // The same peer over WebSocket: one session per peer remains.
    const overWs = await cli(["--data-dir", dirA.path, "connect", wsB, "--json"]);
    equal(overWs.code, 0, overWs.stderr);
    equal(JSON.parse(overWs.stdout).nodeId, sb.identity.nodeId);
    const afterWs = JSON.parse((await cli(["--data-dir", dirA.path, "peers", "--json"])).stdout);
    equal(afterWs.sessions.length, 1);
    equal(afterWs.sessions[0].address, wsB);
    const overWsSent = await cli(["--data-dir", dirA.path, "send", sb.identity.did, "over ws"]);
    equal(overWsSent.code, 0, overWsSent.stderr);
    await events.until((t) => t.includes("over ws"));

    const gone = await cli(["--data-dir", dirA.path, "disconnect", sb.identity.did]);
    equal(gone.code, 0, gone.stderr);
    await events.until((t) => t.includes('"peer.disconnected"'));
    const noSession = await cli(["--data-dir", dirA.path, "send", sb.identity.did, "too late"]);
    equal(noSession.code, 1);
    match(noSession.stderr, /No known peer|not/i);
  } finally {
    await events.stop();
  }
  await a.stop();
  await b.stop();
});

Deno.test("the peers API refuses bad requests and unreachable or mismatched peers with clear errors", async () => {
  await using nodes = await twoNodes();
  const { a, b, sb, tcpB } = nodes;
  const post = (body: unknown) => a.api("/v1/peers", { method: "POST", body: JSON.stringify(body) });

  const unknownField = await post({ address: tcpB, extra: 1 });
  equal(unknownField.status, 400);
  const badScheme = await post({ address: "quic://127.0.0.1:1" });
  equal(badScheme.status, 400);
  equal((await badScheme.json()).error.code, "invalid_request");
  // A port nothing listens on.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const unreachable = await post({ address: `tcp://127.0.0.1:${closedPort}` });
  equal(unreachable.status, 502);
  equal((await unreachable.json()).error.code, "peer_unreachable");
  const someoneElse = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
  const mismatch = await post({ address: tcpB, peer: someoneElse });
  equal(mismatch.status, 502);
  equal((await mismatch.json()).error.code, "peer_mismatch");
  const notConnected = await a.api(`/v1/peers/${sb.identity.nodeId}/messages`, {
    method: "POST",
    body: JSON.stringify({ text: "x" }),
  });
  equal(notConnected.status, 404);
  const both = await a.api(`/v1/peers/${sb.identity.nodeId}/messages`, {
    method: "POST",
    body: JSON.stringify({ text: "x", base64: "eA==" }),
  });
  equal(both.status, 400);
  // The node took all of it in its stride.
  const ok1 = await post({ address: tcpB });
  equal(ok1.status, 200);
  equal((await ok1.json()).nodeId, sb.identity.nodeId);
  await a.stop();
  await b.stop();
});

Deno.test("a node process shrugs off garbage, oversized frames and half-open floods on its listen port", async () => {
  await using nodes = await twoNodes();
  const { a, b, sb, tcpB } = nodes;
  const { hostname, port } = new URL(tcpB.replace("tcp:", "http:"));
  const connected = await a.api("/v1/peers", { method: "POST", body: JSON.stringify({ address: tcpB }) });
  equal(connected.status, 200);
  await connected.body?.cancel();
  const hostile: Deno.Conn[] = [];
  const open = () => Deno.connect({ hostname, port: Number(port) });
  // Random bytes, a length prefix of 4 GiB - 1, a frame that is not a handshake, and 40 connections that say nothing.
  for (const bytes of [crypto.getRandomValues(new Uint8Array(4096)), Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2)]) {
    const conn = await open();
    await conn.write(bytes).catch(() => {});
    hostile.push(conn);
  }
  const bogus = await open();
  await bogus.write(Uint8Array.of(0, 0, 0, 40, ...new Uint8Array(40).fill(9)));
  hostile.push(bogus);
  for (let i = 0; i < 40; i++) hostile.push(await open());
  // The node is alive, its API answers, and the existing session still carries messages.
  equal((await fetch(b.url + "/v1/health")).status, 200);
  const sent = await a.api(`/v1/peers/${sb.identity.nodeId}/messages`, {
    method: "POST",
    body: JSON.stringify({ text: "still fine" }),
  });
  equal(sent.status, 200, await sent.clone().text());
  await sent.body?.cancel();
  for (const conn of hostile) conn.close();
  const peers = await (await b.api("/v1/peers")).json();
  equal(peers.sessions.length, 1);
  ok(b.output().includes("too many pending handshakes") || b.output().includes("ended"), b.output());
  await a.stop();
  equal((await b.stop()).code, 0);
});
