/**
 * Runs one TURN scenario inside coturn's network namespace and prints its
 * findings as one line of JSON (see `client_test.ts`). Argument: JSON
 * `{ scenario, port, transport? }`.
 *
 * @module
 */

import { TurnClient, TurnError } from "../../../transport/turn/mod.ts";
import { formatUdpAddr, UdpSocket } from "../../../transport/udp.ts";
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
  STUN_METHOD_BINDING,
  USERNAME,
  XOR_MAPPED_ADDRESS,
} from "../../../transport/stun/message.ts";
import { LIFETIME, TURN_METHOD_REFRESH } from "../../../transport/turn/attributes.ts";
import { isStunDatagram } from "../../../transport/udp.ts";

const args = JSON.parse(Deno.args[0] ?? "{}") as {
  scenario: string;
  port: number;
  host?: string;
  transport?: "udp" | "tcp";
  peer?: { hostname: string; port: number };
  count?: number;
};
const server = { hostname: args.host ?? "127.0.0.1", port: args.port };
const credentials = { username: "test", password: "test123" };
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);

async function until(what: string, condition: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A peer on a plain socket that records what it hears, and answers each packet with "ack:" + its text. */
async function echoPeer() {
  const socket = await UdpSocket.bind("udp://127.0.0.1:0");
  const heard: { text: string; from: string }[] = [];
  socket.route(() => true, (data, from) => {
    heard.push({ text: read(data), from: formatUdpAddr(from) });
    socket.send(text(`ack:${read(data)}`), from).catch(() => {});
  });
  return { socket, heard };
}

function errorOf(error: unknown) {
  return {
    name: error instanceof Error ? error.name : "?",
    code: error instanceof TurnError ? error.code ?? null : null,
    message: String(error),
  };
}

async function relay() {
  const peer = await echoPeer();
  const allocation = await TurnClient.allocate({ server, transport: args.transport, ...credentials });
  const got: { text: string; from: string }[] = [];
  allocation.route(() => true, (data, from) => got.push({ text: read(data), from: formatUdpAddr(from) }));
  for (let i = 0; i < 3; i++) {
    await allocation.send(text(`indication ${i}`), peer.socket.addr);
    await until(`answer ${i}`, () => got.length === i + 1);
  }
  await until("the channel binding", () => allocation.channels.length === 1);
  for (let i = 0; i < 3; i++) await allocation.send(text(`channel ${i}`), peer.socket.addr);
  await until("all six answers", () => got.length === 6);
  const result = {
    url: allocation.url,
    relayed: allocation.relayedAddress,
    mapped: allocation.mappedAddress,
    lifetime: allocation.lifetimeSeconds,
    peer: peer.socket.url,
    peerHeard: peer.heard,
    clientGot: got,
    channels: allocation.channels,
    stats: { ...allocation.stats },
  };
  await allocation.close();
  await peer.socket.close();
  return result;
}

/** 20 sends at once to a new peer: one CreatePermission and one ChannelBind serve them all. */
async function burst() {
  const peer = await echoPeer();
  const allocation = await TurnClient.allocate({ server, transport: args.transport, ...credentials });
  const got: string[] = [];
  allocation.route(() => true, (d) => got.push(read(d)));
  await Promise.all(Array.from({ length: 20 }, (_, i) => allocation.send(text(`${i}`), peer.socket.addr)));
  await until("20 answers", () => got.length === 20);
  await until("the channel binding", () => allocation.channels.length === 1);
  const result = { got: got.length, stats: { ...allocation.stats } };
  await allocation.close();
  await peer.socket.close();
  return result;
}

async function wrongPassword() {
  const started = Date.now();
  try {
    await TurnClient.allocate({ server, transport: args.transport, username: "test", password: "wrong" });
    return { error: null, ms: Date.now() - started };
  } catch (error) {
    return { error: errorOf(error), ms: Date.now() - started };
  }
}

async function refresh() {
  const allocation = await TurnClient.allocate({ server, transport: args.transport, ...credentials, lifetime: 60 });
  const granted = allocation.lifetimeSeconds;
  const refreshed = await allocation.refresh(120);
  const result = { granted, refreshed, stats: { ...allocation.stats } };
  await allocation.close();
  return result;
}

/**
 * A Refresh made by hand on `socket` (401, then with credentials): the
 * server's answer tells whether it still holds an allocation for the socket's
 * 5-tuple (success) or not (437 Allocation Mismatch).
 */
async function probeAllocation(socket: UdpSocket): Promise<number | "success"> {
  const transact = (bytes: Uint8Array) =>
    new Promise<DecodedStunMessage>((resolve, reject) => {
      const timer = setTimeout(() => (off(), reject(new Error("no answer to the probe"))), 3_000);
      const off = socket.route((d, from) => isStunDatagram(d) && from.port === server.port, (d) => {
        clearTimeout(timer);
        off();
        resolve(decodeStunMessage(d));
      });
      socket.send(bytes, server).catch(reject);
    });
  const refresh = () => addStunAttribute(createStunMessage(TURN_METHOD_REFRESH, "request"), LIFETIME, 600);
  const challenge = await transact(encodeStunMessage(refresh()));
  const realm = getStunAttribute(challenge, REALM)!, nonce = getStunAttribute(challenge, NONCE)!;
  const message = refresh();
  addStunAttribute(message, USERNAME, credentials.username);
  addStunAttribute(message, REALM, realm);
  addStunAttribute(message, NONCE, nonce);
  const key = longTermKey({ ...credentials, realm });
  const answer = await transact(encodeStunMessage(message, { integrity: { key } }));
  return answer.class === "success" ? "success" : getStunAttribute(answer, ERROR_CODE)!.code;
}

/**
 * On one shared socket (one 5-tuple, one allocation at a time): a second
 * Allocate is refused 437 while the first lives; after close() the server no
 * longer knows the allocation (a Refresh by hand draws 437), and the shared
 * socket stays open.
 */
async function closeDeletes() {
  await using socket = await UdpSocket.bind("udp://127.0.0.1:0");
  const first = await TurnClient.allocate({ server, ...credentials, socket });
  let whileAlive: unknown = null;
  const started = Date.now();
  try {
    await TurnClient.allocate({ server, ...credentials, socket });
  } catch (error) {
    whileAlive = errorOf(error);
  }
  const whileAliveMs = Date.now() - started;
  const refreshedWhileAlive = await first.refresh();
  await first.close();
  let sendAfterClose: unknown = null;
  await first.send(text("x"), { hostname: "127.0.0.1", port: 9 }).catch((error) => sendAfterClose = errorOf(error));
  // coturn deletes the allocation on its next one-second timer tick; a probe before it would revive it.
  await new Promise((r) => setTimeout(r, 2_500));
  const probe = await probeAllocation(socket);
  return { whileAlive, whileAliveMs, refreshedWhileAlive, sendAfterClose, probe, socketClosed: socket.closed };
}

/**
 * With a coturn that grants at most 10 s and whose nonces go stale after 3 s:
 * the allocation refreshes itself halfway to its expiry (a stale nonce on the way is
 * answered 438 and retried), and still relays afterwards.
 */
async function autoRefresh() {
  const peer = await echoPeer();
  const allocation = await TurnClient.allocate({ server, transport: args.transport, ...credentials, lifetime: 60 });
  const granted = allocation.lifetimeSeconds;
  await until("an automatic refresh", () => allocation.stats.refreshes >= 1, 12_000);
  const refreshedLifetime = allocation.lifetimeSeconds;
  const got: string[] = [];
  allocation.route(() => true, (d) => got.push(read(d)));
  await allocation.send(text("still here"), peer.socket.addr);
  await until("the answer", () => got.length === 1);
  const result = { granted, refreshedLifetime, got, stats: { ...allocation.stats }, closed: allocation.closed };
  await allocation.close();
  await peer.socket.close();
  return result;
}

/**
 * The shared socket keeps its other traffic: a Binding response from the same
 * server reaches a STUN route, a peer's direct datagram the channel's route,
 * while the relayed data reaches the allocation.
 */
async function shared() {
  await using socket = await UdpSocket.bind("udp://127.0.0.1:0");
  const peer = await echoPeer();
  const allocation = await TurnClient.allocate({ server, ...credentials, socket });
  const direct: string[] = [];
  const stun: unknown[] = [];
  socket.route((d) => d[0] === 0x81, (d, from) => direct.push(`${read(d.subarray(1))} from ${formatUdpAddr(from)}`));
  socket.route(isStunDatagram, (d) => stun.push(getStunAttribute(decodeStunMessage(d), XOR_MAPPED_ADDRESS)));
  const relayed: string[] = [];
  allocation.route(() => true, (d, from) => relayed.push(`${read(d)} from ${formatUdpAddr(from)}`));
  await socket.send(encodeStunMessage(createStunMessage(STUN_METHOD_BINDING, "request")), server);
  await peer.socket.send(new Uint8Array([0x81, ...text("direct")]), socket.addr);
  await allocation.send(text("relayed"), peer.socket.addr);
  await until("everything", () => direct.length === 1 && stun.length === 1 && relayed.length === 1);
  const result = {
    socket: socket.url,
    peer: peer.socket.url,
    relayedAddr: allocation.url,
    direct,
    stun,
    relayed,
    unrouted: socket.stats.unrouted,
    ignored: allocation.stats.ignored,
  };
  await allocation.close();
  await peer.socket.close();
  return result;
}

/** coturn's own echo peer (`turnutils_peer`) at `args.peer`: what we relay comes back unchanged. */
async function externalPeer() {
  const allocation = await TurnClient.allocate({ server, transport: args.transport, ...credentials });
  const got: string[] = [];
  allocation.route(() => true, (data, from) => got.push(`${read(data)} from ${formatUdpAddr(from)}`));
  const sent: string[] = [];
  for (let i = 0; i < args.count!; i++) {
    sent.push(`packet ${i} ${"x".repeat(i * 100)}`);
    await allocation.send(text(sent[i]), args.peer!);
    await until(`echo ${i}`, () => got.length === i + 1);
  }
  const result = { sent, got, stats: { ...allocation.stats } };
  await allocation.close();
  return result;
}

/** The NAT lab's public peer: echoes `count` packets on `port` (all addresses), then reports who sent them. */
async function labPeer() {
  const socket = await UdpSocket.bind(`udp://0.0.0.0:${args.port}`);
  const heard: { text: string; from: string }[] = [];
  socket.route(() => true, (data, from) => {
    heard.push({ text: read(data), from: formatUdpAddr(from) });
    socket.send(text(`ack:${read(data)}`), from).catch(() => {});
  });
  console.log(JSON.stringify({ listening: socket.url })); // the test waits for this line before starting the client
  await until("the client's packets", () => heard.length >= args.count!, 30_000);
  await new Promise((r) => setTimeout(r, 200)); // let the last answer leave
  await socket.close();
  return { heard };
}

/** The NAT lab's client behind a NAT: an allocation on the lab's coturn, `count` packets to the public peer. */
async function labClient() {
  const allocation = await TurnClient.allocate({ server, transport: args.transport, ...credentials });
  const got: { text: string; from: string }[] = [];
  allocation.route(() => true, (data, from) => got.push({ text: read(data), from: formatUdpAddr(from) }));
  for (let i = 0; i < args.count!; i++) {
    await allocation.send(text(`hello ${i}`), args.peer!);
    await until(`answer ${i}`, () => got.length === i + 1);
  }
  const result = {
    relayed: allocation.url,
    mapped: formatUdpAddr(allocation.mappedAddress),
    got,
    stats: { ...allocation.stats },
  };
  await allocation.close();
  return result;
}

const scenarios: Record<string, () => Promise<unknown>> = {
  labPeer,
  labClient,
  externalPeer,
  relay,
  burst,
  wrongPassword,
  refresh,
  closeDeletes,
  autoRefresh,
  shared,
};
const result = await scenarios[args.scenario]();
// No Deno.exit: the process ends only if close() released every socket and timer.
console.log(JSON.stringify(result));
