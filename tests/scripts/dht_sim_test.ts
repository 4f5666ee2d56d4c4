import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { crypto } from "../../kernel/crypto/mod.ts";
import { seedSigner } from "../../scripts/_dht_sim_nzcore.ts";
import {
  isPublicIpv4,
  parseSimArgs,
  percentile,
  runSim,
  seededRandom,
  type SimOptions,
  type SimResult,
} from "../../scripts/dht_sim.ts";

const SCRIPT = fileURLToPath(new URL("../../scripts/dht_sim.ts", import.meta.url));

/**
 * A small, fast run: 5 ms links, no loss (our DHT does not resend a lost
 * query, so at 1% loss about 2% of lookups fail, too many of a few dozen for
 * a steady threshold), no settling.
 */
function small(overrides: Partial<SimOptions>): SimOptions {
  const args = ["--nodes", "100", "--lookups", "100", "--latency", "5", "--loss", "0", "--settle", "0"];
  return { ...parseSimArgs(args), ...overrides };
}

Deno.test("dht-sim: 80 nzcore nodes with 10% churn print one JSON line whose lookups found their targets", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SCRIPT,
      ...["--nodes", "80", "--lookups", "80", "--churn", "0.1", "--latency", "5", "--loss", "0.002"],
      ...["--settle", "0", "--seed", "3"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  equal(output.code, 0, stderr);
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  equal(lines.length, 1, "stdout is the JSON line alone");
  const result: SimResult = JSON.parse(lines[0]);
  equal(result.impl, "nzcore");
  equal(result.nodes, 80);
  equal(result.lookups, 80);
  equal(result.churned, 8);
  ok(result.success >= 0.95, `success ${result.success}`);
  ok(result.hops.p50 >= 1 && result.hops.p50 <= result.hops.p99, JSON.stringify(result.hops));
  ok(result.lookupMs.p50 > 0 && result.lookupMs.p50 <= result.lookupMs.p99, JSON.stringify(result.lookupMs));
  ok(result.network.delivered > 0 && result.network.lost > 0, "0.2% of the datagrams are lost");
  ok(result.network.unreachable > 0, "datagrams to the nodes that left arrive nowhere");
  ok(stderr.includes("join: 80 nodes"), stderr);
});

Deno.test("dht-sim: with 20% Sybils answering made-up IDs, or junk, lookups still find their targets", async () => {
  for (const sybilMode of ["fake", "junk"] as const) {
    const result = await runSim(small({ nodes: 50, lookups: 50, sybil: 0.2, sybilMode, seed: 5 }));
    equal(result.sybils, 10);
    ok(result.sybilAnswers >= 10, `${sybilMode}: the Sybils answered ${result.sybilAnswers} queries of the lookups`);
    ok(result.success >= 0.95, `${sybilMode}: success ${result.success}`);
  }
});

Deno.test("dht-sim: two workers run the nodes as one network, datagrams crossing between them", async () => {
  const result = await runSim(small({ nodes: 40, lookups: 40, workers: 2, seed: 7 }));
  equal(result.workers, 2);
  equal(result.success, 1);
  ok(result.network.forwarded > result.network.sent / 4, JSON.stringify(result.network));
  const { sent, delivered, lost, unreachable } = result.network;
  const accounted = delivered + lost + unreachable; // the rest were in flight when the shards reported
  ok(accounted <= sent && accounted > 0.99 * sent, JSON.stringify(result.network));
});

Deno.test("dht-sim: options are checked, naming the one that is wrong", () => {
  const defaults = parseSimArgs([]);
  equal(defaults.impl, "nzcore");
  equal(defaults.nodes, 1000);
  equal(defaults.loss, 0.01);
  equal(defaults.paths, undefined);
  eql(parseSimArgs(["--impl", "bittorrent-dht", "--churn", "0.2", "--paths", "1"]).churn, 0.2);
  throws(() => parseSimArgs(["--nodes", "1"]), /--nodes must be an integer from 2/);
  throws(() => parseSimArgs(["--nodes", "ten"]), /--nodes/);
  throws(() => parseSimArgs(["--churn", "1.5"]), /--churn must be a number from 0 to 1/);
  throws(() => parseSimArgs(["--loss", ""]), /--loss/);
  throws(() => parseSimArgs(["--impl", "kad"]), /--impl must be one of nzcore, bittorrent-dht/);
  throws(() => parseSimArgs(["--sybil-mode", "loud"]), /--sybil-mode must be fake or junk/);
  throws(() => parseSimArgs(["--workers", "0"]), /--workers must be an integer from 1 to 16/);
  throws(() => parseSimArgs(["--nodse", "3"]), TypeError);
});

Deno.test("dht-sim: the baseline refuses what only our DHT has", async () => {
  for (const args of [["--sybil", "0.1"], ["--paths", "2"]]) {
    const options = parseSimArgs(["--impl", "bittorrent-dht", "--nodes", "10", ...args]);
    let error: unknown;
    await runSim(options).catch((e) => error = e);
    ok(error instanceof RangeError && /with --impl nzcore only/.test(error.message), String(error));
  }
});

Deno.test("dht-sim: percentiles are nearest-rank; addresses are public; the seeded signer signs as the provider does", () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  equal(percentile(sorted, 50), 50);
  equal(percentile(sorted, 99), 99);
  equal(percentile([7], 99), 7);
  ok(Number.isNaN(percentile([], 50)));
  for (
    const [a, b, c] of [[10, 1, 1], [127, 0, 0], [100, 64, 0], [172, 16, 0], [192, 168, 1], [198, 51, 100], [224, 0, 0]]
  ) {
    equal(isPublicIpv4(a, b, c), false, `${a}.${b}.${c}.x`);
  }
  ok(isPublicIpv4(8, 8, 8) && isPublicIpv4(100, 128, 0) && isPublicIpv4(172, 32, 0));
  const a = seededRandom(9), b = seededRandom(9);
  eql(Array.from({ length: 5 }, a), Array.from({ length: 5 }, b));
  const seed = new Uint8Array(32).map((_, i) => i * 7);
  const signer = seedSigner(seed);
  const message = new TextEncoder().encode("dht-sim");
  eql(signer.publicKey, crypto.ed25519PublicKey(seed));
  eql(signer.sign(message), crypto.ed25519Sign(seed, message));
});

Deno.test("dht-sim: bittorrent-dht runs on the same memory network, and its lookups find their targets", async () => {
  const result = await runSim(small({ impl: "bittorrent-dht", nodes: 40, lookups: 40, loss: 0 }));
  equal(result.impl, "bittorrent-dht");
  equal(result.success, 1);
  ok(result.hops.p50 >= 1, JSON.stringify(result.hops));
  ok(result.targetMs.p50 <= result.lookupMs.p50, "its lookups go on after the target answered");
});
