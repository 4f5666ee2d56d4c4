import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  AddressInUseError,
  formatUdpAddr,
  isStunDatagram,
  parseUdpAddr,
  TransportError,
  UdpSocket,
} from "../../transport/mod.ts";

Deno.test("udp: routes datagrams by their first bytes, drops what no route claims", async () => {
  await using a = await UdpSocket.bind("udp://127.0.0.1:0");
  await using b = await UdpSocket.bind("127.0.0.1:0");
  ok(b.addr.port > 0);
  equal(b.url, `udp://127.0.0.1:${b.addr.port}`);
  const odd: Uint8Array[] = [];
  const even = Promise.withResolvers<[Uint8Array, string]>();
  b.route((d) => d[0] % 2 === 1, (d) => odd.push(d));
  const remove = b.route((d) => d[0] === 2, (d, from) => even.resolve([d, formatUdpAddr(from)]));
  await a.send(new Uint8Array([9]), b.addr);
  await a.send(new Uint8Array([1, 1]), b.addr);
  await a.send(new Uint8Array([2, 2]), b.addr);
  const [data, from] = await even.promise;
  deepEqual(data, new Uint8Array([2, 2]));
  equal(from, a.url);
  deepEqual(odd, [new Uint8Array([9]), new Uint8Array([1, 1])]);
  remove();
  await a.send(new Uint8Array([2]), b.addr); // no route any more: dropped
  const done = Promise.withResolvers<void>();
  b.route((d) => d[0] === 4, () => done.resolve());
  await a.send(new Uint8Array([4]), b.addr);
  await done.promise;
  equal(b.stats.received, 5);
  equal(b.stats.unrouted, 1);
  equal(a.stats.sent, 5);
});

Deno.test("udp: a route can match on the sender too, so two senders' same bytes go to different routes", async () => {
  await using a = await UdpSocket.bind("udp://127.0.0.1:0");
  await using c = await UdpSocket.bind("udp://127.0.0.1:0");
  await using b = await UdpSocket.bind("udp://127.0.0.1:0");
  const fromA: number[] = [];
  const rest = Promise.withResolvers<[number, string]>();
  b.route((d, from) => d[0] === 0x40 && from.port === a.addr.port, (d) => fromA.push(d[1]));
  b.route((d) => d[0] === 0x40, (d, from) => rest.resolve([d[1], formatUdpAddr(from)]));
  await a.send(new Uint8Array([0x40, 1]), b.addr);
  await c.send(new Uint8Array([0x40, 2]), b.addr);
  deepEqual(await rest.promise, [2, c.url]);
  deepEqual(fromA, [1]);
  equal(b.stats.unrouted, 0);
});

Deno.test("udp: a throwing handler loses one datagram, the socket goes on", async () => {
  await using a = await UdpSocket.bind("udp://127.0.0.1:0");
  await using b = await UdpSocket.bind("udp://127.0.0.1:0");
  const got = Promise.withResolvers<number>();
  const warn = console.warn;
  console.warn = () => {};
  try {
    b.route((d) => d[0] === 1, () => {
      throw new Error("boom");
    });
    b.route(() => true, (d) => got.resolve(d[0]));
    await a.send(new Uint8Array([1]), b.addr);
    await a.send(new Uint8Array([7]), b.addr);
    equal(await got.promise, 7);
  } finally {
    console.warn = warn;
  }
});

Deno.test("udp: a port in use is a clear error; a closed socket refuses to send", async () => {
  const a = await UdpSocket.bind("udp://127.0.0.1:0");
  await rejects(UdpSocket.bind(a.url), AddressInUseError);
  await a.close();
  await a.close();
  ok(a.closed);
  await rejects(a.send(new Uint8Array([1]), a.addr), TransportError);
  // The port is free again.
  const again = await UdpSocket.bind(a.url);
  await again.close();
});

Deno.test("udp: addresses parse and format, IPv6 in brackets", () => {
  deepEqual(parseUdpAddr("udp://[::1]:7475"), { hostname: "::1", port: 7475 });
  deepEqual(parseUdpAddr("10.0.0.1:9"), { hostname: "10.0.0.1", port: 9 });
  equal(formatUdpAddr({ hostname: "::1", port: 1 }), "udp://[::1]:1");
  throws(() => parseUdpAddr("tcp://1.2.3.4:5"), SyntaxError);
  throws(() => parseUdpAddr("udp://1.2.3.4:5/x"), SyntaxError);
});

Deno.test("udp: isStunDatagram tells STUN from the node's own datagrams", () => {
  const stun = new Uint8Array(20);
  stun.set([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]);
  ok(isStunDatagram(stun));
  ok(!isStunDatagram(stun.subarray(0, 19)));
  const bad = stun.slice();
  bad[7] = 0x43;
  ok(!isStunDatagram(bad));
  const nz = stun.slice();
  nz[0] = 0x80;
  ok(!isStunDatagram(nz));
});
