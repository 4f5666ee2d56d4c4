// What coturn never sends: forged, malformed and missing answers. A scripted server on loopback
// plays a TURN server that lies; the client must ignore what it cannot trust, count it, and never
// hang or crash. (The honest paths are tested against the real coturn in client_test.ts.)
import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import {
  addStunAttribute,
  createStunMessage,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  ERROR_CODE,
  getStunAttribute,
  longTermKey,
  NONCE,
  REALM,
  type StunMessage,
  USERNAME,
  XOR_MAPPED_ADDRESS,
} from "../../../transport/stun/message.ts";
import {
  DATA,
  encodeChannelData,
  LIFETIME,
  TURN_METHOD_ALLOCATE,
  TURN_METHOD_DATA,
  TurnClient,
  TurnError,
  XOR_PEER_ADDRESS,
  XOR_RELAYED_ADDRESS,
} from "../../../transport/turn/mod.ts";
import { formatUdpAddr, type UdpAddr, UdpSocket } from "../../../transport/udp.ts";

const realm = "lab.test";
const key = longTermKey({ username: "test", realm, password: "test123" });
const relayed = { hostname: "192.0.2.50", port: 50_000 };
const peer = { hostname: "198.51.100.9", port: 4444 };

/** A scripted TURN server: answers Allocate (401, then success) and Refresh; `onRequest` scripts the rest. */
class ScriptedServer {
  socket!: UdpSocket;
  client: UdpAddr | null = null;
  requests: DecodedStunMessage[] = [];
  onRequest: (request: DecodedStunMessage, from: UdpAddr) => void = () => {};
  answer = true;

  static async start(): Promise<ScriptedServer> {
    const server = new ScriptedServer();
    server.socket = await UdpSocket.bind("udp://127.0.0.1:0");
    server.socket.route(() => true, (data, from) => {
      const request = decodeStunMessage(data);
      server.requests.push(request);
      server.client = from;
      if (!server.answer) return;
      if (request.method === TURN_METHOD_ALLOCATE) {
        if (getStunAttribute(request, USERNAME) === undefined) {
          const challenge = createStunMessage(request.method, "error", { transactionId: request.transactionId });
          addStunAttribute(challenge, ERROR_CODE, { code: 401, reason: "Unauthorized" });
          addStunAttribute(challenge, REALM, realm);
          addStunAttribute(challenge, NONCE, "n0nce");
          server.send(encodeStunMessage(challenge));
          return;
        }
        const ok = server.success(request);
        addStunAttribute(ok, XOR_RELAYED_ADDRESS, relayed);
        addStunAttribute(ok, XOR_MAPPED_ADDRESS, from);
        addStunAttribute(ok, LIFETIME, 600);
        server.send(encodeStunMessage(ok, { integrity: { key } }));
        return;
      }
      server.onRequest(request, from);
    });
    return server;
  }

  get addr(): UdpAddr {
    return this.socket.addr;
  }

  success(request: StunMessage): StunMessage {
    return createStunMessage(request.method, "success", { transactionId: request.transactionId });
  }

  send(bytes: Uint8Array): void {
    this.socket.send(bytes, this.client!).catch(() => {});
  }

  /** Answers `request` properly (success with integrity). */
  accept(request: StunMessage): void {
    this.send(encodeStunMessage(this.success(request), { integrity: { key } }));
  }
}

function dataIndication(from: UdpAddr, data: Uint8Array | null): Uint8Array {
  const message = createStunMessage(TURN_METHOD_DATA, "indication");
  addStunAttribute(message, XOR_PEER_ADDRESS, from);
  if (data) addStunAttribute(message, DATA, data);
  return encodeStunMessage(message);
}

