/**
 * Reaching a peer behind a NAT: the node serves introductions (as a
 * rendezvous, NZ-PUNCH-01) and, when told to, relays for others
 * (NZ-RELAY-01); {@linkcode Traversal.connectVia} punches a direct UDP path to
 * a peer through a rendezvous both are connected to, falls back to a relayed
 * session through the same node when no direct path opens, and keeps trying
 * to upgrade a relayed session to a direct one in the background.
 *
 * @module
 */

import { resolvePeerName } from "../peers/address_book.ts";
import type { PeerManager, Session } from "../peers/manager.ts";
import { type Candidate, punch, type PunchService, servePunch, upgradeRelayed } from "../peers/punch.ts";
import { relayConnect, type RelayOptions, type RelayService, serveRelay } from "../peers/relay.ts";
import type { Reachability } from "./reachability.ts";
import { DialError } from "../../transport/errors.ts";
import type { TurnAllocation } from "../../transport/turn/mod.ts";
import { formatUdpAddr, parseUdpAddr } from "../../transport/udp.ts";

/** A relayed session is started beside the punch when no direct path opened after this long (ms). */
export const RELAY_AFTER_MS = 1_000;

/** Options of {@linkcode Traversal}. */
export interface TraversalOptions {
  /** Relay for other nodes (default off: a public node turns it on), with its limits. */
  relay?: RelayOptions;
  /** Introduce connected peers to each other for hole punching (default on). */
  rendezvous?: boolean;
  /** How long one punch may take (default 6 s). */
  punchTimeoutMs?: number;
  /**
   * A TURN server (RFC 8656) to allocate a relayed address on: peers that cannot reach the node directly reach it
   * there, through punching as a candidate of its own.
   */
  turn?: TurnServerOptions;
}

/** A TURN server and the node's long-term credentials on it. */
export interface TurnServerOptions {
  /** `IP:PORT` of the server. */
  server: string;
  /** The username. */
  username: string;
  /** The password. */
  password: string;
  /** How the node talks to the server (default `udp`, on the node's UDP socket). */
  transport?: "udp" | "tcp";
}

/** The node's TURN allocation, as `state` shows it. */
export interface TurnState {
  /** The server, `IP:PORT`. */
  server: string;
  /** The relayed address, `udp://IP:PORT`, once allocated. */
  relayed: string | null;
  /** Why there is none. */
  error?: string;
}

/**
 * Parses `turn://USER:PASSWORD@IP:PORT[?transport=tcp]`.
 *
 * @throws {SyntaxError} for anything else.
 */
export function parseTurnUrl(url: string): TurnServerOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SyntaxError(`Invalid TURN server "${url}": expected turn://USER:PASSWORD@IP:PORT`);
  }
  if (parsed.protocol !== "turn:" || !parsed.username || !parsed.port) {
    throw new SyntaxError(`Invalid TURN server "${url}": expected turn://USER:PASSWORD@IP:PORT`);
  }
  const transport = parsed.searchParams.get("transport") ?? "udp";
  if (transport !== "udp" && transport !== "tcp") {
    throw new SyntaxError(`Invalid TURN server "${url}": transport must be udp or tcp`);
  }
  const server = `${parsed.hostname}:${parsed.port}`;
  parseUdpAddr(server);
  return {
    server,
    username: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    transport,
  };
}

/** How {@linkcode Traversal.connectVia} reached the peer. */
export interface ConnectViaResult {
  /** The session. */
  session: Session;
  /** `direct` when hole punching worked, `relayed` when the session runs through the rendezvous. */
  method: "direct" | "relayed";
  /** Milliseconds from the call to a working session. */
  elapsedMs: number;
  /** Why the punch failed, when the session is relayed. */
  punchError?: string;
}

/** Hole punching and relaying for a node. */
export class Traversal {
  #peers: PeerManager;
  #reachability: Reachability;
  #options: TraversalOptions;
  #punch: PunchService | null = null;
  #relay: RelayService | null = null;
  #upgrades = new AbortController();
  #turn: { allocation: TurnAllocation | null; detach?: () => void; error?: string } | null = null;

  /** Nothing is served until {@linkcode Traversal.start}. */
  constructor(peers: PeerManager, reachability: Reachability, options: TraversalOptions = {}) {
    this.#peers = peers;
    this.#reachability = reachability;
    this.#options = options;
  }

  /** Serves NZ-PUNCH-01 and NZ-RELAY-01 on the node's sessions. */
  start(): void {
    this.#punch ??= servePunch(this.#peers, {
      rendezvous: { enabled: this.#options.rendezvous ?? true },
      candidates: () => this.candidates(),
      punchTimeoutMs: this.#options.punchTimeoutMs,
    });
    this.#relay ??= serveRelay(this.#peers, { relay: this.#options.relay });
    if (this.#options.turn && !this.#turn) void this.#allocate(this.#options.turn);
  }

