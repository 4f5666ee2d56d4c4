/**
 * Port mapping: ask the home router to forward a port to this host with PCP
 * (RFC 6887), NAT-PMP (RFC 6886) or UPnP IGD, keep the mapping renewed, and
 * delete it on shutdown. {@linkcode PortMapper} tries the methods in order;
 * the clients and codecs of each protocol are exported for tools and tests.
 * The design, timers and shutdown behaviour are in `spec/portmap.md`.
 *
 * ```ts
 * import { decodePcpResponse, encodePcpRequest, MalformedPortMapMessageError, PortMapper } from "./mod.ts";
 * import { equal, throws } from "node:assert/strict";
 *
 * const request = encodePcpRequest({
 *   opcode: 1,
 *   lifetimeSeconds: 7200,
 *   clientAddress: "10.0.1.10",
 *   map: { nonce: new Uint8Array(12), protocol: 17, internalPort: 7475, externalPort: 7475, externalAddress: "0.0.0.0" },
 * });
 * equal(request.length, 60);
 * throws(() => decodePcpResponse(request), MalformedPortMapMessageError); // a request is no response
 *
 * // Nothing is sent until map(); close() deletes what was mapped.
 * await using mapper = new PortMapper({ gateway: "10.0.1.1", methods: ["pcp", "upnp"], lifetimeSeconds: 3600 });
 * equal(mapper.mappings.length, 0);
 * ```
 *
 * @module
 */

export * from "./errors.ts";
export * from "./mapper.ts";
export * from "./pcp.ts";
export * from "./natpmp.ts";
export * from "./upnp.ts";
