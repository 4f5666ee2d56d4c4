/**
 * One node per data directory: the lock refuses a second holder in this
 * process and in another one, and a killed holder never leaves it stale.
 */

import { equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { LOCK_FILE, lockDirectory } from "../../../kernel/storage/lock.ts";
import { StorageLockedError } from "../../../kernel/errors.ts";
import { tempDir } from "./_helpers.ts";

const LOCK_MODULE = new URL("../../../kernel/storage/lock.ts", import.meta.url).href;

Deno.test("lockDirectory() writes this process's id into node.lock", async () => {
  await using d = await tempDir();
  using lock = await lockDirectory(d.path);
  equal(lock.path, join(d.path, LOCK_FILE));
  equal((await Deno.readTextFile(lock.path)).trim(), String(Deno.pid));
  equal((await Deno.stat(lock.path)).mode! & 0o777, 0o600);
});

Deno.test("a second lock in the same process is refused with StorageLockedError naming the pid", async () => {
  await using d = await tempDir();
  using _lock = await lockDirectory(d.path);
  const error = await lockDirectory(d.path).catch((e) => e);
  ok(error instanceof StorageLockedError, String(error));
  equal(error.name, "StorageLockedError");
  match(error.message, new RegExp(`process ${Deno.pid}\\b`));
  match(error.message, new RegExp(d.path.replaceAll("/", "\\/")));
  // the refused attempt did not disturb the holder's pid
  equal((await Deno.readTextFile(join(d.path, LOCK_FILE))).trim(), String(Deno.pid));
});

Deno.test("release() lets another take the lock, and releasing twice is harmless", async () => {
  await using d = await tempDir();
  const first = await lockDirectory(d.path);
  first.release();
  first.release();
  const second = await lockDirectory(d.path);
  await rejects(lockDirectory(d.path), StorageLockedError);
  second[Symbol.dispose]();
  using _third = await lockDirectory(d.path);
});

Deno.test("a lock with `using` is released at the end of its scope", async () => {
  await using d = await tempDir();
  {
    using _lock = await lockDirectory(d.path);
    await rejects(lockDirectory(d.path), StorageLockedError);
  }
  using _again = await lockDirectory(d.path);
});

Deno.test("a refused lock names another process when the lock file holds no pid", async () => {
  await using d = await tempDir();
  using _lock = await lockDirectory(d.path);
  await Deno.writeTextFile(join(d.path, LOCK_FILE), "garbage");
  await rejects(
    lockDirectory(d.path),
    (e: Error) => e instanceof StorageLockedError && /another process/.test(e.message),
  );
});

Deno.test("locks of different directories are independent", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  using _la = await lockDirectory(a.path);
  using _lb = await lockDirectory(b.path);
});

/** Starts a child process that takes the lock of `dir` and waits until killed. */
async function spawnHolder(dir: string): Promise<Deno.ChildProcess> {
  const script = `
    import { lockDirectory } from ${JSON.stringify(LOCK_MODULE)};
    await lockDirectory(${JSON.stringify(dir)});
    console.log("locked");
    setInterval(() => {}, 60_000);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", "--quiet", script],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("locked")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The lock holder exited before locking: ${out}`);
    out += value;
  }
  reader.releaseLock();
  return child;
}

Deno.test("a lock held by a child process is refused, and taken once the child is killed with SIGKILL", async () => {
  await using d = await tempDir();
  const child = await spawnHolder(d.path);
  try {
    const error = await lockDirectory(d.path).catch((e) => e);
    ok(error instanceof StorageLockedError, String(error));
    match(error.message, new RegExp(`process ${child.pid}\\b`));
  } finally {
    child.kill("SIGKILL");
    const status = await child.status;
    await child.stdout.cancel().catch(() => {});
    equal(status.signal, "SIGKILL");
  }
  // the operating system released the dead holder's lock: a stale lock never blocks
  using lock = await lockDirectory(d.path);
  equal((await Deno.readTextFile(lock.path)).trim(), String(Deno.pid));
});

Deno.test("a child process cannot take a lock this process holds", async () => {
  await using d = await tempDir();
  using _lock = await lockDirectory(d.path);
  const script = `
    import { lockDirectory } from ${JSON.stringify(LOCK_MODULE)};
    try { await lockDirectory(${JSON.stringify(d.path)}); console.log("taken"); }
    catch (e) { console.log(e.name + ": " + e.message); }
  `;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", "--no-config", "--quiet", script] }).output();
  const text = new TextDecoder().decode(out.stdout);
  match(text, /^StorageLockedError: .*process \d+/);
  match(text, new RegExp(`process ${Deno.pid}\\b`));
});
