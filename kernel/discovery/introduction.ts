/**
 * Peer introductions (NZ-INTRODUCE-01, spec/protocols/NZ-INTRODUCE-01.md),
 * protocol `nz/introduce/1`: a node (the introducer) hands a peer (the
 * receiver) a signed introduction of a third node (NZ-RECORD-01 kind 4: its
 * public key and addresses). The receiver checks the record and that the
 * introducer signed it, decides by its policy, answers with a status, and
 * dials the introduced node with its node ID as the expected peer, so that the
 * handshake proves the identity the introducer vouched for.
 *
 * - {@linkcode serveIntroductions} registers the receiver's handler.
 * - {@linkcode introduce} is the introducer's side.
 *
 * @module
 */

import { abortable } from "../async.ts";
import { fromUtf8, timingSafeEqual, utf8 } from "../bytes.ts";
import { nodeIdOf } from "../identity/identity.ts";
import { encodeDidKey } from "../identity/did.ts";
import type { PeerManager, Session } from "../peers/manager.ts";
import type { Stream } from "../channel/stream.ts";
import {
  decodeAddresses,
  introduction,
  MAX_RECORD_SIZE,
  openRecord,
  RecordError,
  type RecordSigner,
  type SignedRecord,
} from "./record.ts";

/** The stream protocol of NZ-INTRODUCE-01. */
export const INTRODUCE_PROTOCOL = "nz/introduce/1";

// --- Spec constants (NZ-INTRODUCE-01 section "Messages") ---

/**
 * The status byte of an ANSWER. Codes below 16 accept the introduction, codes from 16 refuse it; an introducer reads
 * a code it does not know by that rule.
 */
export const IntroductionCode = {
  /** Accepted: the receiver dials the introduced node now. */
  DIALING: 0,
  /** Accepted: the receiver has a session with the introduced node already; it dials nothing. */
  CONNECTED: 1,
  /** The record does not decode, or is not an introduction (NZ-RECORD-01 section 1, steps 1 and 2). */
  MALFORMED: 16,
  /** The signature does not verify (step 3). */
  FORGED: 17,
  /** The record has expired (step 4). */
  EXPIRED: 18,
  /** The record expires too far ahead (step 5). */
  TOO_LONG_LIVED: 19,
  /** The record is signed by another key than the introducer's (the session's peer). */
  WRONG_SIGNER: 20,
  /** The introduced node is the receiver itself or the introducer. */
  INVALID_TARGET: 21,
  /** The receiver's policy refuses introductions from this introducer (or all of them). */
  REFUSED: 22,
  /** The introducer sent too many introductions lately. */
  RATE_LIMITED: 23,
} as const;

/** The longest reason of an ANSWER, in bytes. */
export const MAX_INTRODUCTION_REASON = 200;
/** Codes from this one on refuse. */
const FIRST_REFUSAL = 16;

// --- Implementation constants ---

/** How long a receiver waits for the record, and an introducer for the answer. */
const MESSAGE_TIMEOUT_MS = 10_000;
/** Introductions one introducer may send in {@linkcode RATE_WINDOW_MS}. */
const DEFAULT_RATE_PER_WINDOW = 10;
const RATE_WINDOW_MS = 60_000;
/** Introducers whose recent introductions are counted, at most (the oldest is forgotten first). */
const MAX_TRACKED_INTRODUCERS = 1024;
/** Dials for introductions under way at once, at most; more are refused as rate-limited. */
const DEFAULT_MAX_DIALS = 8;

/** Whose introductions a node follows. */
export type IntroductionPolicy = "trusted" | "any" | "off";
/** The policies, for validation. */
export const INTRODUCTION_POLICIES: readonly IntroductionPolicy[] = ["trusted", "any", "off"];

/** The name of a status code. */
export type IntroductionStatus =
  | "dialing"
  | "connected"
  | "malformed"
  | "forged"
  | "expired"
  | "too-long-lived"
  | "wrong-signer"
  | "invalid-target"
  | "refused"
  | "rate-limited";

