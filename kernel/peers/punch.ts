/**
 * UDP hole punching through a rendezvous node (NZ-PUNCH-01,
 * spec/protocols/NZ-PUNCH-01.md), protocol `nz/rendezvous/1`.
 *
 * A node A connected to a rendezvous R, which is connected to B, asks R to
 * introduce it to B with its candidates (the UDP socket's local addresses,
 * STUN-mapped and port-mapped addresses). R adds the address it observes for
 * A (when A's session with R runs over UDP) and forwards the list to B; B
 * answers with its own candidates (R adds its observation of B) and A gets
 * them. Then both sides send NZ-DGRAM-01 handshakes to every candidate of the
 * other at once, again and again on a short schedule, which opens each NAT's
 * mapping for the other; the first handshake that completes wins and the
 * other attempts stop. When the two sides' INITIATIONs cross, both
 * handshakes may complete: the peer manager keeps one session per peer (the
 * one initiated by the smaller node ID), on both sides alike.
 *
 * - {@linkcode PunchService} ({@linkcode servePunch}) answers introductions
 *   (as B), and introduces (as R) when the rendezvous role is enabled.
 * - {@linkcode punch} is the client (A).
 * - {@linkcode upgradeRelayed} punches through the relay of a relayed session
 *   (the relay as rendezvous); the direct session replaces the relayed one.
 *
 * @module
 */

import { abortable, sleep } from "../async.ts";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { NotFoundError } from "../errors.ts";
import type { Stream } from "../channel/stream.ts";
import { formatIp, parseIp } from "../../transport/ip.ts";
import { formatUdpAddr, type PacketSocket, parseUdpAddr, type UdpAddr, udpAddrKey } from "../../transport/udp.ts";
import type { PeerManager, Session } from "./manager.ts";
import { validNodeId } from "../identity/identity.ts";

/** The stream protocol of NZ-PUNCH-01. */
export const RENDEZVOUS_PROTOCOL = "nz/rendezvous/1";

// --- Spec constants (NZ-PUNCH-01 section "Messages") ---
/** INTRODUCE: `0x01 || target node ID (32) || candidates`, from A to R. */
export const PUNCH_INTRODUCE = 0x01;
/** INTRODUCED: `0x02 || source node ID (32) || candidates`, from R to B. */
export const PUNCH_INTRODUCED = 0x02;
/** CANDIDATES: `0x03 || candidates`, from B to R and from R to A. */
export const PUNCH_CANDIDATES = 0x03;
/** REFUSED: `0x04 || code (1) || reason (UTF-8, at most 256 bytes)`. */
export const PUNCH_REFUSED = 0x04;
/** Candidates in one list on the wire, at most. */
export const MAX_CANDIDATES = 16;
/** Candidates a node may send of its own (the rendezvous adds one). */
export const MAX_OWN_CANDIDATES = MAX_CANDIDATES - 1;
/** The longest reason of a REFUSED, in bytes. */
export const MAX_PUNCH_REASON = 256;
const NODE_ID_LEN = 32;

/** REFUSED codes. */
export const PunchRefusal = {
  /** The node is no rendezvous. */
  DISABLED: 1,
  /** The target is not connected to the rendezvous. */
  NOT_CONNECTED: 2,
  /** Too many introductions are pending. */
  LIMIT: 3,
  /** The target refused the introduction. */
  REFUSED: 4,
  /** The message did not decode, or names the requester itself. */
  BAD_REQUEST: 5,
  /** The target did not answer in time. */
  UNREACHABLE: 6,
} as const;

/** How a candidate was learned. */
export type CandidateKind = "host" | "stun" | "portmap" | "observed" | "relay";
const KINDS: readonly CandidateKind[] = ["host", "stun", "portmap", "observed", "relay"];

