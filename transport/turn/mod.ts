/**
 * TURN (RFC 8656): relayed addresses on a TURN server for nodes that no peer
 * can reach directly. A {@linkcode TurnAllocation} is a
 * `PacketSocket` whose address is the relayed one, so what runs on
 * the node's UDP socket runs over a relay unchanged. The profile is in
 * `spec/turn.md`.
 *
 * ```ts
 * import { decodeChannelData, encodeChannelData } from "./mod.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const framed = encodeChannelData(0x4001, new Uint8Array([1, 2, 3]), true); // over TCP: padded to 4
 * deepEqual(framed.length, 8);
 * deepEqual(decodeChannelData(framed), { channel: 0x4001, data: new Uint8Array([1, 2, 3]) });
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./attributes.ts";
export * from "./client.ts";
