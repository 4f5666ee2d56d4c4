/**
 * The payloads of the three NZ-HANDSHAKE-01 messages (section 3.1 of
 * spec/protocols/NZ-HANDSHAKE-01.md): `Offer` (message 1), `Accept`
 * (message 2) and `Finish` (message 3), built from a `VersionList` and an
 * `IdentityBlock`. Every encoding is exact: one value has one encoding, and
 * decoders refuse anything else with {@linkcode HandshakeError} `malformed`.
 * Encoders check their (local) input and throw TypeError or RangeError.
 *
 * @example Round-trip an Offer
 * ```ts
 * import { decodeOffer, encodeOffer } from "./handshake_payload.ts";
 *
 * const bytes = encodeOffer([1, 2]); // 02 0001 0002
 * if (decodeOffer(bytes).join() !== "1,2") throw new Error("Cannot round-trip");
 * ```
 *
 * @module
 */

import { assertBytes } from "../bytes.ts";
import { HandshakeError } from "./errors.ts";

/** The most versions a VersionList holds. */
export const MAX_VERSIONS = 16;
/** The most features an IdentityBlock holds. */
export const MAX_FEATURES = 32;
/** The longest feature name, in bytes. */
export const MAX_FEATURE_LENGTH = 32;
/** Ed25519 public key length. */
const IDENTITY_LENGTH = 32;
/** Ed25519 signature length. */
const SIGNATURE_LENGTH = 64;
/** Fixed part of an IdentityBlock: identity, signature, feature count. */
const IDENTITY_BLOCK_FIXED = IDENTITY_LENGTH + SIGNATURE_LENGTH + 1;

const FEATURE_PATTERN = /^[a-z0-9./-]{1,32}$/;

/** An IdentityBlock: who a side is and what it supports. */
export interface IdentityBlock {
  /** The Ed25519 public key (32 bytes). */
  identity: Uint8Array;
  /** Ed25519 signature of `"nz-handshake-01 static key:" || s` (64 bytes). */
  signature: Uint8Array;
  /** Feature names, strictly ascending. */
  features: string[];
}

/** The Accept payload of message 2. */
export interface Accept extends IdentityBlock {
  /** The version the responder chose; 0 when none is in common. */
  chosen: number;
  /** The responder's versions, strictly ascending. */
  versions: number[];
}

function malformed(what: string, detail: string): HandshakeError {
  return new HandshakeError("malformed", `Cannot decode handshake ${what}: ${detail}`);
}

/**
 * Checks and normalises a set of versions: integers in 1..65535, 1 to 16 of
 * them; returns them sorted ascending without repeats.
 *
 * @throws {TypeError} when a version is not an integer.
 * @throws {RangeError} when a version or the count is out of range.
 */
export function normalizeVersions(versions: readonly number[]): number[] {
  if (!Array.isArray(versions)) throw new TypeError("Invalid versions: expected an array");
  for (const v of versions) {
    if (!Number.isInteger(v)) throw new TypeError(`Invalid version: ${v}, expected an integer`);
    if (v < 1 || v > 0xffff) throw new RangeError(`Invalid version: ${v}, expected 1..65535`);
  }
  const out = [...new Set(versions)].sort((a, b) => a - b);
  if (out.length < 1 || out.length > MAX_VERSIONS) {
    throw new RangeError(`Invalid versions: ${out.length} distinct, expected 1..${MAX_VERSIONS}`);
  }
  return out;
}

/**
 * Checks and normalises a set of feature names (1 to 32 bytes of `a-z`,
 * `0-9`, `-`, `.`, `/`; at most 32 names); returns them sorted without repeats.
 *
 * @throws {TypeError} when a feature is not a string.
 * @throws {RangeError} when a name is invalid or there are too many.
 */
export function normalizeFeatures(features: readonly string[]): string[] {
  if (!Array.isArray(features)) throw new TypeError("Invalid features: expected an array");
  for (const f of features) {
    if (typeof f !== "string") throw new TypeError(`Invalid feature: expected a string, got ${typeof f}`);
    if (!FEATURE_PATTERN.test(f)) {
      throw new RangeError(`Invalid feature "${f}": expected 1..32 characters of a-z, 0-9, "-", ".", "/"`);
    }
  }
  // Plain string order is bytewise order for ASCII.
  const out = [...new Set(features)].sort();
  if (out.length > MAX_FEATURES) {
    throw new RangeError(`Invalid features: ${out.length}, expected at most ${MAX_FEATURES}`);
  }
  return out;
}

