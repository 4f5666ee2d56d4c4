/**
 * One node per data directory: an exclusive advisory lock on `node.lock`.
 * The operating system releases it when the process ends, even by `kill -9`,
 * so a stale lock never blocks a restart.
 *
 * @module
 */

import { join } from "node:path";
import { StorageLockedError } from "../errors.ts";

/** Name of the lock file in the data directory. */
export const LOCK_FILE = "node.lock";

/** A held data directory lock; release it with `release()` or `using`. */
export interface DirectoryLock extends Disposable {
  readonly path: string;
  release(): void;
}

/**
 * Takes the exclusive lock of `dir` and writes this process's id into it.
 *
 * @throws {StorageLockedError} when another process holds it.
 */
export async function lockDirectory(dir: string): Promise<DirectoryLock> {
  const path = join(dir, LOCK_FILE);
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  if (!(await file.tryLock(true))) {
    let holder = "another process";
    try {
      const pid = new TextDecoder().decode(await Deno.readFile(path)).trim();
      if (/^\d+$/.test(pid)) holder = `process ${pid}`;
    } catch {
      // the pid is informative only
    }
    file.close();
    throw new StorageLockedError(`The data directory ${dir} is in use by ${holder}: one node per data directory`);
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    try {
      file.unlockSync();
    } finally {
      file.close();
    }
  };
  return { path, release, [Symbol.dispose]: release };
}
