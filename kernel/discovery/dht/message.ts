/**
 * The NZ-DHT-01 wire format (spec/protocols/NZ-DHT-01.md section 3): one
 * message per UDP datagram, a fixed 42-byte header, bodies of exact lengths,
 * and an Ed25519 signature at the end of a response when its request asked for
 * one. `decodeMessage` checks every length and throws `SyntaxError` for
 * anything the spec does not allow; it never reads past the datagram.
 *
 * @module
 */

import { assertBytes, concat, fromUtf8, utf8 } from "../../bytes.ts";
import { formatIp, parseIp } from "../../../transport/ip.ts";
import type { UdpAddr } from "../../../transport/udp.ts";

/** The largest datagram this protocol sends or accepts (section 3). */
export const MAX_MESSAGE_SIZE = 1200;
/** Header: type (1) || flags (1) || transaction ID (8) || sender public key (32). */
export const HEADER_SIZE = 42;
/** Offset of the transaction ID in the header. */
export const TXID_OFFSET = 2;
/** Length of a transaction ID. */
export const TXID_SIZE = 8;
/** Offset of the sender's Ed25519 public key in the header. */
export const PUBLIC_KEY_OFFSET = 10;
/** Length of a node ID, a target and a DHT key (SHA-256). */
export const ID_SIZE = 32;
/** Length of a token (truncated HMAC-SHA-256, section 6). */
export const TOKEN_SIZE = 8;
/** Length of an Ed25519 signature. */
export const SIGNATURE_SIZE = 64;
/** The most contacts one NODES or VALUES message may list. */
export const MAX_CONTACTS = 32;
/** The longest ERROR reason, in bytes of UTF-8. */
export const MAX_REASON_SIZE = 200;
/** The largest record a VALUES message may carry (NZ-RECORD-01's maximum). */
export const MAX_VALUE_RECORD_SIZE = 1080;
/** Domain separation of response signatures: `"nzcore/v1/dht" || 0x00` precedes the signed bytes. */
export const SIGNATURE_DOMAIN: Uint8Array = concat(utf8("nzcore/v1/dht"), Uint8Array.of(0));

/** The first byte of every NZ-DHT-01 datagram is `0x90 | type`. */
export const FIRST_BYTE_BASE = 0x90;

/** Flag of a request: the response must be signed. */
export const FLAG_WANT_SIGNATURE = 0x01;
/** Flag of a request: the requester never wants to be admitted to routing tables (BEP 43). */
export const FLAG_READ_ONLY = 0x02;
/** Flag of a response: the last 64 bytes are the responder's signature. */
export const FLAG_SIGNED = 0x04;

/** Type numbers (the low nibble of the first byte). */
export const MESSAGE_TYPES = {
  ping: 0x0,
  pong: 0x1,
  find_node: 0x2,
  nodes: 0x3,
  find_value: 0x4,
  values: 0x5,
  store: 0x6,
  stored: 0x7,
  error: 0xf,
} as const;

/** The name of a message type. */
export type MessageType = keyof typeof MESSAGE_TYPES;

const TYPE_NAMES = new Map<number, MessageType>(
  Object.entries(MESSAGE_TYPES).map(([name, n]) => [n, name as MessageType]),
);
const REQUESTS: ReadonlySet<MessageType> = new Set(["ping", "find_node", "find_value", "store"]);

/** ERROR codes (section 3.9). */
export const ERROR_CODES = {
  malformed: 1,
  badToken: 2,
  refusedRecord: 3,
  stale: 4,
  full: 5,
  notStoring: 6,
  tooLarge: 7,
} as const;

/** A node on the wire: its ID and the UDP address it answers at. */
export interface WireContact {
  /** The node ID, SHA-256 of its Ed25519 public key (32 bytes). */
  id: Uint8Array;
  /** Where it answers. */
  addr: UdpAddr;
}

