/**
 * Approvals (NZ-POLICY-01 "Approvals"): a request the policies answered with
 * `REQUIRE_APPROVAL` waits here until an operator approves or denies it, or
 * until it expires (default 10 minutes). Each approval is settled once;
 * whoever waits on it is told the outcome. Pending approvals live in memory:
 * a node that stops expires them, since their requesters are gone too.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { randomBytes } from "../crypto/mod.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { Risk } from "./engine.ts";
import type { PolicyRequest } from "./request.ts";

/** Where an approval stands. */
export type ApprovalStatus = "pending" | "approved" | "denied" | "expired";

/** One approval. */
export interface Approval {
  /** Random identifier, 16 lowercase hex digits. */
  id: string;
  /** The request waiting. */
  request: PolicyRequest;
  /** Hex SHA-256 of the request's canonical encoding. */
  requestHash: string;
  /** The decision's risk. */
  risk: Risk;
  /** The decision's reasons. */
  reasons: string[];
  /** The policies that asked for approval. */
  policies: string[];
  /** Where it stands. */
  status: ApprovalStatus;
  /** When it was asked, in milliseconds since the Unix epoch. */
  created: number;
  /** When it expires unless decided. */
  expires: number;
  /** When it was settled. */
  decided?: number;
  /** Who settled it (`expiry` when it expired). */
  decidedBy?: string;
  /** The operator's note. */
  note?: string;
}

/** What approvals and their clock need from the outside. */
export interface ApprovalsOptions {
  /** How long an approval waits by default, in milliseconds (default 10 minutes). */
  ttlMs?: number;
  /** Most approvals pending at once (default 1,000): past it, new requests are refused. */
  maxPending?: number;
  /** Settled approvals kept for `list()` (default 256). */
  keepSettled?: number;
  /** The clock (milliseconds since the epoch). */
  now?: () => number;
  /** Runs `fn` after `ms`; returns a cancel function (tests pass a fake clock). */
  schedule?: (fn: () => void, ms: number) => () => void;
  /** Hears `approval.requested` and `approval.decided`. */
  events?: (type: string, data: Record<string, unknown>) => void;
}

/** Ten minutes. */
export const DEFAULT_APPROVAL_TTL_MS = 10 * 60_000;
/** The longest an approval may be asked to wait: one day. */
export const MAX_APPROVAL_TTL_MS = 24 * 60 * 60_000;

interface Pending {
  approval: Approval;
  settled: Promise<Approval>;
  resolve: (approval: Approval) => void;
  cancel: () => void;
}

function systemSchedule(fn: () => void, ms: number): () => void {
  const timer = setTimeout(fn, ms);
  Deno.unrefTimer(timer);
  return () => clearTimeout(timer);
}

/** The pending approvals of one node. */
export class Approvals {
  #pending = new Map<string, Pending>();
  #settled = new Map<string, Approval>();
  #ttl: number;
  #maxPending: number;
  #keep: number;
  #now: () => number;
  #schedule: (fn: () => void, ms: number) => () => void;
  #events: (type: string, data: Record<string, unknown>) => void;

  /** Makes an empty set of approvals. */
  constructor(options: ApprovalsOptions = {}) {
    this.#ttl = options.ttlMs ?? DEFAULT_APPROVAL_TTL_MS;
    this.#maxPending = options.maxPending ?? 1000;
    this.#keep = options.keepSettled ?? 256;
    this.#now = options.now ?? Date.now;
    this.#schedule = options.schedule ?? systemSchedule;
    this.#events = options.events ?? (() => {});
  }

