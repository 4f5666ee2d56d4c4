import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { openChannel } from "../../../kernel/channel/channel.ts";
import { DatagramEndpoint, type DatagramHandshake } from "../../../kernel/channel/datagram_endpoint.ts";
import type { DatagramSession, DatagramSessionOptions } from "../../../kernel/channel/datagram_session.ts";
import { performHandshake } from "../../../kernel/channel/handshake.ts";
import { createFrameIO } from "../../../transport/framing.ts";
import { type UdpAddr, UdpSocket } from "../../../transport/udp.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { pattern, readAll } from "./_datagram.ts";

const alice = Identity.generate("alice");
const bob = Identity.generate("bob");

/** A UDP relay between one client and one server that drops, delays and reorders packets, and can rebind. */
class LossyPath {
  #front!: UdpSocket;
  #back!: UdpSocket;
  #client: UdpAddr | null = null;
  #server: UdpAddr;
  loss = 0;
  /** Extra delay, ms, for a random share `reorder` of the packets. */
  reorder = 0;
  forwarded = 0;
  dropped = 0;
  /** When set, packets toward the server are captured instead of forwarded (for replay tests). */
  capture: Uint8Array[] | null = null;
  blackhole = false;
  /** When set, packets toward the server for which it returns true are dropped (a chosen loss pattern). */
  dropToServer: ((data: Uint8Array) => boolean) | null = null;

  private constructor(server: UdpAddr) {
    this.#server = server;
  }

  static async open(server: UdpAddr): Promise<LossyPath> {
    const path = new LossyPath(server);
    path.#front = await UdpSocket.bind("udp://127.0.0.1:0");
    path.#back = await UdpSocket.bind("udp://127.0.0.1:0");
    path.#front.route(() => true, (data, from) => {
      path.#client = from;
      path.#forward(data, () => path.#back, path.#server, true);
    });
    path.#back.route(() => true, (data) => {
      if (path.#client) path.#forward(data, () => path.#front, path.#client, false);
    });
    return path;
  }

  get addr(): UdpAddr {
    return this.#front.addr;
  }

  /** The NAT "rebinds": packets toward the server leave from a new port from now on. */
  async rebind(): Promise<void> {
    const old = this.#back;
    this.#back = await UdpSocket.bind("udp://127.0.0.1:0");
    this.#back.route(() => true, (data) => {
      if (this.#client) this.#forward(data, () => this.#front, this.#client, false);
    });
    await old.close();
  }

  #forward(data: Uint8Array, via: () => UdpSocket, to: UdpAddr, toServer: boolean): void {
    if (this.blackhole || Math.random() < this.loss || (toServer && this.dropToServer?.(data))) {
      this.dropped++;
      return;
    }
    if (toServer && this.capture) this.capture.push(data.slice());
    this.forwarded++;
    const send = () => via().send(data, to).catch(() => {});
    if (this.reorder > 0 && Math.random() < 0.2) setTimeout(send, Math.random() * this.reorder);
    else send();
  }

  async close(): Promise<void> {
    await this.#front.close();
    await this.#back.close();
  }
}

interface Pair {
  a: DatagramSession;
  b: DatagramSession;
  sa: UdpSocket;
  sb: UdpSocket;
  ea: DatagramEndpoint;
  eb: DatagramEndpoint;
  path?: LossyPath;
  close(): Promise<void>;
}

