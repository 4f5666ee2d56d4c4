/**
 * The node's life cycle on a data directory: what it refuses to open, and
 * that whatever happens the directory's lock is released.
 */

import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { CorruptFileError } from "../../../kernel/errors.ts";
import { FILES } from "../../../kernel/node/config.ts";
import { Node } from "../../../kernel/node/node.ts";
import { KEY_FILE, MASTER_FILE } from "../../../kernel/storage/master_key.ts";
import { tempDir } from "../storage/_helpers.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("Node.open() refuses a store whose master.json is missing, and creates no new key", async () => {
  await using d = await tempDir();
  const node = await Node.open({ dataDir: d.path });
  await node.close();
  const master = await Deno.readFile(join(d.path, MASTER_FILE));
  await Deno.remove(join(d.path, MASTER_FILE));
  const error = await Node.open({ dataDir: d.path }).catch((e) => e);
  ok(error instanceof CorruptFileError, String(error));
  match(error.message, new RegExp(`${MASTER_FILE} is missing`));
  match(error.message, /Restore master\.json/);
  ok(error.message.includes(FILES.store));
  equal(await exists(join(d.path, MASTER_FILE)), false);
  ok(await exists(join(d.path, KEY_FILE)));
  // The lock was released, and with master.json restored the node opens as before.
  await Deno.writeFile(join(d.path, MASTER_FILE), master, { mode: 0o600 });
  const again = await Node.open({ dataDir: d.path });
  equal(again.created, false);
  equal(again.identities.size, 1);
  await again.close();
});
