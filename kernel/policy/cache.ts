/**
 * The decision cache (NZ-POLICY-01 "Cache"): decisions keyed by the
 * canonical encoding of their request, bounded, least recently used out
 * first. {@linkcode DecisionCache.invalidate} drops every entry; the gate
 * calls it on any change of the policy set, the entities or the grants, so a
 * cached decision is always the one a fresh evaluation would give.
 *
 * @module
 */

/** A bounded LRU map from canonical requests to decisions. */
export class DecisionCache<T> {
  #max: number;
  #map = new Map<string, T>();
  #generation = 0;
  /** Hits since the cache was made. */
  hits = 0;
  /** Misses since the cache was made. */
  misses = 0;

  /** Makes a cache holding at most `max` decisions (default 10,000). */
  constructor(max = 10_000) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`Invalid cache size ${max}: expected >= 1`);
    this.#max = max;
  }

  /** Number of decisions held. */
  get size(): number {
    return this.#map.size;
  }

  /** Bumped by every {@linkcode DecisionCache.invalidate}. */
  get generation(): number {
    return this.#generation;
  }

  /** The decision for `key`, made most recently used; undefined when absent. */
  get(key: string): T | undefined {
    const value = this.#map.get(key);
    if (value === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.#map.delete(key);
    this.#map.set(key, value);
    return value;
  }

  /**
   * Stores the decision for `key`, made under `generation`: a decision made
   * before an invalidation that happened while it was being made is dropped.
   */
  set(key: string, value: T, generation = this.#generation): void {
    if (generation !== this.#generation) return;
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!);
  }

  /** Drops every decision and bumps the generation. */
  invalidate(): void {
    this.#generation++;
    this.#map = new Map();
  }
}
