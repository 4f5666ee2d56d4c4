/**
 * STUN messages (RFC 8489, compatible with RFC 5389) and the RFC 5780
 * attributes: {@linkcode encodeStunMessage} / {@linkcode decodeStunMessage},
 * typed attribute codecs, MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT.
 *
 * A message carries its attributes raw (`{ type, value }`, in order); a
 * {@linkcode StunAttributeCodec} turns one value into a typed one and back.
 * A TURN client adds its own attributes with the same factories, one line
 * each:
 *
 * ```ts
 * import { addStunAttribute, createStunMessage, decodeStunMessage, encodeStunMessage, getStunAttribute,
 *   uint32Attribute, xorAddressAttribute } from "./message.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const XOR_PEER_ADDRESS = xorAddressAttribute(0x0012, "XOR-PEER-ADDRESS");
 * const LIFETIME = uint32Attribute(0x000d, "LIFETIME");
 * const msg = createStunMessage(0x008, "request"); // CreatePermission
 * addStunAttribute(msg, XOR_PEER_ADDRESS, { hostname: "192.0.2.7", port: 4000 });
 * addStunAttribute(msg, LIFETIME, 600);
 * const back = decodeStunMessage(encodeStunMessage(msg, { fingerprint: true }));
 * deepEqual(getStunAttribute(back, XOR_PEER_ADDRESS), { hostname: "192.0.2.7", port: 4000 });
 * deepEqual(getStunAttribute(back, LIFETIME), 600);
 * ```
 *
 * Decoding is strict: whatever is malformed, truncated or oversized throws a
 * {@linkcode StunError} naming the problem, and nothing else.
 *
 * @module
 */

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";
import type { UdpAddr } from "../udp.ts";
import { StunError } from "./errors.ts";
import { formatIp, parseIp } from "../ip.ts";

// --- Spec constants (RFC 8489) -------------------------------------------------------------------

/** The magic cookie, bytes 4-7 of every message (RFC 8489 section 5). */
export const STUN_MAGIC_COOKIE = 0x2112a442;
/** The size of the fixed header (RFC 8489 section 5). */
export const STUN_HEADER_SIZE = 20;
/** The size of the transaction ID (96 bits, RFC 8489 section 5). */
export const STUN_TRANSACTION_ID_SIZE = 12;
/** The largest message: the header plus the 16-bit length field's maximum (a multiple of 4). */
export const STUN_MAX_MESSAGE_SIZE: number = STUN_HEADER_SIZE + 0xfffc;
/** FINGERPRINT is the CRC-32 of the message XOR this value (RFC 8489 section 14.7). */
export const STUN_FINGERPRINT_XOR = 0x5354554e;
/** The Binding method (RFC 8489 section 18.2). */
export const STUN_METHOD_BINDING = 0x001;

/** Attribute types of RFC 8489 section 18.3 and RFC 5780 section 9. */
export const StunAttributeType = {
  MAPPED_ADDRESS: 0x0001,
  /** RFC 3489's, kept only to read old servers' OTHER-ADDRESS. */
  CHANGED_ADDRESS: 0x0005,
  CHANGE_REQUEST: 0x0003,
  /** RFC 3489's, kept only to read old servers' RESPONSE-ORIGIN. */
  SOURCE_ADDRESS: 0x0004,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  PASSWORD_ALGORITHM: 0x001d,
  USERHASH: 0x001e,
  XOR_MAPPED_ADDRESS: 0x0020,
  PADDING: 0x0026,
  RESPONSE_PORT: 0x0027,
  PASSWORD_ALGORITHMS: 0x8002,
  ALTERNATE_DOMAIN: 0x8003,
  SOFTWARE: 0x8022,
  ALTERNATE_SERVER: 0x8023,
  FINGERPRINT: 0x8028,
  RESPONSE_ORIGIN: 0x802b,
  OTHER_ADDRESS: 0x802c,
} as const;

/** Password algorithm numbers (RFC 8489 section 18.5). */
export const StunPasswordAlgorithm = { MD5: 0x0001, SHA256: 0x0002 } as const;

/** The four message classes (RFC 8489 section 5): C1 C0 = 00, 01, 10, 11. */
export type StunClass = "request" | "indication" | "success" | "error";
const CLASSES: readonly StunClass[] = ["request", "indication", "success", "error"];

// --- Messages --------------------------------------------------------------------------------------

/** One attribute as it travels: its type and its value (without padding). */
export interface StunAttribute {
  /** The 16-bit attribute type; below 0x8000 is comprehension-required. */
  type: number;
  /** The value bytes, unpadded. */
  value: Uint8Array;
}

/** A STUN message without its integrity and fingerprint attributes (those are added by {@linkcode encodeStunMessage}). */
export interface StunMessage {
  /** The 12-bit method (Binding = 0x001). */
  method: number;
  /** The class. */
  class: StunClass;
  /** The 96-bit transaction ID (12 bytes). */
  transactionId: Uint8Array;
  /** Attributes in order, raw. */
  attributes: StunAttribute[];
}

