/**
 * TURN's methods and attributes (RFC 8656 sections 5, 18), built with the
 * STUN codec's attribute factories, and the ChannelData message (section 12).
 *
 * ```ts
 * import { addStunAttribute, createStunMessage, decodeStunMessage, encodeStunMessage, getStunAttribute }
 *   from "../stun/message.ts";
 * import { LIFETIME, REQUESTED_TRANSPORT, TURN_METHOD_ALLOCATE, TURN_TRANSPORT_UDP } from "./attributes.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const allocate = createStunMessage(TURN_METHOD_ALLOCATE, "request");
 * addStunAttribute(allocate, REQUESTED_TRANSPORT, TURN_TRANSPORT_UDP);
 * addStunAttribute(allocate, LIFETIME, 600);
 * const back = decodeStunMessage(encodeStunMessage(allocate));
 * deepEqual(getStunAttribute(back, LIFETIME), 600);
 * ```
 *
 * @module
 */

import { StunError } from "../stun/errors.ts";
import {
  bytesAttribute,
  getStunAttribute,
  type StunAttributeCodec,
  type StunMessage,
  uint16Attribute,
  uint32Attribute,
  xorAddressAttribute,
} from "../stun/message.ts";
import type { UdpAddr } from "../udp.ts";

// --- Methods (RFC 8656 section 18.1) --------------------------------------------------------------

/** Allocate (RFC 8656 section 7), requests only. */
export const TURN_METHOD_ALLOCATE = 0x003;
/** Refresh (RFC 8656 section 8), requests only. */
export const TURN_METHOD_REFRESH = 0x004;
/** Send (RFC 8656 section 11.4), indications only. */
export const TURN_METHOD_SEND = 0x006;
/** Data (RFC 8656 section 11.6), indications only. */
export const TURN_METHOD_DATA = 0x007;
/** CreatePermission (RFC 8656 section 10), requests only. */
export const TURN_METHOD_CREATE_PERMISSION = 0x008;
/** ChannelBind (RFC 8656 section 12.2), requests only. */
export const TURN_METHOD_CHANNEL_BIND = 0x009;

/** Whether `method` is one of TURN's (Allocate 0x003 through ChannelBind 0x009, but not 0x005). */
export function isTurnMethod(method: number): boolean {
  return method >= TURN_METHOD_ALLOCATE && method <= TURN_METHOD_CHANNEL_BIND && method !== 0x005;
}

/** The REQUESTED-TRANSPORT protocol number of UDP (RFC 8656 section 18.11; IANA protocol 17). */
export const TURN_TRANSPORT_UDP = 17;
/** The REQUESTED-TRANSPORT protocol number of TCP (RFC 6062). */
export const TURN_TRANSPORT_TCP = 6;

/** Address families of REQUESTED-ADDRESS-FAMILY (RFC 8656 section 18.8). */
export const TurnAddressFamily = { IPV4: 0x01, IPV6: 0x02 } as const;

/** TURN's error codes (RFC 8656 section 18.13), beside STUN's 401 and 438. */
export const TurnErrorCode = {
  FORBIDDEN: 403,
  ALLOCATION_MISMATCH: 437,
  ADDRESS_FAMILY_NOT_SUPPORTED: 440,
  WRONG_CREDENTIALS: 441,
  UNSUPPORTED_TRANSPORT_PROTOCOL: 442,
  PEER_ADDRESS_FAMILY_MISMATCH: 443,
  ALLOCATION_QUOTA_REACHED: 486,
  INSUFFICIENT_CAPACITY: 508,
} as const;

// --- Attributes (RFC 8656 section 18) --------------------------------------------------------------

function fail(name: string, problem: string): never {
  throw new StunError(`Cannot decode ${name}: ${problem}`);
}

/** CHANNEL-NUMBER: 16 bits of channel, 16 reserved (RFC 8656 section 18.1). */
export const CHANNEL_NUMBER: StunAttributeCodec<number> = uint16Attribute(0x000c, "CHANNEL-NUMBER");
/** LIFETIME: seconds until the allocation (or its refresh) expires (RFC 8656 section 18.2). */
export const LIFETIME: StunAttributeCodec<number> = uint32Attribute(0x000d, "LIFETIME");
/** XOR-PEER-ADDRESS: a peer as the server sees it (RFC 8656 section 18.3). */
export const XOR_PEER_ADDRESS: StunAttributeCodec<UdpAddr> = xorAddressAttribute(0x0012, "XOR-PEER-ADDRESS");
/** DATA: the application data of a Send or Data indication (RFC 8656 section 18.4). */
export const DATA: StunAttributeCodec<Uint8Array> = bytesAttribute(0x0013, "DATA");
/** XOR-RELAYED-ADDRESS: the allocation's address on the server (RFC 8656 section 18.5). */
export const XOR_RELAYED_ADDRESS: StunAttributeCodec<UdpAddr> = xorAddressAttribute(0x0016, "XOR-RELAYED-ADDRESS");
/** RESERVATION-TOKEN: 8 opaque bytes naming a reserved relayed port (RFC 8656 section 18.9). */
export const RESERVATION_TOKEN: StunAttributeCodec<Uint8Array> = bytesAttribute(0x0022, "RESERVATION-TOKEN", {
  min: 8,
  max: 8,
});