  /** The TURN allocation, or null when no TURN server is configured. */
  turnState(): TurnState | null {
    const turn = this.#options.turn;
    if (!turn || !this.#turn) return turn ? { server: turn.server, relayed: null } : null;
    const allocation = this.#turn.allocation;
    const relayed = allocation && !allocation.closed ? formatUdpAddr(allocation.relayedAddress) : null;
    return { server: turn.server, relayed, ...(this.#turn.error ? { error: this.#turn.error } : {}) };
  }

  /** Allocates on the TURN server and runs sessions on the relayed address too. */
  async #allocate(turn: TurnServerOptions): Promise<void> {
    const state: { allocation: TurnAllocation | null; detach?: () => void; error?: string } = { allocation: null };
    this.#turn = state;
    try {
      const socket = turn.transport === "tcp" ? undefined : await this.#peers.ensureUdpSocket();
      // Loaded only with --turn.
      const { TurnClient } = await import("../../transport/turn/mod.ts");
      const allocation = await TurnClient.allocate({
        server: parseUdpAddr(turn.server),
        transport: turn.transport ?? "udp",
        username: turn.username,
        password: turn.password,
        socket,
        signal: this.#upgrades.signal,
      });
      if (this.#upgrades.signal.aborted) {
        await allocation.close();
        return;
      }
      state.allocation = allocation;
      state.detach = this.#peers.attachPacketSocket(allocation, `turn ${turn.server}`);
    } catch (error) {
      state.error = (error as Error).message;
      console.warn(`nzcore: no TURN allocation on ${turn.server}: ${state.error}`);
    }
  }

  /** Counters of both services. */
  stats(): { punch: PunchService["stats"] | null; relay: RelayService["stats"] | null } {
    return { punch: this.#punch?.stats ?? null, relay: this.#relay?.stats ?? null };
  }

  /** This node's candidates beyond its socket's own addresses: STUN-mapped and port-mapped UDP addresses. */
  candidates(): Candidate[] {
    const state = this.#reachability.state();
    const out: Candidate[] = [];
    const allocation = this.#turn?.allocation;
    if (allocation && !allocation.closed) out.push({ kind: "relay", addr: allocation.relayedAddress });
    for (const address of state.publicAddresses) {
      if (!address.startsWith("udp://")) continue;
      const mapped = state.portMappings.some((m) => `udp://${m.externalAddress}:${m.externalPort}` === address);
      out.push({ kind: mapped ? "portmap" : "stun", addr: parseUdpAddr(address) });
    }
    return out;
  }

  /**
   * Reaches `peer` (a node ID) through `via` (a connected node, named as in `peers`): a direct UDP session by
   * hole punching if one opens, else a session relayed by `via`, which is then upgraded in the background when a
   * later punch succeeds.
   *
   * @throws {NotFoundError} when `via` is not connected (connect to the rendezvous first).
   * @throws {DialError} when neither way works, with both reasons.
   */
  async connectVia(peer: string, via: string, options: { signal?: AbortSignal } = {}): Promise<ConnectViaResult> {
    const started = performance.now();
    const target = peer.toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(target)) throw new SyntaxError(`Invalid peer "${peer}": expected a node ID`);
    const rendezvous = resolvePeerName(via, this.#peers.sessions());
    const existing = this.#peers.sessions().find((s) => s.nodeId === target);
    if (existing) {
      return {
        session: existing,
        method: existing.relayed ? "relayed" : "direct",
        elapsedMs: performance.now() - started,
      };
    }
    // Punch first; a relayed session is started beside it when no direct path has opened after RELAY_AFTER_MS, and
    // whichever works first is returned. A punch that succeeds later replaces the relayed session (the manager keeps
    // a direct session over a relayed one); one that fails leaves the upgrade to the background.
    let punchError: string | undefined;
    const punching = punch(this.#peers, rendezvous.nodeId, target, {
      candidates: () => this.candidates(),
      timeoutMs: this.#options.punchTimeoutMs,
      signal: AbortSignal.any([this.#upgrades.signal, ...(options.signal ? [options.signal] : [])]),
    }).catch((error) => {
      punchError = (error as Error).message;
      throw error;
    });
    const early = await Promise.race([
      punching.then((session) => session, () => null),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), RELAY_AFTER_MS)),
    ]);
    if (early) return { session: early, method: "direct", elapsedMs: performance.now() - started };
    if (options.signal?.aborted) throw options.signal.reason;
    const relaying = relayConnect(this.#peers, rendezvous.nodeId, target, { signal: options.signal });
    let session: Session;
    try {
      session = await Promise.any([punching, relaying]);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      const [punchFailure, relayFailure] = (error as AggregateError).errors ?? [error, error];
      throw new DialError(
        `Cannot reach ${target.slice(0, 12)} through ${rendezvous.nodeId.slice(0, 12)}: hole punching failed (${
          (punchFailure as Error).message
        }), and so did the relay (${(relayFailure as Error).message})`,
        { cause: error },
      );
    }
    if (session.relayed) {
      void punching.then(() => {}, () =>
        upgradeRelayed(this.#peers, session, {
          candidates: () => this.candidates(),
          signal: this.#upgrades.signal,
        }).catch(() => {}));
    }
    return {
      session,
      method: session.relayed ? "relayed" : "direct",
      elapsedMs: performance.now() - started,
      ...(session.relayed && punchError ? { punchError } : {}),
    };
  }

  /** Stops the background upgrades and the services, and gives the TURN allocation back. */
  async close(): Promise<void> {
    this.#upgrades.abort();
    this.#turn?.detach?.();
    await this.#turn?.allocation?.close().catch(() => {});
    this.#punch?.close();
    this.#relay?.close();
  }
}
