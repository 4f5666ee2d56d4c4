/**
 * Dialing again after a failure, with exponential backoff and jitter, for any
 * {@linkcode Transport}: the WebSocket client and the channel manager use it
 * to reconnect.
 *
 * @module
 */

import { DialError } from "./errors.ts";
import type { Duplex, Transport } from "./types.ts";

/** Options of {@linkcode dialWithRetry}. */
export interface RetryOptions {
  /** Aborts the whole attempt sequence, waits included; without it, only `maxAttempts` ends it. */
  signal?: AbortSignal;
  /** Dials at most this many times in all (`Infinity`: until `signal` aborts); default 5. */
  maxAttempts?: number;
  /** The first backoff, in milliseconds; it doubles with each failure. Default 250. */
  baseDelayMs?: number;
  /** The longest backoff, in milliseconds; default 30 000. */
  maxDelayMs?: number;
  /** Each attempt gives up after this many milliseconds; default 10 000. */
  attemptTimeoutMs?: number;
  /** Source of jitter in [0, 1); default `Math.random`. */
  random?: () => number;
  /** Called after a failed attempt, before waiting `delayMs`. */
  onRetry?: (event: RetryEvent) => void;
}

/** What {@linkcode RetryOptions.onRetry} is told. */
export interface RetryEvent {
  /** The attempt that failed, from 1. */
  attempt: number;
  /** Why it failed. */
  error: unknown;
  /** How long until the next attempt, in milliseconds. */
  delayMs: number;
}

/** The parameters of {@linkcode backoffDelay}. */
export type BackoffOptions = Pick<RetryOptions, "baseDelayMs" | "maxDelayMs" | "random">;

const DEFAULTS = { maxAttempts: 5, baseDelayMs: 250, maxDelayMs: 30_000, attemptTimeoutMs: 10_000 };

function checkMs(value: number, name: string, min: number): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < min) {
    throw new RangeError(`Cannot retry: ${name} must be a number >= ${min}, got ${value}`);
  }
  return value;
}

/**
 * The wait after failed attempt number `attempt`: "equal jitter", half of
 * `min(maxDelayMs, baseDelayMs * 2^(attempt - 1))` plus a random part of the
 * other half. The fixed half keeps a flapping peer from being hammered; the
 * random half spreads the nodes that lost it at the same moment.
 *
 * @param attempt The attempt that failed, from 1.
 * @param options `baseDelayMs`, `maxDelayMs`, `random` as in {@linkcode RetryOptions}.
 * @returns The delay in milliseconds, rounded down.
 *
 * @example The third wait with the default base, without and with full jitter
 * ```ts
 * import { backoffDelay } from "./retry.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(backoffDelay(3, { random: () => 0 }), 500);
 * equal(backoffDelay(3, { random: () => 0.999 }), 999);
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const base = options.baseDelayMs ?? DEFAULTS.baseDelayMs;
  const max = options.maxDelayMs ?? DEFAULTS.maxDelayMs;
  const cap = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  const jitter = Math.min(Math.max((options.random ?? Math.random)(), 0), 1);
  return Math.floor(cap / 2 + (cap / 2) * jitter);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(id);
      reject(signal!.reason);
    };
    const id = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Errors that another attempt cannot fix: a malformed address, a scheme no transport handles. */
function isPermanent(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError;
}

/**
 * Dials `addr` until a dial succeeds, waiting {@linkcode backoffDelay} between
 * attempts. Each attempt has its own timeout (`attemptTimeoutMs`) joined to
 * `signal`.
 *
 * @param transport The transport to dial with.
 * @param addr The address.
 * @param options Attempts, delays, jitter source, `signal`, `onRetry`.
 * @returns The first connection made.
 * @throws {DialError} After `maxAttempts` failures; `cause` is the last failure.
 * @throws {TypeError|SyntaxError|RangeError} At once, for an address no attempt can dial.
 * @throws The signal's reason, if it aborts, even during a wait.
 *
 * @example Reconnect to a listener that comes up late
 * ```ts
 * import { dialWithRetry } from "./retry.ts";
 * import { MemoryTransport } from "./memory.ts";
 * import { equal } from "node:assert/strict";
 *
 * const memory = new MemoryTransport();
 * const late = setTimeout(async () => {
 *   await memory.listen("memory://late-server", { onConnection: (conn) => void conn.close() });
 * }, 5);
 * const conn = await dialWithRetry(memory, "memory://late-server", { baseDelayMs: 4, maxAttempts: 20 });
 * equal(conn.remoteAddr, "memory://late-server");
 * conn.abort();
 * clearTimeout(late);
 * ```
 */
export async function dialWithRetry(transport: Transport, addr: string, options: RetryOptions = {}): Promise<Duplex> {
  const maxAttempts = options.maxAttempts ?? DEFAULTS.maxAttempts;
  if (maxAttempts !== Infinity && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
    throw new RangeError(`Cannot retry: maxAttempts must be an integer >= 1 or Infinity, got ${maxAttempts}`);
  }
  checkMs(options.baseDelayMs ?? DEFAULTS.baseDelayMs, "baseDelayMs", 0);
  checkMs(options.maxDelayMs ?? DEFAULTS.maxDelayMs, "maxDelayMs", 0);
  const attemptTimeoutMs = checkMs(options.attemptTimeoutMs ?? DEFAULTS.attemptTimeoutMs, "attemptTimeoutMs", 1);
  const { signal } = options;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    const timeout = AbortSignal.timeout(attemptTimeoutMs);
    try {
      return await transport.dial(addr, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (isPermanent(error)) throw error;
      if (attempt >= maxAttempts) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new DialError(`Cannot dial ${addr}: ${attempt} attempts failed, the last with: ${reason}`, {
          cause: error,
        });
      }
      const delayMs = backoffDelay(attempt, options);
      options.onRetry?.({ attempt, error, delayMs });
      await sleep(delayMs, signal);
    }
  }
}
