import { deepEqual, equal, throws } from "node:assert/strict";
import punch from "../../../spec/vectors/nz_punch_01.json" with { type: "json" };
import relay from "../../../spec/vectors/nz_relay_01.json" with { type: "json" };
import { fromHex, toHex } from "../../../kernel/bytes.ts";
import { decodePunchMessage, encodePunchMessage, type PunchMessage } from "../../../kernel/peers/punch.ts";
import { decodeRelayStatus, encodeRelayRequest, encodeRelayStatus } from "../../../kernel/peers/relay.ts";

Deno.test("NZ-PUNCH-01 vectors: each message encodes to the bytes and decodes back", () => {
  for (const v of punch.messages) {
    const message = v.message as PunchMessage;
    equal(toHex(encodePunchMessage(message)), v.bytes, v.name);
    deepEqual(decodePunchMessage(fromHex(v.bytes)), message, v.name);
  }
});

Deno.test("NZ-PUNCH-01 vectors: malformed messages are refused", () => {
  for (const v of punch.malformed) throws(() => decodePunchMessage(fromHex(v.bytes)), RangeError, v.name);
});

Deno.test("NZ-RELAY-01 vectors: CONNECT, INCOMING and STATUS", () => {
  for (const v of relay.requests) equal(toHex(encodeRelayRequest(v.type as 1 | 2, v.nodeId)), v.bytes, v.name);
  for (const v of relay.statuses) {
    equal(toHex(encodeRelayStatus(v.code, v.reason)), v.bytes, v.name);
    deepEqual(decodeRelayStatus(fromHex(v.bytes)), { code: v.code, reason: v.reason }, v.name);
  }
});
