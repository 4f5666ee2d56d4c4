import { deepStrictEqual as eql } from "node:assert/strict";
import { checkTargets } from "../../scripts/bench_dht.ts";
import type { SimResult } from "../../scripts/dht_sim.ts";

function run(impl: SimResult["impl"], churn: number, p50: number, p99: number, success: number): SimResult {
  return { impl, nodes: 1000, churn, hops: { p50, p99, mean: p50, max: p99 }, success } as SimResult;
}

Deno.test("bench_dht: the issue's targets are checked for our DHT only, with 95% success under churn", () => {
  eql(
    checkTargets([
      run("nzcore", 0, 3, 5, 0.99),
      run("nzcore", 0.2, 4, 6, 0.95),
      run("bittorrent-dht", 0, 9, 9, 0.5),
    ]),
    {
      "nzcore n=1000 churn=0: hops p50 <= 3": true,
      "nzcore n=1000 churn=0: hops p99 <= 5": true,
      "nzcore n=1000 churn=0: success >= 99%": true,
      "nzcore n=1000 churn=0.2: hops p50 <= 3": false,
      "nzcore n=1000 churn=0.2: hops p99 <= 5": false,
      "nzcore n=1000 churn=0.2: success >= 95%": true,
    },
  );
  eql(checkTargets([run("nzcore", 0, 2, 3, 0.989)])["nzcore n=1000 churn=0: success >= 99%"], false);
});
