import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import {
  AddressInUseError,
  formatUdpAddr,
  type ForwardedDatagram,
  MemoryDatagramNetwork,
  type MemoryDatagramSocket,
  TransportError,
  type UdpAddr,
} from "../../transport/mod.ts";

/** Collects what `socket` receives on a route taking every datagram. */
function inbox(socket: MemoryDatagramSocket) {
  const got: { data: Uint8Array; from: string; at: number }[] = [];
  let waiting: { n: number; resolve: () => void } | null = null;
  socket.route(() => true, (data, from) => {
    got.push({ data, from: formatUdpAddr(from), at: performance.now() });
    if (waiting !== null && got.length >= waiting.n) waiting.resolve();
  });
  return {
    got,
    /** Resolves once `n` datagrams have arrived. */
    until(n: number): Promise<void> {
      if (got.length >= n) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiting = { n, resolve };
      return promise;
    },
  };
}

/** A seeded random in [0, 1) (mulberry32), so loss counts repeat. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("memory datagram: a datagram arrives as a copy, from the sender's address", async () => {
  using network = new MemoryDatagramNetwork();
  const a = network.bind("198.51.100.1", 4000);
  const b = network.bind("203.0.113.9", 5000);
  equal(b.url, "udp://203.0.113.9:5000");
  const box = inbox(b);
  const data = new Uint8Array([0x80, 1, 2]);
  const sent = a.send(data, b.addr);
  data[1] = 99; // the sender reuses its buffer at once
  equal(box.got.length, 0, "delivery is asynchronous, even with no latency");
  await sent;
  await box.until(1);
  eql(box.got[0].data, new Uint8Array([0x80, 1, 2]));
  equal(box.got[0].from, "udp://198.51.100.1:4000");
  eql(network.stats, { sent: 1, delivered: 1, lost: 0, unreachable: 0, forwarded: 0, bytes: 3 });
  eql(a.stats, { received: 0, unrouted: 0, sent: 1, sendErrors: 0 });
  eql(b.stats, { received: 1, unrouted: 0, sent: 0, sendErrors: 0 });
});

Deno.test("memory datagram: latency delays delivery, and a function of the two ends sets it per pair", async () => {
  const latency = (from: UdpAddr, to: UdpAddr) => (from.hostname === "10.0.0.1" && to.port === 2 ? 40 : 5);
  using network = new MemoryDatagramNetwork({ latency });
  const a = network.bind("10.0.0.1", 1);
  const slow = inbox(network.bind("10.0.0.2", 2));
  const fast = inbox(network.bind("10.0.0.3", 3));
  const start = performance.now();
  await a.send(new Uint8Array([1]), { hostname: "10.0.0.2", port: 2 });
  await a.send(new Uint8Array([2]), { hostname: "10.0.0.3", port: 3 });
  await Promise.all([slow.until(1), fast.until(1)]);
  const fastMs = fast.got[0].at - start, slowMs = slow.got[0].at - start;
  ok(fastMs >= 4 && fastMs < 35, `5 ms path took ${fastMs} ms`);
  ok(slowMs >= 39, `40 ms path took ${slowMs} ms`);
  ok(fast.got[0].at < slow.got[0].at, "the later, faster datagram overtakes the slower one");
});

Deno.test("memory datagram: datagrams due together arrive in the order they were sent", async () => {
  using network = new MemoryDatagramNetwork({ latency: 10 });
  const a = network.bind("192.0.2.1", 1);
  const box = inbox(network.bind("192.0.2.2", 1));
  for (let i = 0; i < 200; i++) await a.send(new Uint8Array([i]), { hostname: "192.0.2.2", port: 1 });
  await box.until(200);
  eql(box.got.map((g) => g.data[0]), Array.from({ length: 200 }, (_, i) => i));
});

Deno.test("memory datagram: the loss rate drops that share of datagrams, repeatably with a seeded random", async () => {
  const run = async () => {
    using network = new MemoryDatagramNetwork({ loss: 0.25, random: seeded(7) });
    const a = network.bind("192.0.2.1", 1);
    const box = inbox(network.bind("192.0.2.2", 1));
    for (let i = 0; i < 2000; i++) await a.send(new Uint8Array([i & 0xff]), { hostname: "192.0.2.2", port: 1 });
    await sleep(20);
    equal(box.got.length, network.stats.delivered);
    equal(network.stats.delivered + network.stats.lost, 2000);
    return network.stats.lost;
  };
  const lost = await run();
  ok(lost > 400 && lost < 600, `lost ${lost} of 2000 at 25%`);
  equal(await run(), lost);
  using none = new MemoryDatagramNetwork({ loss: 1 });
  const a = none.bind("192.0.2.1", 1);
  const box = inbox(none.bind("192.0.2.2", 1));
  await a.send(new Uint8Array([1]), { hostname: "192.0.2.2", port: 1 });
  await sleep(5);
  equal(box.got.length, 0);
  equal(none.stats.lost, 1);
});

Deno.test("memory datagram: routes work as the UDP socket's: first match wins, unclaimed datagrams are counted", async () => {
  using network = new MemoryDatagramNetwork();
  const a = network.bind("192.0.2.1", 1);
  const b = network.bind("192.0.2.2", 1);
  const first: number[] = [], second: number[] = [];
  const done = Promise.withResolvers<void>();
  b.route((d) => d[0] < 10, (d) => first.push(d[0]));
  const remove = b.route((d) => d[0] < 20, (d) => second.push(d[0]));
  b.route((d) => d[0] === 0xff, () => done.resolve());
  b.route(() => {
    throw new Error("a throwing match is passed over");
  }, () => {});
  for (const n of [1, 15, 30]) await a.send(new Uint8Array([n]), b.addr);
  await sleep(5);
  remove();
  await a.send(new Uint8Array([16]), b.addr);
  await a.send(new Uint8Array([0xff]), b.addr);
  await done.promise;
  eql(first, [1]);
  eql(second, [15]);
  equal(b.stats.received, 5);
  equal(b.stats.unrouted, 2);
});

Deno.test("memory datagram: an address can be bound once; closing frees it and drops what is on its way", async () => {
  using network = new MemoryDatagramNetwork({ latency: 10 });
  const a = network.bind("192.0.2.1", 1);
  const b = network.bind("192.0.2.2", 7);
  throws(() => network.bind("192.0.2.2", 7), AddressInUseError);
  await a.send(new Uint8Array([1]), b.addr);
  await b.close();
  await b.close();
  equal(b.closed, true);
  const again = network.bind("192.0.2.2", 7);
  const box = inbox(again);
  await sleep(20);
  equal(box.got.length, 1, "the new socket on the address receives what arrives after it bound");
  await again.close();
  await a.send(new Uint8Array([2]), b.addr);
  await a.send(new Uint8Array([3]), { hostname: "192.0.2.99", port: 9 });
  await sleep(20);
  equal(network.stats.unreachable, 2);
  await rejects(b.send(new Uint8Array([1]), a.addr), TransportError);
  equal(network.size, 1);
});

Deno.test("memory datagram: port 0 picks a free ephemeral port; IPv6 addresses are compared in canonical form", async () => {
  using network = new MemoryDatagramNetwork();
  const a = network.bind("2001:db8::1", 0);
  const b = network.bind("2001:db8::1", 0);
  equal(a.addr.port, 49152);
  equal(b.addr.port, 49153);
  equal(a.url, "udp://[2001:db8::1]:49152");
  const c = network.bind("2001:DB8:0:0::2", 9);
  equal(c.addr.hostname, "2001:db8::2");
  throws(() => network.bind("2001:db8::0:2", 9), AddressInUseError);
  const box = inbox(c);
  await a.send(new Uint8Array([1]), { hostname: "2001:0db8::0002", port: 9 });
  await box.until(1);
  equal(box.got[0].from, "udp://[2001:db8::1]:49152");
});

Deno.test("memory datagram: bad options, addresses and datagrams are refused with errors naming them", async () => {
  throws(() => new MemoryDatagramNetwork({ latency: -1 }), /latency must be a finite number >= 0/);
  throws(() => new MemoryDatagramNetwork({ latency: NaN }), RangeError);
  throws(() => new MemoryDatagramNetwork({ loss: 1.5 }), /loss must be between 0 and 1/);
  throws(() => new MemoryDatagramNetwork({ random: 3 as unknown as () => number }), TypeError);
  using network = new MemoryDatagramNetwork({ latency: (from) => from.port === 6 ? -5 : 0 });
  throws(() => network.bind("example.org", 1), SyntaxError);
  throws(() => network.bind("0.0.0.0", 1), /unspecified address/);
  throws(() => network.bind("::", 1), RangeError);
  throws(() => network.bind("192.0.2.1", 70000), /port must be an integer from 0 to 65535/);
  throws(() => network.bind("192.0.2.1", 1.5), RangeError);
  throws(() => network.bind(7 as unknown as string, 1), TypeError);
  const a = network.bind("192.0.2.1", 1);
  await rejects(a.send(new Uint8Array(65_508), { hostname: "192.0.2.2", port: 1 }), /message too long/);
  await rejects(a.send(new Uint8Array(1), { hostname: "192.0.2.2", port: 0 }), /to.port must be/);
  await rejects(a.send(new Uint8Array(1), null as unknown as UdpAddr), TypeError);
  await rejects(a.send("hi" as unknown as Uint8Array, { hostname: "192.0.2.2", port: 1 }), TypeError);
  const bad = network.bind("192.0.2.1", 6);
  await rejects(bad.send(new Uint8Array(1), a.addr), /latency from udp:\/\/192.0.2.1:6 to .* is -5/);
  equal(a.stats.sendErrors, 4);
  equal(network.stats.sent, 0);
  await a.send(new Uint8Array(65_507), { hostname: "192.0.2.2", port: 1 });
});

Deno.test("memory datagram: two networks joined as peers carry datagrams both ways, at the sender's latency", async () => {
  const half = (n: number) => (to: UdpAddr) => to.hostname.startsWith(`10.0.${n}.`);
  const networks: MemoryDatagramNetwork[] = [];
  const carry = (to: number) => (d: ForwardedDatagram) => queueMicrotask(() => networks[to].receiveForwarded(d));
  using a = new MemoryDatagramNetwork({ latency: 30, peer: { owns: half(2), forward: carry(1) } });
  using b = new MemoryDatagramNetwork({ latency: 5, peer: { owns: half(1), forward: carry(0) } });
  networks.push(a, b);
  const x = a.bind("10.0.1.1", 1), y = b.bind("10.0.2.1", 1);
  const atX = inbox(x), atY = inbox(y);
  const start = performance.now();
  await x.send(new Uint8Array([1]), y.addr);
  await y.send(new Uint8Array([2]), x.addr);
  await y.send(new Uint8Array([3]), { hostname: "10.0.1.99", port: 1 });
  await Promise.all([atX.until(1), atY.until(1)]);
  eql([atY.got[0].data, atY.got[0].from], [new Uint8Array([1]), "udp://10.0.1.1:1"]);
  eql([atX.got[0].data, atX.got[0].from], [new Uint8Array([2]), "udp://10.0.2.1:1"]);
  ok(atY.got[0].at - start >= 29, "A's latency applies to what A sends");
  ok(atX.got[0].at - start < 25, "B's latency applies to what B sends");
  await sleep(10);
  eql([a.stats.sent, a.stats.forwarded, a.stats.delivered, a.stats.unreachable], [1, 1, 1, 1]);
  eql([b.stats.sent, b.stats.forwarded, b.stats.delivered, b.stats.unreachable], [2, 2, 1, 0]);
  throws(() => a.receiveForwarded({ data: "x", from: x.addr, to: x.addr, due: 0 } as never), TypeError);
  throws(() => a.receiveForwarded({ data: new Uint8Array(1), from: x.addr, to: x.addr, due: NaN }), TypeError);
});

Deno.test("memory datagram: a thousand sockets exchanging ten thousand datagrams share one timer", async () => {
  using network = new MemoryDatagramNetwork({ latency: (from, to) => 5 + ((from.port * 7 + to.port) % 20) });
  const sockets = Array.from({ length: 1000 }, (_, i) => network.bind(`100.64.${i >> 8}.${i & 0xff}`, 1000 + i));
  let received = 0;
  const all = Promise.withResolvers<void>();
  for (const s of sockets) {
    s.route(() => true, () => {
      if (++received === 10_000) all.resolve();
    });
  }
  const setTimeoutBefore = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    timers++;
    return setTimeoutBefore(fn, ms);
  }) as typeof setTimeout;
  try {
    for (let i = 0; i < 10_000; i++) {
      await sockets[i % 1000].send(new Uint8Array([i & 0xff]), sockets[(i * 31 + 7) % 1000].addr);
    }
  } finally {
    globalThis.setTimeout = setTimeoutBefore;
  }
  ok(timers < 100, `${timers} timers armed for 10,000 sends`);
  equal(network.inFlight, 10_000 - received);
  await all.promise;
  equal(network.stats.delivered, 10_000);
  equal(network.inFlight, 0);
});
