/**
 * The policy engine: Cedar through `@cedar-policy/cedar-wasm`, with the
 * three-outcome mapping of NZ-POLICY-01. A policy set is parsed, checked
 * against the entity model ({@linkcode CEDAR_SCHEMA}) in Cedar's strict
 * validation mode and its annotations checked before it replaces the active
 * one; a set that fails any check is refused with an error naming the policy
 * and line, and the previous set stays active.
 *
 * Evaluation is a pure function of the request, the policy set and the
 * principal's grants: the engine reads no clock and no randomness.
 *
 * @module
 */

import {
  type AuthorizationAnswer,
  type DetailedError,
  type EntityJson,
  type EntityUidJson,
  type PolicyJson,
  policySetTextToParts,
  policyToJson,
  preparsePolicySet,
  statefulIsAuthorized,
  validate,
} from "@cedar-policy/cedar-wasm/nodejs";
import { ACTIONS, type PolicyRequest, PRINCIPAL_TYPES } from "./request.ts";
import { CEDAR_SCHEMA, principalEntityType } from "./schema.ts";

/** The three outcomes of a decision. */
export type Outcome = "ALLOW" | "DENY" | "REQUIRE_APPROVAL";

/** Risk levels, lowest first. */
export const RISKS = ["low", "medium", "high", "critical"] as const;
/** A risk level. */
export type Risk = typeof RISKS[number];

/** What the engine decided for one request. */
export interface Evaluation {
  /** The outcome (NZ-POLICY-01 "Outcome rule"). */
  outcome: Outcome;
  /** The highest `@risk` of the determining policies; `low` when none says. */
  risk: Risk;
  /** The `@reason` of each determining policy (or a stated default), in policy-set order. */
  reasons: string[];
  /** IDs of the determining policies, in policy-set order. */
  policies: string[];
  /** Policies that failed while evaluating (Cedar skips them), as `id: message`. */
  errors: string[];
}

/** What the engine knows of a principal beyond the request: its grants (from the capability registry). */
export interface PrincipalFacts {
  /** Capabilities granted to the principal (NZ-POLICY-01 "Capabilities"). */
  capabilities: readonly string[];
  /** Whether a grant covers the requested action. */
  granted: boolean;
  /** Roles (the `role:NAME` grants), as the names. */
  roles: readonly string[];
}

/** One loaded policy. */
export interface PolicyInfo {
  /** Its ID: the `@id` annotation, or `policyN` for the N-th policy (from 0) without one. */
  id: string;
  /** `permit` or `forbid`. */
  effect: "permit" | "forbid";
  /** Its annotations. */
  annotations: Record<string, string>;
}

interface Meta {
  index: number;
  effect: "permit" | "forbid";
  risk: Risk;
  reason?: string;
  approval: boolean;
}

const ANNOTATIONS = new Set(["id", "outcome", "risk", "reason"]);
const NO_FACTS: PrincipalFacts = { capabilities: [], granted: false, roles: [] };
let engines = 0;

/** Cedar policies over the NZ-POLICY-01 entity model. */
export class PolicyEngine {
  #psetId = `nzcore-policy-${engines++}`;
  #slicing: boolean;
  /** `PrincipalType|action` → the preparsed set holding only the policies whose scope can match it. */
  #slices = new Map<string, string>();
  #meta = new Map<string, Meta>();
  #policies: PolicyInfo[] = [];
  #text = "";
  #generation = 0;

  /**
   * Makes an engine with the policy set `text` loaded.
   *
   * `options.slicing` (default true) evaluates each request against only the
   * policies whose scope can match its principal type and action (see
   * NZ-POLICY-01 "Evaluation"); the decision is the same either way.
   *
   * @throws {SyntaxError} when `text` does not load (see {@linkcode PolicyEngine.load}).
   */
  constructor(text: string, options: { slicing?: boolean } = {}) {
    this.#slicing = options.slicing ?? true;
    this.load(text);
  }

  /** The active policy set's text. */
  get text(): string {
    return this.#text;
  }

  /** The active policies, in order. */
  get policies(): readonly PolicyInfo[] {
    return this.#policies;
  }