/** Two endpoints on loopback (through a lossy path when asked), a handshake, and the two sessions. */
async function pair(
  options: { session?: DatagramSessionOptions; loss?: number; reorder?: number; viaPath?: boolean } = {},
): Promise<Pair> {
  const sa = await UdpSocket.bind("udp://127.0.0.1:0");
  const sb = await UdpSocket.bind("udp://127.0.0.1:0");
  const accepted = Promise.withResolvers<DatagramSession>();
  const eb = new DatagramEndpoint(sb, {
    session: options.session,
    onHandshake: (hs: DatagramHandshake) => {
      performHandshake(hs, { role: "responder", identity: bob }).then(
        (result) => accepted.resolve(hs.establish(result.keys)),
        accepted.reject,
      );
    },
  });
  const ea = new DatagramEndpoint(sa, { session: options.session, onHandshake: (hs) => hs.abort() });
  let path: LossyPath | undefined;
  let target = sb.addr;
  if (options.viaPath || options.loss || options.reorder) {
    path = await LossyPath.open(sb.addr);
    path.loss = options.loss ?? 0;
    path.reorder = options.reorder ?? 0;
    target = path.addr;
  }
  const hs = ea.dial(target);
  const result = await performHandshake(hs, { role: "initiator", identity: alice, expectedPeer: bob.nodeId });
  const a = hs.establish(result.keys);
  const b = await accepted.promise;
  return {
    a,
    b,
    sa,
    sb,
    ea,
    eb,
    path,
    async close() {
      a.abort();
      b.abort();
      ea.close();
      eb.close();
      await sa.close();
      await sb.close();
      await path?.close();
    },
  };
}

Deno.test("datagram: a handshake over UDP gives two sessions carrying bytes both ways", async () => {
  const p = await pair();
  try {
    equal(p.a.remoteAddr, p.sb.url);
    await p.a.write(new TextEncoder().encode("hello"));
    deepEqual(new TextDecoder().decode(await readAll(p.b, 5)), "hello");
    await p.b.write(new TextEncoder().encode("back"));
    deepEqual(new TextDecoder().decode(await readAll(p.a, 4)), "back");
    ok(p.a.rttMs !== null);
  } finally {
    await p.close();
  }
});

Deno.test("datagram: 4 MiB cross intact, in order, split into datagrams of at most 1200 bytes", async () => {
  const p = await pair();
  try {
    const data = pattern(4 * 1024 * 1024);
    const writing = (async () => {
      for (let i = 0; i < data.length; i += 100_000) await p.a.write(data.subarray(i, i + 100_000));
    })();
    const got = await readAll(p.b, data.length);
    await writing;
    deepEqual(got, data);
    ok(p.a.stats.packetsSent >= data.length / 1200);
  } finally {
    await p.close();
  }
});

Deno.test("datagram: the handshake and the stream survive 20% loss and reordering", async () => {
  const p = await pair({ loss: 0.2, reorder: 30 });
  try {
    const data = pattern(300_000, 3);
    const back = pattern(100_000, 5);
    await Promise.all([p.a.write(data), p.b.write(back)]);
    const [got, gotBack] = await Promise.all([readAll(p.b, data.length), readAll(p.a, back.length)]);
    deepEqual(got, data);
    deepEqual(gotBack, back);
    ok(p.path!.dropped > 0);
    ok(p.a.stats.packetsLost > 0, "losses were detected and repaired");
  } finally {
    await p.close();
  }
});

Deno.test("datagram: after a loss that halves the window, a lost tail costs one probe timeout, not a doubling series", async () => {
  const p = await pair({ viaPath: true });
  try {
    await p.a.write(new Uint8Array([0]));
    await readAll(p.b, 1);
    // 32 data packets, the initial window, leave in one burst. Drop the 6th, which the time threshold finds and
    // which halves the window, and the last 24, which only a probe timeout can find: their bytes still count as
    // in flight, above the halved window. (Acknowledgement-only packets are under 100 bytes.)
    let sent = 0;
    p.path!.dropToServer = (data) => {
      if (data.length < 200) return false;
      const i = sent++;
      return i === 5 || (i >= 8 && i < 32);
    };
    const data = pattern(36_500, 17);
    await p.a.write(data);
    deepEqual(await readAll(p.b, data.length), data);
    ok(p.a.stats.packetsLost >= 25, `${p.a.stats.packetsLost} packets declared lost`);
    // Probes held back by the window would each double the next timeout: six of them, half a second.
    ok(p.a.stats.probeTimeouts <= 2, `${p.a.stats.probeTimeouts} probe timeouts`);
  } finally {
    await p.close();
  }
});

