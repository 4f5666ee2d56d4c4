/**
 * The network transports of NewZoneCore: byte streams between nodes over TCP,
 * WebSocket, or memory (for tests), addressed as `tcp://HOST:PORT`,
 * `ws[s]://HOST:PORT/PATH` and `memory://NAME`; length-prefixed framing on
 * top; dialing again with backoff. This layer knows nothing of the kernel.
 *
 * ```ts
 * import { createFrameIO, selectTransport, TcpTransport, WebSocketTransport } from "./mod.ts";
 * import { deepEqual, equal } from "node:assert/strict";
 *
 * const transports = [new TcpTransport(), new WebSocketTransport()];
 * const tcp = selectTransport("tcp://127.0.0.1:0", transports);
 * const served = Promise.withResolvers<void>();
 * await using listener = await tcp.listen("tcp://127.0.0.1:0", {
 *   onConnection: async (conn) => {
 *     const frames = createFrameIO(conn);
 *     for (let frame; (frame = await frames.read()) !== null;) await frames.write(frame);
 *     await frames.close();
 *     served.resolve();
 *   },
 * });
 * const frames = createFrameIO(await tcp.dial(listener.addr));
 * await frames.write(new TextEncoder().encode("hello"));
 * deepEqual(new TextDecoder().decode((await frames.read())!), "hello");
 * await frames.close();
 * equal(await frames.read(), null);
 * await served.promise;
 * ```
 *
 * @module
 */

export type * from "./types.ts";
export * from "./errors.ts";
export * from "./address.ts";
export * from "./framing.ts";
export * from "./retry.ts";
export { DEFAULT_DIAL_TIMEOUT_MS, TcpTransport, type TcpTransportOptions } from "./tcp.ts";
export * from "./websocket.ts";
export * from "./memory.ts";
export * from "./udp.ts";
export * from "./memory_datagram.ts";
export { canonicalIp, formatIp, parseIp } from "./ip.ts";
export * from "./stun/mod.ts";
export * from "./portmap/mod.ts";
export * from "./turn/mod.ts";
export * from "./mdns/mod.ts";
