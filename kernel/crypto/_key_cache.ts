/**
 * A small least-recently-used map for the native provider's KeyObjects.
 * Building a KeyObject from DER costs about as much as one signature, so
 * repeated use of one key (the node's identity, a peer's public key) reuses it.
 *
 * @module
 */

/** A bounded map that evicts the least recently used entry. Not shared across workers. */
export class KeyCache<V> {
  readonly #limit: number;
  readonly #map = new Map<string, V>();

  /** Creates a cache holding at most `limit` entries. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Returns the entry for `id`, creating it with `create` on a miss. */
  get(id: string, create: () => V): V {
    const hit = this.#map.get(id);
    if (hit !== undefined) {
      // Re-insert so Map order is recency order.
      this.#map.delete(id);
      this.#map.set(id, hit);
      return hit;
    }
    const value = create();
    this.#map.set(id, value);
    if (this.#map.size > this.#limit) {
      const oldest = this.#map.keys().next().value as string;
      this.#map.delete(oldest);
    }
    return value;
  }

  /** The number of entries held. */
  get size(): number {
    return this.#map.size;
  }

  /** Drops every entry. */
  clear(): void {
    this.#map.clear();
  }
}