/** What every message starts with. */
export interface MessageHeader {
  /** Flags (`FLAG_*`). */
  flags: number;
  /** The transaction ID (8 bytes), chosen by the requester and echoed by the response. */
  txid: Uint8Array;
  /** The sender's Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
}

/** Every NZ-DHT-01 message, by type. */
export type DhtMessage =
  | MessageHeader & { type: "ping" }
  | MessageHeader & { type: "pong"; observed: UdpAddr }
  | MessageHeader & { type: "find_node"; target: Uint8Array }
  | MessageHeader & { type: "nodes"; token: Uint8Array; contacts: WireContact[] }
  | MessageHeader & { type: "find_value"; key: Uint8Array; offset: number }
  | MessageHeader & {
    type: "values";
    token: Uint8Array;
    total: number;
    records: Uint8Array[];
    contacts: WireContact[];
  }
  | MessageHeader & { type: "store"; token: Uint8Array; key: Uint8Array; record: Uint8Array }
  | MessageHeader & { type: "stored" }
  | MessageHeader & { type: "error"; code: number; reason: string };

/** A decoded message with its signature, when it carries one. */
export interface DecodedMessage {
  /** The message. */
  message: DhtMessage;
  /** The signature (64 bytes) when `FLAG_SIGNED` is set. */
  signature?: Uint8Array;
  /** The bytes the signature covers (everything before it), when signed. */
  signed?: Uint8Array;
}

/** Whether a message type is a request (PING, FIND_NODE, FIND_VALUE, STORE). */
export function isRequest(type: MessageType): boolean {
  return REQUESTS.has(type);
}

/** Whether a datagram's first byte is NZ-DHT-01's (0x90-0x9F): the route's match. */
export function isDhtDatagram(data: Uint8Array): boolean {
  return data.length > 0 && (data[0] & 0xf0) === FIRST_BYTE_BASE;
}

/** The encoded size of a contact: 32 + 1 + 4 + 2 (IPv4) or 32 + 1 + 16 + 2 (IPv6). */
export function contactSize(addr: UdpAddr): number {
  return addr.hostname.includes(":") ? 51 : 39;
}

/** The message to sign or verify for the signed bytes of a response: the domain, then the bytes. */
export function signedMessage(signedBytes: Uint8Array): Uint8Array {
  return concat(SIGNATURE_DOMAIN, signedBytes);
}

/** Encoding is synchronous, so one scratch buffer serves every message (no allocation but the result). */
const SCRATCH = new Uint8Array(MAX_MESSAGE_SIZE + SIGNATURE_SIZE);

/** IP literals seen lately, to their bytes: contacts are encoded again and again. */
const IP_CACHE = new Map<string, Uint8Array | null>();
const IP_CACHE_SIZE = 4096;

/** The bytes of an IP literal (4 or 16), `null` when it is not one; remembers the last 4,096 it parsed. */
export function ipBytes(hostname: string): Uint8Array | null {
  let ip = IP_CACHE.get(hostname);
  if (ip === undefined) {
    ip = parseIp(hostname);
    if (IP_CACHE.size >= IP_CACHE_SIZE) IP_CACHE.clear();
    IP_CACHE.set(hostname, ip);
  }
  return ip;
}

class Writer {
  #buf = SCRATCH;
  length = 0;

  u8(n: number): void {
    this.#ensure(1);
    this.#buf[this.length++] = n;
  }

  u16(n: number): void {
    this.#ensure(2);
    this.#buf[this.length++] = n >>> 8;
    this.#buf[this.length++] = n & 0xff;
  }

