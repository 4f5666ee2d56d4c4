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
import { parseUdpAddr } from "../../transport/udp.ts";

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
  }

  /** Counters of both services. */
  stats(): { punch: PunchService["stats"] | null; relay: RelayService["stats"] | null } {
    return { punch: this.#punch?.stats ?? null, relay: this.#relay?.stats ?? null };
  }

  /** This node's candidates beyond its socket's own addresses: STUN-mapped and port-mapped UDP addresses. */
  candidates(): Candidate[] {
    const state = this.#reachability.state();
    const out: Candidate[] = [];
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

  /** Stops the background upgrades and the services. */
  close(): void {
    this.#upgrades.abort();
    this.#punch?.close();
    this.#relay?.close();
  }
}
