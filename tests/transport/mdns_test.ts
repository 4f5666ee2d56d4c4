/**
 * DNS-SD over mDNS on the loopback interface: a random port per test instead
 * of 5353, so that the tests never meet a real responder and never send on a
 * real interface. The interop with avahi runs in a network namespace in
 * tests/integration/lan_process_test.ts.
 */

import { deepEqual, equal, ok, throws } from "node:assert/strict";
import dgram from "node:dgram";
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";
import fc from "fast-check";
import {
  checkInstanceName,
  checkServiceType,
  decodeTxt,
  type DnsPacket,
  type DnsRecord,
  encodeTxt,
  instanceOf,
  MdnsSocket,
  type ServiceInstance,
} from "../../transport/mdns/mod.ts";

const TYPE = "_nzcore._udp";
const enc = new TextEncoder();

function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 30_000);
}

async function sockets(n: number): Promise<MdnsSocket[] & AsyncDisposable> {
  const port = randomPort();
  const list = [] as unknown as MdnsSocket[] & AsyncDisposable;
  for (let i = 0; i < n; i++) list.push(await MdnsSocket.open({ interface: "127.0.0.1", port }));
  list[Symbol.asyncDispose] = async () => {
    await Promise.all(list.map((s) => s.close()));
  };
  return list;
}

async function waitFor<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A plain UDP socket on the mDNS port of a test (SO_REUSEADDR), for packets no well-behaved responder sends. */
async function rawSocket(port: number, bindPort = port): Promise<dgram.Socket & AsyncDisposable> {
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true }) as dgram.Socket & AsyncDisposable;
  await new Promise<void>((resolve) => socket.bind(bindPort, "0.0.0.0", resolve));
  socket.setMulticastInterface("127.0.0.1");
  socket[Symbol.asyncDispose] = () => new Promise<void>((resolve) => socket.close(() => resolve()));
  return socket;
}

function sendRaw(socket: dgram.Socket, bytes: Uint8Array, port: number, address = "224.0.0.251"): Promise<void> {
  return new Promise((resolve, reject) => socket.send(bytes, port, address, (e) => e ? reject(e) : resolve()));
}

Deno.test("encodeTxt() and decodeTxt() round-trip keys, values and boolean attributes", () => {
  const keys = fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/);
  fc.assert(
    fc.property(fc.dictionary(keys, fc.oneof(fc.string({ maxLength: 40 }), fc.constant(true as const))), (t) => {
      deepEqual(decodeTxt(encodeTxt(t)), { ...t });
    }),
  );
  deepEqual(encodeTxt({}), [new Uint8Array(0)], "an empty TXT record is one empty string (RFC 6763 section 6.1)");
});

Deno.test("decodeTxt() lowercases keys, keeps the first of a repeated key and skips what is not a pair", () => {
  const strings = ["ID=AbC", "id=other", "flag", "", "=nokey", "empty=", "__proto__=x"].map((s) => enc.encode(s));
  strings.push(new Uint8Array([0x6b, 0x3d, 0xff, 0xfe])); // "k=" and bytes that are not UTF-8
  const txt = decodeTxt(strings);
  deepEqual({ ...txt }, { id: "AbC", flag: true, empty: "", ["__proto__"]: "x" });
  equal(Object.getPrototypeOf(txt), Object.prototype, "a key __proto__ is data, not the prototype");
});

Deno.test("encodeTxt() refuses bad keys, repeated keys and strings over 255 bytes", () => {
  throws(() => encodeTxt({ "": "x" }), SyntaxError);
  throws(() => encodeTxt({ "a=b": "x" }), SyntaxError);
  throws(() => encodeTxt({ toolongakey: "x" }), SyntaxError);
  throws(() => encodeTxt({ a: "1", A: "2" }), /appears twice/);
  throws(() => encodeTxt({ a: "x".repeat(254) }), /expected <= 255/);
  throws(
    () =>
      encodeTxt({
        a: "x".repeat(250),
        b: "x".repeat(250),
        c: "x".repeat(250),
        d: "x".repeat(250),
        e: "x".repeat(250),
        f: "x".repeat(250),
      }),
    /expected <= 1300/,
  );
});

