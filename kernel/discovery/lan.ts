/**
 * Finding nodes on the local network with no configuration (spec
 * NZ-LAN-01): the node announces itself as a DNS-SD instance of
 * `_nzcore._udp` over mDNS, `nzcore-<first 12 hex of its node ID>`, with its
 * node ID, did:key and ports in TXT; it browses for others, lists them, and
 * dials those its mode allows: `known` (peers of the address book), `any`
 * (every node found) or `off` (none: list only).
 *
 * A TXT record proves nothing: whoever answers at an address is checked by the
 * handshake, which is dialed with the node ID of the TXT as the expected peer,
 * so a spoofed record leads at worst to a failed dial. A record whose node ID
 * does not match its did:key, or that is malformed in any other way, is
 * counted and ignored.
 *
 * @module
 */

import { PeerMismatchError } from "../channel/errors.ts";
import { decodeDidKey } from "../identity/did.ts";
import { nodeIdOf } from "../identity/identity.ts";
import { formatAddress, parseAddress } from "../../transport/address.ts";
import {
  type Announcement,
  type Browser,
  type MdnsOptions,
  MdnsSocket,
  type ServiceInstance,
  type TxtRecord,
} from "../../transport/mdns/mod.ts";

/** The DNS-SD service type of nzcore nodes. */
export const LAN_SERVICE_TYPE = "_nzcore._udp";
/** The version of the TXT layout (NZ-LAN-01). */
export const LAN_TXT_VERSION = "1";
/** Which LAN peers the node dials: `known` ones (in the address book), `any`, or none (`off`: list only). */
export type LanMode = "known" | "any" | "off";
/** The modes, for validation. */
export const LAN_MODES: readonly LanMode[] = ["known", "any", "off"];

/** Transports a node announces, in the order they are dialed. */
const TRANSPORTS = ["udp", "tcp", "ws"] as const;

/** A node found on the LAN. */
export interface LanPeer {
  /** Its node ID (from TXT `id`, checked against `did`). */
  nodeId: string;
  /** Its did:key (TXT `did`). */
  did: string;
  /** The DNS-SD instance name (`nzcore-0a1b2c3d4e5f`). */
  instance: string;
  /** Addresses to dial it at (`udp://10.0.0.7:7475`, `tcp://...`), best first. */
  addresses: string[];
  /** Whether it is in the address book. */
  known: boolean;
  /** When it was first found, in milliseconds since the Unix epoch. */
  firstSeen: number;
  /** When its records last changed or were confirmed. */
  lastSeen: number;
  /** The last dial: `none` (not dialed), `dialing`, `connected`, `failed`. */
  dial: "none" | "dialing" | "connected" | "failed";
  /** Why the last dial failed. */
  error?: string;
}

/** Counters of a {@linkcode LanDiscovery}, live. */
export interface LanStats {
  /** Instances of `_nzcore._udp` whose TXT was not a well-formed NZ-LAN-01 record (ignored). */
  invalid: number;
  /** Our own announcement, seen coming back. */
  self: number;
  /** Dials started. */
  dials: number;
  /** Dials that failed. */
  dialFailures: number;
}

/** What {@linkcode LanDiscovery} needs of the node. */
export interface LanDiscoveryOptions {
  /** The node's identity (read at start). */
  identity: () => { nodeId: string; did: string };
  /** Dials a peer; the handshake checks `expectedPeer` (the peer manager's `connect`). */
  connect: (address: string, options: { expectedPeer: string; signal?: AbortSignal }) => Promise<unknown>;
  /** Whether a session with `nodeId` is open (no dial then). */
  connected: (nodeId: string) => boolean;
  /** Whether `nodeId` is in the address book (a peer the node trusts). */
  known: (nodeId: string) => boolean;
  /** The addresses the node listens on, ports resolved (read at start): their ports go in TXT. */
  listening: () => readonly string[];
  /** Receives `lan.peer.found` and `lan.peer.lost`. */
  events?: (type: string, data: Record<string, unknown>) => void;
  /** Which peers to dial (default `known`). */
  mode?: LanMode;
  /** Options of the mDNS socket: `interface` (a name or IPv4 address), and `port` for tests. */
  mdns?: MdnsOptions;
  /** LAN peers listed at most (default 256). */
  maxPeers?: number;
  /** How long the dial of one address may take (default 5 s). */
  dialTimeoutMs?: number;
}