/** An address at which a node may receive UDP from the other. */
export interface Candidate {
  /** `host`: a local address of the socket; `stun`: mapped by a NAT, as a STUN server saw it; `portmap`: mapped by
   * PCP, NAT-PMP or UPnP; `observed`: where the rendezvous saw the node's packets come from; `relay`: the node's
   * TURN-relayed address. */
  kind: CandidateKind;
  /** The address (an IP literal and a port). */
  addr: UdpAddr;
}

/** Where a node's extra candidates come from (what its reachability module learned: STUN, port mappings). */
export type CandidateSource = () => Candidate[] | Promise<Candidate[]>;

// --- Implementation constants ---
/** When each candidate is dialed again, in milliseconds after the start: often at first, for about 5 s. */
const DIAL_SCHEDULE_MS = [0, 150, 300, 500, 750, 1_000, 1_500, 2_000, 2_750, 3_500, 4_500];
/** Dials through a TURN allocation start this much later than the direct ones. */
const TURN_DIAL_DELAY_MS = 500;
/** How long a punch may take in all (default). */
const DEFAULT_PUNCH_TIMEOUT_MS = 6_000;
/** How long a side waits for the next message of an introduction. */
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** How often a punch looks for a direct session that the peer's attempt made. */
const WATCH_MS = 25;

/** A punch failed: refused by the rendezvous or the target, or no path opened in time. */
export class PunchError extends Error {
  /** A REFUSED code's name, `TIMEOUT` when no handshake completed in time, or `PROTOCOL` for a malformed answer. */
  readonly code: keyof typeof PunchRefusal | "TIMEOUT" | "PROTOCOL";
  /** Creates the error. */
  constructor(code: PunchError["code"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PunchError";
    this.code = code;
  }
}

/** Options of {@linkcode servePunch}. */
export interface PunchServiceOptions {
  /** The rendezvous role (off by default). */
  rendezvous?: {
    /** Whether this node introduces peers to each other. */
    enabled?: boolean;
    /** Introductions pending at once (default 64). */
    maxPending?: number;
  };
  /** Whether this node answers introductions and punches toward the introduced node (default true). */
  acceptIntroductions?: boolean;
  /** Punches started for introductions that may run at once (default 8); more are refused. */
  maxPunches?: number;
  /** Extra candidates of this node (STUN-mapped, port-mapped), besides the socket's local addresses. */
  candidates?: CandidateSource;
  /** How long a punch toward an introduced node lasts at most (default 6 s). */
  punchTimeoutMs?: number;
  /** How long each side waits for the next message of an introduction (default 10 s). */
  requestTimeoutMs?: number;
}

/** Counters of a {@linkcode PunchService}. */
export interface PunchStats {
  /** Introductions made (as rendezvous). */
  introduced: number;
  /** Introductions answered (as target). */
  answered: number;
  /** Requests refused. */
  refused: number;
  /** Punches toward an introduced node that gave a direct session. */
  punched: number;
}

/** Serves `nz/rendezvous/1`: the target role always (unless turned off), the rendezvous role when enabled. */
export class PunchService {
  /** Counters, live. */
  readonly stats: PunchStats = { introduced: 0, answered: 0, refused: 0, punched: 0 };
  #manager: PeerManager;
  #options: PunchServiceOptions;
  #timeoutMs: number;
  #pending = 0;
  #punches = 0;
  #closing = new AbortController();

  /** Registers the `nz/rendezvous/1` handler on `manager`. */
  constructor(manager: PeerManager, options: PunchServiceOptions = {}) {
    this.#manager = manager;
    this.#options = options;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    manager.handle(RENDEZVOUS_PROTOCOL, (stream, session) => this.#serve(stream, session));
  }

  /** Stops the punches under way and refuses new introductions. */
  close(): void {
    this.#closing.abort(new PunchError("DISABLED", "The punch service is stopping"));
  }

