/**
 * The plaintext of an NZ-CHANNEL-01 frame: one or more records, each a
 * 12-byte header (type, flags, reserved, stream ID, payload length) and its
 * payload (spec/protocols/NZ-CHANNEL-01.md section "Records").
 * {@linkcode decodeFrame} checks every rule that needs no channel state, with
 * exact lengths; the channel checks the rest (which streams exist, credit).
 *
 * @module
 */

import { ChannelError } from "./errors.ts";
import {
  DATA_FLAGS,
  ErrorCode,
  FLAGS_OFFSET,
  FrameType,
  HEADER_LEN,
  LENGTH_OFFSET,
  MAX_PLAINTEXT_LEN,
  MAX_REASON_LEN,
  MAX_WINDOW,
  PING_PAYLOAD_LEN,
  RESERVED_OFFSET,
  STREAM_ID_OFFSET,
  TYPE_OFFSET,
  U32_PAYLOAD_LEN,
} from "./constants.ts";

/** One record of a frame. `payload` is a view into the frame when decoded. */
export interface ChannelRecord {
  /** The record type. */
  type: FrameType;
  /** Flag bits; only DATA has any. */
  flags: number;
  /** The stream, or 0 for the channel itself. */
  streamId: number;
  /** The payload bytes. */
  payload: Uint8Array;
}

const TYPE_NAMES: readonly string[] = ["DATA", "OPEN", "WINDOW_UPDATE", "RESET", "PING", "PONG", "REKEY", "GOAWAY"];
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** The spec name of a record type ("DATA"), or its number for an unknown one. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `type 0x${type.toString(16).padStart(2, "0")}`;
}

/**
 * Writes one record header at `offset` of `target`.
 *
 * @param target The frame plaintext being built; 12 bytes from `offset` are written.
 * @param offset Where the header starts.
 * @param type The record type.
 * @param flags The flags (0 except on DATA).
 * @param streamId The stream, 0 for the channel.
 * @param length The payload length that follows the header.
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  type: number,
  flags: number,
  streamId: number,
  length: number,
): void {
  target[offset + TYPE_OFFSET] = type;
  target[offset + FLAGS_OFFSET] = flags;
  target[offset + RESERVED_OFFSET] = 0;
  target[offset + RESERVED_OFFSET + 1] = 0;
  writeU32(target, offset + STREAM_ID_OFFSET, streamId);
  writeU32(target, offset + LENGTH_OFFSET, length);
}

function writeU32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = value >>> 16;
  target[offset + 2] = value >>> 8;
  target[offset + 3] = value;
}

function readU32(source: Uint8Array, offset: number): number {
  return ((source[offset] << 24) | (source[offset + 1] << 16) | (source[offset + 2] << 8) | source[offset + 3]) >>> 0;
}

/** Encodes a u32be payload (WINDOW_UPDATE increment, RESET code). */
export function encodeU32(value: number): Uint8Array {
  const out = new Uint8Array(U32_PAYLOAD_LEN);
  writeU32(out, 0, value);
  return out;
}

/** Decodes the u32be payload of a WINDOW_UPDATE or RESET that {@linkcode decodeFrame} accepted. */
export function decodeU32(payload: Uint8Array): number {
  return readU32(payload, 0);
}

/**
 * Encodes a GOAWAY payload: u32be code || UTF-8 reason, the reason cut to
 * {@linkcode MAX_REASON_LEN} bytes at a character boundary.
 *
 * @param code The wire error code.
 * @param reason A sentence for the peer's log.
 * @returns The payload.
 */
export function encodeGoAway(code: number, reason: string): Uint8Array {
  let text = encoder.encode(reason);
  if (text.length > MAX_REASON_LEN) {
    let end = MAX_REASON_LEN;
    while (end > 0 && (text[end] & 0xc0) === 0x80) end--; // never split a UTF-8 sequence
    text = text.subarray(0, end);
  }
  const out = new Uint8Array(U32_PAYLOAD_LEN + text.length);
  writeU32(out, 0, code);
  out.set(text, U32_PAYLOAD_LEN);
  return out;
}

/**
 * Decodes a GOAWAY payload that {@linkcode decodeFrame} accepted.
 *
 * @param payload The record's payload.
 * @returns The code and the reason.
 */
