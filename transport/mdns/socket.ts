/**
 * The multicast DNS socket (RFC 6762): one UDP socket on port 5353 that has
 * joined 224.0.0.251, on the `multicast-dns` package, which does the socket
 * and the wire format (`dns-packet`). Announcing ({@linkcode announce}) and
 * browsing ({@linkcode browse}) share it.
 *
 * It runs on Deno's `node:dgram`: `reuseAddr` (so avahi-daemon and other
 * responders share port 5353), `addMembership`, `setMulticastInterface`,
 * `setMulticastTTL` and `setMulticastLoopback` all work as in Node. One thing
 * of the package does not fit: it binds the interface's own address when only
 * `interface` is given, and Linux does not deliver multicast to a socket bound
 * to a unicast address, so the socket always binds `0.0.0.0` (or `bind`).
 *
 * IPv4 only: mDNS over IPv6 (ff02::fb) needs a second socket per interface,
 * which this does not open. AAAA records are still announced and read.
 *
 * @module
 */

import dgram from "node:dgram";
import multicastDns from "multicast-dns";
import dnsPacket from "dns-packet";
import { announce, type Announcement, type ServiceDescription } from "./responder.ts";
import { browse, type BrowseOptions, type Browser, type ServiceInstance } from "./browser.ts";
import { TransportError } from "../errors.ts";
import { parseIp } from "../ip.ts";

/** The mDNS port (RFC 6762 section 3). */
export const MDNS_PORT = 5353;
/** The IPv4 mDNS group (RFC 6762 section 3). */
export const MDNS_GROUP = "224.0.0.251";
/** The largest mDNS message, in bytes (RFC 6762 section 17): larger ones are dropped unread. */
export const MAX_MDNS_PACKET = 9000;

/** A question of a DNS message, as `dns-packet` has it. */
export interface DnsQuestion {
  /** The name asked about, without the trailing dot. */
  name: string;
  /** `PTR`, `SRV`, `TXT`, `A`, `AAAA`, `ANY`, ... */
  type: string;
  /** `IN` (default); a question with the unicast-response bit decodes as `UNKNOWN_32769`. */
  class?: string;
}

/** A resource record, as `dns-packet` has it; `data` depends on `type`. */
export interface DnsRecord {
  /** The owner name, without the trailing dot. */
  name: string;
  /** The record type. */
  type: string;
  /** Seconds the record may be cached; 0 is a goodbye (RFC 6762 section 10.1). */
  ttl?: number;
  /** `IN` (default). */
  class?: string;
  /** The cache-flush bit (RFC 6762 section 10.2). */
  flush?: boolean;
  /** PTR: a name; SRV: `{ priority, weight, port, target }`; TXT: byte strings; A/AAAA: an address. */
  // deno-lint-ignore no-explicit-any
  data: any;
}

/** A DNS message, as `dns-packet` has it. */
export interface DnsPacket {
  /** The message ID: 0 in mDNS, except in answers to legacy unicast queries (RFC 6762 section 6.7). */
  id?: number;
  /** Query or response. */
  type: "query" | "response";
  /** The header flags (`dns-packet`'s AUTHORITATIVE_ANSWER and the like). */
  flags?: number;
  /** Questions. */
  questions?: DnsQuestion[];
  /** Answers (in a query: known answers, RFC 6762 section 7.1). */
  answers?: DnsRecord[];
  /** Authority records (in a probe: the records proposed, RFC 6762 section 8.2). */
  authorities?: DnsRecord[];
  /** Additional records. */
  additionals?: DnsRecord[];
}

/** Where a packet came from. */
export interface MdnsRemote {
  /** The sender's IP address. */
  address: string;
  /** The sender's port: 5353 for a full mDNS peer, anything else for a legacy unicast querier. */
  port: number;
}

/** Receives every well-formed packet the socket takes in. */
export type MdnsPacketHandler = (packet: DnsPacket, from: MdnsRemote) => void;

/** Options of {@linkcode MdnsSocket.open}. */
export interface MdnsOptions {
  /**
   * The interface to join the group on and send from: a name (`eth0`) or an
   * IPv4 address of it. Default: every interface with an IPv4 address joins,
   * and the system's default interface sends.
   */
  interface?: string;
  /** The address to bind (default `0.0.0.0`). */
  bind?: string;
  /** The UDP port (default 5353; tests use another one so that they never meet a real responder). */
  port?: number;
  /** The multicast group (default 224.0.0.251). */
  group?: string;
  /** Whether this host's own packets come back to it (default true: other processes here see them too). */
  loopback?: boolean;
  /** Larger packets are dropped and counted (default {@linkcode MAX_MDNS_PACKET}). */
  maxPacketSize?: number;
}

