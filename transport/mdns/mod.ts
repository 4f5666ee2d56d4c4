/**
 * DNS-SD over multicast DNS (RFC 6762, RFC 6763) on the `multicast-dns`
 * package: announce a service instance on the link and browse for others.
 * Generic: nothing here knows what a node is.
 *
 * ```ts ignore
 * import { MdnsSocket } from "./mod.ts";
 *
 * await using mdns = await MdnsSocket.open({ interface: "eth0" });
 * await mdns.announce({ instance: "printer", type: "_ipp._tcp", port: 631, txt: { rp: "queue" } });
 * mdns.browse("_ipp._tcp", (s) => console.log("up", s.name, s.addresses, s.port), (s) => console.log("down", s.name));
 * ```
 *
 * @module
 */

export * from "./dns_sd.ts";
export * from "./socket.ts";
export * from "./responder.ts";
export * from "./browser.ts";
