import { deepStrictEqual as eql, equal, ok } from "node:assert/strict";
import fc from "fast-check";
import { concat, toHex, utf8 } from "../../../../kernel/bytes.ts";
import { sha256 } from "../../../../kernel/crypto/mod.ts";
import { Identity } from "../../../../kernel/identity/identity.ts";
import {
  decodeService,
  MAX_RECORD_SIZE,
  mutableKey,
  peerRecord,
  serviceKey,
  serviceRecord,
  signRecord,
} from "../../../../kernel/discovery/record.ts";
import { Dht } from "../../../../kernel/discovery/dht/dht.ts";
import { encodeMessage, ERROR_CODES } from "../../../../kernel/discovery/dht/message.ts";
import { Rpc } from "../../../../kernel/discovery/dht/rpc.ts";
import { UdpSocket } from "../../../../transport/udp.ts";
import { grindSigner } from "./_adversary.ts";
import { loopback, startNode, TestNet } from "./_net.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bare RPC endpoint speaking NZ-DHT-01 through the codec, to send what a Dht would not. */
async function rawClient(hostname: string) {
  const socket = await UdpSocket.bind(`udp://${hostname}:0`);
  const identity = Identity.generate("raw");
  const rpc = new Rpc({ socket, signer: identity, handler: () => null, readOnly: true, timeoutMs: 1000 });
  return {
    socket,
    identity,
    rpc,
    async [Symbol.asyncDispose]() {
      rpc.close();
      await socket.close();
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

Deno.test("32 nodes on loopback bootstrap from one and every node finds every other", async () => {
  await using net = await TestNet.start(32);
  for (const n of net.nodes) ok(n.dht.stats().contacts >= 20, `table of ${n.dht.stats().contacts}`);
  const hops: number[] = [], ms: number[] = [];
  for (const a of net.nodes) {
    for (const b of net.nodes) {
      if (a === b) continue;
      const result = await a.dht.findNode(b.dht.id);
      ok(result.found, `${toHex(a.dht.id).slice(0, 8)} found ${toHex(b.dht.id).slice(0, 8)}`);
      eql(result.closest[0].id, b.dht.id);
      eql(result.closest[0].addr, b.socket.addr);
      hops.push(result.hops);
      ms.push(result.durationMs);
    }
  }
  ok(median(hops) <= 2 && Math.max(...hops) <= 3, `hops: median ${median(hops)}, max ${Math.max(...hops)}`);
  console.log(`${hops.length} lookups: median ${median(hops)} hops, ${median(ms).toFixed(2)} ms`);
});

Deno.test("a peer record put by one node is found by others by public key and by node ID", async () => {
  await using net = await TestNet.start(24);
  const owner = net.nodes[5];
  const record = peerRecord(owner.identity, [owner.socket.url]);
  const put = await owner.dht.put(record);
  equal(put.keys, 1);
  ok(put.stored >= 10, `stored at ${put.stored}`);
  equal(put.failed, 0);
  for (const reader of [net.nodes[0], net.nodes[17]]) {
    eql((await reader.dht.findPeer(owner.identity.publicKey))?.bytes, record.bytes);
    eql((await reader.dht.findPeer(owner.dht.id))?.bytes, record.bytes);
  }
  equal(await net.nodes[1].dht.findPeer(Identity.generate("nobody").publicKey), null);
});

Deno.test("of a mutable record the newest wins, and a stale one is refused by every node that holds the newer", async () => {
  await using net = await TestNet.start(24);
  const owner = net.nodes[3];
  const name = utf8("status");
  const at = (seq: number, text: string) =>
    signRecord(owner.identity, { kind: "mutable", seq, expires: Date.now() + 600_000, name, value: utf8(text) });
  await owner.dht.publish(at(1, "one"));
  const second = await owner.dht.publish(at(2, "two"));
  ok(second.stored >= 10);
  equal(owner.dht.stats().published, 1, "the newer publication replaced the older");
  const got = await net.nodes[20].dht.get(mutableKey(owner.identity.publicKey, name));
  equal(got.records.length, 1);
  equal(new TextDecoder().decode(got.records[0].value), "two");
  const stale = await owner.dht.put(at(1, "one"));
  equal(stale.stored, 0);
  ok(stale.failed >= 10, `refused by ${stale.failed}`);
  const refused = net.nodes.reduce((n, x) => n + x.dht.stats().storesRefused, 0);
  ok(refused >= 10);
});

Deno.test("service records are found by capability tag, one per publisher", async () => {
  await using net = await TestNet.start(24);
  const publishers = [net.nodes[2], net.nodes[9], net.nodes[14]];
  for (const [i, p] of publishers.entries()) {
    const tags = i === 0 ? ["storage:blob", "gpu"] : ["storage:blob"];
    const result = await p.dht.publish(serviceRecord(p.identity, { name: `blob-${i}`, tags, protocol: "nz/blob/1" }));
    equal(result.keys, tags.length);
  }
  const found = await net.nodes[20].dht.findServices("storage:blob");
  eql(found.map((r) => decodeService(r).name).sort(), ["blob-0", "blob-1", "blob-2"]);
  eql((await net.nodes[21].dht.findServices("gpu")).map((r) => decodeService(r).name), ["blob-0"]);
  eql(await net.nodes[21].dht.findServices("none"), []);
});

Deno.test("STORE refuses a bad token, a forged, an oversized and an expired record, each with its ERROR code", async () => {
  await using target = await startNode("127.0.0.1");
  await using client = await rawClient("127.0.0.2");
  const author = Identity.generate("author");
  const name = utf8("n");
  const key = mutableKey(author.publicKey, name);
  const good = signRecord(author, { kind: "mutable", seq: 1, expires: Date.now() + 60_000, name, value: utf8("v") });
  const nodes = await client.rpc.request(target.socket.addr, { type: "find_node", target: key });
  ok(nodes.ok && nodes.message.type === "nodes");
  const token = nodes.message.token;
  const store = (record: Uint8Array, t = token) =>
    client.rpc.request(target.socket.addr, { type: "store", token: t, key, record });
  const expectError = async (record: Uint8Array, code: number, t?: Uint8Array) => {
    const reply = await store(record, t);
    ok(reply.ok && reply.message.type === "error", `expected ERROR ${code}`);
    equal(reply.message.code, code, reply.message.reason);
  };
  await expectError(good.bytes, ERROR_CODES.badToken, new Uint8Array(8));
  const forged = good.bytes.slice();
  forged[60] ^= 1;
  await expectError(forged, ERROR_CODES.refusedRecord);
  await expectError(concat(good.bytes, new Uint8Array(MAX_RECORD_SIZE + 1 - good.bytes.length)), ERROR_CODES.tooLarge);
  const expired = signRecord(author, { kind: "mutable", seq: 2, expires: Date.now() - 1, name, value: utf8("v") });
  await expectError(expired.bytes, ERROR_CODES.refusedRecord);
  const ok1 = await store(good.bytes);
  ok(ok1.ok && ok1.message.type === "stored");
  const stats = target.dht.stats();
  equal(stats.dropped.badToken, 1);
  equal(stats.storesRefused, 4);
  equal(stats.records, 1);
  // A token minted for one address is refused from another.
  await using other = await rawClient("127.0.0.3");
  const stolen = await other.rpc.request(target.socket.addr, { type: "store", token, key, record: good.bytes });
  ok(stolen.ok && stolen.message.type === "error" && stolen.message.code === ERROR_CODES.badToken);
});

Deno.test("a flood of requests from one address is dropped beyond its rate while another address is served", async () => {
  await using target = await startNode("127.0.0.1", { rateLimit: { perIp: 50, burst: 100 } });
  await using flooder = await UdpSocket.bind("udp://127.0.0.2:0");
  await using honest = await rawClient("127.0.0.3");
  const ping = encodeMessage({
    type: "ping",
    flags: 0,
    txid: new Uint8Array(8),
    publicKey: Identity.generate("f").publicKey,
  });
  let answered = 0;
  flooder.route(() => true, () => answered++);
  const flood = (async () => {
    for (let i = 0; i < 3000; i++) {
      await flooder.send(ping, target.socket.addr);
      if (i % 200 === 0) await sleep(1);
    }
  })();
  let served = 0;
  for (let i = 0; i < 20; i++) {
    const reply = await honest.rpc.request(target.socket.addr, { type: "ping" });
    if (reply.ok) served++;
  }
  await flood;
  await sleep(50);
  equal(served, 20);
  const dropped = target.dht.stats().dropped.rate;
  ok(dropped >= 2000, `dropped ${dropped}`);
  ok(answered <= 100 + 50 * 2, `answered the flooder ${answered} times`);
});

Deno.test("malformed datagrams (fast-check: random bytes, truncations, bit flips) are counted and never stop a node", async () => {
  await using target = await startNode("127.0.0.1", { rateLimit: { perIp: 1e6, burst: 1e6, global: 1e6 } });
  await using fuzzer = await UdpSocket.bind("udp://127.0.0.2:0");
  await using client = await rawClient("127.0.0.3");
  const valid = [
    encodeMessage({
      type: "find_node",
      flags: 1,
      txid: new Uint8Array(8),
      publicKey: client.identity.publicKey,
      target: sha256(utf8("t")),
    }),
    encodeMessage({
      type: "store",
      flags: 0,
      txid: new Uint8Array(8),
      publicKey: client.identity.publicKey,
      token: new Uint8Array(8),
      key: new Uint8Array(32),
      record: new Uint8Array(90),
    }),
    encodeMessage({
      type: "nodes",
      flags: 0,
      txid: new Uint8Array(8),
      publicKey: client.identity.publicKey,
      token: new Uint8Array(8),
      contacts: [],
    }),
  ];
  const samples = [
    ...fc.sample(fc.uint8Array({ minLength: 1, maxLength: 1300 }), 300).map((b) =>
      Uint8Array.of(0x90 | (b[0] & 15), ...b.subarray(1))
    ),
    ...fc.sample(fc.tuple(fc.nat(2), fc.nat()), 300).map(([i, cut]) => valid[i].slice(0, cut % valid[i].length)),
    ...fc.sample(fc.tuple(fc.nat(2), fc.nat(), fc.nat(7)), 300).map(([i, at, bit]) => {
      const b = valid[i].slice();
      b[at % b.length] ^= 1 << bit;
      return b;
    }),
  ];
  for (const [i, sample] of samples.entries()) {
    await fuzzer.send(sample, target.socket.addr);
    if (i % 50 === 0) await sleep(2);
  }
  await sleep(200);
  const stats = target.dht.stats();
  const counted = stats.dropped.malformed + stats.dropped.unsolicited + stats.rpcs.received +
    stats.dropped.badSignature;
  // A flip of the first byte's high bits, or an empty datagram, is not the DHT's: the socket counts it as unrouted.
  equal(counted + target.socket.stats.unrouted, samples.length, "every datagram was handled or counted as dropped");
  ok(stats.dropped.malformed > 300, `malformed ${stats.dropped.malformed}`);
  const reply = await client.rpc.request(target.socket.addr, { type: "ping" });
  ok(reply.ok, "the node still answers");
});

Deno.test("a read-only node uses the DHT but is never admitted to tables and stores nothing for others", async () => {
  await using net = await TestNet.start(8);
  await using reader = await startNode("127.0.0.100", { readOnly: true, bootstrap: [net.nodes[0].socket.addr] });
  await reader.dht.bootstrap();
  ok(reader.dht.stats().contacts >= 7);
  const result = await reader.dht.findNode(net.nodes[4].dht.id);
  ok(result.found);
  await sleep(100);
  for (const n of net.nodes) ok(!n.dht.contacts().some((c) => c.addr.hostname === "127.0.0.100"));
  const owner = net.nodes[1];
  const put = await owner.dht.put(peerRecord(owner.identity, [owner.socket.url]));
  ok(put.stored >= 7);
  equal(reader.dht.stats().records, 0);
});

Deno.test("the routing table holds at most 2 IDs of one /24 per bucket and 10 in all when loopback is not exempt", async () => {
  await using hub = await startNode("127.9.0.1", { prefixLimitExempt: () => false });
  const others = [];
  try {
    for (let i = 0; i < 24; i++) others.push(await startNode(`127.8.0.${i + 1}`, { bootstrap: [hub.socket.addr] }));
    await Promise.all(others.map((o) => o.dht.bootstrap()));
    await sleep(200);
    const contacts = hub.dht.contacts();
    ok(contacts.length <= 10 && contacts.length >= 2, `hub holds ${contacts.length}`);
    const perBucket = new Map<number, number>();
    for (const c of contacts) {
      const bucket = [...Array(256).keys()].find((b) =>
        ((c.id[b >> 3] ^ hub.dht.id[b >> 3]) & (0x80 >> (b & 7))) !== 0
      )!;
      perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + 1);
    }
    ok([...perBucket.values()].every((n) => n <= 2), JSON.stringify([...perBucket]));
    ok(others.every((o) => o.dht.stats().contacts >= 2), "they, exempt by default, see each other");
  } finally {
    await Promise.all(others.map(async (o) => {
      await o.dht.close();
      await o.socket.close();
    }));
  }
});

Deno.test("a node whose table empties bootstraps again, with backoff, once its bootstrap node is back", async () => {
  const timers = { tickMs: 50, livenessMs: 100, rebootstrapMinMs: 500 };
  const first = await startNode("127.0.0.1", { timers });
  const port = first.socket.addr.port;
  const attempts: number[] = [];
  const log = (line: string) => line.includes("bootstrapping again") && attempts.push(performance.now());
  await using node = await startNode("127.0.0.2", { timers, log, bootstrap: [first.socket.addr] });
  equal(await node.dht.bootstrap(), 1);
  await first.dht.close();
  await first.socket.close();
  for (let i = 0; i < 100 && node.dht.stats().contacts > 0; i++) await sleep(50);
  equal(node.dht.stats().contacts, 0, "the dead bootstrap node left the table");
  while (attempts.length < 3) await sleep(50);
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
  ok(gaps[0] >= 450 && gaps[1] > 1.6 * gaps[0], `the delay doubles: ${gaps.map((g) => g.toFixed(0))} ms`);
  const socket = await UdpSocket.bind(`udp://127.0.0.1:${port}`);
  const identity = Identity.generate("back");
  const back = await Dht.start({ socket, signer: identity, rpcTimeoutMs: 400 });
  try {
    for (let i = 0; i < 200 && node.dht.stats().contacts === 0; i++) await sleep(50);
    eql(node.dht.contacts().map((c) => c.id), [back.id]);
  } finally {
    await back.close();
    await socket.close();
  }
});

Deno.test("loopback() gives every test node its own address", () => {
  equal(new Set([0, 1, 255, 256, 1000].map((i) => loopback(i))).size, 5);
});

Deno.test("a tag with more publishers than one VALUES holds is read page by page", async () => {
  await using net = await TestNet.start(12);
  const publishers = Array.from({ length: 24 }, (_, i) => Identity.generate(`p${i}`));
  await Promise.all(publishers.map((p, i) =>
    net.nodes[i % net.nodes.length].dht.put(
      serviceRecord(p, { name: `printer-${i}`, tags: ["print"], protocol: "nz/print/1" }),
    )
  ));
  const result = await net.nodes[7].dht.get(serviceKey("print"));
  equal(result.records.length, 24);
  ok(result.queried > 11, `pages asked for: ${result.queried} queries`);
  equal((await net.nodes[3].dht.findServices("print")).length, 24);
});

Deno.test("a published record reaches a closer node that joins later, until it is unpublished", async () => {
  const timers = { tickMs: 40, republishMs: 150 };
  await using net = await TestNet.start(12, { k: 4, timers });
  const owner = net.nodes[2];
  const name = utf8("now");
  const record = signRecord(owner.identity, {
    kind: "mutable",
    seq: 7,
    expires: Date.now() + 60_000,
    name,
    value: utf8("x"),
  });
  const key = mutableKey(owner.identity.publicKey, name);
  await owner.dht.publish(record);
  // A node whose ID shares 10 bits with the key is closer to it than any of the 12 (almost surely).
  const newcomer = (i: number) =>
    startNode(loopback(i), { k: 4, timers, bootstrap: [net.nodes[0].socket.addr], signer: grindSigner(key, 10) });
  await using close = await newcomer(50);
  await close.dht.bootstrap();
  for (let i = 0; i < 60 && close.dht.stats().records === 0; i++) await sleep(50);
  equal(close.dht.stats().records, 1, "the republish stored it at the newcomer");
  owner.dht.unpublish(record);
  equal(owner.dht.stats().published, 0);
  await using after = await newcomer(51);
  await after.dht.bootstrap();
  await sleep(5 * timers.republishMs);
  equal(after.dht.stats().records, 0, "no republish after unpublish()");
});

Deno.test("storing nodes replicate a record to a closer newcomer after its publisher is gone, and drop it at expiry", async () => {
  const timers = { tickMs: 40, replicateMs: 150 };
  await using net = await TestNet.start(12, { k: 4, timers });
  const owner = await startNode(loopback(40), { k: 4, timers, bootstrap: [net.nodes[0].socket.addr] });
  const name = utf8("brief");
  const expires = Date.now() + 2_500;
  const record = signRecord(owner.identity, { kind: "mutable", seq: 1, expires, name, value: utf8("y") });
  const key = mutableKey(owner.identity.publicKey, name);
  await owner.dht.bootstrap();
  ok((await owner.dht.put(record)).stored >= 3);
  await owner.dht.close();
  await owner.socket.close();
  await using close = await startNode(loopback(41), {
    k: 4,
    timers,
    bootstrap: [net.nodes[0].socket.addr],
    signer: grindSigner(key, 10),
  });
  await close.dht.bootstrap();
  for (let i = 0; i < 40 && close.dht.stats().records === 0; i++) await sleep(50);
  equal(close.dht.stats().records, 1, "replicated by the nodes that stored it");
  equal((await net.nodes[5].dht.get(key)).records.length, 1);
  await sleep(Math.max(0, expires - Date.now()) + 100);
  equal((await net.nodes[5].dht.get(key)).records.length, 0, "expired");
  for (let i = 0; i < 20 && net.nodes.some((n) => n.dht.stats().records > 0); i++) await sleep(50);
  equal(
    net.nodes.reduce((n, x) => n + x.dht.stats().records, 0) + close.dht.stats().records,
    0,
    "every store dropped it",
  );
});