/** One byte of value and three reserved (REQUESTED-TRANSPORT, REQUESTED-ADDRESS-FAMILY). */
function byteAttribute(type: number, name: string, accept: (n: number) => boolean): StunAttributeCodec<number> {
  return {
    type,
    name,
    encode: (n) => {
      if (!Number.isInteger(n) || n < 0 || n > 0xff || !accept(n)) throw new RangeError(`Cannot encode ${name}: ${n}`);
      return new Uint8Array([n, 0, 0, 0]);
    },
    decode: (value) => {
      if (value.length !== 4) fail(name, `length is ${value.length}, expected 4`);
      return accept(value[0]) ? value[0] : fail(name, `value ${value[0]} out of range`);
    },
  };
}

/** REQUESTED-ADDRESS-FAMILY: 0x01 IPv4 or 0x02 IPv6 (RFC 8656 section 18.8). */
export const REQUESTED_ADDRESS_FAMILY: StunAttributeCodec<number> = byteAttribute(
  0x0017,
  "REQUESTED-ADDRESS-FAMILY",
  (n) => n === TurnAddressFamily.IPV4 || n === TurnAddressFamily.IPV6,
);
/** REQUESTED-TRANSPORT: an IANA protocol number, 17 for UDP (RFC 8656 section 18.11). */
export const REQUESTED_TRANSPORT: StunAttributeCodec<number> = byteAttribute(
  0x0019,
  "REQUESTED-TRANSPORT",
  () => true,
);

/** EVEN-PORT: ask for an even relayed port, and with `reserveNext` reserve the next one too (RFC 8656 section 18.10). */
export const EVEN_PORT: StunAttributeCodec<{ reserveNext: boolean }> = {
  type: 0x0018,
  name: "EVEN-PORT",
  encode: ({ reserveNext }) => new Uint8Array([reserveNext ? 0x80 : 0]),
  decode: (value) => {
    if (value.length !== 1) fail("EVEN-PORT", `length is ${value.length}, expected 1`);
    return { reserveNext: (value[0] & 0x80) !== 0 };
  },
};

/** DONT-FRAGMENT: no value; its presence asks the server to set DF on relayed packets (RFC 8656 section 18.7). */
export const DONT_FRAGMENT: StunAttributeCodec<true> = {
  type: 0x001a,
  name: "DONT-FRAGMENT",
  encode: () => new Uint8Array(0),
  decode: (value) => value.length === 0 ? true : fail("DONT-FRAGMENT", `length is ${value.length}, expected 0`),
};

// --- ChannelData (RFC 8656 section 12.4) ----------------------------------------------------------

/** The first channel number a client may bind (RFC 8656 section 12). */
export const TURN_CHANNEL_MIN = 0x4000;
/** The last channel number a client may bind (RFC 8656 section 12; 0x5000-0x7FFF are reserved). */
export const TURN_CHANNEL_MAX = 0x4fff;
/** The ChannelData header: channel number (2 bytes) and length (2 bytes). */
export const CHANNEL_DATA_HEADER_SIZE = 4;
/** The largest application data of one ChannelData message (the 16-bit length field). */
export const CHANNEL_DATA_MAX_LENGTH = 0xffff;

/** A decoded ChannelData message. */
export interface ChannelData {
  /** The channel number, 0x4000-0x4FFF. */
  channel: number;
  /** The application data (a view into the bytes decoded). */
  data: Uint8Array;
}

/**
 * Whether `bytes` may be a ChannelData message: its first byte is 0x40-0x4F
 * (the top bits 01 tell it from STUN's 00, RFC 8656 section 12; the channel's
 * datagrams start at 0x81 and the DHT's at 0x90).
 */