export function decodeGoAway(payload: Uint8Array): { code: number; reason: string } {
  return { code: readU32(payload, 0), reason: fatalUtf8.decode(payload.subarray(U32_PAYLOAD_LEN)) };
}

/**
 * Encodes records into the plaintext of one frame.
 *
 * @param records The records, in order.
 * @returns header || payload for each record, concatenated.
 * @throws {RangeError} when the result exceeds {@linkcode MAX_PLAINTEXT_LEN} or a stream ID is not a u32.
 *
 * @example Encode a PING and decode it again
 * ```ts
 * import { decodeFrame, encodeFrame } from "./frame.ts";
 * import { FrameType } from "./constants.ts";
 *
 * const plaintext = encodeFrame([{ type: FrameType.PING, flags: 0, streamId: 0, payload: new Uint8Array(8) }]);
 * const [ping] = decodeFrame(plaintext);
 * if (plaintext.length !== 20 || ping.type !== FrameType.PING) throw new Error("Cannot round-trip");
 * ```
 */
export function encodeFrame(records: readonly ChannelRecord[]): Uint8Array {
  let length = 0;
  for (const r of records) length += HEADER_LEN + r.payload.length;
  if (length > MAX_PLAINTEXT_LEN) {
    throw new RangeError(`Cannot encode frame: length is ${length}, expected <= ${MAX_PLAINTEXT_LEN}`);
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const r of records) {
    if (!Number.isInteger(r.streamId) || r.streamId < 0 || r.streamId > 0xffff_ffff) {
      throw new RangeError(`Cannot encode frame: stream ID ${r.streamId} is not a u32`);
    }
    writeHeader(out, offset, r.type, r.flags, r.streamId, r.payload.length);
    out.set(r.payload, offset + HEADER_LEN);
    offset += HEADER_LEN + r.payload.length;
  }
  return out;
}

function fail(code: "protocol_error" | "frame_size_error" | "flow_control_error", message: string): never {
  throw new ChannelError(code, `Cannot decode frame: ${message}`);
}

/**
 * Decodes the plaintext of one frame into its records, checking every rule
 * that needs no channel state (section "Records"): the frame holds at least
 * one record, each header is whole and its reserved field 0, each payload
 * fits, the type is known, the flags and stream ID suit the type, control
 * payloads have their exact length, a WINDOW_UPDATE grants 1..2^31 - 1, a
 * GOAWAY reason is UTF-8, and a REKEY or GOAWAY is the last record.
 *
 * @param plaintext An opened frame.
 * @returns The records; payloads are views into `plaintext`, not copies.
 * @throws {ChannelError} `frame_size_error` for lengths that do not add up, `protocol_error` for any other broken
 *   rule, `flow_control_error` for a WINDOW_UPDATE beyond the maximum window.
 *
 * @example A truncated record is refused
 * ```ts
 * import { decodeFrame } from "./frame.ts";
 * import { ChannelError } from "./errors.ts";
 *
 * try {
 *   decodeFrame(new Uint8Array(11));
 *   throw new Error("Cannot refuse");
 * } catch (e) {
 *   if (!(e instanceof ChannelError) || e.code !== "frame_size_error") throw e;
 * }
 * ```
 */
export function decodeFrame(plaintext: Uint8Array): ChannelRecord[] {
  if (plaintext.length === 0) fail("protocol_error", "it holds no record");
  if (plaintext.length > MAX_PLAINTEXT_LEN) {
    fail("frame_size_error", `length is ${plaintext.length}, expected <= ${MAX_PLAINTEXT_LEN}`);
  }
  const records: ChannelRecord[] = [];
  let offset = 0;
  while (offset < plaintext.length) {
    const left = plaintext.length - offset;
    if (left < HEADER_LEN) {
      fail("frame_size_error", `record header at offset ${offset} is ${left} bytes, expected ${HEADER_LEN}`);
    }
    const type = plaintext[offset + TYPE_OFFSET];
    const flags = plaintext[offset + FLAGS_OFFSET];
    const name = frameTypeName(type);
    if (plaintext[offset + RESERVED_OFFSET] !== 0 || plaintext[offset + RESERVED_OFFSET + 1] !== 0) {
      fail("protocol_error", `${name} record at offset ${offset} has a nonzero reserved field`);
    }
    const streamId = readU32(plaintext, offset + STREAM_ID_OFFSET);
    const length = readU32(plaintext, offset + LENGTH_OFFSET);
    const start = offset + HEADER_LEN;
    if (length > plaintext.length - start) {
      fail(
        "frame_size_error",
        `${name} record at offset ${offset} has length ${length}, only ${left - HEADER_LEN} left`,
      );
    }
    const payload = plaintext.subarray(start, start + length);
    checkRecord(type, flags, streamId, payload, name);
    if ((type === FrameType.REKEY || type === FrameType.GOAWAY) && start + length !== plaintext.length) {
      fail("protocol_error", `${name} is not the last record of its frame`);
    }
    records.push({ type: type as FrameType, flags, streamId, payload });
    offset = start + length;
  }
  return records;
}

