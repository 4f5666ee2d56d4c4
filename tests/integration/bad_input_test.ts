import { deepStrictEqual as eql, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { EncryptedStore } from "../../kernel/storage/encrypted_kv.ts";
import { openMasterKey } from "../../kernel/storage/master_key.ts";
import { sha256 } from "../../kernel/crypto/mod.ts";
import { toHex, utf8 } from "../../kernel/bytes.ts";
import { cli, StartFailed, startNode, tempDataDir } from "./_node_process.ts";

const PASS_ENV = "NZCORE_TEST_PASSPHRASE";

async function rawEntries(path: string): Promise<Map<string, Uint8Array>> {
  const kv = await Deno.openKv(path);
  const out = new Map<string, Uint8Array>();
  for await (const e of kv.list<Uint8Array>({ prefix: [] })) out.set(JSON.stringify(e.key, replacer), e.value);
  kv.close();
  return out;
}

function replacer(_key: string, value: unknown) {
  return value instanceof Uint8Array ? Array.from(value) : typeof value === "bigint" ? String(value) : value;
}

/** Opens the node's store with its key file, as an attacker with the keys could not but a test can. */
async function withStore<T>(dataDir: string, fn: (store: EncryptedStore) => Promise<T>): Promise<T> {
  const master = await openMasterKey(dataDir);
  const store = await EncryptedStore.open(join(dataDir, "store.kv"), master);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

Deno.test("a passphrase-sealed node refuses a wrong passphrase, keeps its data, and opens with the right one", async () => {
  await using dir = await tempDataDir();
  const init = await cli(["--data-dir", dir.path, "init", "--passphrase-env", PASS_ENV], {
    env: { [PASS_ENV]: "correct horse battery staple" },
  });
  equal(init.code, 0, init.stderr);
  const did = /identity: (\S+)/.exec(init.stdout)![1];
  const before = await Deno.readFile(join(dir.path, "master.json"));

  const wrong = await startNode(dir.path, {
    args: ["--passphrase-env", PASS_ENV, "--api", "127.0.0.1:0"],
    env: { [PASS_ENV]: "wrong horse" },
  }).catch((e) => e);
  ok(wrong instanceof StartFailed);
  equal(wrong.code, 1);
  match(wrong.output, /Wrong passphrase/);
  eql(await Deno.readFile(join(dir.path, "master.json")), before);

  const missing = await startNode(dir.path).catch((e) => e);
  ok(missing instanceof StartFailed);
  match(missing.output, /sealed by a passphrase, and none was given/);

  await using node = await startNode(dir.path, {
    args: ["--passphrase-env", PASS_ENV, "--api", "127.0.0.1:0"],
    env: { [PASS_ENV]: "correct horse battery staple" },
  });
  match(node.output(), new RegExp(did));
  equal((await (await node.api("/v1/state")).json()).storage.keyMode, "passphrase");
  await node.stop();
});

Deno.test("a passphrase variable outside the permission profile is refused clearly", async () => {
  await using dir = await tempDataDir();
  const out = await cli(["--data-dir", dir.path, "init", "--passphrase-env", "MY_SECRET"], {
    env: { MY_SECRET: "x" },
  });
  equal(out.code, 1);
  match(out.stderr, /only NZCORE_\* variables/);
});

Deno.test("a missing, corrupt or world-readable key file stops the start with a clear error", async () => {
  await using dir = await tempDataDir();
  equal((await cli(["--data-dir", dir.path, "init"])).code, 0);
  const keyFile = join(dir.path, "master.key");
  const key = await Deno.readFile(keyFile);

  await Deno.chmod(keyFile, 0o644);
  const open = await startNode(dir.path).catch((e) => e);
  match(open.output, /readable by other users.*chmod 600/);
  await Deno.chmod(keyFile, 0o600);

  await Deno.writeFile(keyFile, key.subarray(0, 20));
  const short = await startNode(dir.path).catch((e) => e);
  match(short.output, /key file .* is corrupt/);

  const other = key.slice();
  other[0] ^= 1;
  await Deno.writeFile(keyFile, other);
  const wrong = await startNode(dir.path).catch((e) => e);
  match(wrong.output, /does not unseal the master key/);

  await Deno.remove(keyFile);
  const gone = await startNode(dir.path).catch((e) => e);
  match(gone.output, /key file .* is missing/);

  await Deno.writeFile(keyFile, key, { mode: 0o600 });
  await Deno.chmod(keyFile, 0o600);
  await using node = await startNode(dir.path);
  equal((await fetch(node.url + "/v1/health")).status, 200);
  await node.stop();
});

Deno.test("a corrupt master.json is reported as corrupt, not overwritten", async () => {
  await using dir = await tempDataDir();
  equal((await cli(["--data-dir", dir.path, "init"])).code, 0);
  await Deno.writeTextFile(join(dir.path, "master.json"), "{ truncated");
  const out = await startNode(dir.path).catch((e) => e);
  ok(out instanceof StartFailed);
  match(out.output, /master\.json is corrupt/);
  equal(await Deno.readTextFile(join(dir.path, "master.json")), "{ truncated");
});

Deno.test("a tampered event log entry is reported by log verify while the node keeps running", async () => {
  await using dir = await tempDataDir();
  let node = await startNode(dir.path);
  for (let i = 0; i < 3; i++) {
    const r = await node.api("/v1/tokens", { method: "POST", body: JSON.stringify({ name: `t${i}` }) });
    equal(r.status, 201);
    await r.body?.cancel();
  }
  await node.stop();
  await withStore(dir.path, async (store) => {
    const kvKey = store.namespace(["log", "node"]).kvKey(["e", 2]);
    const entry = await store.raw.get<Uint8Array>(kvKey);
    const bytes = entry.value!.slice();
    bytes[bytes.length - 5] ^= 0x40;
    await store.raw.set(kvKey, bytes);
  });
  node = await startNode(dir.path);
  const verify = await cli(["--data-dir", dir.path, "log", "verify", "--json"]);
  equal(verify.code, 1);
  const report = JSON.parse(verify.stdout);
  equal(report.ok, false);
  match(report.problems.join("\n"), /entry 2: .*failed authentication/);
  equal((await fetch(node.url + "/v1/health")).status, 200);
  await node.stop();
});

Deno.test("a tampered token record is skipped at start: that token is refused, the others work", async () => {
  await using dir = await tempDataDir();
  let node = await startNode(dir.path);
  const tokens: { token: string }[] = [];
  for (const name of ["a", "b"]) {
    tokens.push(await (await node.api("/v1/tokens", { method: "POST", body: JSON.stringify({ name }) })).json());
  }
  await node.stop();
  await withStore(dir.path, async (store) => {
    const kvKey = store.namespace(["system"]).kvKey(["token", toHex(sha256(utf8(tokens[0].token)))]);
    const entry = await store.raw.get<Uint8Array>(kvKey);
    ok(entry.value, "the token record is where the spec says");
    const bytes = entry.value.slice();
    bytes[40] ^= 1;
    await store.raw.set(kvKey, bytes);
  });
  node = await startNode(dir.path);
  match(node.output(), /skipping a token: .*failed authentication/);
  equal((await node.api("/v1/state", { token: tokens[0].token })).status, 401);
  equal((await node.api("/v1/state", { token: tokens[1].token })).status, 200);
  await node.stop();
});

Deno.test("a tampered identity record stops the start with an integrity error and is left as it was", async () => {
  await using dir = await tempDataDir();
  const init = await cli(["--data-dir", dir.path, "init"]);
  equal(init.code, 0);
  const nodeId = /node id:\s+(\S+)/.exec(init.stdout)![1];
  const kvKey = await withStore(dir.path, async (store) => {
    const key = store.namespace(["system"]).kvKey(["identity", nodeId]);
    const entry = await store.raw.get<Uint8Array>(key);
    const bytes = entry.value!.slice();
    bytes[50] ^= 1;
    await store.raw.set(key, bytes);
    return key;
  });
  const before = await rawEntries(join(dir.path, "store.kv"));
  const out = await startNode(dir.path).catch((e) => e);
  ok(out instanceof StartFailed);
  match(out.output, /failed authentication/);
  const after = await rawEntries(join(dir.path, "store.kv"));
  eql(after.get(JSON.stringify(kvKey, replacer)), before.get(JSON.stringify(kvKey, replacer)));
});

Deno.test("kill -9 during writes loses no acknowledged write and the log still verifies", async () => {
  await using dir = await tempDataDir();
  const node = await startNode(dir.path);
  const acknowledged: string[] = [];
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      try {
        const r = await node.api("/v1/tokens", { method: "POST", body: JSON.stringify({ name: `w${w}-${i}` }) });
        if (r.status !== 201) break;
        acknowledged.push((await r.json()).token);
      } catch {
        break; // the process died mid-request: this write was never acknowledged
      }
    }
  });
  const deadline = Date.now() + 20_000;
  while (acknowledged.length < 60) {
    if (Date.now() > deadline) {
      stop = true;
      await node.stop("SIGKILL");
      throw new Error(`Only ${acknowledged.length} writes were acknowledged in 20 s:\n${node.output()}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await node.stop("SIGKILL");
  stop = true;
  await Promise.all(writers);
  ok(acknowledged.length >= 60);

  await using again = await startNode(dir.path);
  for (const token of acknowledged) {
    const r = await again.api("/v1/state", { token });
    equal(r.status, 200, `an acknowledged token was lost`);
    await r.body?.cancel();
  }
  const verify = await cli(["--data-dir", dir.path, "log", "verify", "--json"]);
  const report = JSON.parse(verify.stdout);
  ok(report.ok, report.problems.join("\n"));
  ok(report.entries >= acknowledged.length);
  await again.stop();
});
