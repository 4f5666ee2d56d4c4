/**
 * Writes spec/vectors/nz_dgram_01.json: NZ-DGRAM-01 packets under fixed keys,
 * built with the noble provider (the reference) from the spec's formulas, not
 * through the session code: the packet key, handshake packet encodings, and
 * data packets in phase 0 and, after Rekey(), phase 1. Run it only when the
 * format changes on purpose: `deno run -A scripts/gen_dgram_vectors.ts`. The
 * vectors test checks that the codec and a live session reproduce the file.
 *
 * @module
 */

import { toHex, utf8 } from "../kernel/bytes.ts";
import { rekeyKey } from "../kernel/channel/cipher.ts";
import { nobleProvider as noble } from "../kernel/crypto/noble.ts";

const LABEL = "nz-dgram-01 packet key";

function packetKey(key: Uint8Array): Uint8Array {
  return noble.hkdf(key, new Uint8Array(0), new Uint8Array([...utf8(LABEL), 0]), 32);
}

function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function u64(n: number): number[] {
  return [...u32(Math.floor(n / 2 ** 32)), ...u32(n >>> 0)];
}

function nonce(counter: number): Uint8Array {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setUint32(4, counter >>> 0, true);
  view.setUint32(8, Math.floor(counter / 2 ** 32), true);
  return out;
}

const sendKey = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const receiverIndex = 0x0a0b0c0d;
const k0 = packetKey(sendKey);
const k1 = rekeyKey(k0, noble);

const packets = [
  {
    name: "PING (the responder's confirmation), counter 0",
    phase: 0,
    counter: 0,
    records: [{ type: "ping" }],
    plaintext: [0x01],
  },
  {
    name: "STREAM 'hello' at offset 0, counter 1",
    phase: 0,
    counter: 1,
    records: [{ type: "stream", offset: 0, data: toHex(utf8("hello")) }],
    plaintext: [0x03, ...u64(0), 0, 5, ...utf8("hello")],
  },
  {
    name: "ACK of counters 0-4 and 7 with a 3 ms delay, MAX_DATA 8 MiB + 5, STREAM ' world' at offset 5, counter 2",
    phase: 0,
    counter: 2,
    records: [
      { type: "ack", delayMs: 3, ranges: [[7, 7], [4, 0]] },
      { type: "max_data", max: 8 * 1024 * 1024 + 5 },
      { type: "stream", offset: 5, data: toHex(utf8(" world")) },
    ],
    plaintext: [
      0x02,
      0,
      3,
      2,
      ...u64(7),
      ...u64(7),
      ...u64(4),
      ...u64(0),
      0x04,
      ...u64(8 * 1024 * 1024 + 5),
      0x03,
      ...u64(5),
      0,
      6,
      ...utf8(" world"),
    ],
  },
  {
    name: "after a key phase flip: STREAM '!' at offset 11 in phase 1, counter 3",
    phase: 1,
    counter: 3,
    records: [{ type: "stream", offset: 11, data: toHex(utf8("!")) }],
    plaintext: [0x03, ...u64(11), 0, 1, ...utf8("!")],
  },
  {
    name: "CLOSE code 0 'closed', counter 4 (phase 1)",
    phase: 1,
    counter: 4,
    records: [{ type: "close", code: 0, reason: "closed" }],
    plaintext: [0x05, 0, 0, 6, ...utf8("closed")],
  },
].map((p) => {
  const header = new Uint8Array([p.phase === 0 ? 0x84 : 0x85, ...u32(receiverIndex), ...u64(p.counter)]);
  const plaintext = new Uint8Array(p.plaintext);
  const sealed = noble.chachaSeal(p.phase === 0 ? k0 : k1, nonce(p.counter), plaintext, header);
  return {
    name: p.name,
    phase: p.phase,
    counter: p.counter,
    records: p.records,
    plaintext: toHex(plaintext),
    packet: toHex(new Uint8Array([...header, ...sealed])),
  };
});

const message = Uint8Array.from({ length: 48 }, (_, i) => 0xa0 + i);
const handshake = [
  { number: 1, sender: 0x11223344, receiver: 0, message: toHex(message.subarray(0, 32)) },
  { number: 2, sender: 0x55667788, receiver: 0x11223344, message: toHex(message) },
  { number: 3, sender: 0x11223344, receiver: 0x55667788, message: toHex(message.subarray(0, 40)) },
].map((h) => ({
  ...h,
  packet: toHex(
    new Uint8Array([
      0x80 + h.number,
      ...u32(h.sender),
      ...(h.number === 1 ? [] : u32(h.receiver)),
      ...Uint8Array.from(h.message.match(/../g)!.map((b) => parseInt(b, 16))),
    ]),
  ),
}));

const out = {
  description:
    "NZ-DGRAM-01 (spec/protocols/NZ-DGRAM-01.md). packetKey0 = HKDF-SHA256(ikm = sendKey, salt = empty, info = 'nz-dgram-01 packet key' || 0x00, 32); packetKey1 = Rekey(packetKey0) (NZ-CHANNEL-01 section 8). A data packet = type (0x84 phase 0, 0x85 phase 1) || receiver index u32be || counter u64be || ChaCha20-Poly1305(packetKey[phase], nonce = 00000000 || LE64(counter), ad = the 13-byte header, plaintext). A session whose recvKey is sendKey accepts these packets in order and delivers the stream 'hello world!', then the end.",
  sendKey: toHex(sendKey),
  receiverIndex,
  packetKey0: toHex(k0),
  packetKey1: toHex(k1),
  handshake,
  packets,
};
await Deno.writeTextFile(
  new URL("../spec/vectors/nz_dgram_01.json", import.meta.url),
  JSON.stringify(out, null, 2) + "\n",
);
console.log("wrote spec/vectors/nz_dgram_01.json");