async function until(what: string, condition: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("turn client: responses with a wrong transaction ID or a wrong integrity are ignored, the true one is taken", async () => {
  const server = await ScriptedServer.start();
  await using socket = await UdpSocket.bind("udp://127.0.0.1:0");
  try {
    server.onRequest = (request) => {
      const forged = createStunMessage(request.method, "success"); // another transaction ID
      server.send(encodeStunMessage(forged, { integrity: { key } }));
      const wrongKey = longTermKey({ username: "test", realm, password: "guess" });
      server.send(encodeStunMessage(server.success(request), { integrity: { key: wrongKey } }));
      server.send(encodeStunMessage(server.success(request))); // no integrity at all
      setTimeout(() => server.accept(request), 20);
    };
    const allocation = await TurnClient.allocate({
      server: server.addr,
      username: "test",
      password: "test123",
      socket,
    });
    eql(allocation.relayedAddress, relayed);
    eql(allocation.mappedAddress, socket.addr);
    equal(allocation.url, formatUdpAddr(relayed));
    await allocation.send(new Uint8Array([0x81, 1]), peer); // CreatePermission, then a Send indication
    equal(allocation.stats.permissions, 1);
    equal(allocation.stats.ignored, 2, "the success with a wrong key and the one without integrity");
    equal(socket.stats.unrouted, 1, "the response to no transaction of ours was not claimed by the allocation");
    await allocation.close();
  } finally {
    await server.socket.close();
  }
});

Deno.test("turn client: malformed messages, overlong ChannelData and unknown channels are counted and dropped", async () => {
  const server = await ScriptedServer.start();
  try {
    server.onRequest = (request) => server.accept(request);
    const allocation = await TurnClient.allocate({ server: server.addr, username: "test", password: "test123" });
    const got: [number[], string][] = [];
    allocation.route(() => true, (data, from) => got.push([[...data], formatUdpAddr(from)]));
    await allocation.send(new Uint8Array([0x81]), peer);
    const stunLike = dataIndication(peer, new Uint8Array([1, 2, 3]));
    stunLike[3] += 4; // the length field runs past the datagram
    server.send(stunLike);
    server.send(dataIndication(peer, null)); // no DATA
    server.send(new Uint8Array([0x40, 0x00, 0x00, 0x10, 1, 2])); // ChannelData longer than its datagram
    server.send(encodeChannelData(0x4000, new Uint8Array([5]))); // a channel never bound
    server.send(new Uint8Array([0x81, 9, 9])); // not TURN's: the socket's to drop, not the allocation's
    server.send(dataIndication(peer, new Uint8Array([7, 7])));
    await until("the valid Data indication", () => got.length === 1);
    eql(got, [[[7, 7], formatUdpAddr(peer)]]);
    equal(allocation.stats.malformed, 3);
    equal(allocation.stats.dropped, 1);
    equal(allocation.stats.dataIndications, 1);
    await allocation.close();
  } finally {
    await server.socket.close();
  }
});

Deno.test("turn client: a server that never answers fails the allocation after the RFC 8489 timers, not a hang", async () => {
  const server = await ScriptedServer.start();
  try {
    server.answer = false;
    const started = Date.now();
    await rejects(
      TurnClient.allocate({
        server: server.addr,
        username: "test",
        password: "test123",
        timers: { rtoMs: 20, rc: 3, rm: 4 },
      }),
      (error) => error instanceof TurnError && /timed out/.test(error.message) && error.code === undefined,
    );
    const took = Date.now() - started;
    ok(took >= 140 && took < 1_000, `20 + 40 ms between the 3 transmissions, then 4 x 20 ms: took ${took} ms`);
    equal(server.requests.length, 3, "Rc = 3 transmissions");
    // An abort is as good as a timeout.
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stop")), 30);
    await rejects(
      TurnClient.allocate({ server: server.addr, username: "t", password: "p", signal: controller.signal }),
      /stop/,
    );
  } finally {
    await server.socket.close();
  }
});

Deno.test("turn client: bad options are refused with errors that name them", async () => {
  const good = { server: { hostname: "127.0.0.1", port: 3478 }, username: "u", password: "p" };
  await rejects(TurnClient.allocate({ ...good, server: { hostname: "turn.example", port: 3478 } }), /server.hostname/);
  await rejects(TurnClient.allocate({ ...good, server: { hostname: "127.0.0.1", port: 0 } }), /server.port/);
  await rejects(TurnClient.allocate({ ...good, username: "" }), /username/);
  await rejects(TurnClient.allocate({ ...good, lifetime: -1 }), /lifetime/);
  // deno-lint-ignore no-explicit-any
  await rejects(TurnClient.allocate({ ...good, transport: "sctp" as any }), /transport/);
});

Deno.test("turn client over TCP: a stream that falls out of step closes the allocation", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(2048);
    const respond = async (fill: (request: DecodedStunMessage) => Uint8Array) => {
      const n = (await conn.read(buffer))!;
      await conn.write(fill(decodeStunMessage(buffer.slice(0, n))));
    };
    await respond((request) => {
      const challenge = createStunMessage(request.method, "error", { transactionId: request.transactionId });
      addStunAttribute(challenge, ERROR_CODE, { code: 401, reason: "Unauthorized" });
      addStunAttribute(challenge, REALM, realm);
      addStunAttribute(challenge, NONCE, "n0nce");
      return encodeStunMessage(challenge);
    });
    await respond((request) => {
      const ok = createStunMessage(request.method, "success", { transactionId: request.transactionId });
      addStunAttribute(ok, XOR_RELAYED_ADDRESS, relayed);
      addStunAttribute(ok, XOR_MAPPED_ADDRESS, { hostname: "127.0.0.1", port: 1 });
      return encodeStunMessage(ok, { integrity: { key } });
    });
    await conn.write(new Uint8Array([0xc0, 0, 0, 4, 1, 2, 3, 4])); // neither STUN nor ChannelData
    await conn.read(buffer).catch(() => null); // until the client hangs up
    conn.close();
  })();
  try {
    const addr = listener.addr as Deno.NetAddr;
    const allocation = await TurnClient.allocate({
      server: { hostname: "127.0.0.1", port: addr.port },
      transport: "tcp",
      username: "test",
      password: "test123",
    });
    await until("the allocation closing", () => allocation.closed);
    equal(allocation.stats.malformed, 1);
    await rejects(allocation.send(new Uint8Array([0x81]), peer), /closed/);
    await allocation.close();
  } finally {
    await served;
    listener.close();
  }
});