  bytes(b: Uint8Array): void {
    this.#ensure(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }

  addr(addr: UdpAddr, name: string): void {
    const ip = ipBytes(addr.hostname);
    if (ip === null) throw new SyntaxError(`Invalid ${name}: ${addr.hostname} is not an IP literal`);
    if (!Number.isInteger(addr.port) || addr.port < 1 || addr.port > 65535) {
      throw new RangeError(`Invalid ${name}: port ${addr.port} is not 1-65535`);
    }
    this.u8(ip.length === 4 ? 4 : 6);
    this.bytes(ip);
    this.u16(addr.port);
  }

  done(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }

  #ensure(n: number): void {
    if (this.length + n > this.#buf.length) {
      throw new RangeError(`Cannot encode message: longer than ${MAX_MESSAGE_SIZE} bytes`);
    }
  }
}

/**
 * Encodes a message. When `message.flags` has `FLAG_SIGNED`, `sign` signs
 * `signedMessage(bytes)` and the signature is appended.
 *
 * @param message The message; its fields are checked.
 * @param sign Signs for a response with `FLAG_SIGNED` (an identity's `sign`).
 * @returns The datagram, at most 1200 bytes.
 * @throws {RangeError} for a field of the wrong length, or a datagram over 1200 bytes.
 * @throws {TypeError} for flags that do not fit the type, or a signed message without `sign`.
 */
export function encodeMessage(message: DhtMessage, sign?: (message: Uint8Array) => Uint8Array): Uint8Array {
  const request = isRequest(message.type);
  checkFlags(message.flags, request, "message.flags", TypeError);
  assertBytes(message.txid, TXID_SIZE, "message.txid");
  assertBytes(message.publicKey, 32, "message.publicKey");
  const w = new Writer();
  w.u8(FIRST_BYTE_BASE | MESSAGE_TYPES[message.type]);
  w.u8(message.flags);
  w.bytes(message.txid);
  w.bytes(message.publicKey);
  switch (message.type) {
    case "ping":
    case "stored":
      break;
    case "pong":
      w.addr(message.observed, "message.observed");
      break;
    case "find_node":
      assertBytes(message.target, ID_SIZE, "message.target");
      w.bytes(message.target);
      break;
    case "nodes":
      assertBytes(message.token, TOKEN_SIZE, "message.token");
      w.bytes(message.token);
      writeContacts(w, message.contacts);
      break;
    case "find_value":
      assertBytes(message.key, ID_SIZE, "message.key");
      if (!Number.isInteger(message.offset) || message.offset < 0 || message.offset > 0xffff) {
        throw new RangeError(`Invalid message.offset: ${message.offset} is not 0-65535`);
      }
      w.bytes(message.key);
      w.u16(message.offset);
      break;
    case "values": {
      assertBytes(message.token, TOKEN_SIZE, "message.token");
      if (!Number.isInteger(message.total) || message.total < 0 || message.total > 0xffff) {
        throw new RangeError(`Invalid message.total: ${message.total} is not 0-65535`);
      }
      if (message.records.length > 255) throw new RangeError("Invalid message.records: more than 255");
      w.bytes(message.token);
      w.u16(message.total);
      w.u8(message.records.length);
      for (const record of message.records) {
        assertBytes(record, undefined, "message.records[]");
        if (record.length < 1 || record.length > MAX_VALUE_RECORD_SIZE) {
          throw new RangeError(`Invalid message.records[]: length ${record.length} is not 1-${MAX_VALUE_RECORD_SIZE}`);
        }
        w.u16(record.length);
        w.bytes(record);
      }
      writeContacts(w, message.contacts);
      break;
    }
    case "store":
      assertBytes(message.token, TOKEN_SIZE, "message.token");
      assertBytes(message.key, ID_SIZE, "message.key");
      assertBytes(message.record, undefined, "message.record");
      if (message.record.length < 1) throw new RangeError("Invalid message.record: empty");
      w.bytes(message.token);
      w.bytes(message.key);
      w.u16(message.record.length);
      w.bytes(message.record);
      break;
    case "error": {
      const reason = utf8(message.reason);
      if (!Number.isInteger(message.code) || message.code < 0 || message.code > 255) {
        throw new RangeError(`Invalid message.code: ${message.code} is not 0-255`);
      }
      if (reason.length > MAX_REASON_SIZE) {
        throw new RangeError(`Invalid message.reason: ${reason.length} bytes, expected <= ${MAX_REASON_SIZE}`);
      }
      w.u8(message.code);
      w.u8(reason.length);
      w.bytes(reason);
      break;
    }
  }
  if (message.flags & FLAG_SIGNED) {
    if (!sign) throw new TypeError("Cannot encode a signed message without a signer");
    const body = w.done();
    w.bytes(sign(signedMessage(body)));
  }
  if (w.length > MAX_MESSAGE_SIZE) {
    throw new RangeError(`Cannot encode message: ${w.length} bytes, expected <= ${MAX_MESSAGE_SIZE}`);
  }
  return w.done();
}

function writeContacts(w: Writer, contacts: readonly WireContact[]): void {
  if (contacts.length > MAX_CONTACTS) throw new RangeError(`Invalid message.contacts: more than ${MAX_CONTACTS}`);
  w.u8(contacts.length);
  for (const c of contacts) {
    assertBytes(c.id, ID_SIZE, "message.contacts[].id");
    w.bytes(c.id);
    w.addr(c.addr, "message.contacts[].addr");
  }
}

function checkFlags(
  flags: number,
  request: boolean,
  name: string,
  Err: typeof TypeError | typeof SyntaxError,
): void {
  const allowed = request ? FLAG_WANT_SIGNATURE | FLAG_READ_ONLY : FLAG_SIGNED;
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~allowed) !== 0) {
    throw new Err(`Invalid ${name}: 0x${flags.toString(16)} sets a flag a ${request ? "request" : "response"} may not`);
  }
}