/** The NZ-LAN-01 TXT of a node, checked. */
export interface LanTxt {
  /** Node ID. */
  id: string;
  /** did:key, whose key hashes to `id`. */
  did: string;
  /** Ports by transport (`udp`, `tcp`), and `ws` as `PORT` or `PORT/PATH`. */
  ports: { udp?: number; tcp?: number; ws?: { port: number; path: string } };
}

/**
 * Reads an NZ-LAN-01 TXT record: `v=1`, `id` (64 lowercase hex), `did` (an
 * Ed25519 did:key whose SHA-256 is `id`), and at least one of `udp`, `tcp`
 * (ports) and `ws` (`PORT` or `PORT/PATH`). Unknown keys are ignored.
 *
 * @returns the record, or null when it is not a well-formed one.
 */
export function parseLanTxt(txt: TxtRecord): LanTxt | null {
  if (txt.v !== LAN_TXT_VERSION || typeof txt.id !== "string" || typeof txt.did !== "string") return null;
  if (!/^[0-9a-f]{64}$/.test(txt.id)) return null;
  try {
    if (nodeIdOf(decodeDidKey(txt.did)) !== txt.id) return null;
  } catch {
    return null;
  }
  const ports: LanTxt["ports"] = {};
  for (const key of ["udp", "tcp"] as const) {
    if (txt[key] === undefined) continue;
    const port = parsePort(txt[key]);
    if (port === null) return null;
    ports[key] = port;
  }
  if (txt.ws !== undefined) {
    const match = typeof txt.ws === "string" ? /^(\d{1,5})(\/[\x21-\x7e]{0,200})?$/.exec(txt.ws) : null;
    const port = match ? parsePort(match[1]) : null;
    if (port === null) return null;
    ports.ws = { port, path: match![2] ?? "/" };
  }
  if (Object.keys(ports).length === 0) return null;
  return { id: txt.id, did: txt.did, ports };
}

/**
 * The NZ-LAN-01 TXT of a node that listens on `listening`: the ports of its
 * UDP, TCP and WebSocket listeners (those bound to a loopback address are not
 * reachable from the LAN and are left out).
 */
export function lanTxt(identity: { nodeId: string; did: string }, listening: readonly string[]): TxtRecord {
  const txt: TxtRecord = { v: LAN_TXT_VERSION, id: identity.nodeId, did: identity.did };
  for (const address of listening) {
    let parsed;
    try {
      parsed = parseAddress(address);
    } catch {
      continue;
    }
    if (/^(127\.|::1$|localhost$)/.test(parsed.host)) continue;
    if (parsed.scheme === "udp" || parsed.scheme === "tcp") txt[parsed.scheme] ??= String(parsed.port);
    if (parsed.scheme === "ws") {
      txt.ws ??= parsed.path && parsed.path !== "/" ? `${parsed.port}${parsed.path}` : String(parsed.port);
    }
  }
  return txt;
}

/** The DNS-SD instance name of a node, also its host name: `nzcore-` and the first 12 hex digits of its node ID. */
export function lanInstance(nodeId: string): string {
  return `nzcore-${nodeId.slice(0, 12)}`;
}

/**
 * LAN discovery for a node. `start()` opens mDNS, announces the node (when it
 * listens on something reachable) and browses; `stop()` says goodbye.
 */
