/**
 * Small helpers for cancellable waiting, shared by every layer of the kernel
 * (as `bytes.ts` and `errors.ts` are).
 *
 * @module
 */

/**
 * Settles as `promise` does, or rejects with the signal's reason as soon as
 * `signal` aborts (then `cleanup` runs). A rejection of `promise` that comes
 * after the abort is absorbed, never unhandled.
 *
 * @param promise The operation to wait for.
 * @param signal Aborts the wait; without one, `promise` itself is returned.
 * @param cleanup Runs once when the abort wins.
 * @returns `promise`'s outcome, unless the signal aborts first.
 *
 * @example Give up on a slow operation
 * ```ts
 * import { abortable } from "./async.ts";
 *
 * const never = new Promise<number>(() => {});
 * const reason = await abortable(never, AbortSignal.timeout(10)).catch((e) => e);
 * if (!(reason instanceof DOMException)) throw new Error("Cannot abort the wait");
 * ```
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, cleanup?: () => void): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    cleanup?.();
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      cleanup?.();
      promise.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Waits `ms` milliseconds, or rejects with the signal's reason as soon as it
 * aborts (the timer is cleared then).
 *
 * @param ms The wait.
 * @param signal Cuts the wait short.
 * @returns A promise that resolves after `ms`.
 *
 * @example A wait cut short
 * ```ts
 * import { sleep } from "./async.ts";
 *
 * const reason = await sleep(60_000, AbortSignal.timeout(10)).catch((e) => e);
 * if (!(reason instanceof DOMException)) throw new Error("Cannot cut the wait short");
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
