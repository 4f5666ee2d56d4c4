import { equal } from "node:assert/strict";
import { DecisionLog } from "../../../kernel/policy/decision_log.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";

Deno.test("the decision log loses nothing when a burst of decisions exceeds what one KV commit may carry", async () => {
  const store = await EncryptedStore.open(undefined, crypto.getRandomValues(new Uint8Array(32)));
  const failures: Error[] = [];
  const log = await DecisionLog.open(store, Identity.generate("log"), { onFailure: (e) => failures.push(e) });
  try {
    // 40,000 distinct decisions of about 300 bytes: as one batch (256 entries of 128), far beyond Deno KV's 800 KiB
    // per atomic commit.
    const reason = "x".repeat(200);
    for (let i = 0; i < 40_000; i++) {
      await log.record({
        request: i.toString(16).padStart(64, "0"),
        principal: "token:t",
        action: "node.state",
        resource: "node:self",
        outcome: "ALLOW",
        risk: "low",
        reasons: [reason],
        policies: ["token-all"],
        generation: 1,
      });
    }
    await log.flush();
    equal(failures.length, 0, failures.map((e) => e.message).join("; "));
    let decisions = 0;
    for await (const entry of log.log.read()) {
      decisions += ((entry.data as { decisions?: unknown[] }).decisions ?? []).length;
    }
    equal(decisions, 40_000);
    equal((await log.log.verify()).ok, true);
  } finally {
    store.close();
  }
});
