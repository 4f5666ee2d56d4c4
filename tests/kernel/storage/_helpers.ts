/**
 * Shared fixtures of the storage and identity tests: real Deno KV files in
 * temporary directories, and raw-level tampering helpers.
 */

import { join } from "node:path";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";
import type { ScryptParams } from "../../../kernel/crypto/mod.ts";

/** Small scrypt cost so passphrase tests stay fast. */
export const FAST_SCRYPT: ScryptParams = { N: 2 ** 10, r: 8, p: 1, dkLen: 32 };

/** A fixed master key, and a second one for "wrong key" cases. */
export const MASTER_A: Uint8Array = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
export const MASTER_B: Uint8Array = Uint8Array.from({ length: 32 }, (_, i) => 200 - i);

/** A temporary directory removed on dispose. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "nzcore-test-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** A store on a fresh KV file; disposing closes it and removes the directory. */
export async function tempStore(master: Uint8Array = MASTER_A): Promise<
  & { store: EncryptedStore; dir: string; path: string; reopen(master?: Uint8Array): Promise<EncryptedStore> }
  & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "nzcore-kv-" });
  const path = join(dir, "node.kv");
  const opened: EncryptedStore[] = [];
  const open = async (key: Uint8Array) => {
    const s = await EncryptedStore.open(path, key);
    opened.push(s);
    return s;
  };
  const store = await open(master);
  return {
    store,
    dir,
    path,
    reopen: (key = master) => open(key),
    async [Symbol.asyncDispose]() {
      for (const s of opened) {
        try {
          s.close();
        } catch {
          // closed by the test already
        }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Every raw entry of a Deno KV database. */
export async function rawEntries(kv: Deno.Kv, prefix: Deno.KvKey = []): Promise<Deno.KvEntry<unknown>[]> {
  const out: Deno.KvEntry<unknown>[] = [];
  for await (const entry of kv.list({ prefix })) out.push(entry);
  return out;
}

/** The raw record stored at `kvKey`; throws when there is none. */
export async function rawRecord(kv: Deno.Kv, kvKey: Deno.KvKey): Promise<Uint8Array> {
  const entry = await kv.get<Uint8Array>(kvKey);
  if (!(entry.value instanceof Uint8Array)) throw new Error(`No raw record at ${String(kvKey)}`);
  return entry.value;
}

/** Flips one bit of the raw record at `kvKey` (negative `index` counts from the end). */
export async function flipRawByte(kv: Deno.Kv, kvKey: Deno.KvKey, index: number): Promise<void> {
  const record = (await rawRecord(kv, kvKey)).slice();
  record[(index + record.length) % record.length] ^= 0x01;
  await kv.set(kvKey, record);
}

/** Moves the raw record at `from` to `to`, deleting `from`. */
export async function moveRaw(kv: Deno.Kv, from: Deno.KvKey, to: Deno.KvKey): Promise<void> {
  const record = await rawRecord(kv, from);
  await kv.atomic().delete(from).set(to, record).commit();
}

/** Whether `needle` occurs in `haystack`. */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** A string that identifies a key by type and content of each part, so keys can be compared and sorted. */
export function keyId(key: readonly unknown[]): string {
  return JSON.stringify(
    key.map((p) => {
      if (p instanceof Uint8Array) return ["bytes", [...p]];
      if (Object.is(p, -0)) return ["number", "-0"];
      return [typeof p, String(p)];
    }),
  );
}