/** Where an integrity or fingerprint attribute sat in the decoded bytes. */
export interface StunCheckField {
  /** Byte offset of the attribute's header in `bytes`. */
  offset: number;
  /** The attribute's value. */
  value: Uint8Array;
}

/** A decoded message: the attributes before MESSAGE-INTEGRITY, and what is needed to verify it. */
export interface DecodedStunMessage extends StunMessage {
  /** The bytes decoded (the caller's, not copied). */
  bytes: Uint8Array;
  /** MESSAGE-INTEGRITY, when present. */
  messageIntegrity?: StunCheckField;
  /** MESSAGE-INTEGRITY-SHA256, when present. */
  messageIntegritySha256?: StunCheckField;
  /** FINGERPRINT, when present. */
  fingerprint?: StunCheckField;
}

/** Which integrity attribute(s) {@linkcode encodeStunMessage} appends. */
export interface StunIntegrityOptions {
  /** The key: {@linkcode shortTermKey} or {@linkcode longTermKey}. */
  key: Uint8Array;
  /** `"sha1"` (MESSAGE-INTEGRITY, the default), `"sha256"` (MESSAGE-INTEGRITY-SHA256) or `"both"` (that order). */
  algorithm?: "sha1" | "sha256" | "both";
  /** Length of MESSAGE-INTEGRITY-SHA256, 16-32 and a multiple of 4 (RFC 8489 section 14.6); default 32. */
  sha256Length?: number;
}

/** Options of {@linkcode encodeStunMessage}. */
export interface EncodeStunOptions {
  /** Append MESSAGE-INTEGRITY and/or MESSAGE-INTEGRITY-SHA256 computed with this key. */
  integrity?: StunIntegrityOptions;
  /** Append FINGERPRINT last (RFC 8489 section 14.7). */
  fingerprint?: boolean;
  /** The value of padding bytes (RFC 8489 section 14: any value, ignored on receipt); default 0. */
  paddingByte?: number;
}

/** Creates an empty message with a fresh random transaction ID (or `options.transactionId`). */
export function createStunMessage(
  method: number,
  cls: StunClass,
  options: { transactionId?: Uint8Array } = {},
): StunMessage {
  const transactionId = options.transactionId ?? crypto.getRandomValues(new Uint8Array(STUN_TRANSACTION_ID_SIZE));
  return { method, class: cls, transactionId, attributes: [] };
}

/**
 * Encodes a message (RFC 8489 section 5): header, attributes padded to 4,
 * then MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT when asked.
 *
 * @param message The message; its `attributes` are written in order.
 * @param options Integrity key and algorithm, fingerprint, padding byte.
 * @returns The encoded bytes.
 * @throws {RangeError} for a method, class, transaction ID, attribute type or size out of range.
 */
export function encodeStunMessage(message: StunMessage, options: EncodeStunOptions = {}): Uint8Array {
  const { method, transactionId } = message;
  if (!Number.isInteger(method) || method < 0 || method > 0xfff) {
    throw new RangeError(`Cannot encode STUN message: method is ${method}, expected 0-0xfff`);
  }
  const cls = CLASSES.indexOf(message.class);
  if (cls < 0) throw new RangeError(`Cannot encode STUN message: class is ${message.class}`);
  if (!(transactionId instanceof Uint8Array) || transactionId.length !== STUN_TRANSACTION_ID_SIZE) {
    throw new RangeError(`Cannot encode STUN message: transactionId must be 12 bytes`);
  }
  const pad = options.paddingByte ?? 0;
  const integrity = options.integrity;
  const algorithm = integrity?.algorithm ?? "sha1";
  const sha256Length = integrity?.sha256Length ?? 32;
  if (integrity && (sha256Length < 16 || sha256Length > 32 || sha256Length % 4 !== 0)) {
    throw new RangeError(
      `Cannot encode STUN message: sha256Length is ${sha256Length}, expected 16-32, a multiple of 4`,
    );
  }
  let size = STUN_HEADER_SIZE;
  for (const a of message.attributes) {
    if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0xffff) {
      throw new RangeError(`Cannot encode STUN attribute: type is ${a.type}, expected 0-0xffff`);
    }
    if (a.value.length > 0xffff) {
      throw new RangeError(`Cannot encode STUN attribute 0x${hex16(a.type)}: value too long`);
    }
    size += 4 + padded(a.value.length);
  }
  if (integrity && algorithm !== "sha256") size += 24;
  if (integrity && algorithm !== "sha1") size += 4 + sha256Length;
  if (options.fingerprint) size += 8;
  if (size > STUN_MAX_MESSAGE_SIZE) {
    throw new RangeError(`Cannot encode STUN message: size is ${size}, expected <= ${STUN_MAX_MESSAGE_SIZE}`);
  }

  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint16(0, messageType(method, cls));
  view.setUint32(4, STUN_MAGIC_COOKIE);
  out.set(transactionId, 8);
  let at = STUN_HEADER_SIZE;
  const put = (type: number, value: Uint8Array) => {
    view.setUint16(at, type);
    view.setUint16(at + 2, value.length);
    out.set(value, at + 4);
    out.fill(pad, at + 4 + value.length, at + 4 + padded(value.length));
    at += 4 + padded(value.length);
  };
  for (const a of message.attributes) put(a.type, a.value);
  // RFC 8489 sections 14.5-14.7: each check covers the message up to itself, with the
  // length field counting up to and including itself.
  if (integrity && algorithm !== "sha256") {
    view.setUint16(2, at + 24 - STUN_HEADER_SIZE);
    put(StunAttributeType.MESSAGE_INTEGRITY, hmac("sha1", integrity.key, out.subarray(0, at)));
  }
  if (integrity && algorithm !== "sha1") {
    view.setUint16(2, at + 4 + sha256Length - STUN_HEADER_SIZE);
    put(
      StunAttributeType.MESSAGE_INTEGRITY_SHA256,
      hmac("sha256", integrity.key, out.subarray(0, at)).subarray(0, sha256Length),
    );
  }
  view.setUint16(2, size - STUN_HEADER_SIZE);
  if (options.fingerprint) {
    const fp = new Uint8Array(4);
    new DataView(fp.buffer).setUint32(0, (crc32(out.subarray(0, at)) ^ STUN_FINGERPRINT_XOR) >>> 0);
    put(StunAttributeType.FINGERPRINT, fp);
  }
  return out;
}