/** Counters of an {@linkcode MdnsSocket}, live. */
export interface MdnsStats {
  /** Packets received and decoded. */
  received: number;
  /** Packets that did not decode (counted, dropped). */
  malformed: number;
  /** Packets over the size limit (counted, dropped). */
  oversized: number;
  /** Responses from a port other than the mDNS port (RFC 6762 section 6: ignored). */
  foreignPort: number;
  /** Packets from an address on none of this host's subnets (RFC 6762 section 11: ignored). */
  offLink: number;
  /** Packets sent. */
  sent: number;
  /** Sends that failed. */
  sendErrors: number;
  /** Handlers that threw on a packet. */
  handlerErrors: number;
}

/**
 * An mDNS socket. Open it with {@linkcode MdnsSocket.open}; `close()` (or
 * `await using`) leaves the group.
 *
 * ```ts ignore
 * await using mdns = await MdnsSocket.open({ interface: "eth0" });
 * const ad = await mdns.announce({ instance: "my node", type: "_nzcore._udp", port: 7475, txt: { v: "1" } });
 * const browser = mdns.browse("_nzcore._udp", (s) => console.log("up", s), (s) => console.log("down", s));
 * ```
 */
export class MdnsSocket implements AsyncDisposable {
  /** The UDP port the socket speaks on. */
  readonly port: number;
  /** The multicast group. */
  readonly group: string;
  /** The IPv4 address of the chosen interface, or null for all. */
  readonly interfaceAddress: string | null;
  /** Counters, live. */
  readonly stats: MdnsStats = {
    received: 0,
    malformed: 0,
    oversized: 0,
    foreignPort: 0,
    offLink: 0,
    sent: 0,
    sendErrors: 0,
    handlerErrors: 0,
  };
  #mdns: MulticastDns;
  #handlers = new Set<MdnsPacketHandler>();
  #closed = false;
  #maxPacketSize: number;
  #interfaceName: string | null;
  #closers = new Set<() => Promise<void> | void>();
  #subnets: { prefix: Uint8Array; bits: number }[] = [];
  #subnetsAt = -Infinity;