export class LanDiscovery {
  /** Counters, live. */
  readonly stats: LanStats = { invalid: 0, self: 0, dials: 0, dialFailures: 0 };
  #options: LanDiscoveryOptions;
  #mode: LanMode;
  #maxPeers: number;
  #socket: MdnsSocket | null = null;
  #announcement: Announcement | null = null;
  #browser: Browser | null = null;
  #peers = new Map<string, LanPeer & { fqdn: string }>();
  #closing = new AbortController();
  #announcing?: Promise<void>;
  #self = "";

  /** Creates the discovery; nothing is sent until {@linkcode LanDiscovery.start}. */
  constructor(options: LanDiscoveryOptions) {
    const mode = options.mode ?? "known";
    if (!LAN_MODES.includes(mode)) throw new RangeError(`Invalid LAN mode "${mode}": expected ${LAN_MODES.join(", ")}`);
    this.#options = options;
    this.#mode = mode;
    this.#maxPeers = options.maxPeers ?? 256;
  }

  /** The mode in force. */
  get mode(): LanMode {
    return this.#mode;
  }

  /** The instance name announced, or null when nothing is announced. */
  get instance(): string | null {
    return this.#announcement?.instance ?? null;
  }

  /** The mDNS socket's counters (packets, malformed, oversized), or null before start. */
  get mdnsStats(): MdnsSocket["stats"] | null {
    return this.#socket?.stats ?? null;
  }

