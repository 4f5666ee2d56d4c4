/**
 * The policy gate (NZ-POLICY-01): the one entry point through which every
 * action a plugin, service, API token, agent or node requests is decided.
 * {@linkcode PolicyGate.check} validates the request, evaluates it with the
 * Cedar engine (through the decision cache), records the decision in the
 * signed decision log, and for `REQUIRE_APPROVAL` opens an approval;
 * {@linkcode PolicyGate.authorize} also waits for that approval to settle.
 *
 * @module
 */

import type { EncryptedStore, Namespace } from "../storage/encrypted_kv.ts";
import type { Signer } from "../storage/event_log.ts";
import { type Approval, Approvals, type ApprovalsOptions } from "./approvals.ts";
import { DecisionCache } from "./cache.ts";
import { CapabilityRegistry, type GrantRecord, type PrincipalRef } from "./capabilities.ts";
import { DecisionLog } from "./decision_log.ts";
import { DEFAULT_POLICIES } from "./defaults.ts";
import { type Evaluation, PolicyEngine, type PolicyInfo } from "./engine.ts";
import { canonicalRequest, parsePolicyRequest, type PolicyRequest, requestHash } from "./request.ts";

/** A decision of the gate. */
export interface Decision extends Evaluation {
  /** Hex SHA-256 of the request's canonical encoding. */
  requestHash: string;
  /** The policy generation it was made under (bumped by any change of policies, entities or grants). */
  generation: number;
  /** Whether it came from the decision cache. */
  cached: boolean;
  /** For `REQUIRE_APPROVAL`: the approval opened for it (pending from `check()`, settled from `authorize()`). */
  approval?: Approval;
}

/** Options of {@linkcode PolicyGate.open}. */
export interface PolicyGateOptions extends Pick<ApprovalsOptions, "ttlMs" | "maxPending" | "now" | "schedule"> {
  /** Signs the decision log's checkpoints. */
  signer: Signer;
  /** The policy set to use when none is saved (default {@linkcode DEFAULT_POLICIES}). */
  policies?: string;
  /** Most decisions cached (default 10,000). */
  cacheSize?: number;
  /** Sign the decision log's head every this many entries (default 64). */
  checkpointEvery?: number;
  /** Hears the gate's events (`approval.requested`, `approval.decided`, `policy.loaded`, `capability.*`). */
  events?: (type: string, data: Record<string, unknown>) => void;
}

/** What the decision cache holds: an evaluation and the facts that identify it. */
export interface Evaluated extends Evaluation {
  /** Hex SHA-256 of the request's canonical encoding. */
  requestHash: string;
  /** The cache generation it was made under. */
  generation: number;
}

/** The node's policy gate. */
export class PolicyGate {
  /** The Cedar engine with the active policy set. */
  readonly engine: PolicyEngine;
  /** Who holds which capability. */
  readonly capabilities: CapabilityRegistry;
  /** Pending and recently settled approvals. */
  readonly approvals: Approvals;
  /** The signed decision log. */
  readonly log: DecisionLog;
  /** The decision cache. */
  readonly cache: DecisionCache<Evaluated>;
  #ns: Namespace;
  #events: (type: string, data: Record<string, unknown>) => void;

  private constructor(init: {
    engine: PolicyEngine;
    capabilities: CapabilityRegistry;
    approvals: Approvals;
    log: DecisionLog;
    cache: DecisionCache<Evaluated>;
    ns: Namespace;
    events: (type: string, data: Record<string, unknown>) => void;
  }) {
    this.engine = init.engine;
    this.capabilities = init.capabilities;
    this.approvals = init.approvals;
    this.log = init.log;
    this.cache = init.cache;
    this.#ns = init.ns;
    this.#events = init.events;
  }

  /**
   * Opens the gate on `store`: the saved policy set (or the default one), the
   * capability registry and the decision log. A saved set that no longer
   * loads is reported and the default set used instead.
   *
   * @throws {SyntaxError} when `options.policies` does not load.
   */
  static async open(store: EncryptedStore, options: PolicyGateOptions): Promise<PolicyGate> {
    const ns = store.namespace(["policy"]);
    const events = options.events ?? (() => {});
    const cache = new DecisionCache<Evaluated>(options.cacheSize);
    const fallback = options.policies ?? DEFAULT_POLICIES;
    const saved = await ns.get<string>(["set"]);
    let engine: PolicyEngine;
    try {
      engine = new PolicyEngine(saved ?? fallback);
    } catch (error) {
      if (saved === undefined) throw error;
      console.warn(`nzcore: the saved policy set no longer loads, using the default one: ${(error as Error).message}`);
      engine = new PolicyEngine(fallback);
    }
    const capabilities = await CapabilityRegistry.open(ns, { onChange: () => cache.invalidate() });
    const log = await DecisionLog.open(store, options.signer, {
      checkpointEvery: options.checkpointEvery,
      now: options.now,
    });
    const approvals = new Approvals({
      ...options,
      events: (type, data) => {
        void log.note(type, data);
        events(type, data);
      },
    });
    return new PolicyGate({ engine, capabilities, approvals, log, cache, ns, events });
  }

