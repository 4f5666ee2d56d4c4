/**
 * NZ-RECORD-01 (spec/protocols/NZ-RECORD-01.md): signed records. A node
 * signs, with its Ed25519 identity key, the addresses it is reachable at (a
 * peer record), a value under a name (a mutable record), a service with
 * capability tags (a service record), or a third node's addresses for a peer
 * (an introduction). Anyone checks one with {@linkcode openRecord}, without
 * asking the signer.
 *
 * ```ts
 * import { Identity } from "../identity/identity.ts";
 * import { decodeAddresses, openRecord, peerRecord } from "./record.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const me = Identity.generate("me");
 * const record = peerRecord(me, ["udp://203.0.113.7:7475"]);
 * const received = openRecord(record.bytes);
 * deepEqual(decodeAddresses(received.value), ["udp://203.0.113.7:7475"]);
 * ```
 *
 * @module
 */

import { assertBytes, concat, fromUtf8, timingSafeEqual, utf8 } from "../bytes.ts";
import { crypto, sha256 } from "../crypto/default.ts";
import { SIG_RECORD } from "../crypto/labels.ts";

/** What a record states (section 2). */
export type RecordKind = "peer" | "mutable" | "service" | "introduction";

/** A decoded record; `bytes` is its whole encoding. */
export interface SignedRecord {
  /** What the record states. */
  kind: RecordKind;
  /** The signer's Ed25519 public key. */
  publicKey: Uint8Array;
  /** The sequence number: of two records in one slot, the higher wins. */
  seq: number;
  /** When the record stops being valid, in milliseconds since the Unix epoch. */
  expires: number;
  /** 0 to 64 bytes; what they hold depends on the kind. */
  name: Uint8Array;
  /** 0 to 900 bytes; what they hold depends on the kind. */
  value: Uint8Array;
  /** The Ed25519 signature. */
  signature: Uint8Array;
  /** The whole encoding. */
  bytes: Uint8Array;
}

/** What signs records: an `Identity` is one. */
export interface RecordSigner {
  /** The Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Signs `message` with Ed25519. */
  sign(message: Uint8Array): Uint8Array;
}

/** A service offered by a node, as a service record states it. */
export interface ServiceInfo {
  /** The service's name, 1 to 64 bytes of UTF-8. */
  name: string;
  /** Capability tags, 1 to 8, each 1 to 64 characters of `a-z 0-9 . _ : / -`. */
  tags: string[];
  /** The stream protocol a client opens to use the service (may be empty). */
  protocol: string;
}

/** Why a record is refused (section 1). */
export type RecordRefusal = "malformed" | "forged" | "expired" | "too-long-lived";

/** A record that is refused; `reason` says at which step. */
export class RecordError extends Error {
  /** The step of NZ-RECORD-01 section 1 that refused the record. */
  readonly reason: RecordRefusal;

  /** An error refusing a record for `reason`. */
  constructor(reason: RecordRefusal, message: string) {
    super(message);
    this.name = "RecordError";
    this.reason = reason;
  }
}

/** The largest name, in bytes. */
export const MAX_NAME_SIZE = 64;
/** The largest value, in bytes. */
export const MAX_VALUE_SIZE = 900;
/** The largest record, in bytes. */
export const MAX_RECORD_SIZE: number = 1 + 32 + 8 + 8 + 1 + MAX_NAME_SIZE + 2 + MAX_VALUE_SIZE + 64;
/** The longest lifetime a record may have, in milliseconds (24 hours). */
export const MAX_LIFETIME_MS = 24 * 3600_000;
/** The clock skew allowed on top of {@linkcode MAX_LIFETIME_MS}, in milliseconds (5 minutes). */
export const CLOCK_SKEW_MS = 5 * 60_000;
/** The most addresses in a peer record or an introduction. */
export const MAX_ADDRESSES = 8;
/** The longest address, in bytes. */
export const MAX_ADDRESS_SIZE = 200;
/** The most tags of a service. */
export const MAX_TAGS = 8;

