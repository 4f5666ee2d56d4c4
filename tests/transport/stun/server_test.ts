import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import fc from "fast-check";
import {
  addStunAttribute,
  CHANGE_REQUEST,
  createStunMessage,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  ERROR_CODE,
  getStunAttribute,
  isStunServerDatagram,
  OTHER_ADDRESS,
  PADDING,
  RESPONSE_ORIGIN,
  RESPONSE_PORT,
  SOFTWARE,
  STUN_AMPLIFICATION_ALLOWANCE,
  STUN_METHOD_BINDING,
  StunClient,
  type StunMessage,
  StunServer,
  UdpSocket,
  UNKNOWN_ATTRIBUTES,
  verifyStunFingerprint,
  XOR_MAPPED_ADDRESS,
} from "../../../transport/mod.ts";
import { bindRfc5780Sockets, collect } from "./_sockets.ts";

/** Sends raw bytes from `from` to `to` and returns the decoded answer, or null if none comes within `ms`. */
async function ask(
  from: UdpSocket,
  inbox: ReturnType<typeof collect>,
  to: UdpSocket,
  bytes: Uint8Array,
  ms = 300,
): Promise<{ message: DecodedStunMessage; size: number; from: { hostname: string; port: number } } | null> {
  await from.send(bytes, to.addr);
  const got = await inbox.next(ms);
  return got && { message: decodeStunMessage(got.data), size: got.data.length, from: got.from };
}

function binding(build?: (m: StunMessage) => void): StunMessage {
  const m = createStunMessage(STUN_METHOD_BINDING, "request");
  build?.(m);
  return m;
}

Deno.test("the server answers with XOR-MAPPED-ADDRESS, echoes FINGERPRINT, and sends SOFTWARE only when configured", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using peer = await UdpSocket.bind("127.0.0.1:0");
  const inbox = collect(peer);
  using server = new StunServer(serverSocket);
  const plain = (await ask(peer, inbox, serverSocket, encodeStunMessage(binding())))!;
  equal(plain.message.class, "success");
  eql(getStunAttribute(plain.message, XOR_MAPPED_ADDRESS), peer.addr);
  eql(plain.message.attributes.map((a) => a.type), [XOR_MAPPED_ADDRESS.type]);
  equal(plain.message.fingerprint, undefined);
  const withFp = (await ask(peer, inbox, serverSocket, encodeStunMessage(binding(), { fingerprint: true })))!;
  ok(verifyStunFingerprint(withFp.message));
  server.close();
  using named = new StunServer(serverSocket, { software: "nzcore" });
  const soft = (await ask(peer, inbox, serverSocket, encodeStunMessage(binding())))!;
  equal(getStunAttribute(soft.message, SOFTWARE), "nzcore");
  equal(named.stats.answered, 1);
});

Deno.test("the server answers 420 with UNKNOWN-ATTRIBUTES, 400 to another method, and nothing to an indication", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using peer = await UdpSocket.bind("127.0.0.1:0");
  const inbox = collect(peer);
  using server = new StunServer(serverSocket);
  const unknown = binding((m) => {
    m.attributes.push({ type: 0x7777, value: new Uint8Array(4) }, { type: 0xc001, value: new Uint8Array(4) });
    addStunAttribute(m, CHANGE_REQUEST, { changeIp: true, changePort: false }); // no alternate socket: unknown here
  });
  const r420 = (await ask(peer, inbox, serverSocket, encodeStunMessage(unknown)))!;
  equal(r420.message.class, "error");
  eql(getStunAttribute(r420.message, ERROR_CODE), { code: 420, reason: "Unknown Attribute" });
  eql(getStunAttribute(r420.message, UNKNOWN_ATTRIBUTES), [0x7777, CHANGE_REQUEST.type]);
  const allocate = createStunMessage(0x003, "request");
  const r400 = (await ask(peer, inbox, serverSocket, encodeStunMessage(allocate)))!;
  equal(getStunAttribute(r400.message, ERROR_CODE)?.code, 400);
  equal(r400.message.method, 0x003);
  equal(await ask(peer, inbox, serverSocket, encodeStunMessage(createStunMessage(1, "indication"))), null);
  equal(server.stats.indications, 1);
  equal(server.stats.errors, 2);
});

