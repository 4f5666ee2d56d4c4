/**
 * The policy gate (NZ-POLICY-01): every action a plugin, service, API token,
 * agent or node requests is a JSON request decided by Cedar policies to
 * `ALLOW`, `DENY` or `REQUIRE_APPROVAL`, with a risk level and reasons, and
 * recorded in the signed decision log.
 *
 * ```ts
 * import { PolicyEngine, DEFAULT_POLICIES, parsePolicyRequest } from "./mod.ts";
 * const engine = new PolicyEngine(DEFAULT_POLICIES);
 * const decision = engine.evaluate(parsePolicyRequest({
 *   principal: { type: "agent", id: "planner" },
 *   action: "peer.send",
 *   resource: { type: "peer", id: "p1" },
 * }));
 * if (decision.outcome !== "REQUIRE_APPROVAL") throw new Error(decision.outcome);
 * ```
 *
 * @module
 */

export {
  ACTION_GROUPS,
  type ActionName,
  ACTIONS,
  canonicalRequest,
  parsePolicyRequest,
  type PolicyContext,
  type PolicyRequest,
  type PolicyRequestInput,
  PRINCIPAL_TYPES,
  type PrincipalType,
  requestHash,
  RESOURCE_TYPES,
  type ResourceType,
} from "./request.ts";
export {
  type Evaluation,
  type Outcome,
  PolicyEngine,
  type PolicyInfo,
  type PrincipalFacts,
  type Risk,
  RISKS,
} from "./engine.ts";
export { CEDAR_SCHEMA, principalEntityType } from "./schema.ts";
export { DEFAULT_POLICIES } from "./defaults.ts";
export { assertCapability, CapabilityRegistry, type GrantRecord, type PrincipalRef } from "./capabilities.ts";
export { DecisionCache } from "./cache.ts";
export { DECISION_LOG, type DecisionEntry, DecisionLog, DECISIONS_PER_ENTRY, MAX_QUEUED } from "./decision_log.ts";
export {
  type Approval,
  Approvals,
  type ApprovalsOptions,
  type ApprovalStatus,
  DEFAULT_APPROVAL_TTL_MS,
  MAX_APPROVAL_TTL_MS,
} from "./approvals.ts";
export { type Decision, type Evaluated, PolicyGate, type PolicyGateOptions, settledDecision } from "./gate.ts";