  async #serve(stream: Stream, session: Session): Promise<void> {
    const first = await abortable(stream.receive(), AbortSignal.timeout(this.#timeoutMs)).catch(() => null);
    if (first === null) {
      stream.reset();
      return;
    }
    let message: PunchMessage;
    try {
      message = decodePunchMessage(first);
    } catch (error) {
      return await this.#refuse(stream, "BAD_REQUEST", `Cannot decode the request: ${(error as Error).message}`);
    }
    if (message.type === "introduce") await this.#introduce(stream, session, message.nodeId, message.candidates);
    else if (message.type === "introduced") await this.#answer(stream, session, message.nodeId, message.candidates);
    else await this.#refuse(stream, "BAD_REQUEST", `Cannot serve a ${message.type.toUpperCase()} as a request`);
  }

  /** The rendezvous role: `requester` asks to be introduced to `target`. */
  async #introduce(stream: Stream, requester: Session, target: string, candidates: Candidate[]): Promise<void> {
    const role = this.#options.rendezvous;
    if (!role?.enabled || this.#closing.signal.aborted) {
      return this.#refuse(stream, "DISABLED", "This node is no rendezvous");
    }
    if (target === requester.nodeId) return this.#refuse(stream, "BAD_REQUEST", "The target is the requester itself");
    if (candidates.length > MAX_OWN_CANDIDATES) {
      return this.#refuse(stream, "BAD_REQUEST", `${candidates.length} candidates, expected <= ${MAX_OWN_CANDIDATES}`);
    }
    const maxPending = role.maxPending ?? 64;
    if (this.#pending >= maxPending) {
      return this.#refuse(stream, "LIMIT", `${maxPending} introductions are pending already (maxPending)`);
    }
    const targetSession = this.#manager.sessions().find((s) => s.nodeId === target);
    if (!targetSession) {
      return this.#refuse(stream, "NOT_CONNECTED", `Node ${target.slice(0, 12)} is not connected to this rendezvous`);
    }
    this.#pending++;
    let onward: Stream | null = null;
    try {
      const answer = await abortable(
        (async () => {
          onward = await targetSession.openStream(RENDEZVOUS_PROTOCOL);
          const list = withObserved(candidates, requester);
          await onward.send(encodePunchMessage({ type: "introduced", nodeId: requester.nodeId, candidates: list }));
          return await onward.receive();
        })(),
        AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), this.#closing.signal]),
      ).catch(() => null);
      (onward as Stream | null)?.reset();
      let reply: PunchMessage | null = null;
      try {
        reply = answer === null ? null : decodePunchMessage(answer);
      } catch { /* malformed: as no answer */ }
      if (reply?.type === "refused") {
        return await this.#refuse(stream, "REFUSED", `Node ${target.slice(0, 12)} refused: ${reply.reason}`);
      }
      if (reply?.type !== "candidates" || reply.candidates.length > MAX_OWN_CANDIDATES) {
        const why = reply === null ? "did not answer properly" : "answered with too many candidates";
        return await this.#refuse(stream, "UNREACHABLE", `Node ${target.slice(0, 12)} ${why}`);
      }
      const list = withObserved(reply.candidates, targetSession);
      await stream.send(encodePunchMessage({ type: "candidates", candidates: list }));
      await stream.close();
      this.stats.introduced++;
    } finally {
      this.#pending--;
    }
  }

  /** The target role: the rendezvous introduces `source` with its candidates. */
  async #answer(stream: Stream, _rendezvous: Session, source: string, candidates: Candidate[]): Promise<void> {
    if (this.#options.acceptIntroductions === false || this.#closing.signal.aborted) {
      return this.#refuse(stream, "REFUSED", "This node accepts no introductions");
    }
    const maxPunches = this.#options.maxPunches ?? 8;
    if (this.#punches >= maxPunches) {
      return this.#refuse(stream, "LIMIT", `${maxPunches} punches are under way already (maxPunches)`);
    }
    this.#punches++;
    try {
      await answerUdp(this.#manager);
      const own = await gatherCandidates(this.#manager, this.#options.candidates);
      await stream.send(encodePunchMessage({ type: "candidates", candidates: own }));
      await stream.close();
      this.stats.answered++;
      await punchTo(this.#manager, source, candidates, {
        timeoutMs: this.#options.punchTimeoutMs,
        signal: this.#closing.signal,
      });
      this.stats.punched++;
    } catch {
      // The introducer gets the failure (it times out on its side too); nothing to tell here.
    } finally {
      this.#punches--;
    }
  }