Deno.test("malformed datagrams get no answer and do not stop the server", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using peer = await UdpSocket.bind("127.0.0.1:0");
  const inbox = collect(peer);
  using server = new StunServer(serverSocket, { rateLimit: { perSecond: 1e6, burst: 1e6 } });
  const good = encodeStunMessage(binding(), { fingerprint: true });
  const badFingerprint = good.slice();
  badFingerprint[badFingerprint.length - 1] ^= 0xff;
  const truncatedAttr = encodeStunMessage(binding((m) => addStunAttribute(m, SOFTWARE, "abcdefgh")));
  new DataView(truncatedAttr.buffer).setUint16(22, 200); // the attribute runs past the end
  const badAddress = encodeStunMessage(binding((m) => m.attributes.push({ type: 0x0020, value: new Uint8Array(3) })));
  for (const bytes of [badFingerprint, truncatedAttr, badAddress]) {
    equal(await ask(peer, inbox, serverSocket, bytes, 100), null);
  }
  // Random datagrams that pass isStunDatagram (header) but carry garbage: never an exception, never an answer to them.
  const samples = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 64 }), 300);
  for (const body of samples) {
    const bytes = new Uint8Array(20 + (body.length & ~3));
    bytes.set(good.subarray(0, 20));
    bytes.set(body.subarray(0, body.length & ~3), 20);
    new DataView(bytes.buffer).setUint16(2, bytes.length - 20);
    await peer.send(bytes, serverSocket.addr);
  }
  const answer = (await ask(peer, inbox, serverSocket, good, 1000))!;
  // Garbage that happened to decode may have been answered: read until the good one's transaction.
  let last = answer;
  while (last.message.transactionId.join() !== good.subarray(8, 20).join()) {
    const next = await inbox.next(1000);
    ok(next, "the good request was answered");
    last = { message: decodeStunMessage(next.data), size: next.data.length, from: next.from };
  }
  equal(last.message.class, "success");
  ok(server.stats.malformed >= 3);
});

Deno.test("a response is never more than 48 bytes larger than its request, whatever it asks for", async () => {
  await using sockets = await bindRfc5780Sockets();
  await using peer = await UdpSocket.bind("127.0.0.1:0");
  const inbox = collect(peer);
  using server = new StunServer(sockets, {
    software: "x".repeat(700),
    allowResponsePort: false,
    rateLimit: { perSecond: 1000, burst: 1000 },
  });
  const requests: [string, Uint8Array][] = [
    ["bare", encodeStunMessage(binding())],
    ["fingerprint", encodeStunMessage(binding(), { fingerprint: true })],
    ["padding 400", encodeStunMessage(binding((m) => addStunAttribute(m, PADDING, new Uint8Array(400))))],
    [
      "change both",
      encodeStunMessage(binding((m) => addStunAttribute(m, CHANGE_REQUEST, { changeIp: true, changePort: true }))),
    ],
    ["response port (refused)", encodeStunMessage(binding((m) => addStunAttribute(m, RESPONSE_PORT, peer.addr.port)))],
  ];
  // Random requests: PADDING of any length, optional attributes nobody knows, a fingerprint or not.
  const random = fc.sample(
    fc.record({
      padding: fc.option(fc.integer({ min: 0, max: 200 })),
      extra: fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 3 }),
      fingerprint: fc.boolean(),
    }),
    40,
  );
  for (const [i, r] of random.entries()) {
    const m = binding((m) => {
      if (r.padding !== null) addStunAttribute(m, PADDING, new Uint8Array(r.padding));
      for (const size of r.extra) m.attributes.push({ type: 0x8100 + size, value: new Uint8Array(size) });
    });
    requests.push([`random ${i}`, encodeStunMessage(m, { fingerprint: r.fingerprint })]);
  }
  for (const [name, bytes] of requests) {
    const got = await ask(peer, inbox, sockets.primary, bytes);
    ok(got, `${name}: answered`);
    ok(
      got.size <= Math.max(bytes.length, 20) + STUN_AMPLIFICATION_ALLOWANCE,
      `${name}: ${got.size} bytes for a ${bytes.length}-byte request`,
    );
    if (name === "response port (refused)") {
      eql(getStunAttribute(got.message, UNKNOWN_ATTRIBUTES), [RESPONSE_PORT.type]);
      continue;
    }
    eql(getStunAttribute(got.message, XOR_MAPPED_ADDRESS), peer.addr, name);
    // The 700-byte SOFTWARE never fits: it is left out rather than amplifying.
    equal(getStunAttribute(got.message, SOFTWARE), undefined, name);
    if (name === "padding 400") equal(getStunAttribute(got.message, PADDING)?.length, 400);
    if (name === "bare") {
      ok(getStunAttribute(got.message, OTHER_ADDRESS), "RFC 5780 attributes fit a bare IPv4 request");
    }
  }
  equal(server.stats.suppressed, 0);
});

