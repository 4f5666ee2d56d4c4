/**
 * The node's life cycle on a data directory: what it refuses to open, and
 * that whatever happens the directory's lock is released.
 */

import { equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { CorruptFileError } from "../../../kernel/errors.ts";
import { IdentityStore } from "../../../kernel/identity/identities.ts";
import { FILES } from "../../../kernel/node/config.ts";
import { Node } from "../../../kernel/node/node.ts";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";
import { EventLog } from "../../../kernel/storage/event_log.ts";
import { lockDirectory } from "../../../kernel/storage/lock.ts";
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

Deno.test("close() releases the lock even when closing the store fails", async () => {
  await using d = await tempDir();
  const node = await Node.open({ dataDir: d.path });
  const closeStore = node.store.close.bind(node.store);
  node.store.close = () => {
    closeStore();
    throw new Error("cannot close the store");
  };
  await rejects(node.close(), /cannot close the store/);
  using lock = await lockDirectory(d.path);
  ok(lock.path.endsWith("node.lock"));
});

Deno.test("a failed start releases the lock and wipes what it loaded, and keeps the identities on disk", async () => {
  await using d = await tempDir();
  const first = await Node.open({ dataDir: d.path });
  const nodeId = first.identity.nodeId;
  await first.close();

  const { open: openLog } = EventLog;
  const { close: closeStore } = EncryptedStore.prototype;
  const { close: closeIdentities } = IdentityStore.prototype;
  const { warn } = console;
  let identitiesClosed = 0;
  EventLog.open = () => Promise.reject(new Error("log unreadable"));
  EncryptedStore.prototype.close = function (this: EncryptedStore) {
    closeStore.call(this);
    throw new Error("cannot close the store");
  };
  IdentityStore.prototype.close = function (this: IdentityStore) {
    identitiesClosed++;
    closeIdentities.call(this);
  };
  console.warn = () => {};
  try {
    await rejects(Node.open({ dataDir: d.path }), /log unreadable/);
  } finally {
    EventLog.open = openLog;
    EncryptedStore.prototype.close = closeStore;
    IdentityStore.prototype.close = closeIdentities;
    console.warn = warn;
  }
  equal(identitiesClosed, 1);
  const again = await Node.open({ dataDir: d.path });
  equal(again.created, false);
  equal(again.identities.size, 1);
  equal(again.identity.nodeId, nodeId);
  await again.close();
});
