/**
 * API bearer tokens. A token is `nzt_` followed by 43 base64url characters
 * (32 random bytes); the node stores only its SHA-256, sealed in the
 * `["system"]` namespace, and shows the token once, when it is created.
 * Verified tokens are cached in memory by hash, so a request costs one hash
 * and one map lookup.
 *
 * Every token has a {@linkcode TokenScope}: `admin` tokens reach every route;
 * `agent` tokens, for AI agents, reach only the MCP endpoint, whose tool calls
 * pass the policy gate. A stored record without a scope (written before scopes
 * existed) reads as `admin`.
 *
 * @module
 */

import { fromUtf8, toBase64Url, toHex, utf8 } from "../bytes.ts";
import { randomBytes } from "../crypto/mod.ts";
// noble, not node:crypto, for this per-request hash of 47 bytes: node:crypto's createHash costs more than the
// hash itself and, under load, its per-call native objects drove a node's memory from 76 MB to 300 MB.
import { sha256 } from "@noble/hashes/sha2.js";
import { NotFoundError } from "../errors.ts";
import type { Namespace } from "../storage/encrypted_kv.ts";

/** What a token may reach: `admin` every route, `agent` only the MCP endpoint. */
export type TokenScope = "admin" | "agent";

/** The scopes, for validation. */
export const TOKEN_SCOPES: readonly TokenScope[] = ["admin", "agent"];

/** What is stored and shown of a token (never the token itself). */
export interface TokenInfo {
  /** Random public identifier, 16 lowercase hex characters; used to revoke the token. */
  id: string;
  /** The name given at creation. */
  name: string;
  /** What the token may reach; records stored before scopes existed read as `admin`. */
  scope: TokenScope;
  /** Creation time, in milliseconds since the epoch. */
  created: number;
  /** Milliseconds since the epoch; absent for tokens that never expire. */
  expires?: number;
  /** Revocation time, in milliseconds since the epoch; absent while the token is valid. */
  revoked?: number;
}

/** A newly created token: the only time its secret is seen. */
export interface CreatedToken extends TokenInfo {
  /** The bearer token itself: `nzt_` and 43 base64url characters. */
  token: string;
}

/** Why a token was refused. */
export type TokenRefusal = "missing" | "malformed" | "unknown" | "expired" | "revoked";

const TOKEN = /^nzt_[A-Za-z0-9_-]{43}$/;
const RECENT_MAX = 1024;

function hashOf(token: string): string {
  return toHex(sha256(utf8(token)));
}

/** The node's API tokens. */
export class TokenStore {
  #ns: Namespace;
  #now: () => number;
  #byHash = new Map<string, TokenInfo>();
  /**
   * Hashes of recently presented valid tokens, so a busy client costs a map
   * lookup rather than a SHA-256 per request. Held in memory only, like the
   * request headers that carry the tokens; the record's state (revoked,
   * expired) is still checked on every request.
   */
  #recent = new Map<string, string>();
  /** Hashes of the tokens created with `persist: false` (the local admin token): they never reach the store. */
  #memoryOnly = new Set<string>();

  private constructor(ns: Namespace, now: () => number) {
    this.#ns = ns;
    this.#now = now;
  }

  /**
   * Loads every token record from `ns`. A record that fails authentication
   * is skipped (it can authenticate nobody) and reported to `onCorrupt`.
   */
  static async open(
    ns: Namespace,
    options: { now?: () => number; onCorrupt?: (error: Error) => void } = {},
  ): Promise<TokenStore> {
    const store = new TokenStore(ns, options.now ?? Date.now);
    const onError = options.onCorrupt ?? ((error: Error) => console.warn(`nzcore: skipping a token: ${error.message}`));
    for await (const { key, value } of ns.list<TokenInfo>(["token"], { onError })) {
      store.#byHash.set(String(key[1]), { ...value, scope: value.scope === "agent" ? "agent" : "admin" });
    }
    return store;
  }

  /** Creates a token; `ttlMs` bounds its life, `scope` (default `admin`) what it reaches. */
  async create(
    name: string,
    options: { ttlMs?: number; persist?: boolean; scope?: TokenScope } = {},
  ): Promise<CreatedToken> {
    if (options.scope !== undefined && !TOKEN_SCOPES.includes(options.scope)) {
      throw new RangeError(`Invalid token scope "${options.scope}": expected ${TOKEN_SCOPES.join(" or ")}`);
    }
    const secret = randomBytes(32);
    const token = "nzt_" + toBase64Url(secret);
    secret.fill(0);
    const info: TokenInfo = {
      id: toHex(randomBytes(8)),
      name,
      scope: options.scope ?? "admin",
      created: this.#now(),
    };
    if (options.ttlMs !== undefined) info.expires = info.created + options.ttlMs;
    const hash = hashOf(token);
    if (options.persist ?? true) await this.#ns.set(["token", hash], info);
    else this.#memoryOnly.add(hash);
    this.#byHash.set(hash, info);
    return { ...info, token };
  }

  /** Whether token `id` lives in memory only (created with `persist: false`: the local admin token). */
  isMemoryOnly(id: string): boolean {
    for (const hash of this.#memoryOnly) {
      if (this.#byHash.get(hash)?.id === id) return true;
    }
    return false;
  }

  /** Every token, newest first, revoked and expired ones included. */
  list(): TokenInfo[] {
    return [...this.#byHash.values()].sort((a, b) => b.created - a.created);
  }

  /**
   * Revokes token `id`. A token created with `persist: false` is revoked in
   * memory only: it is never written to the store, not even as revoked.
   *
   * @throws {NotFoundError} when there is none.
   */
  async revoke(id: string): Promise<TokenInfo> {
    for (const [hash, info] of this.#byHash) {
      if (info.id !== id) continue;
      const revoked = { ...info, revoked: info.revoked ?? this.#now() };
      if (!this.#memoryOnly.has(hash)) await this.#ns.set(["token", hash], revoked);
      this.#byHash.set(hash, revoked);
      return revoked;
    }
    throw new NotFoundError(`No token with id ${id}`);
  }

  /** Checks a presented token: its record, or why it is refused. */
  verify(token: string | undefined): { ok: true; info: TokenInfo } | { ok: false; reason: TokenRefusal } {
    if (!token) return { ok: false, reason: "missing" };
    if (!TOKEN.test(token)) return { ok: false, reason: "malformed" };
    let hash = this.#recent.get(token);
    if (hash === undefined) {
      hash = hashOf(token);
      const known = this.#byHash.has(hash);
      if (!known) return { ok: false, reason: "unknown" };
      if (this.#recent.size >= RECENT_MAX) this.#recent.clear();
      this.#recent.set(token, hash);
    }
    const info = this.#byHash.get(hash);
    if (!info) return { ok: false, reason: "unknown" };
    if (info.revoked !== undefined) return { ok: false, reason: "revoked" };
    if (info.expires !== undefined && this.#now() >= info.expires) return { ok: false, reason: "expired" };
    return { ok: true, info };
  }
}

/** Reads a token file written by the node, trimming whitespace. */
export async function readTokenFile(path: string): Promise<string> {
  return fromUtf8(await Deno.readFile(path)).trim();
}
