import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  addStunAttribute,
  createStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  getStunAttribute,
} from "../../../transport/stun/message.ts";
import { StunError } from "../../../transport/stun/errors.ts";
import {
  CHANNEL_NUMBER,
  DATA,
  decodeChannelData,
  DONT_FRAGMENT,
  encodeChannelData,
  EVEN_PORT,
  isChannelData,
  isTurnMethod,
  LIFETIME,
  readDataIndication,
  REQUESTED_ADDRESS_FAMILY,
  REQUESTED_TRANSPORT,
  RESERVATION_TOKEN,
  TURN_METHOD_ALLOCATE,
  TURN_METHOD_DATA,
  TURN_METHOD_SEND,
  TURN_TRANSPORT_UDP,
  TurnAddressFamily,
  turnStreamMessageSize,
  XOR_PEER_ADDRESS,
  XOR_RELAYED_ADDRESS,
} from "../../../transport/turn/mod.ts";
import { isStunDatagram } from "../../../transport/udp.ts";

const transactionId = Uint8Array.from({ length: 12 }, (_, i) => i + 1);

function onlyStunError(fn: () => unknown): boolean {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof StunError)) throw error;
  }
  return true;
}

Deno.test("turn attributes: every TURN attribute survives an encode/decode round trip in a message", () => {
  const message = createStunMessage(TURN_METHOD_ALLOCATE, "request", { transactionId });
  addStunAttribute(message, REQUESTED_TRANSPORT, TURN_TRANSPORT_UDP);
  addStunAttribute(message, REQUESTED_ADDRESS_FAMILY, TurnAddressFamily.IPV6);
  addStunAttribute(message, LIFETIME, 3600);
  addStunAttribute(message, EVEN_PORT, { reserveNext: true });
  addStunAttribute(message, DONT_FRAGMENT, true);
  addStunAttribute(message, RESERVATION_TOKEN, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  addStunAttribute(message, CHANNEL_NUMBER, 0x4abc);
  addStunAttribute(message, XOR_PEER_ADDRESS, { hostname: "2001:db8::7", port: 50_000 });
  addStunAttribute(message, XOR_RELAYED_ADDRESS, { hostname: "203.0.113.10", port: 49_152 });
  addStunAttribute(message, DATA, new Uint8Array([0x81, 0, 0xff]));
  const back = decodeStunMessage(encodeStunMessage(message));
  equal(back.method, TURN_METHOD_ALLOCATE);
  equal(getStunAttribute(back, REQUESTED_TRANSPORT), 17);
  equal(getStunAttribute(back, REQUESTED_ADDRESS_FAMILY), 2);
  equal(getStunAttribute(back, LIFETIME), 3600);
  eql(getStunAttribute(back, EVEN_PORT), { reserveNext: true });
  equal(getStunAttribute(back, DONT_FRAGMENT), true);
  eql(getStunAttribute(back, RESERVATION_TOKEN), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  equal(getStunAttribute(back, CHANNEL_NUMBER), 0x4abc);
  eql(getStunAttribute(back, XOR_PEER_ADDRESS), { hostname: "2001:db8::7", port: 50_000 });
  eql(getStunAttribute(back, XOR_RELAYED_ADDRESS), { hostname: "203.0.113.10", port: 49_152 });
  eql(getStunAttribute(back, DATA), new Uint8Array([0x81, 0, 0xff]));
});

Deno.test("turn attributes: the wire bytes follow RFC 8656 section 18 (type, XOR'd port and address, reserved bytes)", () => {
  const message = createStunMessage(TURN_METHOD_SEND, "indication", { transactionId });
  addStunAttribute(message, XOR_PEER_ADDRESS, { hostname: "192.0.2.1", port: 32853 });
  addStunAttribute(message, REQUESTED_TRANSPORT, 17);
  addStunAttribute(message, CHANNEL_NUMBER, 0x4001);
  const bytes = encodeStunMessage(message);
  eql([bytes[0], bytes[1]], [0x00, 0x16], "Send indication: method 0x006, class 01");
  // XOR-PEER-ADDRESS: port 32853 ^ 0x2112 = 0xa147, 192.0.2.1 ^ 0x2112a442 = 0xe112a643 (RFC 8489 section 14.2).
  eql([...bytes.subarray(20, 32)], [0x00, 0x12, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
  eql([...bytes.subarray(32, 40)], [0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
  eql([...bytes.subarray(40, 48)], [0x00, 0x0c, 0x00, 0x04, 0x40, 0x01, 0, 0]);
});

Deno.test("turn attributes: malformed values are StunErrors naming the attribute", () => {
  const bad = (codec: { decode(v: Uint8Array, t: Uint8Array): unknown }, value: number[], name: RegExp) =>
    throws(
      () => codec.decode(new Uint8Array(value), transactionId),
      (e) => e instanceof StunError && name.test(e.message),
    );
  bad(REQUESTED_TRANSPORT, [17, 0, 0], /REQUESTED-TRANSPORT: length is 3/);
  bad(REQUESTED_ADDRESS_FAMILY, [3, 0, 0, 0], /REQUESTED-ADDRESS-FAMILY: value 3/);
  bad(EVEN_PORT, [0x80, 0], /EVEN-PORT: length is 2/);
  bad(DONT_FRAGMENT, [0], /DONT-FRAGMENT: length is 1/);
  bad(RESERVATION_TOKEN, [1, 2, 3], /RESERVATION-TOKEN: length is 3/);
  bad(LIFETIME, [0, 0, 1], /LIFETIME: length is 3/);
  bad(CHANNEL_NUMBER, [0x40, 0], /CHANNEL-NUMBER: length is 2/);
  bad(XOR_PEER_ADDRESS, [0, 3, 0, 0, 1, 2, 3, 4], /XOR-PEER-ADDRESS: unknown address family 3/);
  throws(() => REQUESTED_ADDRESS_FAMILY.encode(4, transactionId), RangeError);
});

Deno.test("turn attributes: TURN's methods are 0x003, 0x004 and 0x006-0x009", () => {
  eql([0x001, 0x002, 0x003, 0x004, 0x005, 0x006, 0x007, 0x008, 0x009, 0x00a].filter(isTurnMethod), [3, 4, 6, 7, 8, 9]);
});

Deno.test("ChannelData: a 4-byte header (channel, length), padded to 4 only over TCP", () => {
  const data = new Uint8Array([1, 2, 3, 4, 5]);
  eql([...encodeChannelData(0x4001, data)], [0x40, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
  eql([...encodeChannelData(0x4fff, data, true)], [0x4f, 0xff, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
  eql(decodeChannelData(encodeChannelData(0x4001, data, true)), { channel: 0x4001, data });
  eql(decodeChannelData(encodeChannelData(0x4001, new Uint8Array(0))), { channel: 0x4001, data: new Uint8Array(0) });
  throws(() => encodeChannelData(0x3fff, data), RangeError);
  throws(() => encodeChannelData(0x5000, data), RangeError);
  throws(() => encodeChannelData(0x4000, new Uint8Array(65_536)), RangeError);
});

Deno.test("ChannelData: a length beyond the datagram, a short header or a reserved channel is refused", () => {
  throws(() => decodeChannelData(new Uint8Array([0x40, 0x00, 0x00, 0x09, 1, 2, 3])), /only 3 there/);
  throws(() => decodeChannelData(new Uint8Array([0x40, 0x00, 0x00])), /expected >= 4/);
  throws(() => decodeChannelData(new Uint8Array([0x50, 0x00, 0x00, 0x00])), /channel is 0x5000/);
});

Deno.test("ChannelData: its first byte tells it from STUN, the channel's datagrams and the DHT", () => {
  ok(isChannelData(new Uint8Array([0x40, 0, 0, 0])));
  ok(isChannelData(new Uint8Array([0x4f, 0xff, 0, 0])));
  for (const first of [0x00, 0x01, 0x3f, 0x50, 0x7f, 0x81, 0x85, 0x90, 0xff]) {
    ok(!isChannelData(new Uint8Array([first, 0, 0, 0])), `0x${first.toString(16)}`);
  }
  const stun = encodeStunMessage(createStunMessage(TURN_METHOD_DATA, "indication"));
  ok(isStunDatagram(stun) && !isChannelData(stun));
  ok(!isStunDatagram(encodeChannelData(0x4000, new Uint8Array(16))));
});

Deno.test("TURN over TCP: the stream's next message size, STUN or padded ChannelData", () => {
  equal(turnStreamMessageSize(new Uint8Array([0x00, 0x01, 0x00])), null);
  equal(turnStreamMessageSize(new Uint8Array([0x00, 0x03, 0x00, 0x08])), 28);
  equal(turnStreamMessageSize(new Uint8Array([0x40, 0x00, 0x00, 0x05])), 12);
  equal(turnStreamMessageSize(new Uint8Array([0x40, 0x00, 0x00, 0x08])), 12);
  throws(() => turnStreamMessageSize(new Uint8Array([0x80, 0, 0, 0])), StunError);
  throws(() => turnStreamMessageSize(new Uint8Array([0x00, 0x01, 0x00, 0x06])), StunError);
});

Deno.test("Data indication: readDataIndication gives the peer and the data, and refuses what lacks either", () => {
  const indication = createStunMessage(TURN_METHOD_DATA, "indication");
  addStunAttribute(indication, XOR_PEER_ADDRESS, { hostname: "198.51.100.4", port: 7000 });
  addStunAttribute(indication, DATA, new Uint8Array([9, 8, 7]));
  eql(readDataIndication(decodeStunMessage(encodeStunMessage(indication))), {
    peer: { hostname: "198.51.100.4", port: 7000 },
    data: new Uint8Array([9, 8, 7]),
  });
  const noData = createStunMessage(TURN_METHOD_DATA, "indication");
  addStunAttribute(noData, XOR_PEER_ADDRESS, { hostname: "198.51.100.4", port: 7000 });
  throws(() => readDataIndication(noData), /missing/);
  throws(() => readDataIndication(createStunMessage(TURN_METHOD_SEND, "indication")), /expected a Data indication/);
});

Deno.test("ChannelData and Data indication decoders: any bytes decode or throw StunError, nothing else", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      onlyStunError(() => decodeChannelData(bytes));
      onlyStunError(() => turnStreamMessageSize(bytes));
      return onlyStunError(() => readDataIndication(decodeStunMessage(bytes)));
    }),
    { numRuns: 3000 },
  );
  // Mutations of a valid Data indication, which reach deeper than random bytes do.
  const indication = createStunMessage(TURN_METHOD_DATA, "indication");
  addStunAttribute(indication, XOR_PEER_ADDRESS, { hostname: "2001:db8::1", port: 9 });
  addStunAttribute(indication, DATA, new Uint8Array(13));
  const valid = encodeStunMessage(indication);
  fc.assert(
    fc.property(fc.nat(valid.length - 1), fc.nat(255), fc.nat(valid.length), (at, value, cut) => {
      const bytes = valid.slice(0, Math.max(cut, 20));
      if (at < bytes.length) bytes[at] = value;
      return onlyStunError(() => readDataIndication(decodeStunMessage(bytes)));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("ChannelData: encode then decode gives back channel and data for any channel and data", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0x4000, max: 0x4fff }),
      fc.uint8Array({ maxLength: 2000 }),
      fc.boolean(),
      (channel, data, padded) => {
        const bytes = encodeChannelData(channel, data, padded);
        ok(isChannelData(bytes));
        if (padded) equal(bytes.length % 4, 0);
        equal(turnStreamMessageSize(bytes), (bytes.length + 3) & ~3);
        eql(decodeChannelData(bytes), { channel, data });
      },
    ),
    { numRuns: 500 },
  );
});
