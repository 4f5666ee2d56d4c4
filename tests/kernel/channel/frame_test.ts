/** The record codec of NZ-CHANNEL-01 section 4: every rule, with the code it fails with. */

import { deepStrictEqual as eql, ok, throws } from "node:assert/strict";
import { utf8 } from "../../../kernel/bytes.ts";
import { ErrorCode, FrameType, HEADER_LEN, MAX_PLAINTEXT_LEN, MAX_WINDOW } from "../../../kernel/channel/constants.ts";
import { ChannelError } from "../../../kernel/channel/errors.ts";
import {
  type ChannelRecord,
  codeOfFailure,
  decodeFrame,
  decodeGoAway,
  encodeFrame,
  encodeGoAway,
  encodeU32,
  failureOfCode,
} from "../../../kernel/channel/frame.ts";

const rec = (type: number, streamId: number, payload: Uint8Array = new Uint8Array(0), flags = 0): ChannelRecord => ({
  type: type as ChannelRecord["type"],
  flags,
  streamId,
  payload,
});

function refuses(plaintext: Uint8Array, code: ChannelError["code"], message: RegExp): void {
  throws(() => decodeFrame(plaintext), (e: unknown) => {
    ok(e instanceof ChannelError, String(e));
    eql(e.code, code, e.message);
    ok(message.test(e.message), e.message);
    return true;
  });
}

Deno.test("encodeFrame() lays records out as type, flags, reserved, stream ID, length, payload", () => {
  eql(
    encodeFrame([rec(FrameType.DATA, 0x01020304, utf8("hi"), 3)]),
    new Uint8Array([0, 3, 0, 0, 1, 2, 3, 4, 0, 0, 0, 2, 0x68, 0x69]),
  );
});

Deno.test("decodeFrame() returns several records with payloads viewed, not copied", () => {
  const plaintext = encodeFrame([
    rec(FrameType.OPEN, 1),
    rec(FrameType.DATA, 1, utf8("x"), 1),
    rec(FrameType.REKEY, 0),
  ]);
  const records = decodeFrame(plaintext);
  eql(records.map((r) => [r.type, r.streamId, r.flags]), [[1, 1, 0], [0, 1, 1], [6, 0, 0]]);
  eql(records[1].payload.buffer, plaintext.buffer);
});

Deno.test("decodeFrame() refuses an empty frame, a nonzero reserved field and an unknown type", () => {
  refuses(new Uint8Array(0), "protocol_error", /holds no record/);
  const reserved = encodeFrame([rec(FrameType.PING, 0, new Uint8Array(8))]);
  reserved[3] = 1;
  refuses(reserved, "protocol_error", /reserved/);
  refuses(encodeFrame([rec(8, 0)]), "protocol_error", /unknown record type 0x08/);
});

Deno.test("decodeFrame() refuses lengths that do not add up with frame_size_error", () => {
  const data = encodeFrame([rec(FrameType.DATA, 1, utf8("hello"))]);
  refuses(data.subarray(0, data.length - 1), "frame_size_error", /has length 5, only 4 left/);
  refuses(data.subarray(0, HEADER_LEN - 1), "frame_size_error", /header at offset 0 is 11 bytes/);
  refuses(new Uint8Array(MAX_PLAINTEXT_LEN + 1), "frame_size_error", new RegExp(`expected <= ${MAX_PLAINTEXT_LEN}`));
  refuses(encodeFrame([rec(FrameType.PING, 0, new Uint8Array(7))]), "frame_size_error", /PING payload is 7 bytes/);
  refuses(encodeFrame([rec(FrameType.OPEN, 1, new Uint8Array(1))]), "frame_size_error", /OPEN payload is 1 bytes/);
  refuses(encodeFrame([rec(FrameType.GOAWAY, 0, new Uint8Array(3))]), "frame_size_error", /GOAWAY payload is 3/);
  refuses(encodeFrame([rec(FrameType.GOAWAY, 0, new Uint8Array(261))]), "frame_size_error", /GOAWAY payload is 261/);
});

Deno.test("decodeFrame() checks flags and stream IDs against the type", () => {
  refuses(encodeFrame([rec(FrameType.DATA, 1, new Uint8Array(0), 4)]), "protocol_error", /unknown flags 0x4/);
  refuses(encodeFrame([rec(FrameType.OPEN, 1, new Uint8Array(0), 1)]), "protocol_error", /OPEN has unknown flags/);
  refuses(encodeFrame([rec(FrameType.PING, 3, new Uint8Array(8))]), "protocol_error", /PING on stream 3/);
  refuses(encodeFrame([rec(FrameType.DATA, 0)]), "protocol_error", /DATA on stream 0/);
});

Deno.test("decodeFrame() bounds WINDOW_UPDATE to 1 .. 2^31 - 1", () => {
  refuses(encodeFrame([rec(FrameType.WINDOW_UPDATE, 1, encodeU32(0))]), "protocol_error", /grants 0 bytes/);
  refuses(encodeFrame([rec(FrameType.WINDOW_UPDATE, 1, encodeU32(MAX_WINDOW + 1))]), "flow_control_error", /grants/);
  eql(decodeFrame(encodeFrame([rec(FrameType.WINDOW_UPDATE, 1, encodeU32(MAX_WINDOW))])).length, 1);
});

Deno.test("decodeFrame() requires REKEY and GOAWAY to be the last record of their frame", () => {
  refuses(encodeFrame([rec(FrameType.REKEY, 0), rec(FrameType.OPEN, 1)]), "protocol_error", /REKEY is not the last/);
  const goAway = rec(FrameType.GOAWAY, 0, encodeGoAway(0, "bye"));
  refuses(encodeFrame([goAway, rec(FrameType.REKEY, 0)]), "protocol_error", /GOAWAY is not the last/);
});

Deno.test("GOAWAY carries a code and a UTF-8 reason cut to 256 bytes at a character boundary", () => {
  eql(decodeGoAway(encodeGoAway(ErrorCode.IDLE_TIMEOUT, "idle")), { code: 8, reason: "idle" });
  const long = encodeGoAway(0, "é".repeat(200)); // 400 bytes of UTF-8
  eql(long.length, 4 + 256);
  eql(decodeGoAway(long).reason, "é".repeat(128));
  const odd = encodeGoAway(0, "a" + "é".repeat(200));
  eql(odd.length, 4 + 255, "a two-byte character is never split");
  const bad = encodeGoAway(0, "ok");
  bad[4] = 0xff;
  refuses(encodeFrame([rec(FrameType.GOAWAY, 0, bad)]), "protocol_error", /not UTF-8/);
});

Deno.test("wire error codes map to ChannelError codes and back", () => {
  eql(failureOfCode(ErrorCode.NO_ERROR), "closed");
  eql(failureOfCode(ErrorCode.FLOW_CONTROL_ERROR), "flow_control_error");
  eql(failureOfCode(1234), "internal_error");
  for (let code = 1; code <= 9; code++) eql(codeOfFailure(failureOfCode(code)), code);
  eql(codeOfFailure("auth_failed"), ErrorCode.PROTOCOL_ERROR);
  eql(codeOfFailure("aborted"), ErrorCode.INTERNAL_ERROR);
});