Deno.test("datagram: the NZ-CHANNEL-01 channel runs on a session (streams, messages, ping)", async () => {
  const p = await pair({ loss: 0.05 });
  try {
    const keys = crypto.getRandomValues(new Uint8Array(32));
    const keys2 = crypto.getRandomValues(new Uint8Array(32));
    const h = new Uint8Array(32);
    const ca = openChannel(createFrameIO(p.a), {
      initiator: true,
      sendKey: keys.slice(),
      recvKey: keys2.slice(),
      handshakeHash: h,
    });
    const cb = openChannel(createFrameIO(p.b), { initiator: false, sendKey: keys2, recvKey: keys, handshakeHash: h });
    const stream = await ca.openStream();
    const message = pattern(200_000, 9);
    await stream.send(message);
    const incoming = await cb.accept();
    deepEqual(await incoming!.receive(), message);
    ok((await ca.ping()) >= 0);
    await ca.close();
    await cb.closed;
  } finally {
    await p.close();
  }
});

Deno.test("datagram: a replayed or tampered packet is dropped and delivers nothing twice", async () => {
  const p = await pair({ viaPath: true });
  try {
    p.path!.capture = [];
    await p.a.write(new TextEncoder().encode("once"));
    deepEqual(new TextDecoder().decode(await readAll(p.b, 4)), "once");
    const captured = p.path!.capture.filter((d) => d[0] === 0x84);
    ok(captured.length > 0);
    const dropped = p.b.stats.packetsDropped;
    const attacker = await UdpSocket.bind("udp://127.0.0.1:0");
    try {
      for (const packet of captured) await attacker.send(packet, p.sb.addr);
      const tampered = captured[0].slice();
      tampered[tampered.length - 1] ^= 1;
      await attacker.send(tampered, p.sb.addr);
      await attacker.send(new Uint8Array([0x84, 1, 2, 3]), p.sb.addr); // truncated
      await attacker.send(new Uint8Array([0x81, 0, 0, 0, 1, 9, 9]), p.sb.addr); // junk handshake
      await new Promise((r) => setTimeout(r, 100));
      equal(p.b.stats.packetsDropped, dropped + captured.length + 1);
      // The session goes on, and the replays delivered nothing.
      await p.a.write(new TextEncoder().encode("twice"));
      deepEqual(new TextDecoder().decode(await readAll(p.b, 5)), "twice");
    } finally {
      await attacker.close();
    }
  } finally {
    await p.close();
  }
});

Deno.test("datagram: the key phase flips after the packet limit, with nothing lost", async () => {
  const p = await pair({ session: { rekeyAfterPackets: 40 } });
  try {
    const data = pattern(500_000, 11);
    await p.a.write(data);
    deepEqual(await readAll(p.b, data.length), data);
    await p.b.write(data);
    deepEqual(await readAll(p.a, data.length), data);
    ok(p.a.stats.rekeys >= 3, `a flipped ${p.a.stats.rekeys} times`);
    ok(p.b.stats.rekeys >= 3, `b flipped ${p.b.stats.rekeys} times`);
  } finally {
    await p.close();
  }
});

Deno.test("datagram: a NAT rebinding moves the session to the new address", async () => {
  const p = await pair({ viaPath: true });
  try {
    await p.a.write(new Uint8Array([1]));
    await readAll(p.b, 1);
    const before = p.b.remoteAddr;
    await p.path!.rebind();
    await p.a.write(new Uint8Array([2]));
    deepEqual(await readAll(p.b, 1), new Uint8Array([2]));
    await p.b.write(new Uint8Array([3]));
    deepEqual(await readAll(p.a, 1), new Uint8Array([3]));
    ok(p.b.remoteAddr !== before, "the responder follows the new port");
  } finally {
    await p.close();
  }
});

Deno.test("datagram: keep-alives hold an idle session; a silent peer ends it", async () => {
  const p = await pair({ viaPath: true, session: { keepAliveMs: 200, idleTimeoutMs: 1_500 } });
  try {
    await new Promise((r) => setTimeout(r, 2_200));
    await p.a.write(new Uint8Array([5]));
    deepEqual(await readAll(p.b, 1), new Uint8Array([5]));
    p.path!.blackhole = true;
    await rejects(p.a.read(), /No packet from the peer|stopped answering/);
  } finally {
    await p.close();
  }
});