  async #refuse(stream: Stream, code: keyof typeof PunchRefusal, reason: string): Promise<void> {
    this.stats.refused++;
    try {
      await stream.send(encodePunchMessage({ type: "refused", code: PunchRefusal[code], reason }));
      await stream.close();
    } catch {
      stream.reset();
    }
  }
}

/**
 * Serves NZ-PUNCH-01 on `manager` (see {@linkcode PunchService}).
 *
 * @param manager The node's peer manager.
 * @param options The rendezvous role (off unless `rendezvous.enabled`), the node's extra candidates, limits.
 * @returns The service.
 */
export function servePunch(manager: PeerManager, options: PunchServiceOptions = {}): PunchService {
  return new PunchService(manager, options);
}

/** Options of {@linkcode punch}. */
export interface PunchOptions {
  /** Extra candidates of this node (STUN-mapped, port-mapped), besides the socket's local addresses. */
  candidates?: CandidateSource;
  /** How long the punching may take once the candidates are exchanged (default 6 s). */
  timeoutMs?: number;
  /** Aborts the whole operation. */
  signal?: AbortSignal;
}

/**
 * Opens a direct UDP session with `targetNodeId` by hole punching, with
 * `rendezvousNodeId` (a node this one is connected to, which is connected to
 * the target) exchanging the candidates. The node answers UDP handshakes from
 * then on (it listens on its UDP socket, binding one on every interface if it
 * has none).
 *
 * @param manager The node's peer manager.
 * @param rendezvousNodeId The rendezvous (a session with it must be open).
 * @param targetNodeId The node to reach.
 * @param options Extra candidates, the timeout, a signal.
 * @returns The direct session with the target (an existing direct one right away).
 * @throws {NotFoundError} when there is no session with the rendezvous.
 * @throws {PunchError} when the rendezvous or the target refuses (`code`), or no handshake completes in time
 *   (`TIMEOUT`).
 *
 * @example
 * ```ts ignore
 * const session = await punch(manager, rendezvous.nodeId, target.nodeId, { candidates: () => stunCandidates });
 * session.path(); // { kind: "direct", transport: "udp", ... }
 * ```
 */
export async function punch(
  manager: PeerManager,
  rendezvousNodeId: string,
  targetNodeId: string,
  options: PunchOptions = {},
): Promise<Session> {
  const target = validNodeId(targetNodeId, "targetNodeId");
  const direct = directSession(manager, target);
  if (direct) return direct;
  const rendezvous = manager.sessions().find((s) => s.nodeId === validNodeId(rendezvousNodeId, "rendezvousNodeId"));
  if (!rendezvous) throw new NotFoundError(`No session with the rendezvous ${rendezvousNodeId.slice(0, 12)}`);
  await answerUdp(manager);
  const own = await gatherCandidates(manager, options.candidates);
  const stream = await rendezvous.openStream(RENDEZVOUS_PROTOCOL);
  let answer: Uint8Array | null;
  try {
    await stream.send(encodePunchMessage({ type: "introduce", nodeId: target, candidates: own }));
    answer = await stream.receive({
      signal: AbortSignal.any([
        AbortSignal.timeout(2 * DEFAULT_REQUEST_TIMEOUT_MS),
        ...(options.signal ? [options.signal] : []),
      ]),
    });
  } catch (error) {
    stream.reset();
    throw new PunchError("UNREACHABLE", `The rendezvous ${rendezvous.nodeId.slice(0, 12)} did not answer`, {
      cause: error,
    });
  }
  stream.reset();
  let reply: PunchMessage;
  try {
    if (answer === null) throw new RangeError("the stream ended");
    reply = decodePunchMessage(answer);
  } catch (error) {
    throw new PunchError("PROTOCOL", `The rendezvous answered badly: ${(error as Error).message}`);
  }
  if (reply.type === "refused") {
    const name = refusalName(reply.code);
    throw new PunchError(name, `The rendezvous ${rendezvous.nodeId.slice(0, 12)} refused (${name}): ${reply.reason}`);
  }
  if (reply.type !== "candidates") {
    throw new PunchError("PROTOCOL", `The rendezvous answered with ${reply.type.toUpperCase()}`);
  }
  return await punchTo(manager, target, reply.candidates, options);
}