  /**
   * Evaluates `input` (through the cache) without logging it or opening an
   * approval: what {@linkcode PolicyGate.check} would decide.
   *
   * @throws {RangeError} when `input` fails the request schema.
   */
  evaluate(input: unknown): Decision {
    const request = parsePolicyRequest(input);
    return this.#evaluate(request);
  }

  #evaluate(request: PolicyRequest): Decision {
    const key = canonicalRequest(request);
    const hit = this.cache.get(key);
    if (hit) return { ...hit, cached: true };
    const generation = this.cache.generation;
    const facts = this.capabilities.facts(request.principal, request.action);
    const evaluation = this.engine.evaluate(request, facts);
    const made: Evaluated = { ...evaluation, requestHash: requestHash(request), generation };
    this.cache.set(key, made, generation);
    return { ...made, cached: false };
  }

  /**
   * Decides `input`: validates it, evaluates it, records the decision in the
   * decision log and, for `REQUIRE_APPROVAL`, opens a pending approval
   * (returned in `approval`; {@linkcode Approvals.wait} waits for it).
   *
   * @throws {RangeError} when `input` fails the request schema, or too many approvals are pending.
   */
  async check(input: unknown, options: { ttlMs?: number } = {}): Promise<Decision> {
    const request = parsePolicyRequest(input);
    const decision = this.#evaluate(request);
    let approval: Approval | undefined;
    if (decision.outcome === "REQUIRE_APPROVAL") {
      approval = this.approvals.open(request, decision, options).approval;
      decision.approval = approval;
    }
    await this.record(request, decision);
    return decision;
  }

  /**
   * Records `decision` of `request` in the decision log, as
   * {@linkcode PolicyGate.check} does. For a caller that holds a decision of
   * the current generation (`decision.generation === cache.generation`) and
   * asks the same request again: the decision is the one `check()` would make,
   * and it is logged all the same.
   */
  record(request: PolicyRequest, decision: Decision): Promise<void> {
    return this.log.record({
      request: decision.requestHash,
      principal: `${request.principal.type}:${request.principal.id}`,
      action: request.action,
      resource: `${request.resource.type}:${request.resource.id}`,
      outcome: decision.outcome,
      risk: decision.risk,
      reasons: decision.reasons,
      policies: decision.policies,
      generation: decision.generation,
      ...(decision.approval ? { approval: decision.approval.id } : {}),
    });
  }

  /**
   * Decides `input` and, for `REQUIRE_APPROVAL`, waits until the approval is
   * settled: the result is `ALLOW` once approved, `DENY` once denied or
   * expired, with the settled approval in `approval`.
   *
   * @throws {RangeError} as {@linkcode PolicyGate.check}; the signal's reason when it aborts first.
   */
  async authorize(input: unknown, options: { ttlMs?: number; signal?: AbortSignal } = {}): Promise<Decision> {
    const decision = await this.check(input, options);
    if (!decision.approval) return decision;
    const settled = await this.approvals.wait(decision.approval.id, { signal: options.signal });
    return settledDecision(decision, settled);
  }

  /**
   * Replaces the policy set with `text` and saves it; the decision cache is
   * invalidated. Passing `undefined` returns to the default set.
   *
   * @throws {SyntaxError} naming the policy and line when `text` does not load; the previous set stays active.
   */
  async setPolicies(text: string | undefined): Promise<readonly PolicyInfo[]> {
    const previous = this.engine.text;
    const loaded = this.engine.load(text ?? DEFAULT_POLICIES);
    this.cache.invalidate();
    try {
      if (text === undefined) await this.#ns.delete(["set"]);
      else await this.#ns.set(["set"], text);
    } catch (error) {
      this.engine.load(previous);
      this.cache.invalidate();
      throw error;
    }
    const data = { generation: this.engine.generation, policies: loaded.map((p) => p.id) };
    void this.log.note("policy.loaded", data);
    this.#events("policy.loaded", data);
    return loaded;
  }

  /** Grants `capability` to `principal` (the cache is invalidated). */
  async grant(principal: PrincipalRef, capability: string): Promise<GrantRecord> {
    const record = await this.capabilities.grant(principal, capability);
    const data = { principal: `${principal.type}:${principal.id}`, capability };
    void this.log.note("capability.granted", data);
    this.#events("capability.granted", data);
    return record;
  }

  /** Revokes `capability` from `principal` (the cache is invalidated). */
  async revoke(principal: PrincipalRef, capability: string): Promise<GrantRecord> {
    const record = await this.capabilities.revoke(principal, capability);
    const data = { principal: `${principal.type}:${principal.id}`, capability };
    void this.log.note("capability.revoked", data);
    this.#events("capability.revoked", data);
    return record;
  }

  /** Expires pending approvals, writes what the decision log still holds and signs its head. */
  async close(): Promise<void> {
    this.approvals.close();
    await this.log.flush();
    await this.log.log.checkpoint();
  }
}

/** The final decision once `approval` settled: ALLOW when approved, DENY otherwise. */
export function settledDecision(decision: Decision, approval: Approval): Decision {
  const approved = approval.status === "approved";
  const why = approval.status === "expired"
    ? `the approval expired (${approval.decidedBy})`
    : `${approval.status} by ${approval.decidedBy}${approval.note ? `: ${approval.note}` : ""}`;
  return { ...decision, outcome: approved ? "ALLOW" : "DENY", reasons: [...decision.reasons, why], approval };
}