Deno.test("service types and instance names are checked, and instanceOf() splits a service name", () => {
  equal(checkServiceType("_NZcore._UDP"), "_nzcore._udp");
  throws(() => checkServiceType("nzcore._udp"), SyntaxError);
  throws(() => checkServiceType("_nzcore._sctp"), SyntaxError);
  throws(() => checkServiceType("_a-very-long-name-of-service._udp"), SyntaxError);
  throws(() => checkInstanceName(""), RangeError);
  throws(() => checkInstanceName("a.b"), RangeError);
  throws(() => checkInstanceName("x".repeat(64)), RangeError);
  equal(checkInstanceName("Ünïcode name (2)"), "Ünïcode name (2)");
  equal(instanceOf("My Node._nzcore._udp.local", TYPE), "My Node");
  equal(instanceOf("My Node._NZCORE._udp.LOCAL", TYPE), "My Node");
  equal(instanceOf("My Node._http._tcp.local", TYPE), null);
  equal(instanceOf("a.b._nzcore._udp.local", TYPE), null);
});

Deno.test({
  name: "a browser finds an announced instance with its port, TXT and addresses, and loses it on goodbye",
  async fn() {
    await using s = await sockets(2);
    const [a, b] = s;
    const up: ServiceInstance[] = [];
    const down: ServiceInstance[] = [];
    const browser = b.browse(TYPE, (x) => up.push(x), (x) => down.push(x));
    const started = Date.now();
    const ad = await a.announce({ instance: "nzcore-test", type: TYPE, port: 7475, txt: { id: "abc", v: "1" } });
    equal(ad.instance, "nzcore-test");
    equal(ad.host, "nzcore-test.local");
    const found = await waitFor(() => up.find((x) => x.name === "nzcore-test"), "the instance");
    console.log(`found ${Date.now() - started} ms after announce() was called (probing included)`);
    equal(found.fqdn, "nzcore-test._nzcore._udp.local");
    equal(found.port, 7475);
    deepEqual(found.txt, { id: "abc", v: "1" });
    equal(found.host, "nzcore-test.local");
    ok(found.addresses.includes("127.0.0.1"), `addresses ${found.addresses}`);
    deepEqual(browser.services().map((x) => x.name), ["nzcore-test"]);
    const stopped = Date.now();
    await ad.stop();
    await waitFor(() => down.length === 1, "the goodbye");
    ok(Date.now() - stopped < 1500, "a goodbye takes effect at once");
    deepEqual(browser.services(), []);
  },
});

Deno.test("an instance that stops answering goes down when its records expire", async () => {
  await using s = await sockets(2);
  const [a, b] = s;
  const down: string[] = [];
  b.browse(TYPE, () => {}, (x) => down.push(x.name), { tickMs: 50 });
  // One announcement with 2 s TTLs and no responder behind it: nobody answers the refresh queries.
  const name = "gone._nzcore._udp.local";
  await a.send({
    type: "response",
    answers: [
      { name: "_nzcore._udp.local", type: "PTR", ttl: 2, data: name },
      { name, type: "SRV", ttl: 2, flush: true, data: { priority: 0, weight: 0, port: 9, target: "gone.local" } },
      { name, type: "TXT", ttl: 2, flush: true, data: [Buffer.from("v=1")] },
      { name: "gone.local", type: "A", ttl: 2, flush: true, data: "127.0.0.9" },
    ],
  });
  await waitFor(() => b.stats.received > 0, "the announcement");
  const at = Date.now();
  await waitFor(() => down.includes("gone"), "expiry", 5000);
  const after = Date.now() - at;
  ok(after > 1500 && after < 3000, `down after ${after} ms, expected about 2 s`);
});

Deno.test("a second announcement of a taken name finds the conflict in probing and takes 'name (2)'", async () => {
  await using s = await sockets(2);
  const [a, b] = s;
  const first = await a.announce({ instance: "twin", type: TYPE, port: 1000, host: "twin-a" });
  const second = await b.announce({ instance: "twin", type: TYPE, port: 2000, host: "twin-b" });
  equal(first.instance, "twin");
  equal(second.instance, "twin (2)");
  equal(second.stats.conflicts, 1);
  const up: ServiceInstance[] = [];
  await using c = await MdnsSocket.open({ interface: "127.0.0.1", port: a.port });
  c.browse(TYPE, (x) => up.push(x), () => {});
  await waitFor(() => up.length === 2, "both instances");
  deepEqual(up.map((x) => [x.name, x.port]).sort((x, y) => x[0] < y[0] ? -1 : 1), [["twin", 1000], ["twin (2)", 2000]]);
});

