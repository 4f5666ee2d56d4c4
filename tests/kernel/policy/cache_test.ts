/** The decision cache: LRU order, its bound, and invalidation by generation. */

import { equal } from "node:assert/strict";
import { DecisionCache } from "../../../kernel/policy/cache.ts";

Deno.test("the least recently used decision goes first", () => {
  const cache = new DecisionCache<number>(2);
  cache.set("a", 1);
  cache.set("b", 2);
  equal(cache.get("a"), 1);
  cache.set("c", 3);
  equal(cache.get("b"), undefined);
  equal(cache.get("a"), 1);
  equal(cache.get("c"), 3);
  equal(cache.size, 2);
  equal(cache.hits, 3);
  equal(cache.misses, 1);
});

Deno.test("invalidate() drops everything, and a decision made before it is not stored", () => {
  const cache = new DecisionCache<number>();
  cache.set("a", 1);
  const generation = cache.generation;
  cache.invalidate();
  equal(cache.get("a"), undefined);
  cache.set("b", 2, generation);
  equal(cache.get("b"), undefined);
  cache.set("b", 2, cache.generation);
  equal(cache.get("b"), 2);
});
