/**
 * How other nodes can reach this one: the public addresses STUN servers see
 * for the node's UDP socket, the NAT's behaviour (RFC 5780) and the ports the
 * router maps for the node (PCP, NAT-PMP, UPnP IGD). The node also answers
 * STUN on its own UDP socket, so every public node is a STUN server for its
 * peers.
 *
 * The STUN servers asked are the configured ones (`--stun HOST:PORT`) and the
 * peers connected over UDP. A check runs at start and every
 * {@linkcode RECHECK_MS}; `/v1/state` shows the latest.
 *
 * @module
 */

import type { PeerManager } from "../peers/manager.ts";
import { discoverNatBehavior, type NatBehavior, StunClient, StunServer } from "../../transport/stun/mod.ts";
import type { PortMapper, PortMapperOptions, PortMapping } from "../../transport/portmap/mod.ts";
import { formatUdpAddr, parseUdpAddr, type UdpAddr, udpAddrKey, type UdpSocket } from "../../transport/udp.ts";

/** A new check this often. */
export const RECHECK_MS = 5 * 60_000;

/** Options of {@linkcode Reachability}. */
export interface ReachabilityOptions {
  /** STUN servers to ask, `HOST:PORT` (IP literals or names). */
  stunServers?: readonly string[];
  /** Ask the router to map the node's UDP (and TCP) listen ports (default false: it talks to the default gateway). */
  portMapping?: boolean;
  /** Options of the port mapper (gateway, methods, reserved external addresses in labs). */
  portMapperOptions?: PortMapperOptions;
  /** Answer STUN Binding requests on the node's UDP socket (default true). */
  serveStun?: boolean;
  /** Receives one line per finding or failure. */
  log?: (line: string) => void;
}

/** What one STUN server told. */
export interface StunObservation {
  /** The server, `HOST:PORT`. */
  server: string;
  /** The address it saw, `udp://IP:PORT`; absent when it did not answer. */
  mapped?: string;
  /** Why there is no answer. */
  error?: string;
  /** Round-trip time, ms. */
  rttMs?: number;
}

/** The node's reachability, as `/v1/state` shows it. */
export interface ReachabilityState {
  /** The node's UDP socket, `udp://HOST:PORT`, or null when it has none. */
  udp: string | null;
  /** Where other nodes may reach this one from outside: STUN-mapped and port-mapped addresses. */
  publicAddresses: string[];
  /** The NAT type (RFC 3489 names, from RFC 5780 behaviour), `unknown` until found. */
  natType: NatBehavior["natType"];
  /** RFC 4787 mapping behaviour. */
  mapping: NatBehavior["mapping"];
  /** RFC 4787 filtering behaviour. */
  filtering: NatBehavior["filtering"];
  /** What each STUN server saw at the last check. */
  stun: StunObservation[];
  /** Ports the router maps for the node. */
  portMappings: PortMapping[];
  /** Whether the node answers STUN. */
  servingStun: boolean;
  /** When the last check ended, epoch ms; null before. */
  checkedAt: number | null;
}