  /** The nodes found on the LAN now, newest first. */
  list(): LanPeer[] {
    return [...this.#peers.values()]
      .map(({ fqdn: _, ...peer }) => ({
        ...peer,
        addresses: [...peer.addresses],
        known: this.#options.known(peer.nodeId),
      }))
      .sort((a, b) => b.firstSeen - a.firstSeen);
  }

  /**
   * Opens mDNS and browses for other nodes; announces the node in the
   * background (probing takes about a second; a failure is logged, and the
   * node still finds others).
   *
   * @throws {RangeError} when the interface is unknown.
   * @throws {TransportError} when the mDNS port cannot be bound.
   */
  async start(): Promise<void> {
    if (this.#socket) return;
    this.#closing = new AbortController();
    const identity = this.#options.identity();
    this.#self = identity.nodeId;
    const socket = this.#socket = await MdnsSocket.open(this.#options.mdns);
    this.#browser = socket.browse(
      LAN_SERVICE_TYPE,
      (service) => this.#found(service),
      (service) => this.#lost(service),
      { maxInstances: this.#maxPeers },
    );
    const txt = lanTxt(identity, this.#options.listening());
    const port = Number(txt.udp ?? txt.tcp ?? String(txt.ws ?? "").split("/")[0]);
    if (!port) return;
    const label = lanInstance(identity.nodeId);
    this.#announcing = socket.announce({ instance: label, type: LAN_SERVICE_TYPE, host: label, port, txt }).then(
      (announcement) => {
        if (this.#socket === socket) this.#announcement = announcement;
        else void announcement.stop();
      },
      (error) => {
        if (this.#socket === socket) console.error(`nzcore: the node is not announced on the LAN: ${error.message}`);
      },
    );
  }

  /** Resolves once the node is announced (or the announcement failed, or there is nothing to announce). */
  async announced(): Promise<string | null> {
    await this.#announcing;
    return this.instance;
  }

  /** Says goodbye (RFC 6762 section 10.1), stops browsing and closes the socket. Safe to call twice. */
  async stop(): Promise<void> {
    this.#closing.abort(new Error("LAN discovery stopped"));
    const socket = this.#socket;
    if (!socket) return;
    this.#browser?.stop();
    this.#browser = null;
    await this.#announcing;
    this.#announcing = undefined;
    await this.#announcement?.stop();
    this.#announcement = null;
    this.#socket = null;
    await socket.close();
    this.#peers.clear();
  }

  #found(service: ServiceInstance): void {
    const txt = parseLanTxt(service.txt);
    if (!txt) {
      this.stats.invalid++;
      return;
    }
    if (txt.id === this.#self) {
      this.stats.self++;
      return;
    }
    const addresses = dialAddresses(service.addresses, txt.ports);
    if (addresses.length === 0) {
      this.stats.invalid++;
      return;
    }
    // One node, one entry: a second instance with the same node ID replaces the first.
    const now = Date.now();
    const previous = this.#peers.get(txt.id);
    const changed = !previous || previous.addresses.join() !== addresses.join();
    const peer = previous ?? {
      fqdn: service.fqdn,
      nodeId: txt.id,
      did: txt.did,
      instance: service.name,
      addresses,
      known: false,
      firstSeen: now,
      lastSeen: now,
      dial: "none" as LanPeer["dial"],
    };
    Object.assign(peer, { fqdn: service.fqdn, instance: service.name, addresses, lastSeen: now });
    peer.known = this.#options.known(txt.id);
    this.#peers.set(txt.id, peer);
    if (changed) {
      this.#emit("lan.peer.found", { nodeId: peer.nodeId, did: peer.did, instance: peer.instance, addresses });
    }
    if (this.#shouldDial(peer) && (changed || peer.dial === "failed" || peer.dial === "none")) void this.#dial(peer);
  }

  #lost(service: ServiceInstance): void {
    for (const [nodeId, peer] of this.#peers) {
      if (peer.fqdn.toLowerCase() !== service.fqdn.toLowerCase()) continue;
      this.#peers.delete(nodeId);
      this.#emit("lan.peer.lost", { nodeId, did: peer.did, instance: peer.instance, addresses: peer.addresses });
    }
  }

  #shouldDial(peer: LanPeer): boolean {
    if (this.#mode === "off" || this.#options.connected(peer.nodeId)) return false;
    return this.#mode === "any" || this.#options.known(peer.nodeId);
  }

  async #dial(peer: LanPeer): Promise<void> {
    if (peer.dial === "dialing") return;
    peer.dial = "dialing";
    let lastError = "";
    for (const address of peer.addresses) {
      if (this.#closing.signal.aborted) return;
      this.stats.dials++;
      try {
        const signal = AbortSignal.any([
          this.#closing.signal,
          AbortSignal.timeout(this.#options.dialTimeoutMs ?? 5_000),
        ]);
        await this.#options.connect(address, { expectedPeer: peer.nodeId, signal });
        peer.dial = "connected";
        peer.error = undefined;
        return;
      } catch (error) {
        this.stats.dialFailures++;
        lastError = `${address}: ${(error as Error)?.message ?? error}`;
        // Another node answers there: the record is spoofed or stale, and its other addresses are the same host's.
        if (error instanceof PeerMismatchError) break;
      }
    }
    peer.dial = "failed";
    peer.error = lastError;
  }

  #emit(type: string, data: Record<string, unknown>): void {
    try {
      this.#options.events?.(type, data);
    } catch {
      // A subscriber's failure is not discovery's.
    }
  }
}

/** Addresses to dial: each IP (the one the answer came from first, IPv4 before IPv6, no link-local IPv6) with each transport. */
function dialAddresses(ips: readonly string[], ports: LanTxt["ports"]): string[] {
  // IPv6 link-local addresses (fe80::/10) need the zone of the interface, which an mDNS record cannot carry.
  const v6 = ips.filter((ip) => ip.includes(":") && !/^fe[89ab]/i.test(ip));
  const ordered = [...ips.filter((ip) => !ip.includes(":")), ...v6];
  const out: string[] = [];
  for (const ip of ordered.slice(0, 8)) {
    for (const transport of TRANSPORTS) {
      const port = ports[transport];
      if (port === undefined) continue;
      try {
        if (typeof port === "number") out.push(formatAddress({ scheme: transport, host: ip, port, path: "" }));
        else out.push(formatAddress({ scheme: "ws", host: ip, port: port.port, path: port.path }));
      } catch {
        // An address that does not format (a scoped IPv6 address, say) is not dialed.
      }
    }
  }
  return out;
}

function parsePort(value: string | true | undefined): number | null {
  if (typeof value !== "string" || !/^\d{1,5}$/.test(value)) return null;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : null;
}
