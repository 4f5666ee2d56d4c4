import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import {
  addStunAttribute,
  createStunMessage,
  decodeStunMessage,
  discoverNatBehavior,
  encodeStunMessage,
  shortTermKey,
  STUN_METHOD_BINDING,
  StunClient,
  StunError,
  StunServer,
  UdpSocket,
  USERNAME,
  XOR_MAPPED_ADDRESS,
} from "../../../transport/mod.ts";
import { bindRfc5780Sockets, collect } from "./_sockets.ts";

Deno.test("binding() learns the socket's own address from a StunServer on loopback", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using server = new StunServer(serverSocket);
  using client = new StunClient(clientSocket);
  const result = await client.binding(serverSocket.addr, { fingerprint: true });
  eql(result.mapped, clientSocket.addr);
  eql(result.from, serverSocket.addr);
  equal(result.otherAddress, undefined);
  equal(result.responseOrigin, undefined);
  ok(result.rttMs >= 0 && result.rttMs < 1000);
  equal(server.stats.answered, 1);
  equal(client.stats.transmissions, 1);
  equal(client.stats.responses, 1);
});

Deno.test("an RFC 5780 server answers CHANGE-REQUEST from its other sockets, with OTHER-ADDRESS and RESPONSE-ORIGIN", async () => {
  await using sockets = await bindRfc5780Sockets();
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using _server = new StunServer(sockets);
  using client = new StunClient(clientSocket);
  const cases = [
    [false, false, sockets.primary],
    [false, true, sockets.alternatePort!],
    [true, false, sockets.alternateIp!],
    [true, true, sockets.alternateBoth!],
  ] as const;
  for (const [changeIp, changePort, from] of cases) {
    const result = await client.binding(sockets.primary.addr, { changeIp, changePort });
    eql(result.mapped, clientSocket.addr);
    eql(result.from, from.addr, `changeIp ${changeIp} changePort ${changePort}`);
    eql(result.responseOrigin, from.addr);
  }
  const fromPrimary = await client.binding(sockets.primary.addr);
  eql(fromPrimary.otherAddress, sockets.alternateBoth!.addr);
  // A request to the alternate address names the primary as its other address.
  const fromAlternate = await client.binding(sockets.alternateBoth!.addr);
  eql(fromAlternate.otherAddress, sockets.primary.addr);
});

Deno.test("discoverNatBehavior() against our RFC 5780 server on loopback finds no NAT", async () => {
  await using sockets = await bindRfc5780Sockets();
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using _server = new StunServer(sockets);
  using client = new StunClient(clientSocket);
  const found = await discoverNatBehavior(client, sockets.primary.addr);
  eql(found, {
    mapping: "endpoint-independent",
    filtering: "endpoint-independent",
    publicAddr: clientSocket.addr,
    local: true,
    natType: "open",
  });
});

Deno.test("discoverNatBehavior() reports udp-blocked when the server never answers", async () => {
  await using silent = await UdpSocket.bind("127.0.0.1:0");
  const swallowed = collect(silent);
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using client = new StunClient(clientSocket);
  const found = await discoverNatBehavior(client, silent.addr, { mappingTimers: { rtoMs: 10, rc: 2, rm: 2 } });
  eql(found, { mapping: "unknown", filtering: "unknown", publicAddr: null, local: false, natType: "udp-blocked" });
  equal(swallowed.received.length, 2);
});

Deno.test("short-term credentials: the right password is answered and signed, a wrong one gets 401, none gets 400", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using _server = new StunServer(serverSocket, { credentials: (u) => u === "alice" ? "s3cret" : undefined });
  using client = new StunClient(clientSocket);
  const ok1 = await client.binding(serverSocket.addr, { credentials: { username: "alice", password: "s3cret" } });
  eql(ok1.mapped, clientSocket.addr);
  await rejects(
    client.binding(serverSocket.addr, { credentials: { username: "alice", password: "wrong" } }),
    (e) => e instanceof StunError && e.code === 401 && e.reason === "Unauthenticated" && e.response?.class === "error",
  );
  await rejects(
    client.binding(serverSocket.addr, { credentials: { username: "mallory", password: "s3cret" } }),
    (e) => e instanceof StunError && e.code === 401,
  );
  await rejects(client.binding(serverSocket.addr), (e) => e instanceof StunError && e.code === 400);
  // MESSAGE-INTEGRITY-SHA256 is answered in kind.
  const request = createStunMessage(STUN_METHOD_BINDING, "request");
  addStunAttribute(request, USERNAME, "alice");
  const { message } = await client.request(serverSocket.addr, request, {
    integrity: { key: shortTermKey("s3cret"), algorithm: "sha256" },
  });
  ok(message.messageIntegritySha256 && !message.messageIntegrity);
  equal(client.stats.badIntegrity, 0);
});

