import { deepEqual, equal } from "node:assert/strict";
import vectors from "../../../spec/vectors/nz_dgram_01.json" with { type: "json" };
import { fromHex, toHex } from "../../../kernel/bytes.ts";
import { rekeyKey } from "../../../kernel/channel/cipher.ts";
import {
  DATA_HEADER_LEN,
  decodeHandshakePacket,
  decodeRecords,
  encodeHandshakePacket,
  readDataHeader,
} from "../../../kernel/channel/datagram_packet.ts";
import { DatagramSession, PACKET_KEY_LABEL } from "../../../kernel/channel/datagram_session.ts";
import { deriveKey } from "../../../kernel/crypto/kdf.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";

function nonce(counter: number): Uint8Array {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setUint32(4, counter, true);
  return out;
}

/** Records as the vectors write them: stream data in hex. */
function recordsOf(plaintext: Uint8Array): unknown[] {
  return decodeRecords(plaintext).map((r) => r.type === "stream" ? { ...r, data: toHex(r.data) } : r);
}

Deno.test("NZ-DGRAM-01 vectors: the packet keys are HKDF of the channel key, then Rekey()", () => {
  const sendKey = fromHex(vectors.sendKey);
  equal(toHex(deriveKey(sendKey, PACKET_KEY_LABEL)), vectors.packetKey0);
  for (const provider of [nativeProvider, nobleProvider]) {
    equal(toHex(rekeyKey(fromHex(vectors.packetKey0), provider)), vectors.packetKey1);
  }
});

Deno.test("NZ-DGRAM-01 vectors: handshake packets encode and decode to the same bytes", () => {
  for (const h of vectors.handshake) {
    const packet = {
      number: h.number as 1 | 2 | 3,
      sender: h.sender,
      receiver: h.receiver,
      message: fromHex(h.message),
    };
    equal(toHex(encodeHandshakePacket(packet)), h.packet);
    deepEqual(decodeHandshakePacket(fromHex(h.packet)), packet);
  }
});

Deno.test("NZ-DGRAM-01 vectors: data packets open to their plaintext and records, with both providers", () => {
  const keys = [fromHex(vectors.packetKey0), fromHex(vectors.packetKey1)];
  for (const p of vectors.packets) {
    const packet = fromHex(p.packet);
    deepEqual(readDataHeader(packet), { phase: p.phase, receiver: vectors.receiverIndex, counter: p.counter });
    for (const provider of [nativeProvider, nobleProvider]) {
      const plaintext = provider.chachaOpen(
        keys[p.phase],
        nonce(p.counter),
        packet.subarray(DATA_HEADER_LEN),
        packet.subarray(0, DATA_HEADER_LEN),
      );
      equal(toHex(plaintext), p.plaintext, p.name);
    }
    deepEqual(recordsOf(fromHex(p.plaintext)), p.records, p.name);
  }
});

Deno.test("NZ-DGRAM-01 vectors: a live session accepts the packets in order and reads 'hello world!'", async () => {
  const sent: Uint8Array[] = [];
  const session = new DatagramSession({
    localIndex: vectors.receiverIndex,
    remoteIndex: 1,
    remote: { hostname: "127.0.0.1", port: 9 },
    localAddr: "udp://127.0.0.1:0",
    keys: { sendKey: new Uint8Array(32).fill(9), recvKey: fromHex(vectors.sendKey) },
    initiator: false,
    send: (packet) => sent.push(packet),
    onClose: () => {},
    options: { keepAliveMs: 0, idleTimeoutMs: 0 },
  });
  // Counters 0 (the responder's PING) to 8 go out, so that the vectors' ACK of 0-4 and 7 names packets sent.
  for (let i = 0; i < 8; i++) await session.write(new Uint8Array([i]));
  equal(sent.length, 9);
  for (const p of vectors.packets) session.receive(fromHex(p.packet), { hostname: "127.0.0.1", port: 9 });
  let text = "";
  for (let chunk; (chunk = await session.read()) !== null;) text += new TextDecoder().decode(chunk);
  equal(text, "hello world!");
  equal(session.stats.packetsDropped, 0);
  await session.closed;
});