/** Default lifetimes: a peer or service record 1 hour, an introduction 10 minutes. */
const DEFAULT_TTL_MS: Record<RecordKind, number> = {
  peer: 3600_000,
  mutable: 3600_000,
  service: 3600_000,
  introduction: 10 * 60_000,
};

const KIND_CODE: Record<RecordKind, number> = { peer: 1, mutable: 2, service: 3, introduction: 4 };
const KINDS: readonly RecordKind[] = ["peer", "mutable", "service", "introduction"];
const HEADER_SIZE = 1 + 32 + 8 + 8;
const SIGNATURE_SIZE = 64;
const SIGNATURE_PREFIX = concat(utf8(SIG_RECORD), new Uint8Array(1));
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//;
const TAG = /^[a-z0-9._:/-]{1,64}$/;

/**
 * Signs a record of `fields`. Checks the fields as a receiver would
 * (lengths, kind rules), so that a node never publishes what peers refuse.
 *
 * @throws {RangeError} when a field is out of its bounds.
 * @throws {RecordError} (`malformed`) when the name or value breaks the kind's rules.
 */
export function signRecord(
  signer: RecordSigner,
  fields: { kind: RecordKind; seq: number; expires: number; name?: Uint8Array; value: Uint8Array },
): SignedRecord {
  const { kind, seq, expires, value } = fields;
  const name = fields.name ?? new Uint8Array(0);
  if (!KINDS.includes(kind)) throw new RangeError(`Invalid kind "${kind}": expected one of ${KINDS.join(", ")}`);
  assertBytes(signer.publicKey, 32, "signer.publicKey");
  assertBytes(name, undefined, "name");
  assertBytes(value, undefined, "value");
  checkU53(seq, "seq");
  checkU53(expires, "expires");
  if (name.length > MAX_NAME_SIZE) throw new RangeError(`Invalid name: ${name.length} bytes, at most ${MAX_NAME_SIZE}`);
  if (value.length > MAX_VALUE_SIZE) {
    throw new RangeError(`Invalid value: ${value.length} bytes, at most ${MAX_VALUE_SIZE}`);
  }
  checkKindRules(kind, name, value);
  const body = new Uint8Array(HEADER_SIZE + 1 + name.length + 2 + value.length);
  const view = new DataView(body.buffer);
  body[0] = KIND_CODE[kind];
  body.set(signer.publicKey, 1);
  view.setBigUint64(33, BigInt(seq));
  view.setBigUint64(41, BigInt(expires));
  body[49] = name.length;
  body.set(name, 50);
  view.setUint16(50 + name.length, value.length);
  body.set(value, 52 + name.length);
  const signature = signer.sign(concat(SIGNATURE_PREFIX, body));
  assertBytes(signature, SIGNATURE_SIZE, "signature");
  const bytes = concat(body, signature);
  return decodeRecord(bytes);
}

/**
 * Decodes a record and checks its structure and its kind's rules (steps 1
 * and 2 of section 1), not its signature or time.
 *
 * @throws {RecordError} (`malformed`) naming what is wrong.
 */