Deno.test("RESPONSE-PORT, when enabled, answers another port of the source and stays within the bound; with PADDING it is 400", async () => {
  await using sockets = await bindRfc5780Sockets();
  await using peer = await UdpSocket.bind("127.0.0.1:0");
  await using other = await UdpSocket.bind("127.0.0.1:0");
  const inbox = collect(peer);
  const otherInbox = collect(other);
  using _server = new StunServer(sockets, { allowResponsePort: true });
  const request = encodeStunMessage(binding((m) => addStunAttribute(m, RESPONSE_PORT, other.addr.port)));
  await peer.send(request, sockets.primary.addr);
  const got = (await otherInbox.next(500))!;
  ok(got, "answered to the RESPONSE-PORT");
  ok(got.data.length <= request.length + STUN_AMPLIFICATION_ALLOWANCE);
  const message = decodeStunMessage(got.data);
  eql(getStunAttribute(message, XOR_MAPPED_ADDRESS), peer.addr);
  eql(getStunAttribute(message, RESPONSE_ORIGIN), sockets.primary.addr);
  eql(getStunAttribute(message, OTHER_ADDRESS), sockets.alternateBoth!.addr);
  const both = encodeStunMessage(binding((m) => {
    addStunAttribute(m, RESPONSE_PORT, other.addr.port);
    addStunAttribute(m, PADDING, new Uint8Array(8));
  }));
  const refused = (await ask(peer, inbox, sockets.primary, both))!;
  equal(getStunAttribute(refused.message, ERROR_CODE)?.code, 400);
});

Deno.test("the per-source token bucket drops a flood from one address, not another's requests", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using flooder = await UdpSocket.bind("127.0.0.1:0");
  await using other = await UdpSocket.bind("127.0.0.2:0");
  const floodInbox = collect(flooder);
  let now = 0;
  using server = new StunServer(serverSocket, { rateLimit: { perSecond: 10, burst: 5 }, now: () => now });
  for (let i = 0; i < 50; i++) await flooder.send(encodeStunMessage(binding()), serverSocket.addr);
  while (await floodInbox.next(200)); // drain what was answered
  equal(floodInbox.received.length, 5, "the burst is answered");
  equal(server.stats.rateLimited, 45);
  using client = new StunClient(other);
  eql((await client.binding(serverSocket.addr)).mapped, other.addr, "another source is still answered");
  now += 300; // 3 tokens refilled
  for (let i = 0; i < 10; i++) await flooder.send(encodeStunMessage(binding()), serverSocket.addr);
  while (await floodInbox.next(200));
  equal(floodInbox.received.length, 8);
});

Deno.test("the rate-limit table is bounded: the least recently seen source is forgotten", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  const peers: UdpSocket[] = [];
  for (let i = 0; i < 4; i++) peers.push(await UdpSocket.bind(`127.0.0.${10 + i}:0`));
  try {
    using server = new StunServer(serverSocket, { rateLimit: { maxSources: 2 } });
    for (const p of peers) {
      using client = new StunClient(p);
      await client.binding(serverSocket.addr);
    }
    equal(server.trackedSources, 2);
  } finally {
    for (const p of peers) await p.close();
  }
});

Deno.test("the server claims requests and Binding indications, and leaves other indications (TURN Data) to later routes", async () => {
  await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
  await using peer = await UdpSocket.bind("127.0.0.1:0");
  using server = new StunServer(serverSocket);
  const data = Promise.withResolvers<Uint8Array>();
  serverSocket.route(() => true, (d) => data.resolve(d));
  ok(isStunServerDatagram(encodeStunMessage(createStunMessage(0x003, "request"))));
  ok(isStunServerDatagram(encodeStunMessage(createStunMessage(STUN_METHOD_BINDING, "indication"))));
  ok(!isStunServerDatagram(encodeStunMessage(createStunMessage(STUN_METHOD_BINDING, "success"))));
  ok(!isStunServerDatagram(encodeStunMessage(createStunMessage(STUN_METHOD_BINDING, "error"))));
  await peer.send(encodeStunMessage(createStunMessage(STUN_METHOD_BINDING, "indication")), serverSocket.addr);
  const dataIndication = encodeStunMessage(createStunMessage(0x007, "indication"));
  await peer.send(dataIndication, serverSocket.addr);
  eql(await data.promise, dataIndication);
  equal(server.stats.indications, 1);
});
