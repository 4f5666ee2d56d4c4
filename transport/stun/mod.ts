/**
 * STUN (RFC 8489, compatible with RFC 5389) on the node's shared UDP socket,
 * with RFC 5780 NAT behaviour discovery: the message codec, a client, a
 * server and `discoverNatBehavior`. The profile is in `spec/stun.md`.
 *
 * ```ts
 * import { addStunAttribute, createStunMessage, decodeStunMessage, encodeStunMessage, getStunAttribute,
 *   STUN_METHOD_BINDING, XOR_MAPPED_ADDRESS } from "./mod.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const response = createStunMessage(STUN_METHOD_BINDING, "success");
 * addStunAttribute(response, XOR_MAPPED_ADDRESS, { hostname: "192.0.2.1", port: 32853 });
 * const decoded = decodeStunMessage(encodeStunMessage(response, { fingerprint: true }));
 * deepEqual(getStunAttribute(decoded, XOR_MAPPED_ADDRESS), { hostname: "192.0.2.1", port: 32853 });
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./message.ts";
export * from "./client.ts";
export * from "./server.ts";
export * from "./nat_behavior.ts";