Deno.test("a query that lists the PTR as a known answer gets no answer; one that does not gets PTR, SRV, TXT and A", async () => {
  await using s = await sockets(2);
  const [a, q] = s;
  const ad = await a.announce({ instance: "quiet", type: TYPE, port: 1234, txt: { v: "1" }, probe: false });
  const responses: DnsPacket[] = [];
  q.onPacket((p) => {
    if (p.type === "response" && p.answers?.some((r) => r.type === "PTR" && r.data === "quiet._nzcore._udp.local")) {
      responses.push(p);
    }
  });
  await sleep(1100); // past the announcement and the once-a-second limit
  responses.length = 0;
  const question = { name: "_nzcore._udp.local", type: "PTR" as const };
  await q.send({
    type: "query",
    questions: [question],
    answers: [{ name: "_nzcore._udp.local", type: "PTR", ttl: 4500, data: "quiet._nzcore._udp.local" }],
  });
  await sleep(400);
  equal(responses.length, 0, "suppressed");
  equal(ad.stats.suppressed, 1);
  await sleep(700);
  await q.send({ type: "query", questions: [question] });
  const answer = await waitFor(() => responses[0], "the answer");
  deepEqual(answer.answers!.map((r: DnsRecord) => r.type), ["PTR"]);
  const extra = new Set(answer.additionals!.map((r: DnsRecord) => r.type));
  ok(["SRV", "TXT", "A"].every((t) => extra.has(t)), `additionals ${[...extra]}`);
});

Deno.test("a legacy unicast query (not from the mDNS port) gets a unicast answer with its ID and TTLs of at most 10 s", async () => {
  await using s = await sockets(1);
  const [a] = s;
  await a.announce({ instance: "legacy", type: TYPE, port: 4321, probe: false });
  await using client = await rawSocket(a.port, 0);
  const got = Promise.withResolvers<DnsPacket>();
  client.on("message", (m) => got.resolve(dnsPacket.decode(m)));
  const query = dnsPacket.encode({
    id: 4242,
    type: "query",
    questions: [{ name: "legacy._nzcore._udp.local", type: "SRV" }],
  });
  await sendRaw(client, query, a.port, "127.0.0.1");
  const answer = await got.promise;
  equal(answer.id, 4242);
  deepEqual(answer.questions, [{ name: "legacy._nzcore._udp.local", type: "SRV", class: "IN" }]);
  equal(answer.answers![0].type, "SRV");
  ok(answer.answers!.every((r: DnsRecord) => r.ttl! <= 10));
});

Deno.test("the responder lists its service type under _services._dns-sd._udp.local", async () => {
  await using s = await sockets(1);
  const [a] = s;
  await a.announce({ instance: "meta", type: TYPE, port: 1, probe: false });
  await using client = await rawSocket(a.port, 0);
  const got = Promise.withResolvers<DnsPacket>();
  client.on("message", (m) => got.resolve(dnsPacket.decode(m)));
  const query = dnsPacket.encode({ type: "query", questions: [{ name: "_services._dns-sd._udp.local", type: "PTR" }] });
  await sendRaw(client, query, a.port, "127.0.0.1");
  const answer = await got.promise;
  deepEqual(answer.answers!.map((r: DnsRecord) => [r.name, r.data]), [[
    "_services._dns-sd._udp.local",
    "_nzcore._udp.local",
  ]]);
});