  private constructor(
    mdns: MulticastDns,
    init: { port: number; group: string; iface: MdnsInterface | null; maxPacketSize: number },
  ) {
    this.#mdns = mdns;
    this.port = init.port;
    this.group = init.group;
    this.interfaceAddress = init.iface?.address ?? null;
    this.#interfaceName = init.iface?.name ?? null;
    this.#maxPacketSize = init.maxPacketSize;
    mdns.on("warning", () => this.stats.malformed++);
    mdns.on("error", () => this.stats.sendErrors++);
    mdns.on("packet", (packet: DnsPacket, rinfo: { address: string; port: number; size: number }) => {
      if (rinfo.size > this.#maxPacketSize) {
        this.stats.oversized++;
        return;
      }
      if (packet.type === "response" && rinfo.port !== this.port) {
        // RFC 6762 section 6: responses from a source port other than 5353 are not mDNS responses.
        this.stats.foreignPort++;
        return;
      }
      if (!this.#onLink(rinfo.address)) {
        // RFC 6762 section 11: a packet from an address not on the link (unicast to the port from afar) is ignored,
        // so that nobody off the link feeds the cache or gets an answer sent to a forged source.
        this.stats.offLink++;
        return;
      }
      this.stats.received++;
      const from = { address: rinfo.address, port: rinfo.port };
      for (const handler of [...this.#handlers]) {
        try {
          handler(packet, from);
        } catch {
          this.stats.handlerErrors++;
        }
      }
    });
  }

  /**
   * Binds the mDNS port with SO_REUSEADDR and joins the group.
   *
   * @throws {RangeError} when `interface` names no interface with an IPv4 address, or `port` is out of range.
   * @throws {TransportError} when the port cannot be bound.
   */
  static async open(options: MdnsOptions = {}): Promise<MdnsSocket> {
    const port = options.port ?? MDNS_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`Invalid mDNS port: ${port}, expected 1-65535`);
    }
    const iface = options.interface === undefined ? null : resolveInterface(options.interface);
    const group = options.group ?? MDNS_GROUP;
    // Our own socket, so that the interface multicast leaves by can be set (see below).
    const udp = dgram.createSocket({ type: "udp4", reuseAddr: true });
    const mdns: MulticastDns = multicastDns({
      socket: udp,
      port,
      ip: group,
      interface: iface?.address,
      // Linux delivers multicast only to sockets bound to the wildcard (or the group): never the interface address.
      bind: options.bind ?? "0.0.0.0",
      loopback: options.loopback ?? true,
      ttl: 255,
    });
    if (!iface) {
      // With no interface chosen, the package joins the group on every interface but sends by "0.0.0.0", that is
      // by the route to 224.0.0.251, which a host without a default route (a network namespace, an isolated LAN)
      // does not have: every send fails. Send by the default route's interface, or the first one that is up.
      const sendBy = defaultInterfaceAddress();
      if (sendBy) {
        mdns.on("networkInterface", () => {
          try {
            udp.setMulticastInterface(sendBy);
          } catch { /* the interface went away; the next update sets it again */ }
        });
      }
    }
    const ready = Promise.withResolvers<void>();
    mdns.once("ready", () => ready.resolve());
    mdns.once("error", (error: Error) => ready.reject(error));
    try {
      await ready.promise;
    } catch (error) {
      await new Promise<void>((resolve) => mdns.destroy(() => resolve()));
      throw new TransportError(`Cannot open mDNS on port ${port}: ${(error as Error).message}`, { cause: error });
    }
    return new MdnsSocket(mdns, { port, group, iface, maxPacketSize: options.maxPacketSize ?? MAX_MDNS_PACKET });
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * This host's addresses to put in A and AAAA records: those of the chosen
   * interface, or of every interface but loopback when none was chosen (the
   * loopback addresses when nothing else is up). IPv6 link-local addresses are
   * left out: without the zone, a peer cannot dial them.
   */
  addresses(): string[] {
    const all = Deno.networkInterfaces();
    const picked = this.#interfaceName
      ? all.filter((i) => i.name === this.#interfaceName)
      : all.filter((i) => !isLoopback(i.address));
    const usable = (list: Deno.NetworkInterfaceInfo[]) =>
      list.filter((i) => !/^fe[89ab]/i.test(i.address)).map((i) => i.address);
    const found = usable(picked);
    return found.length || this.#interfaceName ? unique(found) : unique(usable(all));
  }

  /**
   * Whether `address` is on a subnet of one of this host's interfaces (the
   * interface list is read again at most every 5 s). IPv6 link-local
   * addresses always are.
   */
  #onLink(address: string): boolean {
    const bytes = parseIp(address);
    if (!bytes) return false;
    if (bytes.length === 16 && bytes[0] === 0xfe && (bytes[1] & 0xc0) === 0x80) return true;
    const now = Date.now();
    if (now - this.#subnetsAt > 5000) {
      this.#subnetsAt = now;
      this.#subnets = Deno.networkInterfaces().flatMap((i) => {
        const prefix = parseIp(i.address);
        const bits = Number(i.cidr.split("/")[1]);
        return prefix && Number.isInteger(bits) ? [{ prefix, bits }] : [];
      });
    }
    return this.#subnets.some(({ prefix, bits }) => prefix.length === bytes.length && samePrefix(prefix, bytes, bits));
  }

  /** Calls `handler` with every packet received; returns a function that removes it. */
  onPacket(handler: MdnsPacketHandler): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /**
   * Sends `packet` to the group, or to `to` (a legacy unicast answer).
   *
   * @throws {TypeError} when the packet does not encode.
   * @throws {RangeError} when the packet would be larger than {@linkcode MAX_MDNS_PACKET}.
   * @throws {TransportError} when the socket is closed or the send fails.
   */
  async send(packet: DnsPacket, to?: MdnsRemote): Promise<void> {
    if (this.#closed) throw new TransportError("the mDNS socket is closed");
    // Encoded here first: the package encodes inside a deferred callback, where a throw would be uncaught.
    let length: number;
    try {
      length = dnsPacket.encode(packet).length;
    } catch (error) {
      throw new TypeError(`Cannot encode the mDNS packet: ${(error as Error).message}`, { cause: error });
    }
    if (length > MAX_MDNS_PACKET) {
      throw new RangeError(`mDNS packet of ${length} bytes, expected <= ${MAX_MDNS_PACKET}`);
    }
    const done = Promise.withResolvers<void>();
    try {
      this.#mdns.send(packet, to ? { address: to.address, port: to.port } : null, (error: Error | null) => {
        if (error) done.reject(error);
        else done.resolve();
      });
    } catch (error) {
      done.reject(error);
    }
    try {
      await done.promise;
      this.stats.sent++;
    } catch (error) {
      this.stats.sendErrors++;
      throw new TransportError(`mDNS send failed: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Announces a service instance (RFC 6762 sections 8.1-8.3): probes its
   * names, announces its records, answers queries for them until `stop()`,
   * which sends goodbyes.
   */
  async announce(service: ServiceDescription): Promise<Announcement> {
    const announcement = await announce(this, service);
    this.#closers.add(() => announcement.stop());
    return announcement;
  }

  /**
   * Browses for instances of `type` (RFC 6763 section 4): `onUp` when one is
   * resolved (again when its port, TXT or addresses change), `onDown` when it
   * says goodbye or its records expire.
   */
  browse(
    type: string,
    onUp: (service: ServiceInstance) => void,
    onDown: (service: ServiceInstance) => void,
    options: BrowseOptions = {},
  ): Browser {
    const browser = browse(this, type, onUp, onDown, options);
    this.#closers.add(() => browser.stop());
    return browser;
  }

  /** Stops the announcements (with goodbyes) and browsers on it, leaves the group and closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.allSettled([...this.#closers].map((close) => close()));
    this.#closed = true;
    this.#handlers.clear();
    await new Promise<void>((resolve) => this.#mdns.destroy(() => resolve()));
  }

  /** Same as {@linkcode MdnsSocket.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** What this module uses of a `multicast-dns` instance (the package ships no types). */
interface MulticastDns {
  // deno-lint-ignore no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  // deno-lint-ignore no-explicit-any
  once(event: string, listener: (...args: any[]) => void): unknown;
  send(packet: DnsPacket, to: { address: string; port: number } | null, cb: (error: Error | null) => void): void;
  destroy(cb: () => void): void;
}

/** An interface that mDNS runs on. */
export interface MdnsInterface {
  /** Its name (`eth0`), or null for an address the host does not list. */
  name: string | null;
  /** The IPv4 address that joins the group and sends. */
  address: string;
}

/**
 * Finds the interface `spec` names: an IPv4 address (of an interface of this
 * host, or any when the host does not list it) or an interface name.
 *
 * @throws {RangeError} when no interface has that name, or it has no IPv4 address.
 */
export function resolveInterface(spec: string): MdnsInterface {
  if (typeof spec !== "string" || spec === "") throw new RangeError("Invalid interface: empty");
  const all = Deno.networkInterfaces();
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(spec)) {
    return { name: all.find((i) => i.address === spec)?.name ?? null, address: spec };
  }
  const v4 = all.find((i) => i.name === spec && i.family === "IPv4");
  if (!v4) {
    const names = unique(all.map((i) => i.name)).join(", ");
    throw new RangeError(`Invalid interface "${spec}": no such interface with an IPv4 address (have ${names})`);
  }
  return { name: spec, address: v4.address };
}

/**
 * The IPv4 address to send multicast by when no interface was chosen: the
 * default route's interface (Linux `/proc/net/route`), else the first
 * interface with an IPv4 address that is not loopback; null when there is none.
 */
function defaultInterfaceAddress(): string | null {
  const all = Deno.networkInterfaces().filter((i) => i.family === "IPv4" && !isLoopback(i.address));
  let defaultName: string | undefined;
  try {
    // Iface Destination Gateway ...: the default route has destination 00000000.
    defaultName = Deno.readTextFileSync("/proc/net/route").split("\n").map((l) => l.split(/\s+/))
      .find((f) => f[1] === "00000000")?.[0];
  } catch { /* not Linux, or not readable */ }
  return (all.find((i) => i.name === defaultName) ?? all[0])?.address ?? null;
}

function samePrefix(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i] & mask) !== (b[i] & mask)) return false;
  }
  return true;
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1";
}

function unique<T>(list: T[]): T[] {
  return [...new Set(list)];
}
