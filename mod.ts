/**
 * NewZoneCore (`nzcore`): a self-sovereign P2P edge node for Deno.
 *
 * Open a node in a data directory, use its identity and encrypted store, or
 * run it whole with its HTTP and Unix-socket API:
 *
 * ```ts ignore
 * import { Node } from "jsr:@nzcore/nzcore";
 *
 * const node = await Node.open({ dataDir: "./.data" });
 * console.log(node.identity.did);
 * const notes = node.identities.dataNamespace(node.identity);
 * await notes.set(["note", 1], { text: "sealed at rest" });
 * await node.close();
 * ```
 *
 * The network transports (TCP, WebSocket, in-memory), their framing and
 * dialing with retry are exported too (`transport/mod.ts`).
 *
 * @module
 */

export * from "./kernel/mod.ts";
export * from "./transport/mod.ts";
export * from "./kernel/policy/mod.ts";
