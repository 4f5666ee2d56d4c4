/**
 * The policy request of NZ-POLICY-01: what a plugin, service, API token,
 * agent or node asks to do, as JSON `{principal, action, resource, context}`.
 * {@linkcode parsePolicyRequest} checks it against a strict schema (unknown
 * fields are refused), and {@linkcode canonicalRequest} gives the one
 * encoding the decision cache and the decision log key it by.
 *
 * @module
 */

import { z } from "zod";
import { toHex, utf8 } from "../bytes.ts";
import { sha256 } from "../crypto/mod.ts";

/** Who may ask (NZ-POLICY-01 "Principals"); each maps to the Cedar entity type of the same name, capitalised. */
export const PRINCIPAL_TYPES = ["token", "plugin", "service", "agent", "node"] as const;
/** A principal's type. */
export type PrincipalType = typeof PRINCIPAL_TYPES[number];

/**
 * Every action a request may name, `area.verb` (NZ-POLICY-01 "Actions").
 * Each area is also a Cedar action group: `action in Action::"storage"`.
 */
export const ACTIONS = [
  "approval.decide",
  "approval.list",
  "capability.grant",
  "capability.revoke",
  "identity.activate",
  "identity.create",
  "identity.export",
  "identity.import",
  "net.connect",
  "net.listen",
  "node.state",
  "node.stop",
  "peer.connect",
  "peer.disconnect",
  "peer.list",
  "peer.send",
  "plugin.install",
  "plugin.run",
  "plugin.uninstall",
  "policy.update",
  "service.list",
  "service.restart",
  "service.start",
  "service.stop",
  "storage.delete",
  "storage.read",
  "storage.write",
  "token.create",
  "token.revoke",
] as const;
/** An action's name. */
export type ActionName = typeof ACTIONS[number];

/** The areas of {@linkcode ACTIONS}: the part before the dot. */
export const ACTION_GROUPS: readonly string[] = [...new Set(ACTIONS.map((a) => a.slice(0, a.indexOf("."))))];

/** What a request may act on (NZ-POLICY-01 "Resources"). */
export const RESOURCE_TYPES = [
  "approval",
  "capability",
  "identity",
  "net",
  "node",
  "peer",
  "plugin",
  "policy",
  "service",
  "storage",
  "token",
] as const;
/** A resource's type. */
export type ResourceType = typeof RESOURCE_TYPES[number];

const id = z.string().min(1).max(256).regex(/^[\x21-\x7e]+$/, {
  message: "Use 1 to 256 printable ASCII characters without spaces",
});
const text = z.string().max(1024);
const long = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * The request context: facts of the moment the engine may use, all optional.
 * Time is one of them: the engine never reads a clock, so the same request
 * always gets the same decision.
 */
export const PolicyContextSchema = z.strictObject({
  /** The time of the request in milliseconds since the Unix epoch, as the requester's host states it. */
  time: long.optional(),
  /** Where the request came from, e.g. `api`, `cli`, `plugin`. */
  source: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/).optional(),
  /** A peer's node ID the action concerns (64 hex digits). */
  peer: z.string().regex(/^[0-9a-f]{64}$/, { message: "Expected a node ID (64 hex digits)" }).optional(),
  /** A host name or address the action reaches. */
  host: z.string().min(1).max(253).optional(),
  /** A port the action reaches. */
  port: z.number().int().min(0).max(65535).optional(),
  /** The size of what the action moves, in bytes. */
  bytes: long.optional(),
  /** A path or key within the resource. */
  path: text.optional(),
  /** Why the requester asks (shown to the operator who approves). */
  reason: text.optional(),
});

/** The context of a request (see {@linkcode PolicyContextSchema} for each field's form). */
export interface PolicyContext {
  /** The time of the request in milliseconds since the Unix epoch. */
  time?: number;
  /** Where the request came from. */
  source?: string;
  /** A peer's node ID the action concerns. */
  peer?: string;
  /** A host name or address the action reaches. */
  host?: string;
  /** A port the action reaches. */
  port?: number;
  /** The size of what the action moves, in bytes. */
  bytes?: number;
  /** A path or key within the resource. */
  path?: string;
  /** Why the requester asks. */
  reason?: string;
}

/** The schema of a policy request (NZ-POLICY-01 "Request"): strict at every level. */
export const PolicyRequestSchema = z.strictObject({
  principal: z.strictObject({ type: z.enum(PRINCIPAL_TYPES), id }),
  action: z.enum(ACTIONS),
  resource: z.strictObject({ type: z.enum(RESOURCE_TYPES), id }),
  context: PolicyContextSchema.default({}),
});

/** A request that passed {@linkcode PolicyRequestSchema}. */
export interface PolicyRequest {
  /** Who asks. */
  principal: { type: PrincipalType; id: string };
  /** What it asks to do. */
  action: ActionName;
  /** What it acts on. */
  resource: { type: ResourceType; id: string };
  /** Facts of the moment. */
  context: PolicyContext;
}

/** A request as a requester writes it (`context` may be left out). */
export interface PolicyRequestInput extends Omit<PolicyRequest, "context"> {
  /** Facts of the moment (default `{}`). */
  context?: PolicyContext;
}

// The interfaces above are the schema's types, written out for the docs; these lines fail to compile if they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _sameOutput: Same<PolicyRequest, z.output<typeof PolicyRequestSchema>> = true;
const _sameInput: Same<PolicyRequestInput, z.input<typeof PolicyRequestSchema>> = true;
void _sameOutput, _sameInput;

/**
 * Checks `input` against the request schema.
 *
 * @param input Any JSON value.
 * @returns The request, with `context` defaulted to `{}`.
 * @throws {RangeError} naming every field that fails, e.g. `action: Invalid option ...`.
 *
 * @example
 * ```ts
 * import { parsePolicyRequest } from "./request.ts";
 * const r = parsePolicyRequest({
 *   principal: { type: "agent", id: "planner" },
 *   action: "peer.send",
 *   resource: { type: "peer", id: "a1" },
 * });
 * if (r.context.time !== undefined) throw new Error("unexpected");
 * ```
 */
export function parsePolicyRequest(input: unknown): PolicyRequest {
  const result = PolicyRequestSchema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ` : "") + i.message);
  throw new RangeError(`Invalid policy request: ${issues.join("; ")}`);
}

/**
 * The canonical encoding of a request: JSON with object keys sorted and no
 * spaces (the request holds only strings, safe integers and records, so this
 * is unique). Equal requests, and only they, have equal encodings.
 */
export function canonicalRequest(request: PolicyRequest): string {
  return canonicalJson(request);
}

/** Hex SHA-256 of {@linkcode canonicalRequest}. */
export function requestHash(request: PolicyRequest): string {
  return toHex(sha256(utf8(canonicalRequest(request))));
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(",")}}`;
}
