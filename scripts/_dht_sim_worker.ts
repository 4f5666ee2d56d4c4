/**
 * A worker of the DHT simulation: runs one shard (`_dht_sim_shard.ts`) for the
 * coordinator in `dht_sim.ts` (`--workers`).
 *
 * @module
 */

import { type FromWorker, serveShard, type ToWorker } from "./_dht_sim_shard.ts";

serveShard(
  self as unknown as {
    onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
    postMessage(message: FromWorker): void;
  },
);