Deno.test("datagram: close() delivers every byte, then the peer reads the end", async () => {
  const p = await pair({ loss: 0.1 });
  try {
    const data = pattern(50_000, 13);
    await p.a.write(data);
    await p.a.close();
    deepEqual(await readAll(p.b, data.length), data);
    equal(await p.b.read(), null);
    await rejects(p.a.write(new Uint8Array([1])));
  } finally {
    await p.close();
  }
});

Deno.test("datagram: a handshake to nobody times out; the endpoint survives junk", async () => {
  const s = await UdpSocket.bind("udp://127.0.0.1:0");
  const silent = await UdpSocket.bind("udp://127.0.0.1:0");
  const e = new DatagramEndpoint(s, { onHandshake: (hs) => hs.abort() });
  try {
    const hs = e.dial(silent.addr);
    await rejects(performHandshake(hs, { role: "initiator", identity: alice, timeoutMs: 800 }), /timed out/);
    for (
      const junk of [
        new Uint8Array([0x82]),
        new Uint8Array([0x83, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        new Uint8Array(2000).fill(0x85),
      ]
    ) {
      await silent.send(junk, s.addr);
    }
    await new Promise((r) => setTimeout(r, 50));
    equal(e.stats.dropped, 2);
    equal(s.stats.unrouted, 1); // too short to be an NZ-DGRAM-01 packet at all
  } finally {
    e.close();
    await s.close();
    await silent.close();
  }
});

Deno.test("datagram: packet and record decoders throw only DatagramError on any input", async () => {
  const fc = (await import("fast-check")).default;
  const { decodeHandshakePacket, decodeRecords, readDataHeader, DatagramError } = await import(
    "../../../kernel/channel/datagram_packet.ts"
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      for (const decode of [decodeHandshakePacket, decodeRecords, readDataHeader]) {
        try {
          decode(bytes);
        } catch (error) {
          if (!(error instanceof DatagramError)) throw error;
        }
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("datagram: records round-trip through the writer", async () => {
  const { decodeRecords, RecordWriter } = await import("../../../kernel/channel/datagram_packet.ts");
  const w = new RecordWriter(1200);
  w.ack(3, [[100, 90], [80, 80]]);
  w.maxData(2 ** 40);
  w.stream(2 ** 33 + 5, new Uint8Array([1, 2, 3]));
  w.ping();
  w.close(1, "é".repeat(200));
  const records = decodeRecords(w.buffer.subarray(0, w.length));
  deepEqual(records.slice(0, 4), [
    { type: "ack", delayMs: 3, ranges: [[100, 90], [80, 80]] },
    { type: "max_data", max: 2 ** 40 },
    { type: "stream", offset: 2 ** 33 + 5, data: new Uint8Array([1, 2, 3]) },
    { type: "ping" },
  ]);
  const close = records[4] as { type: "close"; reason: string };
  equal(close.reason, "é".repeat(128)); // cut at 256 bytes, on a character boundary
});

Deno.test("datagram: a flood of INITIATIONs from one address is cut down by the rate limit", async () => {
  const s = await UdpSocket.bind("udp://127.0.0.1:0");
  const attacker = await UdpSocket.bind("udp://127.0.0.1:0");
  let started = 0;
  const e = new DatagramEndpoint(s, {
    handshakesPerSecond: 5,
    maxPendingPerHost: 1000,
    onHandshake: (hs) => {
      started++;
      hs.abort();
    },
  });
  try {
    const { encodeHandshakePacket } = await import("../../../kernel/channel/datagram_packet.ts");
    for (let i = 1; i <= 100; i++) {
      await attacker.send(
        encodeHandshakePacket({ number: 1, sender: i, receiver: 0, message: new Uint8Array(32) }),
        s.addr,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
    ok(started >= 10 && started <= 12, `${started} handshakes started (burst 10)`);
    equal(e.stats.refused, 100 - started);
  } finally {
    e.close();
    await s.close();
    await attacker.close();
  }
});