function versionListLength(versions: readonly number[]): number {
  return 1 + 2 * versions.length;
}

function writeVersionList(out: Uint8Array, offset: number, versions: readonly number[]): number {
  out[offset++] = versions.length;
  for (const v of versions) {
    out[offset++] = v >>> 8;
    out[offset++] = v & 0xff;
  }
  return offset;
}

/** Reads a VersionList at `offset`; returns the versions and the offset after it. */
function readVersionList(bytes: Uint8Array, offset: number, what: string): [number[], number] {
  if (offset >= bytes.length) throw malformed(what, `length is ${bytes.length}, expected a version list at ${offset}`);
  const n = bytes[offset++];
  if (n < 1 || n > MAX_VERSIONS) throw malformed(what, `version count is ${n}, expected 1..${MAX_VERSIONS}`);
  if (bytes.length < offset + 2 * n) {
    throw malformed(what, `length is ${bytes.length}, expected >= ${offset + 2 * n} for ${n} versions`);
  }
  const versions: number[] = [];
  let previous = 0;
  for (let i = 0; i < n; i++, offset += 2) {
    const v = (bytes[offset] << 8) | bytes[offset + 1];
    if (v <= previous) {
      throw malformed(what, `version ${v} at ${offset} is not above ${previous} (strictly ascending, >= 1)`);
    }
    versions.push(v);
    previous = v;
  }
  return [versions, offset];
}

function identityBlockLength(features: readonly string[]): number {
  let length = IDENTITY_BLOCK_FIXED;
  for (const f of features) length += 1 + f.length;
  return length;
}

function writeIdentityBlock(out: Uint8Array, offset: number, block: IdentityBlock): number {
  out.set(block.identity, offset);
  out.set(block.signature, offset + IDENTITY_LENGTH);
  offset += IDENTITY_LENGTH + SIGNATURE_LENGTH;
  out[offset++] = block.features.length;
  for (const f of block.features) {
    out[offset++] = f.length;
    for (let i = 0; i < f.length; i++) out[offset++] = f.charCodeAt(i);
  }
  return offset;
}

function isFeatureByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2e || b === 0x2f;
}