/**
 * Decodes one message (RFC 8489 sections 5, 14). Attributes after
 * MESSAGE-INTEGRITY are ignored except MESSAGE-INTEGRITY-SHA256 and
 * FINGERPRINT (and after MESSAGE-INTEGRITY-SHA256, all but MESSAGE-INTEGRITY
 * and FINGERPRINT); anything after FINGERPRINT is an error. The values of
 * the attributes this module knows are checked here, so a decoded message's
 * known attributes always read.
 *
 * @param bytes Exactly one message (a datagram, or one frame of a TCP stream).
 * @returns The message, its raw attributes and its check fields.
 * @throws {StunError} for anything malformed, truncated or oversized.
 */
export function decodeStunMessage(bytes: Uint8Array): DecodedStunMessage {
  if (!(bytes instanceof Uint8Array)) throw new StunError("Cannot decode STUN message: bytes is not a Uint8Array");
  if (bytes.length < STUN_HEADER_SIZE) {
    throw new StunError(`Cannot decode STUN message: length is ${bytes.length}, expected >= ${STUN_HEADER_SIZE}`);
  }
  if (bytes.length > STUN_MAX_MESSAGE_SIZE) {
    throw new StunError(`Cannot decode STUN message: length is ${bytes.length}, expected <= ${STUN_MAX_MESSAGE_SIZE}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(0);
  if (type & 0xc000) throw new StunError("Cannot decode STUN message: the two top bits are not zero");
  const length = view.getUint16(2);
  if (length % 4 !== 0) {
    throw new StunError(`Cannot decode STUN message: length field ${length} is not a multiple of 4`);
  }
  if (view.getUint32(4) !== STUN_MAGIC_COOKIE) throw new StunError("Cannot decode STUN message: no magic cookie");
  if (STUN_HEADER_SIZE + length !== bytes.length) {
    throw new StunError(
      `Cannot decode STUN message: length field says ${STUN_HEADER_SIZE + length} bytes, got ${bytes.length}`,
    );
  }
  const method = (type & 0x000f) | (type & 0x00e0) >> 1 | (type & 0x3e00) >> 2;
  const cls = CLASSES[(type & 0x0010) >> 4 | (type & 0x0100) >> 7];
  const transactionId = bytes.slice(8, STUN_HEADER_SIZE);
  const message: DecodedStunMessage = { method, class: cls, transactionId, attributes: [], bytes };

  let at = STUN_HEADER_SIZE;
  while (at < bytes.length) {
    if (message.fingerprint) throw new StunError("Cannot decode STUN message: an attribute follows FINGERPRINT");
    if (bytes.length - at < 4) throw new StunError(`Cannot decode STUN message: truncated attribute header at ${at}`);
    const attrType = view.getUint16(at);
    const attrLength = view.getUint16(at + 2);
    if (at + 4 + padded(attrLength) > bytes.length) {
      throw new StunError(
        `Cannot decode STUN attribute 0x${hex16(attrType)}: length ${attrLength} runs past the end of the message`,
      );
    }
    const value = bytes.subarray(at + 4, at + 4 + attrLength);
    const field = { offset: at, value };
    switch (attrType) {
      case StunAttributeType.MESSAGE_INTEGRITY:
        if (attrLength !== 20) {
          throw new StunError(`Cannot decode MESSAGE-INTEGRITY: length is ${attrLength}, expected 20`);
        }
        message.messageIntegrity ??= field;
        break;
      case StunAttributeType.MESSAGE_INTEGRITY_SHA256:
        if (attrLength < 16 || attrLength > 32 || attrLength % 4 !== 0) {
          throw new StunError(
            `Cannot decode MESSAGE-INTEGRITY-SHA256: length is ${attrLength}, expected 16-32, a multiple of 4`,
          );
        }
        message.messageIntegritySha256 ??= field;
        break;
      case StunAttributeType.FINGERPRINT:
        if (attrLength !== 4) throw new StunError(`Cannot decode FINGERPRINT: length is ${attrLength}, expected 4`);
        message.fingerprint = field;
        break;
      default: {
        const codec = KNOWN_CODECS.get(attrType);
        if (codec) codec.decode(value, transactionId); // throws StunError on a malformed value
        // RFC 8489 sections 14.5, 14.6: attributes after an integrity attribute are ignored.
        if (!message.messageIntegrity && !message.messageIntegritySha256) {
          message.attributes.push({ type: attrType, value });
        }
      }
    }
    at += 4 + padded(attrLength);
  }
  return message;
}

/**
 * Reads the total size of the message that `header` starts (for TCP framing,
 * RFC 8489 section 6.2.2), or `null` when fewer than 20 bytes are there.
 *
 * @throws {StunError} when the header is not a STUN header.
 */
export function stunMessageSize(header: Uint8Array): number | null {
  if (header.length < STUN_HEADER_SIZE) return null;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (view.getUint16(0) & 0xc000 || view.getUint32(4) !== STUN_MAGIC_COOKIE || view.getUint16(2) % 4 !== 0) {
    throw new StunError("Cannot decode STUN message: not a STUN header");
  }
  return STUN_HEADER_SIZE + view.getUint16(2);
}

// --- Integrity (RFC 8489 sections 9, 14.5-14.7) -------------------------------------------------

/**
 * Verifies MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY, in
 * constant time. `false` when the message has neither.
 *
 * @param message A decoded message.
 * @param key {@linkcode shortTermKey} or {@linkcode longTermKey} (MD5 for MESSAGE-INTEGRITY, SHA-256 for -SHA256 under long-term credentials).
 */
export function verifyStunIntegrity(message: DecodedStunMessage, key: Uint8Array): boolean {
  if (message.messageIntegritySha256) {
    const { offset, value } = message.messageIntegritySha256;
    const mac = hmac("sha256", key, coveredBytes(message.bytes, offset, value.length)).subarray(0, value.length);
    return timingSafeEqual(mac, value);
  }
  if (message.messageIntegrity) {
    const { offset, value } = message.messageIntegrity;
    return timingSafeEqual(hmac("sha1", key, coveredBytes(message.bytes, offset, 20)), value);
  }
  return false;
}

/** Verifies FINGERPRINT (RFC 8489 section 14.7); `false` when the message has none. */
export function verifyStunFingerprint(message: DecodedStunMessage): boolean {
  if (!message.fingerprint) return false;
  const { offset, value } = message.fingerprint;
  const expected = (crc32(coveredBytes(message.bytes, offset, 4)) ^ STUN_FINGERPRINT_XOR) >>> 0;
  return new DataView(value.buffer, value.byteOffset, 4).getUint32(0) === expected;
}

/** The bytes before the check attribute at `offset`, the length field counting up to the end of it. */
function coveredBytes(bytes: Uint8Array, offset: number, valueLength: number): Uint8Array {
  const covered = bytes.slice(0, offset);
  new DataView(covered.buffer).setUint16(2, offset + 4 + padded(valueLength) - STUN_HEADER_SIZE);
  return covered;
}

/**
 * OpaqueString (RFC 8265 section 4.2) as STUN applies it to passwords, realms
 * and usernames: non-ASCII spaces become U+0020, then NFC. ASCII text is
 * unchanged. (The PRECIS refusal of disallowed code points is not applied:
 * a credential that does not match simply fails integrity.)
 */
export function opaqueString(text: string): string {
  return text.replace(/[^\S\x20\t\n\r\f\v]/gu, (c) => /\p{Zs}/u.test(c) ? " " : c).normalize("NFC");
}

/** The short-term credential key: OpaqueString(password) in UTF-8 (RFC 8489 section 9.1.1). */
export function shortTermKey(password: string): Uint8Array {
  return new TextEncoder().encode(opaqueString(password));
}

/** Long-term credentials (RFC 8489 section 9.2). */
export interface StunLongTermCredentials {
  /** The username (as sent in USERNAME, or hashed into USERHASH). */
  username: string;
  /** The realm the server announced in REALM. */
  realm: string;
  /** The password. */
  password: string;
}

/**
 * The long-term credential key (RFC 8489 section 9.2.2):
 * MD5(username ":" OpaqueString(realm) ":" OpaqueString(password)), or SHA-256 of the same.
 */
export function longTermKey(credentials: StunLongTermCredentials, algorithm: "md5" | "sha256" = "md5"): Uint8Array {
  const { username, realm, password } = credentials;
  const text = `${username}:${opaqueString(realm)}:${opaqueString(password)}`;
  return new Uint8Array(createHash(algorithm).update(text, "utf8").digest());
}

/** The USERHASH value: SHA-256(OpaqueString(username) ":" OpaqueString(realm)) (RFC 8489 section 14.4). */
export function userHash(username: string, realm: string): Uint8Array {
  return new Uint8Array(
    createHash("sha256").update(`${opaqueString(username)}:${opaqueString(realm)}`, "utf8").digest(),
  );
}

function hmac(algorithm: "sha1" | "sha256", key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac(algorithm, key).update(data).digest());
}

// --- Attribute codecs ------------------------------------------------------------------------------

/**
 * Turns one attribute's value into a typed value and back. `decode` throws
 * {@linkcode StunError} for a malformed value; `encode` throws `RangeError`
 * for a value it cannot encode. The transaction ID is there for the XOR'd
 * address attributes.
 */
export interface StunAttributeCodec<T> {
  /** The attribute type. */
  readonly type: number;
  /** The attribute's RFC name, for messages. */
  readonly name: string;
  /** Encodes a value. */
  encode(value: T, transactionId: Uint8Array): Uint8Array;
  /** Decodes a value. */
  decode(value: Uint8Array, transactionId: Uint8Array): T;
}

/** Appends `codec`'s attribute with `value` to `message` and returns the message. */
export function addStunAttribute<T>(message: StunMessage, codec: StunAttributeCodec<T>, value: T): StunMessage {
  message.attributes.push({ type: codec.type, value: codec.encode(value, message.transactionId) });
  return message;
}

/** The value of the first attribute of `codec`'s type (RFC 8489 section 14: later duplicates are ignored), or `undefined`. */
export function getStunAttribute<T>(message: StunMessage, codec: StunAttributeCodec<T>): T | undefined {
  const found = message.attributes.find((a) => a.type === codec.type);
  return found === undefined ? undefined : codec.decode(found.value, message.transactionId);
}

/** Whether `message` has an attribute of `type`. */
export function hasStunAttribute(message: StunMessage, type: number): boolean {
  return message.attributes.some((a) => a.type === type);
}

/** The comprehension-required attribute types (below 0x8000) of `message` that are not in `known`, in order, once each. */
export function unknownRequiredAttributes(message: StunMessage, known: ReadonlySet<number>): number[] {
  const out: number[] = [];
  for (const { type } of message.attributes) {
    if (type < 0x8000 && !known.has(type) && !out.includes(type)) out.push(type);
  }
  return out;
}

function fail(name: string, problem: string): never {
  throw new StunError(`Cannot decode ${name}: ${problem}`);
}

/** An address attribute (MAPPED-ADDRESS format, RFC 8489 section 14.1): family, port, IPv4 or IPv6 address. */
export function addressAttribute(type: number, name: string): StunAttributeCodec<UdpAddr> {
  return {
    type,
    name,
    encode: (addr) => encodeAddress(addr, null, name),
    decode: (value) => decodeAddress(value, null, name),
  };
}

/** An XOR'd address attribute (XOR-MAPPED-ADDRESS format, RFC 8489 section 14.2): port XOR the cookie's top 16 bits, address XOR cookie (+ transaction ID for IPv6). */
export function xorAddressAttribute(type: number, name: string): StunAttributeCodec<UdpAddr> {
  return {
    type,
    name,
    encode: (addr, transactionId) => encodeAddress(addr, transactionId, name),
    decode: (value, transactionId) => decodeAddress(value, transactionId, name),
  };
}

function xorMask(transactionId: Uint8Array): Uint8Array {
  const mask = new Uint8Array(16);
  new DataView(mask.buffer).setUint32(0, STUN_MAGIC_COOKIE);
  mask.set(transactionId, 4);
  return mask;
}

/**
 * Encodes an address value (RFC 8489 sections 14.1, 14.2); XOR'd when
 * `transactionId` is given.
 *
 * @throws {RangeError} for a hostname that is not an IP literal or a port out of 0-65535.
 */
export function encodeAddress(addr: UdpAddr, transactionId: Uint8Array | null, name = "address"): Uint8Array {
  const ip = parseIp(addr.hostname);
  if (ip === null) throw new RangeError(`Cannot encode ${name}: ${addr.hostname} is not an IP address`);
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 0xffff) {
    throw new RangeError(`Cannot encode ${name}: port is ${addr.port}, expected 0-65535`);
  }
  const out = new Uint8Array(4 + ip.length);
  const view = new DataView(out.buffer);
  view.setUint8(1, ip.length === 4 ? 0x01 : 0x02);
  view.setUint16(2, transactionId ? addr.port ^ (STUN_MAGIC_COOKIE >>> 16) : addr.port);
  const mask = transactionId ? xorMask(transactionId) : null;
  for (let i = 0; i < ip.length; i++) out[4 + i] = mask ? ip[i] ^ mask[i] : ip[i];
  return out;
}

/**
 * Decodes an address value (RFC 8489 sections 14.1, 14.2); un-XORs when
 * `transactionId` is given.
 *
 * @throws {StunError} for a wrong length or an unknown family.
 */
export function decodeAddress(value: Uint8Array, transactionId: Uint8Array | null, name = "address"): UdpAddr {
  if (value.length < 4) fail(name, `length is ${value.length}, expected 8 or 20`);
  const family = value[1];
  const size = family === 0x01 ? 4 : family === 0x02 ? 16 : fail(name, `unknown address family ${family}`);
  if (value.length !== 4 + size) fail(name, `length is ${value.length}, expected ${4 + size} for family ${family}`);
  let port = value[2] << 8 | value[3];
  const ip = value.slice(4);
  if (transactionId) {
    port ^= STUN_MAGIC_COOKIE >>> 16;
    const mask = xorMask(transactionId);
    for (let i = 0; i < size; i++) ip[i] ^= mask[i];
  }
  return { hostname: formatIp(ip), port };
}

/** A UTF-8 text attribute of at most `maxBytes` bytes (USERNAME, REALM, NONCE, SOFTWARE...). */
export function textAttribute(type: number, name: string, maxBytes: number): StunAttributeCodec<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  return {
    type,
    name,
    encode: (text) => {
      const bytes = new TextEncoder().encode(text);
      if (bytes.length > maxBytes) {
        throw new RangeError(`Cannot encode ${name}: ${bytes.length} bytes, expected <= ${maxBytes}`);
      }
      return bytes;
    },
    decode: (value) => {
      if (value.length > maxBytes) fail(name, `length is ${value.length}, expected <= ${maxBytes}`);
      try {
        return decoder.decode(value);
      } catch {
        return fail(name, "not UTF-8");
      }
    },
  };
}

/** A fixed-size or bounded opaque attribute. */
export function bytesAttribute(
  type: number,
  name: string,
  size: { min?: number; max?: number } = {},
): StunAttributeCodec<Uint8Array> {
  const min = size.min ?? 0, max = size.max ?? 0xffff;
  const check = (length: number) => length >= min && length <= max;
  const expected = min === max ? `${min}` : `${min}-${max}`;
  return {
    type,
    name,
    encode: (value) => {
      if (!check(value.length)) {
        throw new RangeError(`Cannot encode ${name}: length is ${value.length}, expected ${expected}`);
      }
      return value.slice();
    },
    decode: (value) =>
      check(value.length) ? value.slice() : fail(name, `length is ${value.length}, expected ${expected}`),
  };
}

/** A 32-bit unsigned integer attribute (LIFETIME, PRIORITY...). */
export function uint32Attribute(type: number, name: string): StunAttributeCodec<number> {
  return {
    type,
    name,
    encode: (n) => {
      if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`Cannot encode ${name}: ${n}`);
      const out = new Uint8Array(4);
      new DataView(out.buffer).setUint32(0, n);
      return out;
    },
    decode: (value) => {
      if (value.length !== 4) fail(name, `length is ${value.length}, expected 4`);
      return new DataView(value.buffer, value.byteOffset, 4).getUint32(0);
    },
  };
}

/** A 16-bit port or number followed by 16 reserved bits (RESPONSE-PORT, CHANNEL-NUMBER). */
export function uint16Attribute(type: number, name: string): StunAttributeCodec<number> {
  return {
    type,
    name,
    encode: (n) => {
      if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError(`Cannot encode ${name}: ${n}`);
      return new Uint8Array([n >> 8, n & 0xff, 0, 0]);
    },
    decode: (value) =>
      value.length === 4 ? value[0] << 8 | value[1] : fail(name, `length is ${value.length}, expected 4`),
  };
}

/** An error: code 300-699 and reason phrase (RFC 8489 section 14.8). */
export interface StunErrorCode {
  /** The code: class * 100 + number. */
  code: number;
  /** The UTF-8 reason phrase (at most 763 bytes). */
  reason: string;
}

/** A password algorithm and its parameters (RFC 8489 sections 14.11, 14.12). */
export interface StunPasswordAlgorithmValue {
  /** {@linkcode StunPasswordAlgorithm}. */
  algorithm: number;
  /** Its parameters (empty for MD5 and SHA-256). */
  parameters: Uint8Array;
}

/** RFC 5780 section 7.2 CHANGE-REQUEST flags. */
export interface StunChangeRequest {
  /** The "A" flag: answer from the other IP address. */
  changeIp: boolean;
  /** The "B" flag: answer from the other port. */
  changePort: boolean;
}

const reasonText = textAttribute(StunAttributeType.ERROR_CODE, "ERROR-CODE reason", 763);

function encodeAlgorithm(a: StunPasswordAlgorithmValue, name: string): Uint8Array {
  if (!Number.isInteger(a.algorithm) || a.algorithm < 0 || a.algorithm > 0xffff || a.parameters.length > 0xffff) {
    throw new RangeError(`Cannot encode ${name}: algorithm ${a.algorithm} out of range`);
  }
  const out = new Uint8Array(4 + padded(a.parameters.length));
  new DataView(out.buffer).setUint16(0, a.algorithm);
  new DataView(out.buffer).setUint16(2, a.parameters.length);
  out.set(a.parameters, 4);
  return out;
}

function decodeAlgorithms(value: Uint8Array, name: string): StunPasswordAlgorithmValue[] {
  const out: StunPasswordAlgorithmValue[] = [];
  for (let at = 0; at < value.length;) {
    if (value.length - at < 4) fail(name, `truncated entry at ${at}`);
    const algorithm = value[at] << 8 | value[at + 1];
    const length = value[at + 2] << 8 | value[at + 3];
    if (at + 4 + length > value.length) fail(name, `parameters of algorithm ${algorithm} run past the end`);
    out.push({ algorithm, parameters: value.slice(at + 4, at + 4 + length) });
    at += 4 + padded(length);
  }
  return out;
}

/** MAPPED-ADDRESS (RFC 8489 section 14.1). */
export const MAPPED_ADDRESS: StunAttributeCodec<UdpAddr> = addressAttribute(0x0001, "MAPPED-ADDRESS");
/** XOR-MAPPED-ADDRESS (RFC 8489 section 14.2). */
export const XOR_MAPPED_ADDRESS: StunAttributeCodec<UdpAddr> = xorAddressAttribute(0x0020, "XOR-MAPPED-ADDRESS");
/** USERNAME: UTF-8, less than 513 bytes (RFC 8489 section 14.3). */
export const USERNAME: StunAttributeCodec<string> = textAttribute(0x0006, "USERNAME", 513);
/** USERHASH: 32 bytes (RFC 8489 section 14.4). */
export const USERHASH: StunAttributeCodec<Uint8Array> = bytesAttribute(0x001e, "USERHASH", { min: 32, max: 32 });
/** ERROR-CODE (RFC 8489 section 14.8). */
export const ERROR_CODE: StunAttributeCodec<StunErrorCode> = {
  type: 0x0009,
  name: "ERROR-CODE",
  encode: ({ code, reason }) => {
    if (!Number.isInteger(code) || code < 300 || code > 699) {
      throw new RangeError(`Cannot encode ERROR-CODE: code is ${code}, expected 300-699`);
    }
    const text = reasonText.encode(reason, new Uint8Array(0));
    const out = new Uint8Array(4 + text.length);
    out[2] = Math.floor(code / 100);
    out[3] = code % 100;
    out.set(text, 4);
    return out;
  },
  decode: (value) => {
    if (value.length < 4) fail("ERROR-CODE", `length is ${value.length}, expected >= 4`);
    const cls = value[2] & 0x07, number = value[3];
    if (cls < 3 || cls > 6 || number > 99) fail("ERROR-CODE", `class ${cls} number ${number} out of range`);
    return { code: cls * 100 + number, reason: reasonText.decode(value.subarray(4), new Uint8Array(0)) };
  },
};
/** REALM: UTF-8, at most 763 bytes (RFC 8489 section 14.9). */
export const REALM: StunAttributeCodec<string> = textAttribute(0x0014, "REALM", 763);
/** NONCE: at most 763 bytes (RFC 8489 section 14.10). */
export const NONCE: StunAttributeCodec<string> = textAttribute(0x0015, "NONCE", 763);
/** PASSWORD-ALGORITHMS (RFC 8489 section 14.11). */
export const PASSWORD_ALGORITHMS: StunAttributeCodec<StunPasswordAlgorithmValue[]> = {
  type: 0x8002,
  name: "PASSWORD-ALGORITHMS",
  encode: (list) => concat(list.map((a) => encodeAlgorithm(a, "PASSWORD-ALGORITHMS"))),
  decode: (value) => decodeAlgorithms(value, "PASSWORD-ALGORITHMS"),
};
/** PASSWORD-ALGORITHM (RFC 8489 section 14.12). */
export const PASSWORD_ALGORITHM: StunAttributeCodec<StunPasswordAlgorithmValue> = {
  type: 0x001d,
  name: "PASSWORD-ALGORITHM",
  encode: (a) => encodeAlgorithm(a, "PASSWORD-ALGORITHM"),
  decode: (value) => {
    const list = decodeAlgorithms(value, "PASSWORD-ALGORITHM");
    return list.length === 1 ? list[0] : fail("PASSWORD-ALGORITHM", `holds ${list.length} algorithms, expected 1`);
  },
};
/** UNKNOWN-ATTRIBUTES: a list of 16-bit types (RFC 8489 section 14.13). */
export const UNKNOWN_ATTRIBUTES: StunAttributeCodec<number[]> = {
  type: 0x000a,
  name: "UNKNOWN-ATTRIBUTES",
  encode: (types) => {
    const out = new Uint8Array(types.length * 2);
    types.forEach((t, i) => new DataView(out.buffer).setUint16(2 * i, t));
    return out;
  },
  decode: (value) => {
    if (value.length % 2 !== 0) fail("UNKNOWN-ATTRIBUTES", `length is ${value.length}, expected even`);
    const out: number[] = [];
    for (let i = 0; i < value.length; i += 2) out.push(value[i] << 8 | value[i + 1]);
    return out;
  },
};
/** SOFTWARE: UTF-8, at most 763 bytes (RFC 8489 section 14.14). */
export const SOFTWARE: StunAttributeCodec<string> = textAttribute(0x8022, "SOFTWARE", 763);
/** ALTERNATE-SERVER (RFC 8489 section 14.15). */
export const ALTERNATE_SERVER: StunAttributeCodec<UdpAddr> = addressAttribute(0x8023, "ALTERNATE-SERVER");
/** CHANGE-REQUEST (RFC 5780 section 7.2). */
export const CHANGE_REQUEST: StunAttributeCodec<StunChangeRequest> = {
  type: 0x0003,
  name: "CHANGE-REQUEST",
  encode: ({ changeIp, changePort }) => new Uint8Array([0, 0, 0, (changeIp ? 0x04 : 0) | (changePort ? 0x02 : 0)]),
  decode: (value) => {
    if (value.length !== 4) fail("CHANGE-REQUEST", `length is ${value.length}, expected 4`);
    return { changeIp: (value[3] & 0x04) !== 0, changePort: (value[3] & 0x02) !== 0 };
  },
};
/** RESPONSE-ORIGIN (RFC 5780 section 7.3). */
export const RESPONSE_ORIGIN: StunAttributeCodec<UdpAddr> = addressAttribute(0x802b, "RESPONSE-ORIGIN");
/** OTHER-ADDRESS (RFC 5780 section 7.4). */
export const OTHER_ADDRESS: StunAttributeCodec<UdpAddr> = addressAttribute(0x802c, "OTHER-ADDRESS");
/** RESPONSE-PORT (RFC 5780 section 7.5). */
export const RESPONSE_PORT: StunAttributeCodec<number> = uint16Attribute(0x0027, "RESPONSE-PORT");
/** PADDING (RFC 5780 section 7.6): opaque bytes. */
export const PADDING: StunAttributeCodec<Uint8Array> = bytesAttribute(0x0026, "PADDING");
/** CHANGED-ADDRESS (RFC 3489 section 11.2.3), what older servers send instead of OTHER-ADDRESS. */
export const CHANGED_ADDRESS: StunAttributeCodec<UdpAddr> = addressAttribute(0x0005, "CHANGED-ADDRESS");
/** SOURCE-ADDRESS (RFC 3489 section 11.2.2), what older servers send instead of RESPONSE-ORIGIN. */
export const SOURCE_ADDRESS: StunAttributeCodec<UdpAddr> = addressAttribute(0x0004, "SOURCE-ADDRESS");

// deno-lint-ignore no-explicit-any
const KNOWN_CODECS: ReadonlyMap<number, StunAttributeCodec<any>> = new Map(
  [
    MAPPED_ADDRESS,
    XOR_MAPPED_ADDRESS,
    USERNAME,
    USERHASH,
    ERROR_CODE,
    REALM,
    NONCE,
    PASSWORD_ALGORITHMS,
    PASSWORD_ALGORITHM,
    UNKNOWN_ATTRIBUTES,
    SOFTWARE,
    ALTERNATE_SERVER,
    CHANGE_REQUEST,
    RESPONSE_ORIGIN,
    OTHER_ADDRESS,
    RESPONSE_PORT,
    PADDING,
    CHANGED_ADDRESS,
    SOURCE_ADDRESS,
  ].map((c) => [c.type, c]),
);

// --- Helpers ----------------------------------------------------------------------------------------

/** The message type field: M11-M7 C1 M6-M4 C0 M3-M0 (RFC 8489 section 5). */
function messageType(method: number, cls: number): number {
  return (method & 0x000f) | (method & 0x0070) << 1 | (method & 0x0f80) << 2 | (cls & 1) << 4 | (cls & 2) << 7;
}

function padded(n: number): number {
  return (n + 3) & ~3;
}

function hex16(n: number): string {
  return n.toString(16).padStart(4, "0");
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A transaction ID as a map key (24 hex digits). */
export function transactionKey(transactionId: Uint8Array): string {
  return Array.from(transactionId, (b) => b.toString(16).padStart(2, "0")).join("");
}
