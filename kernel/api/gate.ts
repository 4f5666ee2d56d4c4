/**
 * The policy gate in front of the admin API (NZ-POLICY-01 "HTTP routes"):
 * every authenticated route that acts or reads is mapped to its action and
 * resource, and the gate decides for the principal `{type: "token", id}` of
 * the bearer token (the local admin token included):
 *
 * - `ALLOW`: the route runs;
 * - `DENY`: 403 `policy_denied`, the message naming the reasons;
 * - `REQUIRE_APPROVAL`: 202 `{outcome, approval, risk, reasons, message}`
 *   without running the route; once an operator approves, the caller repeats
 *   the same request (method, path, query and body) with the header
 *   {@linkcode APPROVAL_HEADER}`: <id>`, and it runs once.
 *
 * Every decision goes into the signed decision log (folded when repeated), and
 * every approval spent is noted there as `approval.used`. The local admin
 * token may always show, replace and reset the policy set
 * ({@linkcode OWNER_REPAIR_ROUTES}). Only the routes in
 * {@linkcode UNGATED_ROUTES} pass without a decision (`/v1/mcp` decides per
 * tool call); a matched route that has no mapping is refused, so a route added
 * without one fails closed (and `tests/kernel/api/gate_test.ts` names it).
 *
 * @module
 */