  /** Number of pending approvals. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Opens an approval for `request`.
   *
   * @returns The pending approval and a promise of its settled form.
   * @throws {RangeError} for a `ttlMs` out of range, or when too many approvals are pending.
   */
  open(
    request: PolicyRequest,
    decision: { requestHash: string; risk: Risk; reasons: string[]; policies: string[] },
    options: { ttlMs?: number } = {},
  ): { approval: Approval; settled: Promise<Approval> } {
    const ttl = options.ttlMs ?? this.#ttl;
    if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_APPROVAL_TTL_MS) {
      throw new RangeError(`Invalid approval timeout ${ttl} ms: expected 1 to ${MAX_APPROVAL_TTL_MS}`);
    }
    if (this.#pending.size >= this.#maxPending) {
      throw new RangeError(`Too many approvals pending (${this.#maxPending}): decide some first`);
    }
    const created = this.#now();
    const approval: Approval = {
      id: toHex(randomBytes(8)),
      request,
      requestHash: decision.requestHash,
      risk: decision.risk,
      reasons: [...decision.reasons],
      policies: [...decision.policies],
      status: "pending",
      created,
      expires: created + ttl,
    };
    let resolve!: (a: Approval) => void;
    const settled = new Promise<Approval>((r) => (resolve = r));
    const cancel = this.#schedule(() => this.#settle(approval.id, "expired", "expiry"), ttl);
    this.#pending.set(approval.id, { approval, settled, resolve, cancel });
    this.#events("approval.requested", {
      id: approval.id,
      principal: `${request.principal.type}:${request.principal.id}`,
      action: request.action,
      resource: `${request.resource.type}:${request.resource.id}`,
      request: approval.requestHash,
      risk: approval.risk,
      reasons: approval.reasons,
      expires: approval.expires,
    });
    return { approval: { ...approval }, settled };
  }

  /** Every pending approval (oldest first), then recently settled ones (newest first), or only those of `status`. */
  list(options: { status?: ApprovalStatus } = {}): Approval[] {
    const pending = [...this.#pending.values()].map((p) => ({ ...p.approval }));
    const settled = [...this.#settled.values()].reverse().map((a) => ({ ...a }));
    const all = [...pending, ...settled];
    return options.status ? all.filter((a) => a.status === options.status) : all;
  }

  /**
   * The approval `id`.
   *
   * @throws {NotFoundError} when there is none (or it was settled long ago).
   */
  get(id: string): Approval {
    const found = this.#pending.get(id)?.approval ?? this.#settled.get(id);
    if (!found) throw new NotFoundError(`No approval ${id}`);
    return { ...found };
  }

  /**
   * Waits until approval `id` is settled.
   *
   * @throws {NotFoundError} when there is no such approval.
   * @throws the signal's reason when it aborts first.
   */
  wait(id: string, options: { signal?: AbortSignal } = {}): Promise<Approval> {
    const pending = this.#pending.get(id);
    if (!pending) {
      try {
        return Promise.resolve(this.get(id));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const signal = options.signal;
    if (!signal) return pending.settled;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      pending.settled.then((a) => {
        signal.removeEventListener("abort", onAbort);
        resolve(a);
      });
    });
  }

  /**
   * Approves approval `id`.
   *
   * @throws {NotFoundError} when there is no such approval.
   * @throws {ConflictError} when it is already settled (approved, denied or expired).
   */
  approve(id: string, options: { by?: string; note?: string } = {}): Approval {
    return this.#decide(id, "approved", options);
  }

  /** Denies approval `id`; throws as {@linkcode Approvals.approve}. */
  deny(id: string, options: { by?: string; note?: string } = {}): Approval {
    return this.#decide(id, "denied", options);
  }

  #decide(id: string, status: "approved" | "denied", options: { by?: string; note?: string }): Approval {
    if (!this.#pending.has(id)) {
      const settled = this.#settled.get(id);
      if (settled) throw new ConflictError(`Approval ${id} is already ${settled.status}`);
      throw new NotFoundError(`No approval ${id}`);
    }
    if (options.note !== undefined && options.note.length > 1024) {
      throw new RangeError("The note is too long: at most 1024 characters");
    }
    return this.#settle(id, status, options.by ?? "operator", options.note)!;
  }

  #settle(id: string, status: Exclude<ApprovalStatus, "pending">, by: string, note?: string): Approval | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    pending.cancel();
    const approval: Approval = { ...pending.approval, status, decided: this.#now(), decidedBy: by };
    if (note !== undefined) approval.note = note;
    this.#settled.set(id, approval);
    if (this.#settled.size > this.#keep) this.#settled.delete(this.#settled.keys().next().value!);
    this.#events("approval.decided", {
      id,
      status,
      by,
      request: approval.requestHash,
      action: approval.request.action,
    });
    pending.resolve({ ...approval });
    return { ...approval };
  }

  /** Expires every pending approval (the node is stopping); their requesters are told. */
  close(): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, "expired", "shutdown");
  }
}
