import { equal, match, ok, rejects } from "node:assert/strict";
import { NotFoundError } from "../../../kernel/errors.ts";
import { TokenStore } from "../../../kernel/node/tokens.ts";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";

async function withStore(fn: (store: EncryptedStore) => Promise<void>) {
  const store = await EncryptedStore.open(undefined, new Uint8Array(32).fill(9));
  try {
    await fn(store);
  } finally {
    store.close();
  }
}

Deno.test("a created token verifies, survives a reload, and its secret is not stored", async () => {
  await withStore(async (store) => {
    const tokens = await TokenStore.open(store.namespace(["system"]));
    const created = await tokens.create("ci");
    match(created.token, /^nzt_[A-Za-z0-9_-]{43}$/);
    ok(tokens.verify(created.token).ok);
    const again = await TokenStore.open(store.namespace(["system"]));
    ok(again.verify(created.token).ok);
    equal(JSON.stringify(again.list()).includes(created.token), false);
  });
});

Deno.test("verify() says why a token is refused", async () => {
  await withStore(async (store) => {
    let now = 1000;
    const tokens = await TokenStore.open(store.namespace(["system"]), { now: () => now });
    const short = await tokens.create("short", { ttlMs: 10 });
    const gone = await tokens.create("gone");
    await tokens.revoke(gone.id);
    const reason = (t: string | undefined) => {
      const r = tokens.verify(t);
      return r.ok ? "ok" : r.reason;
    };
    equal(reason(undefined), "missing");
    equal(reason("Bearer"), "malformed");
    equal(reason("nzt_" + "x".repeat(43)), "unknown");
    equal(reason(gone.token), "revoked");
    equal(reason(short.token), "ok");
    now += 10;
    equal(reason(short.token), "expired");
  });
});

Deno.test("revoking an unknown id throws NotFoundError", async () => {
  await withStore(async (store) => {
    const tokens = await TokenStore.open(store.namespace(["system"]));
    await rejects(tokens.revoke("0000000000000000"), NotFoundError);
  });
});

Deno.test("non-persisted tokens vanish on reload", async () => {
  await withStore(async (store) => {
    const tokens = await TokenStore.open(store.namespace(["system"]));
    const local = await tokens.create("local-admin", { persist: false });
    ok(tokens.verify(local.token).ok);
    const again = await TokenStore.open(store.namespace(["system"]));
    equal(again.verify(local.token).ok, false);
  });
});

Deno.test("revoking a non-persisted token revokes it in memory and writes nothing to the store", async () => {
  await withStore(async (store) => {
    const ns = store.namespace(["system"]);
    const tokens = await TokenStore.open(ns);
    const local = await tokens.create("local-admin", { persist: false });
    const revoked = await tokens.revoke(local.id);
    equal(revoked.id, local.id);
    ok(revoked.revoked !== undefined);
    const result = tokens.verify(local.token);
    equal(result.ok ? "ok" : result.reason, "revoked");
    const entries = [];
    for await (const entry of ns.list(["token"])) entries.push(entry);
    equal(entries.length, 0);
    equal((await TokenStore.open(ns)).list().length, 0);
  });
});

Deno.test("a token's scope is admin by default, agent on request, and survives a reload", async () => {
  await withStore(async (store) => {
    const tokens = await TokenStore.open(store.namespace(["system"]));
    const admin = await tokens.create("ops");
    const agent = await tokens.create("planner", { scope: "agent" });
    equal(admin.scope, "admin");
    equal(agent.scope, "agent");
    const again = await TokenStore.open(store.namespace(["system"]));
    const verified = again.verify(agent.token);
    equal(verified.ok && verified.info.scope, "agent");
    const listed = Object.fromEntries(again.list().map((t) => [t.name, t.scope]));
    equal(listed.ops, "admin");
    equal(listed.planner, "agent");
    const revoked = await again.revoke(agent.id);
    equal(revoked.scope, "agent");
    const reloaded = (await TokenStore.open(store.namespace(["system"]))).list().find((t) => t.id === agent.id);
    equal(reloaded?.scope, "agent");
    await rejects(tokens.create("bad", { scope: "root" as never }), RangeError);
  });
});

Deno.test("a stored record without a scope (written before scopes) reads as admin", async () => {
  await withStore(async (store) => {
    const ns = store.namespace(["system"]);
    const tokens = await TokenStore.open(ns);
    const created = await tokens.create("old", { scope: "agent" });
    // Rewrite the record as an older node stored it: no scope field.
    for await (const { key, value } of ns.list<Record<string, unknown>>(["token"])) {
      const { scope: _scope, ...old } = value;
      await ns.set(key, old);
    }
    const again = await TokenStore.open(ns);
    const verified = again.verify(created.token);
    ok(verified.ok);
    equal(verified.info.scope, "admin");
    equal(again.list()[0].scope, "admin");
  });
});