export function decodeRecord(bytes: Uint8Array): SignedRecord {
  assertBytes(bytes, undefined, "bytes");
  const minimum = HEADER_SIZE + 1 + 2 + SIGNATURE_SIZE;
  if (bytes.length < minimum) malformed(`${bytes.length} bytes, at least ${minimum}`);
  if (bytes.length > MAX_RECORD_SIZE) malformed(`${bytes.length} bytes, at most ${MAX_RECORD_SIZE}`);
  const kind = KINDS[bytes[0] - 1];
  if (bytes[0] === 0 || kind === undefined) malformed(`unknown kind ${bytes[0]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const seq = readU53(view, 33, "seq");
  const expires = readU53(view, 41, "expires");
  const nameLength = bytes[49];
  if (nameLength > MAX_NAME_SIZE) malformed(`name of ${nameLength} bytes, at most ${MAX_NAME_SIZE}`);
  if (bytes.length < 50 + nameLength + 2) malformed("truncated in the name");
  const valueLength = view.getUint16(50 + nameLength);
  if (valueLength > MAX_VALUE_SIZE) malformed(`value of ${valueLength} bytes, at most ${MAX_VALUE_SIZE}`);
  const end = 52 + nameLength + valueLength;
  if (bytes.length < end + SIGNATURE_SIZE) malformed("truncated in the value or signature");
  if (bytes.length > end + SIGNATURE_SIZE) {
    malformed(`${bytes.length - end - SIGNATURE_SIZE} bytes after the signature`);
  }
  const copy = bytes.slice();
  const name = copy.subarray(50, 50 + nameLength);
  const value = copy.subarray(52 + nameLength, end);
  checkKindRules(kind, name, value);
  return {
    kind,
    publicKey: copy.subarray(1, 33),
    seq,
    expires,
    name,
    value,
    signature: copy.subarray(end),
    bytes: copy,
  };
}

/**
 * Accepts a record as section 1 says: decodes it, checks its kind's rules,
 * its signature, and that `now` (default the clock) lies before its expiry
 * and no more than 24 h + 5 min before it.
 *
 * @throws {RecordError} with the reason of the first step that refuses it.
 */
export function openRecord(bytes: Uint8Array, now: number = Date.now()): SignedRecord {
  const record = decodeRecord(bytes);
  const signed = record.bytes.subarray(0, record.bytes.length - SIGNATURE_SIZE);
  if (!crypto.ed25519Verify(record.publicKey, concat(SIGNATURE_PREFIX, signed), record.signature)) {
    throw new RecordError("forged", "Refused record: the signature does not verify");
  }
  if (record.expires <= now) {
    throw new RecordError("expired", `Refused record: it expired ${now - record.expires} ms ago`);
  }
  if (record.expires > now + MAX_LIFETIME_MS + CLOCK_SKEW_MS) {
    throw new RecordError("too-long-lived", "Refused record: it expires more than 24 hours (and 5 minutes) ahead");
  }
  return record;
}

/** The DHT key of a node's peer record: its node ID, SHA-256 of its public key (section 2.1). */
export function peerKey(publicKey: Uint8Array): Uint8Array {
  assertBytes(publicKey, 32, "publicKey");
  return sha256(publicKey);
}

/** The DHT key of a mutable record: `SHA-256(0x02 || public key || name)` (section 2.2). */
export function mutableKey(publicKey: Uint8Array, name: Uint8Array): Uint8Array {
  assertBytes(publicKey, 32, "publicKey");
  assertBytes(name, undefined, "name");
  return sha256(concat(Uint8Array.of(2), publicKey, name));
}

/** The DHT key under which services with capability `tag` are found: `SHA-256(0x03 || tag)` (section 2.3). */
export function serviceKey(tag: string): Uint8Array {
  if (typeof tag !== "string" || !TAG.test(tag)) {
    throw new SyntaxError(`Invalid tag "${tag}": expected 1 to 64 characters of a-z 0-9 . _ : / -`);
  }
  return sha256(concat(Uint8Array.of(3), utf8(tag)));
}

/** The DHT keys a record is stored under: one for peer and mutable records, one per tag for services, none else. */
export function recordKeys(record: SignedRecord): Uint8Array[] {
  switch (record.kind) {
    case "peer":
      return [peerKey(record.publicKey)];
    case "mutable":
      return [mutableKey(record.publicKey, record.name)];
    case "service":
      return decodeService(record).tags.map(serviceKey);
    case "introduction":
      return [];
  }
}

/** Whether two records fill the same slot `(kind, public key, name)` and so replace each other (section 3). */
export function sameSlot(a: SignedRecord, b: SignedRecord): boolean {
  return a.kind === b.kind && timingSafeEqual(a.publicKey, b.publicKey) && equalBytes(a.name, b.name);
}

/**
 * Which of two records of one slot a store keeps (section 3): `1` when
 * `candidate` replaces `kept` (higher seq), `0` when it is the same record
 * (a republish), `-1` when it is refused as stale (lower seq, or equal seq
 * with other bytes).
 */
export function compareRecords(candidate: SignedRecord, kept: SignedRecord): 1 | 0 | -1 {
  if (candidate.seq > kept.seq) return 1;
  if (candidate.seq === kept.seq && equalBytes(candidate.bytes, kept.bytes)) return 0;
  return -1;
}

/**
 * Encodes transport addresses as a peer record's value (section 2.1).
 *
 * @throws {RangeError} when there are none, more than 8, or one is empty or longer than 200 bytes.
 * @throws {SyntaxError} when one does not start with a scheme.
 */
export function encodeAddresses(addresses: readonly string[]): Uint8Array {
  if (addresses.length < 1 || addresses.length > MAX_ADDRESSES) {
    throw new RangeError(`Invalid addresses: ${addresses.length}, expected 1 to ${MAX_ADDRESSES}`);
  }
  return concat(Uint8Array.of(addresses.length), ...addresses.map((a) => string8(a, "address", 1, MAX_ADDRESS_SIZE)));
}

/**
 * Decodes a peer record's or an introduction's value into addresses.
 *
 * @throws {RecordError} (`malformed`) naming what is wrong.
 */
export function decodeAddresses(value: Uint8Array): string[] {
  const reader = new Reader(value);
  const count = reader.u8("address count");
  if (count < 1 || count > MAX_ADDRESSES) malformed(`${count} addresses, expected 1 to ${MAX_ADDRESSES}`);
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) {
    const address = reader.string8("address");
    if (address.length === 0 || utf8(address).length > MAX_ADDRESS_SIZE) {
      malformed(`address ${i} is empty or over ${MAX_ADDRESS_SIZE} bytes`);
    }
    if (!SCHEME.test(address)) malformed(`address ${i} does not start with a scheme`);
    addresses.push(address);
  }
  reader.end();
  return addresses;
}

/** Signs the node's peer record: the addresses it is reachable at, `seq` = now, valid `ttlMs` (default 1 hour). */
export function peerRecord(
  signer: RecordSigner,
  addresses: readonly string[],
  options: { now?: number; ttlMs?: number } = {},
): SignedRecord {
  return signRecord(signer, { kind: "peer", ...times("peer", options), value: encodeAddresses(addresses) });
}

/**
 * Signs an introduction of the node with public key `introduced` at
 * `addresses` (section 2.4), valid `ttlMs` (default 10 minutes).
 */
export function introduction(
  signer: RecordSigner,
  introduced: Uint8Array,
  addresses: readonly string[],
  options: { now?: number; ttlMs?: number } = {},
): SignedRecord {
  assertBytes(introduced, 32, "introduced");
  return signRecord(signer, {
    kind: "introduction",
    ...times("introduction", options),
    name: introduced,
    value: encodeAddresses(addresses),
  });
}

/** Signs a service record (section 2.3), `seq` = now, valid `ttlMs` (default 1 hour). */
export function serviceRecord(
  signer: RecordSigner,
  service: ServiceInfo,
  options: { now?: number; ttlMs?: number } = {},
): SignedRecord {
  if (service.tags.length < 1 || service.tags.length > MAX_TAGS) {
    throw new RangeError(`Invalid tags: ${service.tags.length}, expected 1 to ${MAX_TAGS}`);
  }
  const value = concat(
    Uint8Array.of(service.tags.length),
    ...service.tags.map((tag) => string8(tag, "tag", 1, 64)),
    string8(service.protocol, "protocol", 0, 255),
  );
  return signRecord(signer, {
    kind: "service",
    ...times("service", options),
    name: string8(service.name, "service name", 1, MAX_NAME_SIZE).subarray(1),
    value,
  });
}

/**
 * What a service record states.
 *
 * @throws {RecordError} (`malformed`) when the record is not a well-formed service record.
 */
export function decodeService(record: SignedRecord): ServiceInfo {
  if (record.kind !== "service") malformed(`a ${record.kind} record is not a service record`);
  const name = decodeText(record.name, "service name");
  if (name.length === 0) malformed("empty service name");
  const reader = new Reader(record.value);
  const count = reader.u8("tag count");
  if (count < 1 || count > MAX_TAGS) malformed(`${count} tags, expected 1 to ${MAX_TAGS}`);
  const tags: string[] = [];
  for (let i = 0; i < count; i++) {
    const tag = reader.string8("tag");
    if (!TAG.test(tag)) malformed(`tag ${i} is not 1 to 64 characters of a-z 0-9 . _ : / -`);
    if (tags.includes(tag)) malformed(`tag "${tag}" appears twice`);
    tags.push(tag);
  }
  const protocol = reader.string8("protocol");
  reader.end();
  return { name, tags, protocol };
}

/** Checks the name and value rules of a kind (section 2). */
function checkKindRules(kind: RecordKind, name: Uint8Array, value: Uint8Array): void {
  switch (kind) {
    case "peer":
      if (name.length !== 0) malformed("a peer record's name must be empty");
      decodeAddresses(value);
      return;
    case "mutable":
      if (name.length === 0) malformed("a mutable record needs a name");
      return;
    case "service":
      decodeService({ kind, name, value } as SignedRecord);
      return;
    case "introduction":
      if (name.length !== 32) malformed("an introduction's name must be the introduced node's 32-byte public key");
      decodeAddresses(value);
  }
}

function times(kind: RecordKind, options: { now?: number; ttlMs?: number }): { seq: number; expires: number } {
  const now = options.now ?? Date.now();
  const ttl = options.ttlMs ?? DEFAULT_TTL_MS[kind];
  if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_LIFETIME_MS) {
    throw new RangeError(`Invalid ttlMs ${ttl}: expected 1 to ${MAX_LIFETIME_MS}`);
  }
  return { seq: now, expires: now + ttl };
}

function string8(text: string, what: string, min: number, max: number): Uint8Array {
  if (typeof text !== "string") throw new TypeError(`Invalid ${what}: expected a string`);
  const bytes = utf8(text);
  if (bytes.length < min || bytes.length > max) {
    throw new RangeError(`Invalid ${what} "${text}": ${bytes.length} bytes, expected ${min} to ${max}`);
  }
  if (what === "address" && !SCHEME.test(text)) {
    throw new SyntaxError(`Invalid address "${text}": expected SCHEME://...`);
  }
  if (what === "tag" && !TAG.test(text)) {
    throw new SyntaxError(`Invalid tag "${text}": expected 1 to 64 characters of a-z 0-9 . _ : / -`);
  }
  return concat(Uint8Array.of(bytes.length), bytes);
}