/** Finds and keeps the node's reachability. */
export class Reachability {
  #peers: PeerManager;
  #options: ReachabilityOptions;
  #socket: UdpSocket | null = null;
  #client: StunClient | null = null;
  #server: StunServer | null = null;
  #mapper: PortMapper | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #checking: Promise<ReachabilityState> | null = null;
  #closed = false;
  #version = 0;
  #state: ReachabilityState = {
    udp: null,
    publicAddresses: [],
    natType: "unknown",
    mapping: "unknown",
    filtering: "unknown",
    stun: [],
    portMappings: [],
    servingStun: false,
    checkedAt: null,
  };

  /**
   * Reachability of the node whose sessions `peers` holds; nothing runs until {@linkcode Reachability.start}.
   *
   * @throws {SyntaxError} for a STUN server that is not `HOST:PORT`.
   */
  constructor(peers: PeerManager, options: ReachabilityOptions = {}) {
    this.#peers = peers;
    this.#options = options;
    for (const server of options.stunServers ?? []) parseUdpAddr(server);
  }

  /** Grows with every change of the state (readers cache by it). */
  get version(): number {
    return this.#version + (this.#mapper?.mappings.length ?? 0) * 1e6 + (this.#peers.udpSocket ? 0.5 : 0);
  }

  /** The latest state (a copy). */
  state(): ReachabilityState {
    const socket = this.#peers.udpSocket;
    return structuredClone({
      ...this.#state,
      udp: socket?.url ?? null,
      portMappings: [...(this.#mapper?.mappings ?? [])],
    });
  }

  /**
   * Starts serving STUN (when the node has a UDP socket), maps ports if asked,
   * and runs a first check in the background; later checks every
   * {@linkcode RECHECK_MS}.
   */
  async start(): Promise<void> {
    const wantsUdp = (this.#options.stunServers?.length ?? 0) > 0 || this.#options.portMapping;
    const socket = this.#peers.udpSocket ?? (wantsUdp ? await this.#peers.ensureUdpSocket() : null);
    if (socket) this.#attach(socket);
    if (this.#options.portMapping) void this.#mapPorts();
    this.#timer = setInterval(() => void this.check().catch(() => {}), RECHECK_MS);
    Deno.unrefTimer(this.#timer);
    void this.check().catch(() => {});
  }

  /** Asks every STUN server now and works out the NAT type; resolves with the new state. */
  check(): Promise<ReachabilityState> {
    this.#checking ??= this.#check().finally(() => (this.#checking = null));
    return this.#checking;
  }

  /** Stops checks, stops serving STUN and deletes the port mappings. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#client?.close();
    this.#server?.close();
    await this.#mapper?.close().catch(() => {});
  }

  #attach(socket: UdpSocket): void {
    if (this.#socket === socket) return;
    this.#socket = socket;
    this.#client = new StunClient(socket);
    if (this.#options.serveStun !== false) {
      this.#server = new StunServer(socket);
      this.#state.servingStun = true;
    }
    this.#version++;
  }

  /** The servers to ask: the configured ones, and peers with a direct UDP session (each serves STUN). */
  #servers(): { label: string; addr: UdpAddr }[] {
    const seen = new Set<string>();
    const out: { label: string; addr: UdpAddr }[] = [];
    for (const server of this.#options.stunServers ?? []) {
      const addr = parseUdpAddr(server);
      if (!seen.has(udpAddrKey(addr))) out.push({ label: server, addr });
      seen.add(udpAddrKey(addr));
    }
    for (const session of this.#peers.sessions()) {
      const path = session.path();
      if (path.kind !== "direct" || path.transport !== "udp") continue;
      const addr = parseUdpAddr(path.remoteAddr);
      if (seen.has(udpAddrKey(addr))) continue;
      seen.add(udpAddrKey(addr));
      out.push({ label: `peer ${session.nodeId.slice(0, 12)} ${formatUdpAddr(addr).slice(6)}`, addr });
    }
    return out;
  }

  async #check(): Promise<ReachabilityState> {
    const socket = this.#peers.udpSocket;
    if (socket) this.#attach(socket);
    const client = this.#client;
    const servers = this.#servers();
    if (!client || servers.length === 0 || this.#closed) {
      this.#state.checkedAt = Date.now();
      this.#version++;
      return this.state();
    }
    const timers = { rtoMs: 300, rc: 4, rm: 8 };
    const results = await Promise.all(servers.map(async ({ label, addr }) => {
      try {
        const r = await client.binding(addr, timers);
        return { label, addr, result: r };
      } catch (error) {
        return { label, addr, error: (error as Error).message };
      }
    }));
    const stun: StunObservation[] = results.map((r) =>
      r.result
        ? { server: r.label, mapped: formatUdpAddr(r.result.mapped), rttMs: Math.round(r.result.rttMs * 10) / 10 }
        : { server: r.label, error: r.error }
    );
    let behavior: Pick<NatBehavior, "natType" | "mapping" | "filtering"> = {
      natType: "unknown",
      mapping: "unknown",
      filtering: "unknown",
    };
    const answered = results.filter((r) => r.result);
    // A server with an alternate address and port (RFC 5780) tells the whole behaviour.
    const full = answered.find((r) => r.result!.otherAddress);
    if (full) {
      try {
        const found = await discoverNatBehavior(client, full.addr);
        behavior = found;
      } catch (error) {
        this.#options.log?.(`nat behaviour discovery failed: ${(error as Error).message}`);
      }
    } else if (answered.length > 0 && socket) {
      // Without RFC 5780: no NAT when the mapped address is the socket's own; a port that differs per server is
      // an address-dependent mapping (symmetric); one port for all is endpoint-independent (filtering unknown).
      const mapped = answered.map((r) => r.result!.mapped);
      const local = mapped.some((m) => m.port === socket.addr.port && isLocalAddress(m.hostname, socket.addr.hostname));
      if (local) behavior = { natType: "open", mapping: "endpoint-independent", filtering: "unknown" };
      else if (answered.length >= 2) {
        const ports = new Set(mapped.map((m) => `${m.hostname}|${m.port}`));
        behavior = ports.size > 1
          ? { natType: "symmetric", mapping: "address-and-port-dependent", filtering: "unknown" }
          : { natType: "unknown", mapping: "endpoint-independent", filtering: "unknown" };
      }
    } else if (servers.length > 0 && answered.length === 0) {
      behavior = { natType: "udp-blocked", mapping: "unknown", filtering: "unknown" };
    }
    const publicAddresses = new Set<string>();
    for (const r of answered) {
      // A symmetric NAT's mapped ports are of no use to anyone but the server that saw them.
      if (behavior.natType !== "symmetric") publicAddresses.add(formatUdpAddr(r.result!.mapped));
    }
    for (const m of this.#mapper?.mappings ?? []) {
      publicAddresses.add(`${m.protocol}://${m.externalAddress}:${m.externalPort}`);
    }
    this.#state = {
      ...this.#state,
      ...behavior,
      stun,
      publicAddresses: [...publicAddresses],
      checkedAt: Date.now(),
    };
    this.#version++;
    return this.state();
  }

  async #mapPorts(): Promise<void> {
    // Loaded only when asked for: most nodes never map ports, and the module (with its XML parser) costs memory.
    const { PortMapper } = await import("../../transport/portmap/mod.ts");
    if (this.#closed) return;
    const mapper = this.#mapper = new PortMapper({
      log: this.#options.log,
      ...this.#options.portMapperOptions,
    });
    mapper.onChange = () => void this.check().catch(() => {});
    const ports: { protocol: "udp" | "tcp"; port: number }[] = [];
    const udp = this.#peers.udpSocket;
    if (udp) ports.push({ protocol: "udp", port: udp.addr.port });
    for (const address of this.#peers.listening) {
      const m = /^tcp:\/\/.*:(\d+)$/.exec(address);
      if (m) ports.push({ protocol: "tcp", port: Number(m[1]) });
    }
    for (const { protocol, port } of ports) {
      try {
        const mapping = await mapper.map(protocol, port, port);
        this.#options.log?.(
          `port mapping: ${protocol} ${port} -> ${mapping.externalAddress}:${mapping.externalPort} (${mapping.method})`,
        );
      } catch (error) {
        this.#options.log?.(`port mapping of ${protocol} ${port} failed: ${(error as Error).message}`);
      }
      if (this.#closed) return;
    }
    void this.check().catch(() => {});
  }
}

/** Whether a mapped address is the socket's own (the socket may be bound to 0.0.0.0: any local address then). */
function isLocalAddress(mapped: string, bound: string): boolean {
  if (mapped === bound) return true;
  if (bound !== "0.0.0.0" && bound !== "::") return false;
  try {
    return Deno.networkInterfaces().some((i) => i.address === mapped);
  } catch {
    return false;
  }
}