/** Compares two byte ranges of `bytes` bytewise: negative, zero or positive. */
function compareRanges(bytes: Uint8Array, a: number, aLen: number, b: number, bLen: number): number {
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = bytes[a + i] - bytes[b + i];
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/** Reads an IdentityBlock that must end exactly at the end of `bytes`. */
function readIdentityBlock(bytes: Uint8Array, offset: number, what: string): IdentityBlock {
  if (bytes.length < offset + IDENTITY_BLOCK_FIXED) {
    throw malformed(what, `length is ${bytes.length}, expected >= ${offset + IDENTITY_BLOCK_FIXED}`);
  }
  const identity = bytes.slice(offset, offset + IDENTITY_LENGTH);
  const signature = bytes.slice(offset + IDENTITY_LENGTH, offset + IDENTITY_LENGTH + SIGNATURE_LENGTH);
  offset += IDENTITY_LENGTH + SIGNATURE_LENGTH;
  const m = bytes[offset++];
  if (m > MAX_FEATURES) throw malformed(what, `feature count is ${m}, expected <= ${MAX_FEATURES}`);
  const features: string[] = [];
  let previous = -1, previousLength = 0;
  for (let i = 0; i < m; i++) {
    if (offset >= bytes.length) throw malformed(what, `length is ${bytes.length}, expected feature ${i + 1} of ${m}`);
    const length = bytes[offset++];
    if (length < 1 || length > MAX_FEATURE_LENGTH) {
      throw malformed(what, `feature ${i + 1} has length ${length}, expected 1..${MAX_FEATURE_LENGTH}`);
    }
    if (bytes.length < offset + length) {
      throw malformed(what, `length is ${bytes.length}, expected >= ${offset + length} for feature ${i + 1}`);
    }
    let name = "";
    for (let j = offset; j < offset + length; j++) {
      if (!isFeatureByte(bytes[j])) {
        throw malformed(what, `feature ${i + 1} has byte 0x${bytes[j].toString(16)} at ${j}`);
      }
      name += String.fromCharCode(bytes[j]);
    }
    if (previous >= 0 && compareRanges(bytes, previous, previousLength, offset, length) >= 0) {
      throw malformed(what, `feature "${name}" is not after the one before it (strictly ascending)`);
    }
    features.push(name);
    previous = offset;
    previousLength = length;
    offset += length;
  }
  if (offset !== bytes.length) throw malformed(what, `length is ${bytes.length}, expected ${offset}`);
  return { identity, signature, features };
}

function checkIdentityBlock(block: IdentityBlock): void {
  assertBytes(block.identity, IDENTITY_LENGTH, "identity");
  assertBytes(block.signature, SIGNATURE_LENGTH, "signature");
  const normal = normalizeFeatures(block.features);
  if (normal.length !== block.features.length || normal.some((f, i) => f !== block.features[i])) {
    throw new RangeError("Invalid features: expected strictly ascending names");
  }
}

function checkVersionList(versions: readonly number[]): void {
  const normal = normalizeVersions(versions);
  if (normal.length !== versions.length || normal.some((v, i) => v !== versions[i])) {
    throw new RangeError("Invalid versions: expected strictly ascending");
  }
}

/**
 * Encodes the Offer of message 1: the initiator's VersionList.
 *
 * @param versions 1 to 16 versions in 1..65535, strictly ascending.
 * @returns `n (u8) || n × u16be`.
 * @throws {RangeError} when the versions are out of range or order.
 */
export function encodeOffer(versions: readonly number[]): Uint8Array {
  checkVersionList(versions);
  const out = new Uint8Array(versionListLength(versions));
  writeVersionList(out, 0, versions);
  return out;
}

/**
 * Decodes the Offer of message 1.
 *
 * @param payload The payload bytes.
 * @returns The offered versions, strictly ascending.
 * @throws {HandshakeError} `malformed` when the bytes are not exactly one VersionList.
 */
export function decodeOffer(payload: Uint8Array): number[] {
  assertBytes(payload, undefined, "payload");
  const [versions, end] = readVersionList(payload, 0, "Offer");
  if (end !== payload.length) throw malformed("Offer", `length is ${payload.length}, expected ${end}`);
  return versions;
}

/**
 * Encodes the Accept of message 2.
 *
 * @param accept The chosen version (0 for none), the responder's versions and its IdentityBlock.
 * @returns `chosen (u16be) || VersionList || IdentityBlock`.
 * @throws {RangeError} when a field is out of range or order.
 */
export function encodeAccept(accept: Accept): Uint8Array {
  if (!Number.isInteger(accept.chosen) || accept.chosen < 0 || accept.chosen > 0xffff) {
    throw new RangeError(`Invalid chosen version: ${accept.chosen}, expected 0..65535`);
  }
  checkVersionList(accept.versions);
  checkIdentityBlock(accept);
  const out = new Uint8Array(2 + versionListLength(accept.versions) + identityBlockLength(accept.features));
  out[0] = accept.chosen >>> 8;
  out[1] = accept.chosen & 0xff;
  writeIdentityBlock(out, writeVersionList(out, 2, accept.versions), accept);
  return out;
}

/**
 * Decodes the Accept of message 2.
 *
 * @param payload The decrypted payload.
 * @returns The responder's choice, versions and IdentityBlock (not yet verified).
 * @throws {HandshakeError} `malformed` when the bytes are not exactly one Accept.
 */
export function decodeAccept(payload: Uint8Array): Accept {
  assertBytes(payload, undefined, "payload");
  if (payload.length < 2) throw malformed("Accept", `length is ${payload.length}, expected >= 2`);
  const chosen = (payload[0] << 8) | payload[1];
  const [versions, offset] = readVersionList(payload, 2, "Accept");
  return { chosen, versions, ...readIdentityBlock(payload, offset, "Accept") };
}

/**
 * Encodes the Finish of message 3: the initiator's IdentityBlock.
 *
 * @param block The identity key, signature and features.
 * @returns `identity (32) || signature (64) || m (u8) || m × (u8 length || name)`.
 * @throws {RangeError} when a field is out of range or order.
 */
export function encodeFinish(block: IdentityBlock): Uint8Array {
  checkIdentityBlock(block);
  const out = new Uint8Array(identityBlockLength(block.features));
  writeIdentityBlock(out, 0, block);
  return out;
}

/**
 * Decodes the Finish of message 3.
 *
 * @param payload The decrypted payload.
 * @returns The initiator's IdentityBlock (not yet verified).
 * @throws {HandshakeError} `malformed` when the bytes are not exactly one IdentityBlock.
 */
export function decodeFinish(payload: Uint8Array): IdentityBlock {
  assertBytes(payload, undefined, "payload");
  return readIdentityBlock(payload, 0, "Finish");
}