class Reader {
  #data: Uint8Array;
  #end: number;
  pos: number;

  constructor(data: Uint8Array, pos: number, end: number) {
    this.#data = data;
    this.pos = pos;
    this.#end = end;
  }

  get left(): number {
    return this.#end - this.pos;
  }

  #need(n: number, what: string): void {
    if (this.pos + n > this.#end) {
      throw new SyntaxError(`Cannot decode message: truncated ${what} (${this.left} bytes left, need ${n})`);
    }
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#data[this.pos++];
  }

  u16(what: string): number {
    this.#need(2, what);
    const n = this.#data[this.pos] << 8 | this.#data[this.pos + 1];
    this.pos += 2;
    return n;
  }

  /** A view of the next `n` bytes (no copy: the datagram is the decoder's to keep). */
  bytes(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const out = this.#data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  addr(what: string): UdpAddr {
    const family = this.u8(`${what} family`);
    if (family !== 4 && family !== 6) {
      throw new SyntaxError(`Cannot decode message: ${what} family ${family} is not 4 or 6`);
    }
    const ip = this.bytes(family === 4 ? 4 : 16, `${what} address`);
    const port = this.u16(`${what} port`);
    if (port === 0) throw new SyntaxError(`Cannot decode message: ${what} port is 0`);
    return { hostname: formatIp(ip), port };
  }

  contacts(): WireContact[] {
    const count = this.u8("contact count");
    if (count > MAX_CONTACTS) {
      throw new SyntaxError(`Cannot decode message: ${count} contacts, expected <= ${MAX_CONTACTS}`);
    }
    const out: WireContact[] = [];
    for (let i = 0; i < count; i++) out.push({ id: this.bytes(ID_SIZE, "contact ID"), addr: this.addr("contact") });
    return out;
  }
}

/**
 * Decodes one datagram. Byte fields of the result are views of `data`, which
 * the caller must not change afterwards (copy what you keep).
 *
 * @param data The datagram.
 * @returns The message, and its signature when it carries one (not verified here).
 * @throws {SyntaxError} naming what is wrong: over 1200 bytes, truncated, an
 * unassigned type, a flag the type may not carry, a field out of range, or
 * bytes left over.
 */