const STATUS_OF_CODE: ReadonlyMap<number, IntroductionStatus> = new Map([
  [IntroductionCode.DIALING, "dialing"],
  [IntroductionCode.CONNECTED, "connected"],
  [IntroductionCode.MALFORMED, "malformed"],
  [IntroductionCode.FORGED, "forged"],
  [IntroductionCode.EXPIRED, "expired"],
  [IntroductionCode.TOO_LONG_LIVED, "too-long-lived"],
  [IntroductionCode.WRONG_SIGNER, "wrong-signer"],
  [IntroductionCode.INVALID_TARGET, "invalid-target"],
  [IntroductionCode.REFUSED, "refused"],
  [IntroductionCode.RATE_LIMITED, "rate-limited"],
]);
const CODE_OF_STATUS = new Map([...STATUS_OF_CODE].map(([code, status]) => [status, code]));

/** A receiver's ANSWER to an introduction. */
export interface IntroductionAnswer {
  /** The status code as sent. */
  code: number;
  /** Its name; `unknown` for a code this implementation does not know. */
  status: IntroductionStatus | "unknown";
  /** Whether the receiver accepted the introduction (code below 16). */
  accepted: boolean;
  /** Why, in words (may be empty). */
  reason: string;
}

/**
 * Encodes an ANSWER: `status (u8) || reason (UTF-8, 0 to 200 bytes)`.
 *
 * @param status The status.
 * @param reason Why, in words; cut to 200 bytes at a character boundary.
 * @returns The message.
 */
export function encodeIntroductionAnswer(status: IntroductionStatus, reason = ""): Uint8Array {
  const code = CODE_OF_STATUS.get(status);
  if (code === undefined) throw new RangeError(`Invalid status "${status}"`);
  const text = cutUtf8(reason, MAX_INTRODUCTION_REASON);
  const out = new Uint8Array(1 + text.length);
  out[0] = code;
  out.set(text, 1);
  return out;
}

/**
 * Decodes an ANSWER.
 *
 * @param message The message.
 * @returns The answer; a code this implementation does not know is `unknown`, accepted below 16.
 * @throws {SyntaxError} when it is empty, its reason is over 200 bytes, or not UTF-8.
 */
export function decodeIntroductionAnswer(message: Uint8Array): IntroductionAnswer {
  if (message.length === 0) throw new SyntaxError("Invalid introduction answer: empty");
  if (message.length > 1 + MAX_INTRODUCTION_REASON) {
    throw new SyntaxError(
      `Invalid introduction answer: ${message.length} bytes, expected at most ${1 + MAX_INTRODUCTION_REASON}`,
    );
  }
  let reason: string;
  try {
    reason = fromUtf8(message.subarray(1));
  } catch {
    throw new SyntaxError("Invalid introduction answer: the reason is not UTF-8");
  }
  const code = message[0];
  return { code, status: STATUS_OF_CODE.get(code) ?? "unknown", accepted: code < FIRST_REFUSAL, reason };
}

/** What a receiver reports of an introduction: as a `peer.introduced` event, once its outcome is known. */
export interface IntroductionOutcome {
  /** The introducer's node ID. */
  introducer: string;
  /** The introduced node's node ID, when the record named one. */
  nodeId?: string;
  /** The introduced node's DID, when the record named one. */
  did?: string;
  /** The addresses the record gave. */
  addresses?: string[];
  /** The answer sent. */
  status: IntroductionStatus;
  /**
   * What became of it: `connected` (a dial succeeded), `unreachable` (every address failed), `already-connected`, or
   * the refusal (the status).
   */
  outcome: "connected" | "unreachable" | "already-connected" | IntroductionStatus;
  /** The address that answered, when connected. */
  address?: string;
  /** Why, in words. */
  reason?: string;
}