Deno.test("garbage, oversized packets, floods and bad records are counted and ignored; browsing carries on", async () => {
  await using s = await sockets(2);
  const [a, b] = s;
  const up: ServiceInstance[] = [];
  const browser = b.browse(TYPE, (x) => up.push(x), () => {}, { maxInstances: 20 });
  await using raw = await rawSocket(b.port);
  // Not DNS at all, a truncated header, a name with a forward pointer, and a packet over 9000 bytes.
  await sendRaw(raw, new Uint8Array([1, 2, 3]), b.port);
  await sendRaw(raw, new Uint8Array(11), b.port);
  const loop = dnsPacket.encode({
    type: "response",
    answers: [{ name: "x.local", type: "A", ttl: 1, data: "1.2.3.4" }],
  });
  loop[12] = 0xc0;
  loop[13] = 0x20;
  await sendRaw(raw, loop, b.port);
  const big = dnsPacket.encode({
    type: "response",
    answers: Array.from({ length: 200 }, (_, i) => ({
      name: `big-${i}._nzcore._udp.local`,
      type: "TXT" as const,
      ttl: 100,
      data: [Buffer.alloc(40, 0x61)],
    })),
  });
  ok(big.length > 9000);
  await sendRaw(raw, big, b.port);
  // A flood of 100 instances: 20 are kept.
  for (let i = 0; i < 100; i += 10) {
    await a.send({
      type: "response",
      answers: Array.from({ length: 10 }, (_, j) => ({
        name: "_nzcore._udp.local",
        type: "PTR" as const,
        ttl: 100,
        data: `flood-${i + j}._nzcore._udp.local`,
      })),
    });
  }
  // Bad records of one instance: a port 0, a SRV without a target, a PTR into another type, a negative TTL.
  const bad = "bad._nzcore._udp.local";
  await a.send({
    type: "response",
    answers: [
      { name: "_nzcore._udp.local", type: "PTR", ttl: 100, data: "elsewhere._http._tcp.local" },
      { name: "_http._tcp.local", type: "PTR", ttl: 100, data: "web._http._tcp.local" },
      { name: bad, type: "SRV", ttl: 100, data: { priority: 0, weight: 0, port: 0, target: "bad.local" } },
      { name: bad, type: "TXT", ttl: 100, data: [Buffer.from([0xff, 0xfe])] },
    ],
  });
  await waitFor(() => browser.stats.overflow >= 80, "the flood", 3000);
  await sleep(200);
  equal(b.stats.malformed, 3, "three packets did not decode");
  equal(b.stats.oversized, 1);
  equal(browser.stats.overflow, 80);
  ok(browser.stats.ignored >= 3, `ignored ${browser.stats.ignored}`);
  equal(up.length, 0, "nothing resolved: none of the flood has SRV, TXT and addresses");
  // Browsing still works: a real announcement comes through (the flood took the 20 slots, so free one first).
  browser.stop();
  const fresh = b.browse(TYPE, (x) => up.push(x), () => {});
  await a.announce({ instance: "after", type: TYPE, port: 5, probe: false });
  await waitFor(() => up.find((x) => x.name === "after"), "the announcement after the flood");
  equal(fresh.services().filter((x) => x.name.startsWith("flood")).length, 0);
});

Deno.test("two hosts that probe for one name at once: the tiebreak leaves it to one, the other takes 'name (2)'", async () => {
  await using s = await sockets(2);
  const [a, b] = s;
  const [x, y] = await Promise.all([
    a.announce({ instance: "race", type: TYPE, port: 1000, host: "race-a" }),
    b.announce({ instance: "race", type: TYPE, port: 2000, host: "race-b" }),
  ]);
  deepEqual([x.instance, y.instance].sort(), ["race", "race (2)"]);
});

Deno.test("a flood of legacy unicast queries gets at most 20 answers a second", async () => {
  await using s = await sockets(1);
  const [a] = s;
  const ad = await a.announce({ instance: "flooded", type: TYPE, port: 1, probe: false });
  await using client = await rawSocket(a.port, 0);
  let answers = 0;
  client.on("message", () => answers++);
  const query = dnsPacket.encode({
    id: 1,
    type: "query",
    questions: [{ name: "flooded._nzcore._udp.local", type: "SRV" }],
  });
  const started = Date.now();
  for (let i = 0; i < 200; i++) await sendRaw(client, query, a.port, "127.0.0.1");
  const seconds = Math.floor((Date.now() - started) / 1000) + 2; // the windows the burst may straddle
  await sleep(300);
  ok(answers >= 20 && answers <= 20 * seconds, `${answers} answers to 200 queries in ${seconds} windows`);
  equal(ad.stats.limited, 200 - answers);
  ok(a.stats.received >= 200, "every query was read (and our own announcements)");
});