import type { Context, MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { concat, toHex, utf8 } from "../bytes.ts";
import { sha256 } from "../crypto/mod.ts";
import type { TokenInfo } from "../node/tokens.ts";
import type { Decision } from "../policy/gate.ts";
import {
  type ActionName,
  parsePolicyRequest,
  type PolicyContext,
  type PolicyRequest,
  type PolicyRequestInput,
  requestHash,
  type ResourceType,
} from "../policy/request.ts";
import type { ApiContext } from "./context.ts";
import { errorResponse } from "./errors.ts";
import { MCP_PATH } from "./mcp.ts";

/** The header that carries an approved approval's ID when a request is repeated. */
export const APPROVAL_HEADER = "x-nzcore-approval";

/** Routes (`METHOD /path`, Hono syntax) that pass without a decision of the gate. */
export const UNGATED_ROUTES: ReadonlySet<string> = new Set([
  "GET /v1/health",
  "GET /v1/openapi.json",
  // Every MCP tool call passes the gate as the agent principal (mcp.ts).
  `ALL ${MCP_PATH}`,
]);

/**
 * Routes the local admin token (the owner's, in the data directory) may use
 * whatever the policy set decides, so that a set shutting every token out can
 * still be shown, replaced or reset (`nzcore policy show|set|reset`). The
 * decision is still made and logged, and the override noted as `policy.override`.
 */
export const OWNER_REPAIR_ROUTES: ReadonlySet<string> = new Set([
  "GET /v1/policy",
  "PUT /v1/policy",
  "POST /v1/policy/reset",
]);

/** What the gate knows of a request when it names the resource. */
export interface RouteRequest {
  /** The route's path parameters, decoded. */
  params: Record<string, string>;
  /** The JSON body when it is an object (undefined for none or a malformed one: the route then refuses it). */
  body: Record<string, unknown> | undefined;
}

/** The action and resource a route asks the gate about. */
export interface RouteRule {
  /** The NZ-POLICY-01 action. */
  action: ActionName;
  /** The resource type. */
  type: ResourceType;
  /** The resource's ID from the request (`*` for a whole collection). */
  id: (request: RouteRequest) => string;
  /** Facts for the request's context beyond `source: "api"`. */
  context?: (request: RouteRequest) => PolicyContext;
}

const all = () => "*";
const param = (name: string) => (r: RouteRequest) => r.params[name] ?? "*";
const field = (...names: string[]) => (r: RouteRequest) => {
  for (const name of names) {
    const value = r.body?.[name];
    if (typeof value === "string" && value !== "") return value;
  }
  return "*";
};
const rule = (action: ActionName, type: ResourceType, id: RouteRule["id"], context?: RouteRule["context"]) => ({
  action,
  type,
  id,
  context,
});
const NODE_ID = /^[0-9a-f]{64}$/;

/** The admin routes and their actions (NZ-POLICY-01 "HTTP routes"). */
const RULES: ReadonlyMap<string, RouteRule> = new Map([
  ["GET /v1/state", rule("node.state", "node", () => "local")],
  ["GET /v1/log/verify", rule("storage.read", "storage", () => "log")],
  ["GET /v1/events", rule("node.state", "node", () => "events")],
  ["GET /v1/identities", rule("storage.read", "identity", all)],
  ["POST /v1/identities", rule("identity.create", "identity", field("name"))],
  ["POST /v1/identities/:ref/activate", rule("identity.activate", "identity", param("ref"))],
  ["POST /v1/identities/:ref/export", rule("identity.export", "identity", param("ref"))],
  ["POST /v1/identities/import", rule("identity.import", "identity", field("name"))],
  ["GET /v1/tokens", rule("storage.read", "token", all)],
  ["POST /v1/tokens", rule("token.create", "token", field("name"))],
  ["DELETE /v1/tokens/:id", rule("token.revoke", "token", param("id"))],
  ["GET /v1/peers", rule("peer.list", "peer", all)],
  ["GET /v1/lan", rule("peer.list", "peer", all)],
  [
    "POST /v1/peers",
    rule("peer.connect", "peer", field("peer", "address"), (r) => {
      const peer = r.body?.peer;
      return typeof peer === "string" && NODE_ID.test(peer) ? { peer } : {};
    }),
  ],
  ["DELETE /v1/peers/:id", rule("peer.disconnect", "peer", param("id"))],
  ["POST /v1/peers/:id/messages", rule("peer.send", "peer", param("id"))],
  // An introduction sends `to` a signed message naming `peer` and its addresses.
  ["POST /v1/peers/introduce", rule("peer.send", "peer", field("to"))],
  ["GET /v1/identity/uri", rule("node.state", "node", () => "uri")],
  ["POST /v1/policy/check", rule("approval.list", "policy", () => "check")],
  ["GET /v1/approvals", rule("approval.list", "approval", all)],
  ["GET /v1/approvals/:id", rule("approval.list", "approval", param("id"))],
  ["POST /v1/approvals/:id/approve", rule("approval.decide", "approval", param("id"))],
  ["POST /v1/approvals/:id/deny", rule("approval.decide", "approval", param("id"))],
  ["GET /v1/policy", rule("storage.read", "policy", () => "active")],
  ["PUT /v1/policy", rule("policy.update", "policy", () => "active")],
  ["POST /v1/policy/reset", rule("policy.update", "policy", () => "active")],
  ["GET /v1/capabilities", rule("storage.read", "capability", all)],
  ["POST /v1/capabilities", rule("capability.grant", "capability", grantee, grantContext)],
  ["DELETE /v1/capabilities", rule("capability.revoke", "capability", grantee, grantContext)],
  ["GET /v1/services", rule("service.list", "service", all)],
  ["POST /v1/services/:name/start", rule("service.start", "service", param("name"))],
  ["POST /v1/services/:name/stop", rule("service.stop", "service", param("name"))],
  ["POST /v1/services/:name/restart", rule("service.restart", "service", param("name"))],
  // The DHT is storage other nodes keep: reads and lookups read, publishing writes.
  ["GET /v1/dht", rule("node.state", "node", () => "dht")],
  ["POST /v1/dht/find-node", rule("peer.list", "peer", field("target"))],
  ["GET /v1/dht/peers/:id", rule("peer.list", "peer", param("id"))],
  ["PUT /v1/dht/values/:name", rule("storage.write", "storage", () => "dht-values")],
  ["DELETE /v1/dht/values/:name", rule("storage.delete", "storage", () => "dht-values")],
  ["GET /v1/dht/values/:did/:name", rule("storage.read", "storage", () => "dht-values")],
  ["POST /v1/dht/services", rule("storage.write", "storage", () => "dht-services")],
  ["DELETE /v1/dht/services/:name", rule("storage.delete", "storage", () => "dht-services")],
  ["GET /v1/dht/services", rule("service.list", "service", () => "dht")],
]);

function grantee(r: RouteRequest): string {
  const p = r.body?.principal as { type?: unknown; id?: unknown } | undefined;
  return typeof p?.type === "string" && typeof p.id === "string" ? `${p.type}:${p.id}` : "*";
}

function grantContext(r: RouteRequest): PolicyContext {
  const capability = r.body?.capability;
  return typeof capability === "string" ? { path: capability } : {};
}

/**
 * `/v1/plugins` routes, by pattern, whatever their exact paths: `POST` on the
 * collection installs, and so do trusting a bundle signer and packing a bundle
 * signed by the node (`/v1/plugins/trust`, `/v1/plugins/pack`: they make code
 * installable); `DELETE` of one uninstalls; anything reaching a plugin's own
 * code (`/v1/plugins/{name}/http/*`, any method) or changing its state
 * (enable, disable, reload, cli, ...) runs it; other `GET`s read.
 */
function pluginRule(method: string, pattern: string): RouteRule | undefined {
  if (pattern !== "/v1/plugins" && !pattern.startsWith("/v1/plugins/")) return undefined;
  const name = (r: RouteRequest) => r.params.name ?? r.params.id ?? r.params.ref ?? Object.values(r.params)[0] ?? "*";
  if (pattern.includes("/http")) return rule("plugin.run", "plugin", name);
  if (pattern === "/v1/plugins/trust" || pattern === "/v1/plugins/pack") {
    const what = pattern.slice("/v1/plugins/".length);
    return method === "GET" ? rule("storage.read", "plugin", () => what) : rule("plugin.install", "plugin", () => what);
  }
  if (method === "GET") return rule("storage.read", "plugin", name);
  if (pattern === "/v1/plugins" || pattern === "/v1/plugins/install") {
    return method === "POST"
      ? rule("plugin.install", "plugin", field("name", "id", "source", "path", "url"))
      : undefined;
  }
  if (method === "DELETE") return rule("plugin.uninstall", "plugin", name);
  return rule("plugin.run", "plugin", name);
}

/**
 * The action and resource of the route `method pattern` (Hono syntax,
 * `/v1/tokens/:id`), or undefined when it has none.
 */
export function routeRule(method: string, pattern: string): RouteRule | undefined {
  return RULES.get(`${method} ${pattern}`) ?? pluginRule(method, pattern);
}

/** `:name` segments of `pattern` matched against `path`, decoded. */
function paramsOf(pattern: string, path: string): Record<string, string> {
  const params: Record<string, string> = {};
  if (!pattern.includes(":")) return params;
  const names = pattern.split("/");
  const parts = path.split("/");
  for (let i = 0; i < names.length; i++) {
    if (!names[i].startsWith(":") || parts[i] === undefined) continue;
    let value = parts[i];
    try {
      value = decodeURIComponent(value);
    } catch {
      // keep the raw segment
    }
    params[names[i].slice(1).replace(/\{.*$/, "")] = value;
  }
  return params;
}

/** A resource ID in the request schema's form: printable ASCII without spaces, 1 to 256 characters. */
function resourceId(value: string): string {
  const id = value.replace(/[^\x21-\x7e]/g, "_").slice(0, 256);
  return id === "" ? "*" : id;
}

/** Approvals spent, and HTTP digests of the requests approvals were opened for, kept at most. */
const MAX_KEPT = 4096;

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.set(key, value);
  if (map.size > MAX_KEPT) map.delete(map.keys().next().value!);
}

/**
 * Builds the gate middleware for `ctx`; it runs after bearer authentication,
 * the scope guard and the body limit.
 */
export function policyGate(ctx: ApiContext): MiddlewareHandler {
  /** Approval ID → digest of the HTTP request it was opened for. */
  const opened = new Map<string, string>();
  /** Approval IDs already spent on a request. */
  const spent = new Map<string, true>();
  /** Requests allowed lately, with their decisions (valid while the decision's generation is the cache's). */
  const allowed = new Map<string, { request: PolicyRequest; decision: Decision }>();
  return async (c, next) => {
    const token = c.get("token" as never) as TokenInfo | undefined;
    // A GET is decided by its token and path alone (no body; the query names no resource). One this middleware
    // saw allowed under the current generation (no policy, entity or grant changed since) gets the same decision
    // without a fresh parse and encoding, and is logged all the same.
    const remembered = token && c.req.method === "GET" ? `${token.id} ${c.req.path}` : undefined;
    if (remembered !== undefined) {
      const seen = allowed.get(remembered);
      if (seen && seen.decision.generation === ctx.node.policy.cache.generation) {
        await ctx.node.policy.record(seen.request, seen.decision);
        return next();
      }
    }
    const pattern = routePath(c, -1);
    const method = c.req.method === "HEAD" ? "GET" : c.req.method;
    if (!token || pattern === "*" || pattern === "" || pattern === "/*") return next(); // no route: 404 follows
    if (UNGATED_ROUTES.has(`${method} ${pattern}`) || UNGATED_ROUTES.has(`ALL ${pattern}`)) return next();
    const found = routeRule(method, pattern);
    if (!found) {
      return errorResponse(c, 403, "policy_denied", `${method} ${pattern} is mapped to no policy action; refused`);
    }
    // Bytes, not text: a plugin's HTTP route reads the same body as bytes after this (Hono caches it).
    const body = method === "GET" ? EMPTY : new Uint8Array(await c.req.arrayBuffer());
    const request: RouteRequest = { params: paramsOf(pattern, c.req.path), body: objectOf(body) };
    const input: PolicyRequestInput = {
      principal: { type: "token", id: token.id },
      action: found.action,
      resource: { type: found.type, id: resourceId(found.id(request)) },
      context: { source: "api", ...found.context?.(request) },
    };
    const gate = ctx.node.policy;
    const approvalId = c.req.header(APPROVAL_HEADER);
    if (approvalId !== undefined) {
      const refused = spend(approvalId, input, digestOf(c, body));
      if (refused) return errorResponse(c, 403, "approval_refused", refused);
      void gate.log.note("approval.used", {
        approval: approvalId,
        principal: `token:${token.id}`,
        action: input.action,
        resource: `${input.resource.type}:${input.resource.id}`,
      });
      return next();
    }
    const decision = await gate.check(input);
    if (decision.outcome === "ALLOW") {
      if (remembered !== undefined) {
        if (allowed.size >= MAX_KEPT) allowed.clear();
        allowed.set(remembered, { request: parsePolicyRequest(input), decision });
      }
      return next();
    }
    if (OWNER_REPAIR_ROUTES.has(`${method} ${pattern}`) && ctx.node.tokens.isMemoryOnly(token.id)) {
      void gate.log.note("policy.override", {
        principal: `token:${token.id}`,
        action: input.action,
        outcome: decision.outcome,
        why: "the local admin token may always repair the policy set",
      });
      return next();
    }
    const why = decision.reasons.join("; ") || "no policy permits it";
    if (decision.outcome === "DENY") {
      return errorResponse(
        c,
        403,
        "policy_denied",
        `${input.action} on ${input.resource.type}:${input.resource.id} ` +
          `denied by policy: ${why}`,
      );
    }
    const id = decision.approval!.id;
    remember(opened, id, digestOf(c, body));
    return c.json({
      outcome: "REQUIRE_APPROVAL",
      approval: id,
      risk: decision.risk,
      reasons: decision.reasons,
      message: `${input.action} needs an operator's approval: approval ${id} is pending (${why}). Once approved, ` +
        `repeat the same request with the header ${APPROVAL_HEADER}: ${id}`,
    }, 202);
  };

  /** Spends the approval `id` on `input` (HTTP request `digest`), or says why it cannot be. */
  function spend(id: string, input: PolicyRequestInput, digest: string): string | undefined {
    if (!/^[0-9a-f]{16}$/.test(id)) return `Invalid ${APPROVAL_HEADER}: expected an approval ID (16 hex digits)`;
    let approval;
    try {
      approval = ctx.node.policy.approvals.get(id);
    } catch {
      return `No approval ${id}`;
    }
    if (approval.status !== "approved") return `Approval ${id} is ${approval.status}`;
    if (approval.requestHash !== requestHash(parsePolicyRequest(input)) || opened.get(id) !== digest) {
      return `Approval ${id} was given for another request`;
    }
    if (spent.has(id)) return `Approval ${id} was already used`;
    remember(spent, id, true);
    return undefined;
  }
}

const EMPTY = new Uint8Array(0);

function objectOf(body: Uint8Array): Record<string, unknown> | undefined {
  if (body.length === 0) return undefined;
  try {
    const value = JSON.parse(new TextDecoder().decode(body));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Hex SHA-256 of the HTTP request as the route sees it: method, path, query and body. */
function digestOf(c: Context, body: Uint8Array): string {
  const url = new URL(c.req.url);
  return toHex(sha256(concat(utf8(`${c.req.method} ${url.pathname}${url.search}\n`), body)));
}