/** What {@linkcode checkIntroduction} finds. */
export type CheckedIntroduction =
  | { status: "valid"; record: SignedRecord; nodeId: string; addresses: string[] }
  | {
    status: "malformed" | "forged" | "expired" | "too-long-lived" | "wrong-signer" | "invalid-target";
    reason: string;
    record?: SignedRecord;
  };

/**
 * Checks an introduction as a receiver must before its policy is asked (NZ-INTRODUCE-01 section "Receiver", steps 2
 * to 4): the record opens (NZ-RECORD-01 section 1) and is an introduction, the introducer signed it, and it
 * introduces neither the receiver nor the introducer.
 *
 * @param message The INTRODUCTION message: the record's bytes.
 * @param context The introducer's public key (the session's peer), the receiver's node ID, and the time.
 * @returns `valid` with the introduced node, or the refusal's status and reason.
 */
export function checkIntroduction(
  message: Uint8Array,
  context: { introducer: Uint8Array; self: string; now?: number },
): CheckedIntroduction {
  if (message.length > MAX_RECORD_SIZE) {
    return { status: "malformed", reason: `${message.length} bytes, at most ${MAX_RECORD_SIZE}` };
  }
  let record: SignedRecord;
  try {
    record = openRecord(message, context.now ?? Date.now());
  } catch (error) {
    if (error instanceof RecordError) return { status: error.reason, reason: error.message };
    return { status: "malformed", reason: (error as Error).message };
  }
  if (record.kind !== "introduction") {
    return { status: "malformed", reason: `a ${record.kind} record, not an introduction` };
  }
  if (!timingSafeEqual(record.publicKey, context.introducer)) {
    return { status: "wrong-signer", reason: "the record is not signed by the introducer", record };
  }
  const nodeId = nodeIdOf(record.name);
  if (nodeId === context.self) return { status: "invalid-target", reason: "it introduces the receiver itself", record };
  if (timingSafeEqual(record.name, context.introducer)) {
    return { status: "invalid-target", reason: "it introduces the introducer itself", record };
  }
  return { status: "valid", record, nodeId, addresses: decodeAddresses(record.value) };
}

/** Options of {@linkcode serveIntroductions}. */
export interface ServeIntroductionsOptions {
  /** Whose introductions to follow (default `trusted`). */
  policy?: IntroductionPolicy;
  /** The node's node ID (the active identity's), read at each introduction. */
  self: () => string;
  /** Whether a node is known (in the address book): an introducer is trusted, an introduced node is known. */
  known: (nodeId: string) => boolean;
  /** Receives `peer.introduced` for each introduction, once its outcome is known (none for rate-limited ones). */
  events?: (type: "peer.introduced", data: IntroductionOutcome & Record<string, unknown>) => void;
  /** Introductions one introducer may send per minute (default 10). */
  ratePerMinute?: number;
  /** Dials for introductions at once, at most (default 8). */
  maxDials?: number;
  /** The clock records are checked against (default `Date.now`). */
  now?: () => number;
}

/** The receiver's side of NZ-INTRODUCE-01, registered on a peer manager. */
export class IntroductionService {
  #peers: PeerManager;
  #options: ServeIntroductionsOptions;
  #policy: IntroductionPolicy;
  #recent = new Map<string, number[]>();
  #dials = 0;
  #closing = new AbortController();
  #tracked = new Set<Promise<unknown>>();