/** The per-type rules of section "Record types". */
function checkRecord(type: number, flags: number, streamId: number, payload: Uint8Array, name: string): void {
  const onChannel = type === FrameType.PING || type === FrameType.PONG || type === FrameType.REKEY ||
    type === FrameType.GOAWAY;
  if (type > FrameType.GOAWAY) fail("protocol_error", `unknown record ${name}`);
  if (flags & ~(type === FrameType.DATA ? DATA_FLAGS : 0)) {
    fail("protocol_error", `${name} has unknown flags 0x${flags.toString(16)}`);
  }
  if (onChannel && streamId !== 0) fail("protocol_error", `${name} on stream ${streamId}, expected stream 0`);
  if (!onChannel && streamId === 0) fail("protocol_error", `${name} on stream 0`);
  const exact = type === FrameType.OPEN || type === FrameType.REKEY
    ? 0
    : type === FrameType.WINDOW_UPDATE || type === FrameType.RESET
    ? U32_PAYLOAD_LEN
    : type === FrameType.PING || type === FrameType.PONG
    ? PING_PAYLOAD_LEN
    : -1;
  if (exact >= 0 && payload.length !== exact) {
    fail("frame_size_error", `${name} payload is ${payload.length} bytes, expected ${exact}`);
  }
  if (type === FrameType.WINDOW_UPDATE) {
    const increment = readU32(payload, 0);
    if (increment === 0) fail("protocol_error", `WINDOW_UPDATE on stream ${streamId} grants 0 bytes`);
    if (increment > MAX_WINDOW) {
      fail("flow_control_error", `WINDOW_UPDATE on stream ${streamId} grants ${increment}, expected <= ${MAX_WINDOW}`);
    }
  }
  if (type === FrameType.GOAWAY) {
    if (payload.length < U32_PAYLOAD_LEN || payload.length > U32_PAYLOAD_LEN + MAX_REASON_LEN) {
      fail(
        "frame_size_error",
        `GOAWAY payload is ${payload.length} bytes, expected ${U32_PAYLOAD_LEN}..${U32_PAYLOAD_LEN + MAX_REASON_LEN}`,
      );
    }
    try {
      fatalUtf8.decode(payload.subarray(U32_PAYLOAD_LEN));
    } catch {
      fail("protocol_error", "GOAWAY reason is not UTF-8");
    }
  }
}

/** The wire error codes by their API name (the inverse of {@linkcode failureOfCode}). */
const CODE_NAMES = [
  "no_error",
  "protocol_error",
  "internal_error",
  "flow_control_error",
  "frame_size_error",
  "refused_stream",
  "cancel",
  "message_too_large",
  "idle_timeout",
  "counter_exhausted",
] as const;

/**
 * The {@linkcode ChannelError} code for a wire error code; unknown codes read
 * as `internal_error` (section "Error codes"), and NO_ERROR as `closed`.
 */
export function failureOfCode(code: number): ChannelError["code"] {
  const name = CODE_NAMES[code];
  return name === undefined ? "internal_error" : name === "no_error" ? "closed" : name;
}

/**
 * The wire error code for a {@linkcode ChannelError} code: `closed` sends
 * NO_ERROR, `auth_failed` PROTOCOL_ERROR, the other local-only codes
 * INTERNAL_ERROR.
 */
export function codeOfFailure(failure: ChannelError["code"]): ErrorCode {
  if (failure === "closed") return ErrorCode.NO_ERROR;
  if (failure === "auth_failed") return ErrorCode.PROTOCOL_ERROR;
  const index = (CODE_NAMES as readonly string[]).indexOf(failure);
  return (index > 0 ? index : ErrorCode.INTERNAL_ERROR) as ErrorCode;
}