function checkU53(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`Invalid ${what} ${n}: expected 0 to 2^53 - 1`);
}

function readU53(view: DataView, offset: number, what: string): number {
  const n = view.getBigUint64(offset);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) malformed(`${what} above 2^53 - 1`);
  return Number(n);
}

function decodeText(bytes: Uint8Array, what: string): string {
  try {
    return fromUtf8(bytes);
  } catch {
    return malformed(`${what} is not UTF-8`);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function malformed(what: string): never {
  throw new RecordError("malformed", `Malformed record: ${what}`);
}

/** Reads `u8` and `string8` fields of a value, refusing truncation and trailing bytes. */
class Reader {
  #bytes: Uint8Array;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  u8(what: string): number {
    if (this.#at >= this.#bytes.length) malformed(`truncated before the ${what}`);
    return this.#bytes[this.#at++];
  }

  string8(what: string): string {
    const length = this.u8(`${what}'s length`);
    if (this.#at + length > this.#bytes.length) malformed(`truncated in the ${what}`);
    const text = decodeText(this.#bytes.subarray(this.#at, this.#at + length), what);
    this.#at += length;
    return text;
  }

  end(): void {
    if (this.#at !== this.#bytes.length) malformed(`${this.#bytes.length - this.#at} bytes after the last field`);
  }
}
