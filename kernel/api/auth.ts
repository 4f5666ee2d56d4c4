/**
 * Bearer-token authentication with a limit on failed attempts: after
 * `maxFailures` failures within `windowMs` from one client, that client gets
 * 429 until `blockMs` has passed. Tokens are verified by the node's
 * {@linkcode TokenStore}; {@linkcode scopeGuard} then keeps agent-scoped
 * tokens to the MCP endpoint.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type { TokenInfo, TokenStore } from "../node/tokens.ts";
import { errorResponse } from "./errors.ts";

/** Limits of failed authentication. */
export interface AuthLimits {
  /** Failures within `windowMs` that block a client. */
  maxFailures: number;
  /** Window in which failures are counted, in milliseconds. */
  windowMs: number;
  /** How long a blocked client waits, in milliseconds. */
  blockMs: number;
}

/** Default limits: 10 failures a minute block the client for a minute. */
export const DEFAULT_AUTH_LIMITS: AuthLimits = { maxFailures: 10, windowMs: 60_000, blockMs: 60_000 };

interface Failures {
  count: number;
  since: number;
  blockedUntil: number;
}

/** Counts failed attempts per client. */
export class FailureLimiter {
  #limits: AuthLimits;
  #now: () => number;
  #clients = new Map<string, Failures>();

  /** Creates a limiter with `limits` and the clock `now`, in milliseconds. */
  constructor(limits: AuthLimits = DEFAULT_AUTH_LIMITS, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /** Whether any client has failed lately; when none has, no request needs its client's address. */
  get idle(): boolean {
    return this.#clients.size === 0;
  }

  /** Milliseconds `client` must still wait, or 0. */
  blockedFor(client: string): number {
    const f = this.#clients.get(client);
    if (!f) return 0;
    const now = this.#now();
    if (f.blockedUntil <= now && now - f.since > this.#limits.windowMs) {
      this.#clients.delete(client); // its window has passed: forget it
      return 0;
    }
    return Math.max(0, f.blockedUntil - now);
  }

  /** Records one failure of `client`. */
  fail(client: string): void {
    const now = this.#now();
    let f = this.#clients.get(client);
    if (!f || now - f.since > this.#limits.windowMs) {
      f = { count: 0, since: now, blockedUntil: 0 };
      this.#clients.set(client, f);
    }
    if (++f.count >= this.#limits.maxFailures) f.blockedUntil = now + this.#limits.blockMs;
    if (this.#clients.size > 10_000) this.#prune(now);
  }

  #prune(now: number): void {
    for (const [client, f] of this.#clients) {
      if (f.blockedUntil < now && now - f.since > this.#limits.windowMs) this.#clients.delete(client);
    }
  }
}

/** The client name of every request that came over the Unix socket. */
export const UNIX_CLIENT = "unix";

/** The client's address as Deno.serve reports it, or {@linkcode UNIX_CLIENT} for the socket. */
export function clientOf(env: unknown): string {
  const addr = (env as { remoteAddr?: Deno.Addr } | undefined)?.remoteAddr;
  if (addr && "hostname" in addr) return addr.hostname;
  return UNIX_CLIENT;
}

/** Middleware that requires `Authorization: Bearer <token>`. */
export function bearerAuth(tokens: TokenStore, limiter: FailureLimiter): MiddlewareHandler {
  return async (c, next) => {
    // Reading the remote address costs a call into the runtime: skip it while no client has failed.
    let client = limiter.idle ? undefined : clientOf(c.env);
    const wait = client === undefined ? 0 : limiter.blockedFor(client);
    if (wait > 0) {
      c.header("Retry-After", String(Math.ceil(wait / 1000)));
      return errorResponse(c, 429, "rate_limited", "Too many failed authentications; try again later");
    }
    const header = c.req.header("authorization");
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    const result = tokens.verify(match?.[1]);
    if (!result.ok) {
      client ??= clientOf(c.env);
      // The socket is the owner's alone (0600 in a 0700 directory): its failures are not limited, so a mistyped
      // token can never lock the owner's CLI out.
      if (client !== UNIX_CLIENT) limiter.fail(client);
      c.header("WWW-Authenticate", 'Bearer realm="nzcore"');
      const message = {
        missing: "A bearer token is required",
        malformed: "The bearer token is malformed",
        unknown: "The bearer token is not valid",
        expired: "The bearer token has expired",
        revoked: "The bearer token was revoked",
      }[result.reason];
      return errorResponse(c, 401, `token_${result.reason}`, message);
    }
    c.set("token" as never, result.info as never);
    await next();
  };
}

/**
 * Middleware, after {@linkcode bearerAuth}, that keeps an `agent`-scoped token
 * to `agentPaths` (the MCP endpoint, whose tool calls pass the policy gate):
 * anywhere else it answers 403 `scope_denied`. `admin` tokens pass.
 */
export function scopeGuard(agentPaths: ReadonlySet<string>): MiddlewareHandler {
  const allowed = [...agentPaths].join(", ");
  return async (c, next) => {
    const token = c.get("token" as never) as TokenInfo | undefined;
    if (token?.scope === "agent" && !agentPaths.has(c.req.path)) {
      return errorResponse(c, 403, "scope_denied", `This token is for agents: it may use ${allowed} only`);
    }
    await next();
  };
}