/**
 * Punches toward `candidates` of `target`: dials each on the schedule until a
 * handshake completes (or a direct session made by the peer's own dial
 * appears), then stops the other attempts.
 *
 * @throws {PunchError} `TIMEOUT` when none completes within `timeoutMs`.
 */
export async function punchTo(
  manager: PeerManager,
  target: string,
  candidates: readonly Candidate[],
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Session> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_PUNCH_TIMEOUT_MS;
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, ...(options.signal ? [options.signal] : [])]);
  const won = Promise.withResolvers<Session>();
  const addrs = dedupe(candidates.map((c) => c.addr));
  // The peer's relayed address is a path through its TURN server, whichever side dials and from which socket.
  for (const c of candidates) {
    if (c.kind === "relay") manager.noteRelayedAddress(c.addr, `turn ${formatUdpAddr(c.addr).slice("udp://".length)}`);
  }
  // Through a TURN allocation only to the peer's addresses on the internet side of its NAT: a TURN server sending to a
  // LAN address it cannot route (a host candidate) or to another relayed address can break its relay for everyone
  // (coturn was seen to stop relaying for the allocation after one such send).
  const publicSide = new Set(
    candidates.filter((c) =>
      (c.kind === "stun" || c.kind === "observed" || c.kind === "portmap") && !isPrivateIp(c.addr.hostname)
    )
      .map((c) => udpAddrKey(c.addr)),
  );
  const errors: string[] = [];
  const attempts: Promise<void>[] = [];
  // From the node's UDP socket first; from each attached TURN allocation a little later, so that a direct path, where
  // there is one, is found first (sending through the allocation also opens its permission for the peer's address,
  // so that the peer's own dials to the relayed address get through).
  const sources: { via?: PacketSocket; delay: number }[] = [
    { delay: 0 },
    ...manager.packetSockets.map((via) => ({ via, delay: TURN_DIAL_DELAY_MS })),
  ];
  for (const addr of addrs) {
    for (const { via, delay } of sources) {
      if (via && !publicSide.has(udpAddrKey(addr))) continue;
      for (const at of DIAL_SCHEDULE_MS) {
        if (at + delay >= timeoutMs) break;
        attempts.push(
          (async () => {
            await sleep(at + delay, signal);
            const session = await manager.dialUdp(addr, { expectedPeer: target, signal, via });
            won.resolve(session);
          })().catch((error) => {
            if (!signal.aborted && errors.length < 8) {
              errors.push(`${formatUdpAddr(addr)}: ${(error as Error).message}`);
            }
          }),
        );
      }
    }
  }
  // The peer punches too: its handshake may complete first, as an inbound session.
  const watch = (async () => {
    while (!signal.aborted) {
      const direct = directSession(manager, target);
      if (direct) return won.resolve(direct);
      await sleep(WATCH_MS, signal);
    }
  })().catch(() => {});
  const timer = setTimeout(
    () => won.reject(new PunchError("TIMEOUT", timeoutMessage(target, addrs, errors, timeoutMs))),
    timeoutMs,
  );
  const aborted = () => won.reject(signal.reason);
  signal.addEventListener("abort", aborted, { once: true });
  try {
    const session = await won.promise;
    // Two handshakes may have completed (crossed INITIATIONs): the manager keeps one; return that one.
    return directSession(manager, target) ?? session;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", aborted);
    stop.abort(new PunchError("TIMEOUT", "The punch is over"));
    await Promise.allSettled([...attempts, watch]);
  }
}