Deno.test("the client ignores responses with a wrong transaction ID, integrity or fingerprint, and counts them", async () => {
  await using fake = await UdpSocket.bind("127.0.0.1:0");
  const inbox = collect(fake);
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using client = new StunClient(clientSocket, { rtoMs: 5000 });
  const key = shortTermKey("right");
  const pending = client.request(fake.addr, createStunMessage(STUN_METHOD_BINDING, "request"), {
    integrity: { key },
  });
  const got = (await inbox.next())!;
  const request = decodeStunMessage(got.data);
  const answer = (port: number, options: { id?: Uint8Array; key?: Uint8Array; fingerprint?: boolean } = {}) => {
    const m = createStunMessage(STUN_METHOD_BINDING, "success", { transactionId: options.id ?? request.transactionId });
    addStunAttribute(m, XOR_MAPPED_ADDRESS, { hostname: "192.0.2.1", port });
    return encodeStunMessage(m, { integrity: options.key && { key: options.key }, fingerprint: options.fingerprint });
  };
  await fake.send(answer(1, { id: new Uint8Array(12), key }), got.from); // wrong transaction ID
  await fake.send(answer(2, { key: shortTermKey("wrong") }), got.from); // wrong integrity
  await fake.send(answer(3), got.from); // no integrity at all
  const badFingerprint = answer(4, { key, fingerprint: true });
  badFingerprint[badFingerprint.length - 1] ^= 1;
  await fake.send(badFingerprint, got.from);
  await fake.send(answer(5, { key, fingerprint: true }), got.from); // the real one
  const response = await pending;
  eql(XOR_MAPPED_ADDRESS.decode(response.message.attributes[0].value, request.transactionId), {
    hostname: "192.0.2.1",
    port: 5,
  });
  equal(client.stats.unmatched, 1);
  equal(client.stats.badIntegrity, 2);
  equal(client.stats.badFingerprint, 1);
  equal(client.stats.responses, 1);
});

Deno.test("an error response rejects with a StunError carrying its code and reason", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using _server = new StunServer(serverSocket);
  using client = new StunClient(clientSocket);
  const request = createStunMessage(STUN_METHOD_BINDING, "request");
  request.attributes.push({ type: 0x7777, value: new Uint8Array(4) });
  await rejects(
    client.request(serverSocket.addr, request),
    (e) => e instanceof StunError && e.code === 420 && e.reason === "Unknown Attribute",
  );
});

Deno.test("a server that drops the first two requests is still answered by a retransmission", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  let dropped = 0;
  // The swallowing route sits before the server's: it eats the first two requests.
  serverSocket.route(() => dropped < 2, () => dropped++);
  using _server = new StunServer(serverSocket);
  using client = new StunClient(clientSocket, { rtoMs: 20 });
  const result = await client.binding(serverSocket.addr);
  eql(result.mapped, clientSocket.addr);
  equal(dropped, 2);
  equal(client.stats.transmissions, 3);
});

Deno.test("an unreachable server times out after Rc transmissions on the RFC 8489 schedule", async () => {
  await using silent = await UdpSocket.bind("127.0.0.1:0");
  const arrivals: number[] = [];
  silent.route(() => true, () => arrivals.push(performance.now()));
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using client = new StunClient(clientSocket);
  const rto = 20, rc = 4, rm = 4;
  const started = performance.now();
  await rejects(
    client.binding(silent.addr, { rtoMs: rto, rc, rm }),
    (e) => e instanceof StunError && e.code === undefined && /timed out after 4 transmissions/.test(e.message),
  );
  const elapsed = performance.now() - started;
  // Sends at 0, 20, 60, 140 ms; gives up at 140 + 4 * 20 = 220 ms.
  equal(arrivals.length, rc);
  for (let i = 1; i < rc; i++) {
    const gap = arrivals[i] - arrivals[i - 1];
    ok(gap >= rto * 2 ** (i - 1) - 3, `gap ${i} is ${gap} ms, expected >= ${rto * 2 ** (i - 1)}`);
  }
  ok(elapsed >= 217 && elapsed < 2000, `gave up after ${elapsed} ms, expected about 220`);
  equal(client.stats.timeouts, 1);
});

Deno.test("request() rejects with the signal's reason when aborted, and close() fails what is pending", async () => {
  await using silent = await UdpSocket.bind("127.0.0.1:0");
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  const client = new StunClient(clientSocket);
  const controller = new AbortController();
  const aborted = client.binding(silent.addr, { signal: controller.signal });
  controller.abort(new Error("stop"));
  await rejects(aborted, /stop/);
  const pending = client.binding(silent.addr);
  client.close();
  await rejects(pending, (e) => e instanceof StunError && /closed/.test(e.message));
  await rejects(client.binding(silent.addr), StunError);
});

Deno.test("bindingOverTcp() reads a response framed by its STUN header, even split across reads", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    using conn = await listener.accept();
    const buffer = new Uint8Array(1024);
    const n = (await conn.read(buffer))!;
    const request = decodeStunMessage(buffer.subarray(0, n));
    const response = createStunMessage(STUN_METHOD_BINDING, "success", { transactionId: request.transactionId });
    addStunAttribute(response, XOR_MAPPED_ADDRESS, conn.remoteAddr as Deno.NetAddr);
    const bytes = encodeStunMessage(response, { fingerprint: true });
    await conn.write(bytes.subarray(0, 7));
    await new Promise((r) => setTimeout(r, 20));
    await conn.write(bytes.subarray(7));
    return conn.remoteAddr as Deno.NetAddr;
  })();
  await using clientSocket = await UdpSocket.bind("127.0.0.1:0");
  using client = new StunClient(clientSocket);
  const result = await client.bindingOverTcp({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port });
  const remote = await served;
  eql(result.mapped, { hostname: remote.hostname, port: remote.port });
  await rejects(client.bindingOverTcp({ hostname: "127.0.0.1", port: 1 }), StunError);
});