export function isChannelData(bytes: Uint8Array): boolean {
  return bytes.length >= CHANNEL_DATA_HEADER_SIZE && (bytes[0] & 0xf0) === 0x40;
}

/**
 * Encodes a ChannelData message (RFC 8656 section 12.4); over a stream
 * (`padded`, TCP) the message is padded to a multiple of 4 (section 12.5).
 *
 * @throws {RangeError} for a channel out of 0x4000-0x4FFF or data longer than 65535 bytes.
 */
export function encodeChannelData(channel: number, data: Uint8Array, padded = false): Uint8Array {
  if (!Number.isInteger(channel) || channel < TURN_CHANNEL_MIN || channel > TURN_CHANNEL_MAX) {
    throw new RangeError(`Cannot encode ChannelData: channel is ${channel}, expected 0x4000-0x4fff`);
  }
  if (data.length > CHANNEL_DATA_MAX_LENGTH) {
    throw new RangeError(`Cannot encode ChannelData: data length is ${data.length}, expected <= 65535`);
  }
  const size = CHANNEL_DATA_HEADER_SIZE + data.length;
  const out = new Uint8Array(padded ? (size + 3) & ~3 : size);
  out[0] = channel >> 8;
  out[1] = channel & 0xff;
  out[2] = data.length >> 8;
  out[3] = data.length & 0xff;
  out.set(data, CHANNEL_DATA_HEADER_SIZE);
  return out;
}

/**
 * Decodes one ChannelData message (RFC 8656 section 12.4). Bytes after the
 * announced length (padding) are ignored.
 *
 * @throws {StunError} for a truncated message, a channel out of range, or a length beyond the bytes.
 */
export function decodeChannelData(bytes: Uint8Array): ChannelData {
  if (bytes.length < CHANNEL_DATA_HEADER_SIZE) {
    fail("ChannelData", `length is ${bytes.length}, expected >= ${CHANNEL_DATA_HEADER_SIZE}`);
  }
  const channel = bytes[0] << 8 | bytes[1];
  if (channel < TURN_CHANNEL_MIN || channel > TURN_CHANNEL_MAX) {
    fail("ChannelData", `channel is 0x${channel.toString(16)}, expected 0x4000-0x4fff`);
  }
  const length = bytes[2] << 8 | bytes[3];
  if (CHANNEL_DATA_HEADER_SIZE + length > bytes.length) {
    fail("ChannelData", `length field says ${length} bytes of data, only ${bytes.length - 4} there`);
  }
  return { channel, data: bytes.subarray(CHANNEL_DATA_HEADER_SIZE, CHANNEL_DATA_HEADER_SIZE + length) };
}

/**
 * The size of the next message on a TURN-over-TCP stream (RFC 8656 section
 * 11.5): a STUN message (top bits 00) or a ChannelData message padded to 4
 * (top bits 01); `null` when fewer than 4 bytes are there.
 *
 * @throws {StunError} when the bytes start neither.
 */
export function turnStreamMessageSize(header: Uint8Array): number | null {
  if (header.length < 4) return null;
  const length = header[2] << 8 | header[3];
  switch (header[0] >> 6) {
    case 0:
      if (length % 4 !== 0) fail("TURN stream", `STUN length ${length} is not a multiple of 4`);
      return 20 + length;
    case 1:
      return (CHANNEL_DATA_HEADER_SIZE + length + 3) & ~3;
    default:
      return fail("TURN stream", `first byte 0x${header[0].toString(16)} starts neither STUN nor ChannelData`);
  }
}

// --- Send and Data indications (RFC 8656 sections 11.4, 11.6) ------------------------------------

/** What a Data indication carries: the peer it came from and its data. */
export interface TurnPeerData {
  /** The peer (XOR-PEER-ADDRESS). */
  peer: UdpAddr;
  /** The data (DATA), a copy. */
  data: Uint8Array;
}

/**
 * Reads a Data indication's XOR-PEER-ADDRESS and DATA (RFC 8656 section 11.6).
 *
 * @throws {StunError} when the message is not a Data indication or lacks either attribute, or one is malformed.
 */
export function readDataIndication(message: StunMessage): TurnPeerData {
  if (message.method !== TURN_METHOD_DATA || message.class !== "indication") {
    fail("Data indication", `method 0x${message.method.toString(16)} ${message.class}, expected a Data indication`);
  }
  const peer = getStunAttribute(message, XOR_PEER_ADDRESS);
  const data = getStunAttribute(message, DATA);
  if (!peer || !data) fail("Data indication", "XOR-PEER-ADDRESS or DATA is missing");
  return { peer, data };
}