/** Options of {@linkcode upgradeRelayed}. */
export interface UpgradeOptions extends PunchOptions {
  /** Punch attempts before giving up (default 3). */
  attempts?: number;
  /** The pause between attempts, in milliseconds (default 30 s). */
  retryMs?: number;
}

/**
 * Replaces a relayed session with a direct one: punches with the relay as
 * rendezvous, again after `retryMs` when it fails, while the relayed session
 * is the peer's session. The manager keeps the direct session and closes the
 * relayed one gracefully once the peers handed over.
 *
 * @param manager The node's peer manager.
 * @param session A session (nothing is done unless it is relayed through a node).
 * @param options Candidates, timeouts, attempts.
 * @returns The direct session, or null when every attempt failed or the relayed session ended first.
 */
export async function upgradeRelayed(
  manager: PeerManager,
  session: Session,
  options: UpgradeOptions = {},
): Promise<Session | null> {
  const path = session.path();
  if (path.kind !== "relayed" || path.transport !== "relay" || !path.via) return null;
  const attempts = options.attempts ?? 3;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) await sleep(options.retryMs ?? 30_000, options.signal).catch(() => {});
    if (options.signal?.aborted) return null;
    const current = manager.sessions().find((s) => s.nodeId === session.nodeId);
    if (!current) return null;
    if (!current.relayed) return current;
    try {
      return await punch(manager, path.via, session.nodeId, options);
    } catch {
      // try again later
    }
  }
  return null;
}

/**
 * The addresses a socket bound to `hostname` is reached at: `hostname`
 * itself, or for a wildcard the address of every interface (IPv4 ones for
 * `0.0.0.0`; both families for `::`, which is dual-stack), leaving out
 * loopback and IPv6 link-local addresses.
 */
export function hostAddresses(hostname: string): string[] {
  if (hostname !== "0.0.0.0" && hostname !== "::") return [hostname];
  return Deno.networkInterfaces()
    .filter((nic) => hostname === "::" || nic.family === "IPv4")
    .map((nic) => nic.address)
    .filter((a) => !a.startsWith("127.") && a !== "::1" && !a.startsWith("fe80:"));
}

/** The node's own candidates: the UDP socket's local addresses, then `extra` (deduplicated, at most 15). */
export async function gatherCandidates(manager: PeerManager, extra?: CandidateSource): Promise<Candidate[]> {
  const socket = await manager.ensureUdpSocket();
  const { hostname, port } = socket.addr;
  const list: Candidate[] = hostAddresses(hostname).map((address) => ({
    kind: "host",
    addr: { hostname: address, port },
  }));
  for (const candidate of (await extra?.()) ?? []) list.push(candidate);
  const seen = new Set<string>();
  return list.filter((c) => {
    const key = udpAddrKey(c.addr);
    if (seen.has(key) || parseIp(c.addr.hostname) === null) return false;
    seen.add(key);
    return true;
  }).slice(0, MAX_OWN_CANDIDATES);
}

// --- Messages ---

/** A decoded NZ-PUNCH-01 message. */
export type PunchMessage =
  | { type: "introduce"; nodeId: string; candidates: Candidate[] }
  | { type: "introduced"; nodeId: string; candidates: Candidate[] }
  | { type: "candidates"; candidates: Candidate[] }
  | { type: "refused"; code: number; reason: string };

/**
 * Encodes a message. Each candidate is `kind (1) || family (1: 4 or 6) ||
 * address (4 or 16) || port (2, big-endian)`, after a count byte.
 *
 * @throws {RangeError} for more than {@linkcode MAX_CANDIDATES} candidates, a port out of 1..65535, or a reason too long.
 * @throws {SyntaxError} for an address that is not an IP literal.
 */
