/**
 * The decision log (NZ-POLICY-01 "Decision log"): every decision of the gate,
 * and every approval's request and outcome, in the signed, hash-chained
 * {@linkcode EventLog} named `decisions`. Decisions are written by group
 * commit: {@linkcode DecisionLog.record} queues an entry at once, in call
 * order, and one atomic commit writes what is queued (at most one commit
 * every {@linkcode COMMIT_INTERVAL_MS} under load): consecutive decisions
 * as one `policy.decisions` entry (up to {@linkcode DECISIONS_PER_ENTRY}),
 * any other record as its own entry. A decision repeated while its entry still waits in the
 * queue is folded into that entry (its `count` grows), so a busy requester
 * costs the log one entry per commit, not one per request.
 *
 * @module
 */

import { EventLog, type LogEntry, MAX_APPEND_BATCH, type Signer } from "../storage/event_log.ts";
import type { EncryptedStore } from "../storage/encrypted_kv.ts";
import type { Outcome, Risk } from "./engine.ts";

/** The log's name: its entries live in the namespace `["log", "decisions"]`. */
export const DECISION_LOG = "decisions";

/** One decision, as an element of a `policy.decisions` entry's `decisions`. */
export interface DecisionEntry {
  /** Hex SHA-256 of the request's canonical encoding. */
  request: string;
  /** `TYPE:ID` of the principal. */
  principal: string;
  /** The action. */
  action: string;
  /** `TYPE:ID` of the resource. */
  resource: string;
  /** The outcome. */
  outcome: Outcome;
  /** The risk level. */
  risk: Risk;
  /** The reasons. */
  reasons: string[];
  /** The determining policies. */
  policies: string[];
  /** The policy generation the decision was made under. */
  generation: number;
  /** How many times this decision was made since its entry was queued (1 or more). */
  count: number;
  /** The pending approval's ID, for `REQUIRE_APPROVAL`. */
  approval?: string;
}

/** Most decisions in one `policy.decisions` entry (about 32 KB, under the store's chunk size). */
export const DECISIONS_PER_ENTRY = 128;

/**
 * What one commit of the log may carry, by estimate (the stored form is CBOR, sealed, in chunks of 64 kB): half of
 * Deno KV's 800 KiB limit on the mutations of one atomic commit.
 */
export const MAX_COMMIT_BYTES = 400 * 1024;

/** A generous estimate of a decision's stored size, in bytes: its strings plus the record's overhead. */
function decisionSize(d: DecisionEntry): number {
  let n = 96 + d.request.length + d.principal.length + d.action.length + d.resource.length;
  for (const r of d.reasons) n += r.length + 4;
  for (const p of d.policies) n += p.length + 4;
  return n;
}

/**
 * Least time between the starts of two commits, in milliseconds. The first
 * commit after a pause starts at once; under a steady stream of decisions the
 * log commits at most this often, so a busy API pays a commit (encryption, a
 * KV write) every few hundred requests rather than after every turn (measured:
 * back-to-back commits cost `GET /v1/state` about 40% of its rate).
 */
export const COMMIT_INTERVAL_MS = 20;

/** Most entries and folded decisions waiting in the queue before {@linkcode DecisionLog.record} makes callers wait. */
export const MAX_QUEUED = 8192;

interface Queued {
  type: string;
  data: Record<string, unknown>;
}

/** Queue and group commit in front of the `decisions` event log. */
export class DecisionLog {
  /** The underlying event log (for reading and verifying). */
  readonly log: EventLog;
  #queue: Queued[] = [];
  #folding = new Map<string, DecisionEntry>();
  #writing: Promise<void> | undefined;
  /** When the last commit started (performance.now()). */
  #committed = -Infinity;
  #failure: ((error: Error) => void) | undefined;

  private constructor(log: EventLog, onFailure?: (error: Error) => void) {
    this.log = log;
    this.#failure = onFailure;
  }

  /**
   * Opens the `decisions` log of `store`, its checkpoints signed by `signer`.
   * `onFailure` hears of a commit that failed (a full disk): its entries are lost, and later ones still go on.
   */
  static async open(
    store: EncryptedStore,
    signer: Signer,
    options: { checkpointEvery?: number; now?: () => number; onFailure?: (error: Error) => void } = {},
  ): Promise<DecisionLog> {
    const log = await EventLog.open(store, DECISION_LOG, signer, options);
    return new DecisionLog(log, options.onFailure);
  }

  /** Entries and folded decisions waiting to be written. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Queues a decision. The returned promise resolves at once unless the
   * queue is full, when it waits for the next commit (backpressure).
   */
  record(entry: Omit<DecisionEntry, "count">): Promise<void> {
    const key = `${entry.request}:${entry.generation}:${entry.approval ?? ""}`;
    const pending = entry.approval === undefined ? this.#folding.get(key) : undefined;
    if (pending) {
      pending.count++;
      return this.#room();
    }
    const data: DecisionEntry = { ...entry, count: 1 };
    if (entry.approval === undefined) this.#folding.set(key, data);
    this.#queue.push({ type: "policy.decision", data: data as unknown as Record<string, unknown> });
    return this.#room();
  }

  /** Queues any other entry (`approval.requested`, `approval.decided`, `policy.loaded`, ...). */
  note(type: string, data: Record<string, unknown>): Promise<void> {
    this.#queue.push({ type, data });
    return this.#room();
  }

  #room(): Promise<void> {
    this.#kick();
    return this.#queue.length + this.#folding.size >= MAX_QUEUED ? this.flush() : Promise.resolve();
  }

  #kick(): void {
    this.#writing ??= this.#drain().finally(() => {
      this.#writing = undefined;
      if (this.#queue.length > 0) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    // Start on the next turn, so decisions made in the same turn share a commit.
    await Promise.resolve();
    while (this.#queue.length > 0) {
      const wait = this.#committed + COMMIT_INTERVAL_MS - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      this.#committed = performance.now();
      // Consecutive decisions share one `policy.decisions` entry; other entries stand alone, in queue order.
      const events: Queued[] = [];
      let taken = 0;
      let bytes = 0;
      for (const item of this.#queue) {
        // Deno KV refuses a commit whose mutations exceed 800 KiB in all: a batch stops at half of that.
        bytes += item.type === "policy.decision" ? decisionSize(item.data as unknown as DecisionEntry) : 1024;
        if (taken > 0 && bytes > MAX_COMMIT_BYTES) break;
        if (item.type === "policy.decision") {
          const d = item.data as unknown as DecisionEntry;
          // From here on a repeat of this decision starts a new entry.
          if (d.approval === undefined) this.#folding.delete(`${d.request}:${d.generation}:`);
          const last = events.at(-1);
          const list = last?.type === "policy.decisions" ? last.data.decisions as DecisionEntry[] : undefined;
          if (list && list.length < DECISIONS_PER_ENTRY) list.push(d);
          else if (events.length < MAX_APPEND_BATCH) {
            events.push({ type: "policy.decisions", data: { decisions: [d] } });
          } else break;
        } else if (events.length < MAX_APPEND_BATCH) {
          events.push(item);
        } else {
          break;
        }
        taken++;
      }
      this.#queue.splice(0, taken);
      try {
        await this.log.appendMany(events);
      } catch (error) {
        if (this.#failure) this.#failure(error as Error);
        else console.warn(`nzcore: lost ${taken} decision log entries: ${(error as Error).message}`);
      }
    }
  }

  /** Resolves when everything queued before the call is written (or its commit failed). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** Reads entries from `start`, oldest first. */
  read(start = 0): AsyncGenerator<LogEntry> {
    return this.log.read(start);
  }
}