  /** Bumped by every successful {@linkcode PolicyEngine.load}. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Replaces the active policy set with `text` once it parses, validates
   * against the schema and carries only known annotations with valid values.
   *
   * @returns The loaded policies.
   * @throws {SyntaxError} naming the line and policy of each problem; the previous set stays active.
   */
  load(text: string): readonly PolicyInfo[] {
    if (typeof text !== "string") throw new TypeError("Policies must be Cedar text");
    const split = policySetTextToParts(text);
    if (split.type === "failure") throw refusal("does not parse", split.errors.map((e) => describe(e, text, 0)));
    if (split.policy_templates.length > 0) {
      throw refusal("is not accepted", ["templates are not supported; write static policies"]);
    }
    const problems: string[] = [];
    const staticPolicies: Record<string, string> = {};
    const offsets = new Map<string, number>();
    const meta = new Map<string, Meta>();
    const infos: PolicyInfo[] = [];
    let cursor = 0;
    split.policies.forEach((policy, index) => {
      const at = text.indexOf(policy, cursor);
      const offset = at < 0 ? cursor : at;
      cursor = at < 0 ? cursor : at + policy.length;
      const where = `line ${lineOf(text, offset)}`;
      const parsed = policyToJson(policy);
      if (parsed.type === "failure") {
        problems.push(...parsed.errors.map((e) => `${where}: ${describe(e, text, offset)}`));
        return;
      }
      const annotations = parsed.json.annotations ?? {};
      const id = annotations.id ?? `policy${index}`;
      const label = `policy "${id}" (${where})`;
      if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(id)) {
        problems.push(`${label}: @id must be 1 to 128 letters, digits, ".", "_", ":" or "-"`);
      }
      if (staticPolicies[id] !== undefined) problems.push(`${label}: the @id "${id}" is used twice`);
      for (const name of Object.keys(annotations)) {
        if (!ANNOTATIONS.has(name)) problems.push(`${label}: unknown annotation @${name}`);
      }
      const risk = annotations.risk ?? "low";
      if (!(RISKS as readonly string[]).includes(risk)) {
        problems.push(`${label}: @risk must be one of ${RISKS.join(", ")}, not "${risk}"`);
      }
      const outcome = annotations.outcome;
      if (outcome !== undefined && outcome !== "require_approval") {
        problems.push(`${label}: @outcome must be "require_approval", not "${outcome}"`);
      }
      if (outcome !== undefined && parsed.json.effect === "forbid") {
        problems.push(`${label}: @outcome applies to permit policies only`);
      }
      staticPolicies[id] = policy;
      offsets.set(id, offset);
      meta.set(id, {
        index,
        effect: parsed.json.effect,
        risk: risk as Risk,
        reason: annotations.reason,
        approval: outcome === "require_approval",
      });
      infos.push({ id, effect: parsed.json.effect, annotations: { ...annotations } });
    });
    if (problems.length > 0) throw refusal("is not accepted", problems);
    const validation = validate({
      schema: CEDAR_SCHEMA,
      policies: { staticPolicies },
      validationSettings: { mode: "strict" },
    });
    if (validation.type === "failure") {
      throw refusal(
        "does not validate",
        validation.errors.map((e) => describe(e, text, 0)),
      );
    }
    if (validation.validationErrors.length > 0) {
      const seen = new Set<string>();
      for (const { policyId, error } of validation.validationErrors) {
        const line = `policy "${policyId}" (line ${lineOf(text, offsets.get(policyId) ?? 0)}): ${error.message}`;
        if (!seen.has(line)) seen.add(line);
      }
      throw refusal("does not validate against the NZ-POLICY-01 schema", [...seen]);
    }
    const slices = this.#slicing ? sliceScopes(staticPolicies, this.#psetId) : undefined;
    const sets = slices ? slices.sets : new Map([[this.#psetId, Object.keys(staticPolicies)]]);
    for (const [psetId, ids] of sets) {
      const part = Object.fromEntries(ids.map((id) => [id, staticPolicies[id]]));
      const preparsed = preparsePolicySet(psetId, { staticPolicies: part });
      if (preparsed.type === "failure") {
        throw refusal(
          "does not load",
          preparsed.errors.map((e) => describe(e, text, 0)),
        );
      }
    }
    this.#slices = slices?.byScope ?? new Map();
    this.#meta = meta;
    this.#policies = infos;
    this.#text = text;
    this.#generation++;
    return infos;
  }

  /**
   * Decides `request` for a principal with `facts`.
   *
   * @throws {Error} only when Cedar refuses the call itself (an engine fault, not a policy's).
   */
  evaluate(request: PolicyRequest, facts: PrincipalFacts = NO_FACTS): Evaluation {
    const principal = { type: principalEntityType(request.principal.type), id: request.principal.id };
    const resource = { type: "Resource", id: `${request.resource.type}:${request.resource.id}` };
    const action = { type: "Action", id: request.action };
    const entities: EntityJson[] = [
      {
        uid: principal,
        attrs: { capabilities: [...facts.capabilities], granted: facts.granted },
        parents: facts.roles.map((id) => ({ type: "Role", id })),
      },
      { uid: resource, attrs: { kind: request.resource.type, name: request.resource.id }, parents: [] },
      // Without a schema at evaluation (validated at load; the request by its own schema), Cedar learns the
      // action's group from this entity.
      {
        uid: action,
        attrs: {},
        parents: [{ type: "Action", id: request.action.slice(0, request.action.indexOf(".")) }],
      },
    ];
    const answer: AuthorizationAnswer = statefulIsAuthorized({
      principal,
      action,
      resource,
      context: { ...request.context },
      preparsedPolicySetId: this.#slices.get(`${principal.type}|${request.action}`) ?? this.#psetId,
      entities,
    });
    if (answer.type === "failure") {
      throw new Error(`Cedar could not evaluate the request: ${answer.errors.map((e) => e.message).join("; ")}`);
    }
    const { decision, diagnostics } = answer.response;
    const determining = diagnostics.reason
      .map((id) => [id, this.#meta.get(id)!] as const)
      .filter(([, m]) => m !== undefined)
      .sort((a, b) => a[1].index - b[1].index);
    const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`).sort();
    let outcome: Outcome = "DENY";
    if (decision === "allow") outcome = determining.some(([, m]) => m.approval) ? "REQUIRE_APPROVAL" : "ALLOW";
    let risk = 0;
    for (const [, m] of determining) risk = Math.max(risk, RISKS.indexOf(m.risk));
    const reasons = determining.map(([id, m]) =>
      m.reason ?? `${m.effect === "permit" ? "permitted" : "forbidden"} by policy ${id}`
    );
    if (determining.length === 0) reasons.push(`no policy permits ${request.action} (default deny)`);
    return { outcome, risk: RISKS[risk], reasons, policies: determining.map(([id]) => id), errors };
  }
}

/**
 * Policy slicing: for every principal type and action, the policies whose
 * scope can match them. A policy's scope is a conjunct of its condition, so a
 * policy outside the slice can never be satisfied by such a request, and
 * Cedar's decision over the slice equals its decision over the whole set.
 * Slices with the same policies share one preparsed set.
 */
function sliceScopes(
  policies: Record<string, string>,
  base: string,
): { sets: Map<string, string[]>; byScope: Map<string, string> } {
  const scopes = Object.entries(policies).map(([id, text]) => {
    const json = policyToJson(text);
    if (json.type === "failure") throw new SyntaxError(`Cannot read policy ${id}`);
    return { id, principal: principalTypes(json.json.principal), action: actionNames(json.json.action) };
  });
  const sets = new Map<string, string[]>();
  const bySignature = new Map<string, string>();
  const byScope = new Map<string, string>();
  for (const ptype of PRINCIPAL_TYPES.map(principalEntityType)) {
    for (const action of ACTIONS) {
      const ids = scopes.filter((s) => (!s.principal || s.principal.has(ptype)) && (!s.action || s.action.has(action)))
        .map((s) => s.id);
      const signature = ids.join("\n");
      let psetId = bySignature.get(signature);
      if (!psetId) {
        psetId = `${base}-${bySignature.size}`;
        bySignature.set(signature, psetId);
        sets.set(psetId, ids);
      }
      byScope.set(`${ptype}|${action}`, psetId);
    }
  }
  return { sets, byScope };
}

/** The principal entity types a principal scope can match; undefined for any. */
function principalTypes(scope: PolicyJson["principal"]): Set<string> | undefined {
  if (scope.op === "is") return new Set([scope.entity_type]);
  if (scope.op === "==" && "entity" in scope) return new Set([entityType(scope.entity)]);
  return undefined;
}

/** The actions an action scope can match; undefined for any. */
function actionNames(scope: PolicyJson["action"]): Set<string> | undefined {
  if (scope.op === "All") return undefined;
  const uids = scope.op === "=="
    ? ("entity" in scope ? [scope.entity] : [])
    : "entity" in scope
    ? [scope.entity]
    : scope.entities;
  const names = new Set<string>();
  for (const uid of uids) {
    const id = "__entity" in uid ? uid.__entity.id : uid.id;
    for (const action of ACTIONS) {
      // `in` also matches the action's group; `==` only the action itself.
      if (action === id || (scope.op === "in" && action.slice(0, action.indexOf(".")) === id)) names.add(action);
    }
  }
  return names;
}

function entityType(uid: EntityUidJson): string {
  return "__entity" in uid ? uid.__entity.type : uid.type;
}

function refusal(what: string, problems: string[]): SyntaxError {
  return new SyntaxError(`The policy set ${what}: ${problems.join("; ")}`);
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function describe(error: DetailedError, text: string, base: number): string {
  const loc = error.sourceLocations?.[0];
  const where = loc ? `line ${lineOf(text, base + loc.start)}: ` : "";
  const label = loc?.label ? ` (${loc.label})` : "";
  const related = (error.related ?? []).map((r) => `; ${r.message}`).join("");
  return `${where}${error.message}${label}${related}`;
}