export function encodePunchMessage(message: PunchMessage): Uint8Array {
  if (message.type === "refused") {
    const reason = utf8(message.reason);
    if (reason.length > MAX_PUNCH_REASON) {
      throw new RangeError(`Invalid reason: length is ${reason.length}, expected <= ${MAX_PUNCH_REASON}`);
    }
    return Uint8Array.of(PUNCH_REFUSED, message.code, ...reason);
  }
  const type = message.type === "introduce"
    ? PUNCH_INTRODUCE
    : message.type === "introduced"
    ? PUNCH_INTRODUCED
    : PUNCH_CANDIDATES;
  const head = message.type === "candidates" ? [type] : [type, ...fromHex(validNodeId(message.nodeId, "nodeId"))];
  if (message.candidates.length > MAX_CANDIDATES) {
    throw new RangeError(`Invalid candidates: ${message.candidates.length}, expected <= ${MAX_CANDIDATES}`);
  }
  const out: number[] = [...head, message.candidates.length];
  for (const { kind, addr } of message.candidates) {
    const ip = parseIp(addr.hostname);
    if (ip === null) throw new SyntaxError(`Invalid candidate address: "${addr.hostname}" is no IP literal`);
    if (!Number.isInteger(addr.port) || addr.port < 1 || addr.port > 65535) {
      throw new RangeError(`Invalid candidate port: ${addr.port}, expected 1..65535`);
    }
    const k = KINDS.indexOf(kind);
    if (k < 0) throw new RangeError(`Invalid candidate kind: ${kind}`);
    out.push(k, ip.length === 4 ? 4 : 6, ...ip, addr.port >> 8, addr.port & 0xff);
  }
  return Uint8Array.from(out);
}

/**
 * Decodes a message, checking every length exactly.
 *
 * @throws {RangeError} for an unknown type, a wrong length, too many candidates, a bad family, kind or port.
 * @throws {SyntaxError} for a reason that is not UTF-8.
 */
export function decodePunchMessage(bytes: Uint8Array): PunchMessage {
  if (bytes.length === 0) throw new RangeError("Cannot decode message: it is empty");
  const type = bytes[0];
  if (type === PUNCH_REFUSED) {
    if (bytes.length < 2 || bytes.length > 2 + MAX_PUNCH_REASON) {
      throw new RangeError(`Cannot decode REFUSED: length is ${bytes.length}, expected 2..${2 + MAX_PUNCH_REASON}`);
    }
    let reason: string;
    try {
      reason = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(2));
    } catch (cause) {
      throw new SyntaxError("Cannot decode REFUSED: the reason is not UTF-8", { cause });
    }
    return { type: "refused", code: bytes[1], reason };
  }
  if (type !== PUNCH_INTRODUCE && type !== PUNCH_INTRODUCED && type !== PUNCH_CANDIDATES) {
    throw new RangeError(`Cannot decode message: type is ${type}, expected 1..4`);
  }
  let offset = 1;
  let nodeId = "";
  if (type !== PUNCH_CANDIDATES) {
    if (bytes.length < 1 + NODE_ID_LEN + 1) {
      throw new RangeError(`Cannot decode message: length is ${bytes.length}, expected >= ${NODE_ID_LEN + 2}`);
    }
    nodeId = toHex(bytes.subarray(1, 1 + NODE_ID_LEN));
    offset += NODE_ID_LEN;
  }
  if (offset >= bytes.length) throw new RangeError("Cannot decode message: the candidate count is missing");
  const count = bytes[offset++];
  if (count > MAX_CANDIDATES) throw new RangeError(`Cannot decode candidates: ${count}, expected <= ${MAX_CANDIDATES}`);
  const candidates: Candidate[] = [];
  for (let i = 0; i < count; i++) {
    if (offset + 2 > bytes.length) throw new RangeError(`Cannot decode candidate ${i}: the message is truncated`);
    const kind = KINDS[bytes[offset]];
    const family = bytes[offset + 1];
    if (kind === undefined) throw new RangeError(`Cannot decode candidate ${i}: kind is ${bytes[offset]}`);
    if (family !== 4 && family !== 6) throw new RangeError(`Cannot decode candidate ${i}: family is ${family}`);
    const ipLen = family === 4 ? 4 : 16;
    if (offset + 2 + ipLen + 2 > bytes.length) {
      throw new RangeError(`Cannot decode candidate ${i}: the message is truncated`);
    }
    const ip = bytes.subarray(offset + 2, offset + 2 + ipLen);
    const port = bytes[offset + 2 + ipLen] << 8 | bytes[offset + 3 + ipLen];
    if (port === 0) throw new RangeError(`Cannot decode candidate ${i}: port is 0`);
    candidates.push({ kind, addr: { hostname: formatIp(ip), port } });
    offset += 4 + ipLen;
  }
  if (offset !== bytes.length) {
    throw new RangeError(`Cannot decode message: ${bytes.length - offset} bytes after the candidates`);
  }
  return type === PUNCH_CANDIDATES
    ? { type: "candidates", candidates }
    : { type: type === PUNCH_INTRODUCE ? "introduce" : "introduced", nodeId, candidates };
}