  /** @internal Made by {@linkcode serveIntroductions}. */
  constructor(peers: PeerManager, options: ServeIntroductionsOptions) {
    this.#peers = peers;
    this.#options = options;
    this.#policy = options.policy ?? "trusted";
    if (!INTRODUCTION_POLICIES.includes(this.#policy)) {
      throw new RangeError(`Invalid policy "${this.#policy}": expected one of ${INTRODUCTION_POLICIES.join(", ")}`);
    }
    peers.handle(INTRODUCE_PROTOCOL, (stream, session) => this.#serve(stream, session));
  }

  /** The policy in force. */
  get policy(): IntroductionPolicy {
    return this.#policy;
  }

  /** Stops: later introductions are reset, dials under way are aborted; resolves when they have ended. */
  async close(): Promise<void> {
    this.#closing.abort(new Error("The node is stopping"));
    await Promise.allSettled([...this.#tracked]);
  }

  async #serve(stream: Stream, session: Session): Promise<void> {
    if (this.#closing.signal.aborted) return stream.reset();
    const signal = AbortSignal.any([AbortSignal.timeout(MESSAGE_TIMEOUT_MS), this.#closing.signal]);
    const message = await abortable(stream.receive(), signal).catch(() => null);
    if (message === null) return stream.reset();
    const introducer = session.nodeId;
    const { answer, record, dial } = this.#decide(message, session);
    try {
      await stream.send(encodeIntroductionAnswer(answer.status, answer.reason));
      await stream.close();
    } catch {
      // The introducer went away; the decision stands.
    }
    const introduced = record ? this.#describe(record) : {};
    const report = (outcome: IntroductionOutcome["outcome"], extra: Partial<IntroductionOutcome> = {}) =>
      this.#options.events?.("peer.introduced", {
        introducer,
        ...introduced,
        status: answer.status,
        outcome,
        ...(answer.reason && !extra.reason ? { reason: answer.reason } : {}),
        ...extra,
      });
    if (answer.status === "rate-limited") return;
    if (answer.status === "connected") return void report("already-connected");
    if (!dial) return void report(answer.status);
    this.#dials++;
    const dialing = this.#dial(dial.nodeId, dial.addresses).then(
      (address) => report("connected", { address }),
      (error) => report("unreachable", { reason: (error as Error).message }),
    ).finally(() => this.#dials--);
    this.#tracked.add(dialing);
    dialing.finally(() => this.#tracked.delete(dialing));
  }

  /** Picks the answer (section "Receiver"); `dial` when the receiver is to dial. */
  #decide(message: Uint8Array, session: Session): {
    answer: { status: IntroductionStatus; reason: string };
    record?: SignedRecord;
    dial?: { nodeId: string; addresses: string[] };
  } {
    const refuse = (status: IntroductionStatus, reason: string, record?: SignedRecord) => ({
      answer: { status, reason },
      record,
    });
    // 1. Rate, before any signature is verified.
    if (!this.#admit(session.nodeId)) {
      return refuse("rate-limited", `more than ${this.#rate} introductions in a minute`);
    }
    // 2-4. The record opens, is the introducer's, and introduces a third node.
    const checked = checkIntroduction(message, {
      introducer: session.peer.publicKey,
      self: this.#options.self(),
      now: (this.#options.now ?? Date.now)(),
    });
    if (checked.status !== "valid") return refuse(checked.status, checked.reason, checked.record);
    const { record, nodeId, addresses } = checked;
    // 5. Not connected already.
    if (this.#peers.sessions().some((s) => s.nodeId === nodeId)) {
      return { answer: { status: "connected", reason: "" }, record };
    }
    // 6. The policy.
    if (this.#policy === "off") return refuse("refused", "this node follows no introductions", record);
    if (this.#policy === "trusted" && !this.#options.known(session.nodeId) && !this.#options.known(nodeId)) {
      return refuse("refused", "neither the introducer nor the introduced node is known to this node", record);
    }
    if (this.#dials >= (this.#options.maxDials ?? DEFAULT_MAX_DIALS)) {
      return refuse("rate-limited", "too many introductions are being dialed", record);
    }
    return { answer: { status: "dialing", reason: "" }, record, dial: { nodeId, addresses } };
  }

  get #rate(): number {
    return this.#options.ratePerMinute ?? DEFAULT_RATE_PER_WINDOW;
  }

  /** Counts an introduction from `introducer`; false when it is over its rate. */
  #admit(introducer: string): boolean {
    const now = Date.now();
    const times = (this.#recent.get(introducer) ?? []).filter((t) => now - t < RATE_WINDOW_MS);
    this.#recent.delete(introducer); // re-inserted last: the map's order is least recently seen first
    const admitted = times.length < this.#rate;
    if (admitted) times.push(now);
    this.#recent.set(introducer, times);
    if (this.#recent.size > MAX_TRACKED_INTRODUCERS) this.#recent.delete(this.#recent.keys().next().value!);
    return admitted;
  }

  /** Dials `addresses` in order, expecting `nodeId`; the first that answers wins. */
  async #dial(nodeId: string, addresses: string[]): Promise<string> {
    const failures: string[] = [];
    for (const address of addresses) {
      if (this.#closing.signal.aborted) break;
      try {
        await this.#peers.connect(address, { expectedPeer: nodeId, signal: this.#closing.signal });
        return address;
      } catch (error) {
        failures.push(`${address}: ${(error as Error).message}`);
      }
    }
    throw new Error(failures.length ? failures.join("; ") : "the node is stopping");
  }

  #describe(record: SignedRecord): Partial<IntroductionOutcome> {
    return {
      nodeId: nodeIdOf(record.name),
      did: encodeDidKey(record.name),
      addresses: decodeAddresses(record.value),
    };
  }
}

/**
 * Serves `nz/introduce/1` on `peers`: follows the introductions that `options.policy` accepts by dialing the
 * introduced node.
 *
 * @param peers The peer manager the handler is registered on, and that dials.
 * @param options The policy, the node's own ID, who is known, and where outcomes go.
 * @returns The service; `close()` it before the peer manager.
 * @throws {RangeError} for an unknown policy.
 */
export function serveIntroductions(peers: PeerManager, options: ServeIntroductionsOptions): IntroductionService {
  return new IntroductionService(peers, options);
}

/** The node an introducer introduces. */
export interface IntroducedNode {
  /** Its Ed25519 public key. */
  publicKey: Uint8Array;
  /** Its addresses (1 to 8), the best first. */
  addresses: readonly string[];
}

/** Options of {@linkcode introduce}. */
export interface IntroduceOptions {
  /** The introduction's lifetime (default 10 minutes). */
  ttlMs?: number;
  /** The signing time (default now). */
  now?: number;
  /** Gives up waiting for the answer (default after 10 s). */
  signal?: AbortSignal;
}

/**
 * Introduces `introduced` to the peer of `session`: signs an introduction with `signer` (the node's identity, the
 * session's own side), sends it on an `nz/introduce/1` stream, and returns the peer's answer.
 *
 * @param session The session with the receiver.
 * @param signer The introducer's identity (the key the session authenticated).
 * @param introduced The node introduced: its public key and addresses.
 * @param options The record's lifetime, and a signal.
 * @returns The receiver's answer.
 * @throws {RangeError} or {SyntaxError} when the introduction cannot be signed (no address, too many, malformed).
 * @throws {ChannelError} when the receiver resets the stream (it does not serve the protocol) or the session ends.
 * @throws {SyntaxError} when the answer does not decode.
 */
export async function introduce(
  session: Session,
  signer: RecordSigner,
  introduced: IntroducedNode,
  options: IntroduceOptions = {},
): Promise<IntroductionAnswer> {
  const record = introduction(signer, introduced.publicKey, introduced.addresses, options);
  const signal = options.signal ?? AbortSignal.timeout(MESSAGE_TIMEOUT_MS);
  const stream = await session.openStream(INTRODUCE_PROTOCOL);
  try {
    await stream.send(record.bytes, { signal });
    await stream.close();
    const answer = await stream.receive({ signal });
    if (answer === null) {
      throw new SyntaxError("Invalid introduction answer: the receiver closed the stream without one");
    }
    return decodeIntroductionAnswer(answer);
  } catch (error) {
    stream.reset();
    throw error;
  }
}

/** The UTF-8 of `text`, at most `max` bytes, cut at a character boundary. */
function cutUtf8(text: string, max: number): Uint8Array {
  const bytes = utf8(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.slice(0, end);
}
