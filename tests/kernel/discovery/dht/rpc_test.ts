import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import { createKeyedHmac } from "../../../../kernel/crypto/keyed_hmac.ts";
import { hmacSha256, sha256 } from "../../../../kernel/crypto/mod.ts";
import { Identity } from "../../../../kernel/identity/identity.ts";
import { RateLimiter, Rpc, TOKEN_ROTATION_MS, TokenMinter, tokenOf } from "../../../../kernel/discovery/dht/rpc.ts";
import { UdpSocket } from "../../../../transport/udp.ts";

Deno.test("a token is the first 8 bytes of HMAC-SHA-256(secret, IP bytes || port) and binds the address", () => {
  const secret = new Uint8Array(32).fill(9);
  const minter = new TokenMinter(0, secret);
  const addr = { hostname: "192.0.2.1", port: 0x1d23 };
  const token = minter.mint(addr, 0);
  eql(token, hmacSha256(secret, Uint8Array.of(192, 0, 2, 1, 0x1d, 0x23)).subarray(0, 8));
  eql(tokenOf(createKeyedHmac(secret), addr), token);
  ok(minter.check(addr, token, 1));
  ok(!minter.check({ ...addr, port: addr.port + 1 }, token, 1), "another port");
  ok(!minter.check({ hostname: "192.0.2.2", port: addr.port }, token, 1), "another IP");
  ok(!minter.check(addr, token.subarray(0, 7), 1), "a short token");
});

Deno.test("a token stays valid for one rotation of the secret, not two", () => {
  const minter = new TokenMinter(0);
  const addr = { hostname: "2001:db8::1", port: 7475 };
  const token = minter.mint(addr, 0);
  ok(minter.check(addr, token, TOKEN_ROTATION_MS), "previous secret");
  ok(!minter.check(addr, token, 2 * TOKEN_ROTATION_MS), "two rotations later");
  const fresh = minter.mint(addr, 2 * TOKEN_ROTATION_MS);
  ok(!minter.check(addr, fresh, 10 * TOKEN_ROTATION_MS), "after a long pause both secrets are new");
});

Deno.test("the rate limiter lets a burst through per IP, refills at its rate, and caps everyone together", () => {
  const limiter = new RateLimiter(10, 5, 1000, 0);
  let allowed = 0;
  for (let i = 0; i < 20; i++) if (limiter.allow("192.0.2.1", 0)) allowed++;
  equal(allowed, 5);
  ok(limiter.allow("192.0.2.2", 0), "another IP has its own bucket");
  ok(!limiter.allow("192.0.2.1", 50));
  ok(limiter.allow("192.0.2.1", 100), "one token after 100 ms at 10/s");
  const global = new RateLimiter(100, 100, 3, 0);
  equal([1, 2, 3, 4].filter((i) => global.allow(`192.0.2.${i}`, 0)).length, 3);
});

async function pair() {
  const sa = await UdpSocket.bind("udp://127.0.0.1:0");
  const sb = await UdpSocket.bind("udp://127.0.0.1:0");
  const ia = Identity.generate("a"), ib = Identity.generate("b");
  const a = new Rpc({ socket: sa, signer: ia, handler: () => null, timeoutMs: 300 });
  const b = new Rpc({
    socket: sb,
    signer: ib,
    handler: (r) => r.message.type === "ping" ? { type: "pong", observed: r.from } : null,
  });
  return {
    a,
    b,
    sa,
    sb,
    ib,
    async [Symbol.asyncDispose]() {
      a.close();
      b.close();
      await sa.close();
      await sb.close();
    },
  };
}

Deno.test("request() gets a signed PONG naming the responder's key and our observed address", async () => {
  await using p = await pair();
  const reply = await p.a.request(p.sb.addr, { type: "ping" }, { sign: true, expectedId: sha256(p.ib.publicKey) });
  ok(reply.ok && reply.signed && reply.message.type === "pong");
  eql(reply.id, sha256(p.ib.publicKey));
  eql(reply.message.observed, p.sa.addr);
});

Deno.test("request() fails with mismatch when another key answers, and with timeout when none does", async () => {
  await using p = await pair();
  const wrong = await p.a.request(p.sb.addr, { type: "ping" }, { expectedId: new Uint8Array(32) });
  eql(wrong, { ok: false, reason: "mismatch" });
  const silent = await p.a.request(p.sb.addr, { type: "find_node", target: new Uint8Array(32) });
  eql(silent, { ok: false, reason: "timeout" });
  equal(p.a.stats.timeouts, 1);
});

Deno.test("a response that does not decode fails its request at once, and a stray one is counted as unsolicited", async () => {
  await using sa = await UdpSocket.bind("udp://127.0.0.1:0");
  await using junk = await UdpSocket.bind("udp://127.0.0.1:0");
  const a = new Rpc({ socket: sa, signer: Identity.generate("a"), handler: () => null, timeoutMs: 5000 });
  junk.route(() => true, (data, from) => {
    const reply = data.slice(0, 20);
    reply[0] = 0x93; // NODES, cut short, with the request's transaction ID
    junk.send(reply, from);
  });
  const started = performance.now();
  eql(await a.request(junk.addr, { type: "find_node", target: new Uint8Array(32) }), {
    ok: false,
    reason: "malformed",
  });
  ok(performance.now() - started < 1000);
  await junk.send(new Uint8Array(50).fill(0x91), sa.addr);
  await new Promise((r) => setTimeout(r, 50));
  equal(a.stats.dropped.unsolicited, 1);
  a.close();
});

Deno.test("a request whose first datagram is lost is sent again halfway through the timeout and succeeds", async () => {
  await using sa = await UdpSocket.bind("udp://127.0.0.1:0");
  await using sb = await UdpSocket.bind("udp://127.0.0.1:0");
  let seen = 0;
  // Drops the first datagram it gets, before the RPC layer's route sees it.
  sb.route(() => seen++ === 0, () => {});
  const a = new Rpc({ socket: sa, signer: Identity.generate("a"), handler: () => null, timeoutMs: 400 });
  const b = new Rpc({
    socket: sb,
    signer: Identity.generate("b"),
    handler: (r) => ({ type: "pong", observed: r.from }),
  });
  const started = performance.now();
  const reply = await a.request(sb.addr, { type: "ping" });
  ok(reply.ok);
  const elapsed = performance.now() - started;
  ok(elapsed >= 190 && elapsed < 400, `answered after the resend (${elapsed.toFixed(0)} ms)`);
  equal(a.stats.retransmits, 1);
  equal(a.stats.timeouts, 0);
  a.close();
  b.close();
});
