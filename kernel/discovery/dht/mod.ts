/**
 * The Kademlia DHT of NZ-DHT-01 (spec/protocols/NZ-DHT-01.md): the
 * {@linkcode Dht} node, and the parts it is made of for those who build on
 * them (a simulation, an adversary in a test, a second implementation): the
 * wire codec, the routing table, the RPC layer, the record store and the
 * disjoint-path lookup.
 *
 * ```ts
 * import { Dht } from "./mod.ts";
 * import { Identity } from "../../identity/identity.ts";
 * import { UdpSocket } from "../../../transport/udp.ts";
 * import { mutableKey, signRecord } from "../record.ts";
 *
 * await using sa = await UdpSocket.bind("udp://127.0.0.1:0");
 * await using sb = await UdpSocket.bind("udp://127.0.0.1:0");
 * const alice = Identity.generate("alice");
 * const a = await Dht.start({ socket: sa, signer: alice });
 * const b = await Dht.start({ socket: sb, signer: Identity.generate("bob"), bootstrap: [sa.addr] });
 * await b.bootstrap();
 * const name = new TextEncoder().encode("status");
 * const record = signRecord(alice, { kind: "mutable", seq: 1, expires: Date.now() + 60_000, name, value: new Uint8Array([1]) });
 * await a.put(record);
 * const got = await b.get(mutableKey(alice.publicKey, name));
 * if (got.records[0]?.seq !== 1) throw new Error("Cannot find the record");
 * await b.close();
 * await a.close();
 * ```
 *
 * @module
 */

export * from "./dht.ts";
export * from "./contact.ts";
export * from "./lookup.ts";
export * from "./message.ts";
export * from "./record_store.ts";
export * from "./routing_table.ts";
export * from "./rpc.ts";