// --- Helpers ---

/** Makes sure the node answers UDP handshakes (punching needs both sides to answer the other's INITIATION). */
async function answerUdp(manager: PeerManager): Promise<void> {
  if (manager.listening.some((a) => a.startsWith("udp://"))) return;
  try {
    // With the default address the node's existing socket (if any) is kept and starts answering.
    await manager.listen(["udp://0.0.0.0:0"]);
  } catch (error) {
    if (!manager.listening.some((a) => a.startsWith("udp://"))) throw error;
  }
}

/** `candidates` plus where the rendezvous sees `session`'s packets come from, when it runs over UDP. */
function withObserved(candidates: Candidate[], session: Session): Candidate[] {
  const path = session.path();
  if (path.transport !== "udp" || path.kind !== "direct") return candidates;
  let addr: UdpAddr;
  try {
    addr = parseUdpAddr(path.remoteAddr);
  } catch {
    return candidates;
  }
  if (candidates.some((c) => udpAddrKey(c.addr) === udpAddrKey(addr))) return candidates;
  return [...candidates, { kind: "observed", addr }];
}

function directSession(manager: PeerManager, nodeId: string): Session | undefined {
  return manager.sessions().find((s) => s.nodeId === nodeId && !s.relayed);
}

function dedupe(addrs: UdpAddr[]): UdpAddr[] {
  const seen = new Set<string>();
  return addrs.filter((a) => !seen.has(udpAddrKey(a)) && seen.add(udpAddrKey(a)) !== undefined);
}

function timeoutMessage(target: string, addrs: UdpAddr[], errors: string[], ms: number): string {
  const tried = addrs.map(formatUdpAddr).join(", ") || "no candidates";
  const why = errors.length > 0 ? `; errors: ${errors.join("; ")}` : "";
  return `No handshake with ${target.slice(0, 12)} completed within ${ms} ms (tried ${tried})${why}`;
}

function refusalName(code: number): keyof typeof PunchRefusal {
  const found = (Object.keys(PunchRefusal) as (keyof typeof PunchRefusal)[]).find((k) => PunchRefusal[k] === code);
  return found ?? "REFUSED";
}

/** Whether an IP literal is private, loopback or link-local (RFC 1918, RFC 6598, RFC 4193, RFC 4291): not routable from a public TURN server. */
function isPrivateIp(hostname: string): boolean {
  const ip = parseIp(hostname);
  if (!ip) return true;
  if (ip.length === 4) {
    const [a, b] = ip;
    return a === 10 || a === 127 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) ||
      (a === 169 && b === 254) || (a === 100 && b >= 64 && b < 128) || a === 0;
  }
  const first = ip[0], second = ip[1];
  const loopback = ip.every((v, i) => (i < 15 ? v === 0 : v === 1));
  return loopback || (first & 0xfe) === 0xfc || (first === 0xfe && (second & 0xc0) === 0x80);
}