export function decodeMessage(data: Uint8Array): DecodedMessage {
  if (data.length > MAX_MESSAGE_SIZE) {
    throw new SyntaxError(`Cannot decode message: ${data.length} bytes, expected <= ${MAX_MESSAGE_SIZE}`);
  }
  if (data.length < HEADER_SIZE) {
    throw new SyntaxError(`Cannot decode message: length is ${data.length}, expected >= ${HEADER_SIZE}`);
  }
  if ((data[0] & 0xf0) !== FIRST_BYTE_BASE) {
    throw new SyntaxError(`Cannot decode message: first byte 0x${data[0].toString(16)} is not 0x90-0x9f`);
  }
  const type = TYPE_NAMES.get(data[0] & 0x0f);
  if (type === undefined) throw new SyntaxError(`Cannot decode message: type 0x${data[0].toString(16)} is unassigned`);
  const flags = data[1];
  checkFlags(flags, isRequest(type), "flags", SyntaxError);
  let end = data.length;
  let signature: Uint8Array | undefined;
  if (flags & FLAG_SIGNED) {
    if (end < HEADER_SIZE + SIGNATURE_SIZE) throw new SyntaxError("Cannot decode message: truncated signature");
    end -= SIGNATURE_SIZE;
    signature = data.subarray(end);
  }
  const r = new Reader(data, HEADER_SIZE, end);
  const header: MessageHeader = {
    flags,
    txid: data.subarray(TXID_OFFSET, TXID_OFFSET + TXID_SIZE),
    publicKey: data.subarray(PUBLIC_KEY_OFFSET, PUBLIC_KEY_OFFSET + 32),
  };
  let message: DhtMessage;
  switch (type) {
    case "ping":
    case "stored":
      message = { type, ...header };
      break;
    case "pong":
      message = { type, ...header, observed: r.addr("observed address") };
      break;
    case "find_node":
      message = { type, ...header, target: r.bytes(ID_SIZE, "target") };
      break;
    case "nodes": {
      const token = r.bytes(TOKEN_SIZE, "token");
      message = { type, ...header, token, contacts: r.contacts() };
      break;
    }
    case "find_value": {
      const key = r.bytes(ID_SIZE, "key");
      message = { type, ...header, key, offset: r.u16("offset") };
      break;
    }
    case "values": {
      const token = r.bytes(TOKEN_SIZE, "token");
      const total = r.u16("total");
      const count = r.u8("record count");
      const records: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const length = r.u16("record length");
        if (length < 1 || length > MAX_VALUE_RECORD_SIZE) {
          throw new SyntaxError(`Cannot decode message: record length ${length} is not 1-${MAX_VALUE_RECORD_SIZE}`);
        }
        records.push(r.bytes(length, "record"));
      }
      message = { type, ...header, token, total, records, contacts: r.contacts() };
      break;
    }
    case "store": {
      const token = r.bytes(TOKEN_SIZE, "token");
      const key = r.bytes(ID_SIZE, "key");
      const length = r.u16("record length");
      if (length < 1) throw new SyntaxError("Cannot decode message: record length is 0");
      message = { type, ...header, token, key, record: r.bytes(length, "record") };
      break;
    }
    case "error": {
      const code = r.u8("error code");
      const length = r.u8("reason length");
      if (length > MAX_REASON_SIZE) {
        throw new SyntaxError(`Cannot decode message: reason of ${length} bytes, expected <= ${MAX_REASON_SIZE}`);
      }
      let reason: string;
      try {
        reason = fromUtf8(r.bytes(length, "reason"));
      } catch (error) {
        if (error instanceof SyntaxError) throw error;
        throw new SyntaxError("Cannot decode message: the reason is not UTF-8");
      }
      message = { type, ...header, code, reason };
      break;
    }
  }
  if (r.left !== 0) throw new SyntaxError(`Cannot decode message: ${r.left} bytes after the ${type} body`);
  return signature ? { message, signature, signed: data.subarray(0, end) } : { message };
}
