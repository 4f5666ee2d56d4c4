/**
 * An encrypted key-value store on Deno KV (NZ-CRYPTO-01 section "Storage").
 *
 * Every value is sealed with XChaCha20-Poly1305 under a per-namespace key;
 * the associated data binds the format version, the record kind and the full
 * Deno KV key, so a value that is moved to another key, tampered with or
 * truncated fails to open and is reported with `IntegrityError`, never
 * returned. Key parts are stored as 16-byte HMAC tags, so the KV file reveals
 * neither names nor identifiers; the original key travels inside the sealed
 * value. Values larger than one Deno KV value are split into sealed chunks
 * written before the manifest that points at them, so a crash never leaves a
 * manifest without its chunks.
 *
 * @example
 * ```ts ignore
 * const store = await EncryptedStore.open("node.kv", masterKey);
 * const ns = store.namespace(["system"]);
 * await ns.set(["greeting"], { text: "hello" });
 * console.log(await ns.get(["greeting"]));
 * store.close();
 * ```
 *
 * @module
 */

import { concat, toHex, utf8, wipe } from "../bytes.ts";
import { crypto, deriveKey, randomBytes, sha256 } from "../crypto/mod.ts";
import { LABEL_KV_TAG, LABEL_KV_VALUE } from "../crypto/labels.ts";
import { ConflictError, IntegrityError, isDiskFull, StorageFullError } from "../errors.ts";
import { createKeyedHmac, type KeyedHmac } from "../crypto/keyed_hmac.ts";
import { decodeKey, decodeValue, encodeKey, encodeKeyPart, encodeValue, type Key } from "./value_codec.ts";

export type { Key, KeyPart } from "./value_codec.ts";

// --- spec constants (NZ-CRYPTO-01 "Storage") ---
/** Format version of a stored record; bound in the associated data. */
export const RECORD_VERSION = 1;
/** Record kinds (byte 1 of a record). */
export const KIND_INLINE = 0x00;
export const KIND_MANIFEST = 0x01;
export const KIND_CHUNK = 0x02;
/** Length of a key-part tag: HMAC-SHA-256 truncated to 16 bytes. */
export const TAG_LEN = 16;
/** Length of a chunk generation identifier. */
export const GEN_LEN = 16;
const NONCE_LEN = 24;
const AEAD_TAG_LEN = 16;
const AD_PREFIX = utf8("nzcore/v1/kv\0");

// --- implementation constants ---
/** Deno KV's largest value (bytes). */
const KV_MAX_VALUE = 65_536;
/** Plaintext bytes per chunk, leaving room for the record header and tag. */
export const CHUNK_SIZE = 64_000;
/** Bytes per pre-write batch of chunks; Deno KV allows 819,200 per atomic commit. */
const BATCH_BYTES = 700_000;
/** String key parts whose tags each namespace keeps. */
const TAG_CACHE_SIZE = 4096;
/** Deno KV's getMany limit. */
const GET_MANY_MAX = 10;

/** One stored entry as `list` yields it. */
export interface Entry<T> {
  /** The entry's key, relative to its namespace. */
  key: Key;
  /** The opened value. */
  value: T;
}

/** Options of {@linkcode Namespace.list}. */
export interface ListOptions {
  /** Stop after this many entries. */
  limit?: number;
  /**
   * Called with each entry that fails authentication, which is then skipped;
   * without it, such an entry ends the listing with `IntegrityError`.
   */
  onError?: (error: IntegrityError) => void;
}

interface Sealed {
  kvKey: Deno.KvKey;
  record: Uint8Array;
  /** Chunks that must be durable before `record` is written. */
  chunks: { kvKey: Deno.KvKey; record: Uint8Array }[];
  gen?: Uint8Array;
}

/** The plaintext of a record: `u16be(len(K)) || K || payload`, with K = encodeKey(user key). */
function withKey(keyBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  if (keyBytes.length > 0xffff) throw new RangeError(`Invalid key: encoded length is ${keyBytes.length}`);
  const out = new Uint8Array(2 + keyBytes.length + payload.length);
  out[0] = keyBytes.length >> 8;
  out[1] = keyBytes.length & 0xff;
  out.set(keyBytes, 2);
  out.set(payload, 2 + keyBytes.length);
  return out;
}

function splitKey(plaintext: Uint8Array): { key: Key; body: Uint8Array } {
  if (plaintext.length < 2) throw new SyntaxError("Cannot decode record: too short");
  const length = (plaintext[0] << 8) | plaintext[1];
  if (2 + length > plaintext.length) throw new SyntaxError("Cannot decode record: key runs past the end");
  return { key: decodeKey(plaintext.subarray(2, 2 + length)), body: plaintext.subarray(2 + length) };
}

/** How often a commit re-reads and retries when a watched key changed under it. */
const COMMIT_ATTEMPTS = 8;

/** The prefix of the chunks of the value at `kvKey` (`["v", ...]`): `["c", ..., "g"]`. */
function chunkPrefixOf(kvKey: Deno.KvKey): Deno.KvKey {
  return ["c", ...kvKey.slice(1), "g"];
}

/** A full disk becomes StorageFullError; other errors pass as they are. */
function storageError(error: unknown, path: string | undefined): unknown {
  if (!isDiskFull(error)) return error;
  return new StorageFullError(`The disk holding ${path ?? "the store"} is full: nothing was written`, { cause: error });
}

function describe(key: Key): string {
  return "[" + key.map((p) => p instanceof Uint8Array ? `0x${toHex(p)}` : JSON.stringify(String(p))).join(", ") + "]";
}

function ad(kind: number, gen: Uint8Array | undefined, kvKey: Deno.KvKey): Uint8Array {
  const header = Uint8Array.of(RECORD_VERSION, kind);
  return concat(AD_PREFIX, header, gen ?? new Uint8Array(0), encodeKey(kvKey as Key));
}

/**
 * Reads the clear header of a record: its kind and, for a manifest, its chunk
 * generation. Used by garbage collection, which holds no namespace keys.
 */
function readHeader(record: Uint8Array): { kind: number; gen?: Uint8Array } | undefined {
  if (record.length < 2 || record[0] !== RECORD_VERSION) return undefined;
  const kind = record[1];
  if (kind === KIND_MANIFEST) {
    if (record.length < 2 + GEN_LEN) return undefined;
    return { kind, gen: record.subarray(2, 2 + GEN_LEN) };
  }
  return { kind };
}

/** One namespace of the store, sealed under keys of its own. */
export class Namespace {
  /** The namespace's name, a key prefix such as `["identity", nodeId]`. */
  readonly name: Key;
  #store: EncryptedStore;
  #kv: Deno.Kv;
  #valueKey: Uint8Array;
  #tagMac: KeyedHmac;
  /** Tags of recently used string parts; tags are stored in the clear anyway. */
  #tagCache = new Map<string, Uint8Array>();
  #nsTag: Uint8Array;

  /** @internal Use {@linkcode EncryptedStore.namespace}. */
  constructor(store: EncryptedStore, kv: Deno.Kv, name: Key, master: Uint8Array) {
    this.name = name;
    this.#store = store;
    this.#kv = kv;
    const context = encodeKey(name);
    this.#valueKey = deriveKey(master, LABEL_KV_VALUE, context);
    const tagKey = deriveKey(master, LABEL_KV_TAG, context);
    this.#tagMac = createKeyedHmac(tagKey);
    wipe(tagKey);
    const rootTagKey = deriveKey(master, LABEL_KV_TAG);
    this.#nsTag = crypto.hmacSha256(rootTagKey, context).subarray(0, TAG_LEN);
    wipe(rootTagKey);
  }

  #tags(key: Key): Uint8Array[] {
    const tags = new Array<Uint8Array>(key.length);
    for (let i = 0; i < key.length; i++) {
      const part = key[i];
      let tag = typeof part === "string" ? this.#tagCache.get(part) : undefined;
      if (!tag) {
        tag = this.#tagMac.digest(encodeKeyPart(part)).subarray(0, TAG_LEN);
        if (typeof part === "string" && part.length <= 256) {
          if (this.#tagCache.size >= TAG_CACHE_SIZE) this.#tagCache.clear();
          this.#tagCache.set(part, tag);
        }
      }
      tags[i] = tag;
    }
    return tags;
  }

  /** @internal The Deno KV key of a value. */
  kvKey(key: Key): Deno.KvKey {
    if (key.length === 0) throw new RangeError("Invalid key: expected at least one part");
    return ["v", this.#nsTag, ...this.#tags(key)];
  }

  #seal(kind: number, gen: Uint8Array | undefined, kvKey: Deno.KvKey, plaintext: Uint8Array): Uint8Array {
    const nonce = randomBytes(NONCE_LEN);
    const sealed = crypto.xchachaSeal(this.#valueKey, nonce, plaintext, ad(kind, gen, kvKey));
    const head = gen ? concat(Uint8Array.of(RECORD_VERSION, kind), gen) : Uint8Array.of(RECORD_VERSION, kind);
    return concat(head, nonce, sealed);
  }

  #open(record: Uint8Array, kvKey: Deno.KvKey, expectKind: number[], what: () => string): {
    kind: number;
    gen?: Uint8Array;
    plaintext: Uint8Array;
  } {
    const header = readHeader(record);
    if (!header || !expectKind.includes(header.kind)) {
      throw new IntegrityError(`Stored value at ${what()} is malformed: unknown format or kind`);
    }
    const offset = header.gen ? 2 + GEN_LEN : 2;
    if (record.length < offset + NONCE_LEN + AEAD_TAG_LEN) {
      throw new IntegrityError(`Stored value at ${what()} is truncated: length is ${record.length}`);
    }
    const nonce = record.subarray(offset, offset + NONCE_LEN);
    try {
      const plaintext = crypto.xchachaOpen(
        this.#valueKey,
        nonce,
        record.subarray(offset + NONCE_LEN),
        ad(header.kind, header.gen, kvKey),
      );
      return { kind: header.kind, gen: header.gen, plaintext };
    } catch (error) {
      throw new IntegrityError(
        `Stored value at ${what()} failed authentication: it was tampered with, truncated or moved`,
        { cause: error },
      );
    }
  }

  /** @internal Seals a value for writing, chunking it when it exceeds one Deno KV value. */
  seal(key: Key, value: unknown): Sealed {
    const kvKey = this.kvKey(key);
    const body = encodeValue(value);
    const keyBytes = encodeKey(key);
    const inline = withKey(keyBytes, body);
    if (inline.length + 2 + NONCE_LEN + AEAD_TAG_LEN <= KV_MAX_VALUE) {
      return { kvKey, record: this.#seal(KIND_INLINE, undefined, kvKey, inline), chunks: [] };
    }
    const gen = randomBytes(GEN_LEN);
    const chunkPrefix = chunkPrefixOf(kvKey);
    const chunks = [];
    const count = Math.ceil(body.length / CHUNK_SIZE);
    for (let i = 0; i < count; i++) {
      const chunkKey: Deno.KvKey = [...chunkPrefix, gen, i];
      const piece = body.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);
      chunks.push({ kvKey: chunkKey, record: this.#seal(KIND_CHUNK, undefined, chunkKey, piece) });
    }
    const manifest = withKey(keyBytes, encodeValue({ length: body.length, count, hash: sha256(body) }));
    return { kvKey, record: this.#seal(KIND_MANIFEST, gen, kvKey, manifest), chunks, gen };
  }

  async #decodeRecord<T>(kvKey: Deno.KvKey, record: Uint8Array, hint?: Key): Promise<Entry<T>> {
    const what = () => (hint ? describe(hint) : "a listed key");
    const opened = this.#open(record, kvKey, [KIND_INLINE, KIND_MANIFEST], what);
    let key: Key, body: Uint8Array;
    try {
      ({ key, body } = splitKey(opened.plaintext));
      if (opened.kind === KIND_MANIFEST) {
        const manifest = decodeValue<{ length: number; count: number; hash: Uint8Array }>(body);
        body = await this.#readChunks(kvKey, opened.gen!, manifest, () => describe(key));
      }
    } catch (error) {
      if (error instanceof IntegrityError) throw error;
      throw new IntegrityError(`Stored value at ${what()} is malformed`, { cause: error });
    }
    return { key, value: decodeValue<T>(body) };
  }

  async #readChunks(
    kvKey: Deno.KvKey,
    gen: Uint8Array,
    manifest: { length: number; count: number; hash: Uint8Array },
    what: () => string,
  ): Promise<Uint8Array> {
    const prefix: Deno.KvKey = ["c", ...kvKey.slice(1), "g", gen];
    const pieces: Uint8Array[] = [];
    for (let start = 0; start < manifest.count; start += GET_MANY_MAX) {
      const keys: Deno.KvKey[] = [];
      for (let i = start; i < Math.min(manifest.count, start + GET_MANY_MAX); i++) keys.push([...prefix, i]);
      const entries = await this.#kv.getMany<Uint8Array[]>(keys);
      for (const entry of entries) {
        if (!(entry.value instanceof Uint8Array)) {
          throw new IntegrityError(
            `Stored value at ${what()} is truncated: chunk ${String(entry.key.at(-1))} is missing`,
          );
        }
        pieces.push(this.#open(entry.value, entry.key, [KIND_CHUNK], what).plaintext);
      }
    }
    const body = concat(...pieces);
    if (body.length !== manifest.length || toHex(sha256(body)) !== toHex(manifest.hash)) {
      throw new IntegrityError(`Stored value at ${what()} does not match its manifest`);
    }
    return body;
  }

  /**
   * Reads one value.
   *
   * @returns the value, or `undefined` when the key holds none.
   * @throws {IntegrityError} when the stored bytes fail authentication.
   */
  async get<T = unknown>(key: Key): Promise<T | undefined> {
    const kvKey = this.kvKey(key);
    const entry = await this.#kv.get<Uint8Array>(kvKey);
    if (entry.value === null) return undefined;
    if (!(entry.value instanceof Uint8Array)) throw new IntegrityError(`Stored value at ${describe(key)} is malformed`);
    return (await this.#decodeRecord<T>(kvKey, entry.value, key)).value;
  }

  /** Reads several values at once; `undefined` where a key holds none. */
  async getMany<T = unknown>(keys: readonly Key[]): Promise<(T | undefined)[]> {
    const out: (T | undefined)[] = [];
    for (let start = 0; start < keys.length; start += GET_MANY_MAX) {
      const batch = keys.slice(start, start + GET_MANY_MAX);
      const kvKeys = batch.map((k) => this.kvKey(k));
      const entries = await this.#kv.getMany<Uint8Array[]>(kvKeys);
      for (let i = 0; i < entries.length; i++) {
        const value = entries[i].value;
        if (value === null) out.push(undefined);
        else out.push((await this.#decodeRecord<T>(kvKeys[i], value, batch[i])).value);
      }
    }
    return out;
  }

  /** Writes one value (any CBOR-representable value), replacing what the key held. */
  async set(key: Key, value: unknown): Promise<void> {
    const sealed = this.seal(key, value);
    if (sealed.chunks.length > 0) {
      await this.#store.atomic().set(this, key, value).commit();
      return;
    }
    // The common case, one inline record: one write, without a batch.
    try {
      await this.#kv.set(sealed.kvKey, sealed.record);
    } catch (error) {
      throw storageError(error, this.#store.path);
    }
  }

  /** Deletes one key and its chunks; deleting a missing key is not an error. */
  async delete(key: Key): Promise<void> {
    await this.#store.atomic().delete(this, key).commit();
  }

  /**
   * Lists the entries whose key starts with `prefix`. Key parts are stored as
   * tags, so entries come in tag order, not in key order.
   */
  async *list<T = unknown>(prefix: Key, options: ListOptions = {}): AsyncGenerator<Entry<T>> {
    const kvPrefix: Deno.KvKey = ["v", this.#nsTag, ...this.#tags(prefix)];
    for await (const entry of this.#kv.list<Uint8Array>({ prefix: kvPrefix }, { limit: options.limit })) {
      let decoded: Entry<T>;
      try {
        if (!(entry.value instanceof Uint8Array)) throw new IntegrityError("A listed stored value is malformed");
        decoded = await this.#decodeRecord<T>(entry.key, entry.value);
      } catch (error) {
        if (!(error instanceof IntegrityError) || !options.onError) throw error;
        options.onError(error);
        continue;
      }
      yield decoded;
    }
  }

  /** @internal Forgets this namespace's keys. */
  wipe(): void {
    wipe(this.#valueKey);
    this.#tagMac.destroy();
    this.#tagCache.clear();
  }
}

type Mutation =
  | { type: "set"; ns: Namespace; key: Key; value: unknown }
  | { type: "delete"; ns: Namespace; key: Key };

/** A batch of writes across namespaces that commits atomically. */
export class AtomicBatch {
  #store: EncryptedStore;
  #kv: Deno.Kv;
  #mutations: Mutation[] = [];

  /** @internal Use {@linkcode EncryptedStore.atomic}. */
  constructor(store: EncryptedStore, kv: Deno.Kv) {
    this.#store = store;
    this.#kv = kv;
  }

  /** Adds a write of `value` at `key` in `ns`. */
  set(ns: Namespace, key: Key, value: unknown): this {
    this.#mutations.push({ type: "set", ns, key, value });
    return this;
  }

  /** Adds a delete of `key` in `ns`. */
  delete(ns: Namespace, key: Key): this {
    this.#mutations.push({ type: "delete", ns, key });
    return this;
  }

  /**
   * Commits every mutation at once: after it resolves, all are durable; if
   * it throws, none of the values changed.
   *
   * A large value's chunks are written first, under a fresh generation. Where
   * a mutation replaces or deletes what may be a large value (a chunked set,
   * a delete), the commit checks that the key still holds what was read, so
   * a concurrent writer is never undone, and afterwards removes the chunks of
   * exactly the generation it replaced.
   *
   * @throws {ConflictError} when other writers kept changing the same keys.
   * @throws {StorageFullError} when the disk is full.
   */
  async commit(): Promise<void> {
    const sets: Sealed[] = [];
    const deletes: Deno.KvKey[] = [];
    const watched: Deno.KvKey[] = [];
    for (const m of this.#mutations) {
      if (m.type === "set") {
        const sealed = m.ns.seal(m.key, m.value);
        sets.push(sealed);
        if (sealed.chunks.length > 0) watched.push(sealed.kvKey);
      } else {
        const kvKey = m.ns.kvKey(m.key);
        deletes.push(kvKey);
        watched.push(kvKey);
      }
    }
    const preWrites = sets.flatMap((s) => s.chunks);
    try {
      if (preWrites.length > 0) await this.#store.writeChunks(preWrites);
      for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
        const current = watched.length > 0 ? await this.#store.readRecords(watched) : [];
        const op = this.#kv.atomic();
        for (const entry of current) op.check({ key: entry.key, versionstamp: entry.versionstamp });
        for (const s of sets) op.set(s.kvKey, s.record);
        for (const kvKey of deletes) op.delete(kvKey);
        const result = await op.commit();
        if (!result.ok) continue; // another writer changed a watched key: read again
        for (const entry of current) {
          const gen = entry.value instanceof Uint8Array ? readHeader(entry.value)?.gen : undefined;
          if (gen) await this.#store.removeGeneration(chunkPrefixOf(entry.key), gen);
        }
        return;
      }
    } catch (error) {
      await this.#abandon(sets);
      throw storageError(error, this.#store.path);
    }
    await this.#abandon(sets);
    throw new ConflictError("Cannot commit: other writers kept changing the same keys; try again");
  }

  async #abandon(sets: Sealed[]): Promise<void> {
    for (const s of sets) {
      if (s.gen) await this.#store.removeGeneration(chunkPrefixOf(s.kvKey), s.gen).catch(() => {});
    }
  }
}

/** Figures about the store for `/v1/state`. */
export interface StoreStats {
  /** The database file, or `undefined` for an in-memory store. */
  path: string | undefined;
  /** Bytes of the Deno KV file and its write-ahead log. */
  bytes: number;
}

/** The encrypted store: a Deno KV database whose every value is sealed. */
export class EncryptedStore {
  /** The database file, or `undefined` for an in-memory store. */
  readonly path: string | undefined;
  #kv: Deno.Kv;
  #master: Uint8Array;
  #namespaces = new Map<string, Namespace>();

  private constructor(kv: Deno.Kv, path: string | undefined, master: Uint8Array) {
    this.#kv = kv;
    this.path = path;
    this.#master = master.slice();
  }

  /**
   * Opens (or creates) the store at `path` with the 32-byte master key.
   * Pass `undefined` for an in-memory store.
   */
  static async open(path: string | undefined, masterKey: Uint8Array): Promise<EncryptedStore> {
    if (masterKey.length !== 32) throw new RangeError(`Invalid masterKey: length is ${masterKey.length}, expected 32`);
    const kv = await Deno.openKv(path ?? ":memory:");
    return new EncryptedStore(kv, path, masterKey);
  }

  /** The namespace called `name`, with keys derived for it alone. */
  namespace(name: Key): Namespace {
    const id = toHex(encodeKey(name));
    let ns = this.#namespaces.get(id);
    if (!ns) {
      ns = new Namespace(this, this.#kv, name, this.#master);
      this.#namespaces.set(id, ns);
    }
    return ns;
  }

  /** Starts an atomic batch of writes. */
  atomic(): AtomicBatch {
    return new AtomicBatch(this, this.#kv);
  }

  /** @internal Writes chunks in size-bounded atomic batches. */
  async writeChunks(chunks: { kvKey: Deno.KvKey; record: Uint8Array }[]): Promise<void> {
    let op = this.#kv.atomic();
    let bytes = 0, count = 0;
    for (const chunk of chunks) {
      if (bytes + chunk.record.length > BATCH_BYTES || count >= 900) {
        await op.commit();
        op = this.#kv.atomic();
        bytes = count = 0;
      }
      op.set(chunk.kvKey, chunk.record);
      bytes += chunk.record.length + 200;
      count++;
    }
    if (count > 0) await op.commit();
  }

  /** @internal Reads the current records at `keys` (for their versionstamps and chunk generations). */
  async readRecords(keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<unknown>[]> {
    const out: Deno.KvEntryMaybe<unknown>[] = [];
    for (let i = 0; i < keys.length; i += GET_MANY_MAX) {
      out.push(...await this.#kv.getMany(keys.slice(i, i + GET_MANY_MAX)));
    }
    return out;
  }

  /** @internal Deletes every chunk of generation `gen` under `prefix` (`["c", ..., "g"]`). */
  async removeGeneration(prefix: Deno.KvKey, gen: Uint8Array): Promise<void> {
    let op = this.#kv.atomic();
    let count = 0;
    for await (const entry of this.#kv.list({ prefix: [...prefix, gen] })) {
      op.delete(entry.key);
      if (++count >= 900) {
        await op.commit();
        op = this.#kv.atomic();
        count = 0;
      }
    }
    if (count > 0) await op.commit();
  }

  /**
   * Removes chunks that no manifest references (left by a crash between
   * writing chunks and committing their manifest, or by an overwrite).
   *
   * @returns the number of chunk records removed.
   */
  async collectGarbage(): Promise<number> {
    const live = new Map<string, string | undefined>();
    let removed = 0;
    for await (const entry of this.#kv.list({ prefix: ["c"] })) {
      const g = entry.key.lastIndexOf("g");
      const manifestKey: Deno.KvKey = ["v", ...entry.key.slice(1, g)];
      const id = toHex(encodeKey(manifestKey as Key));
      if (!live.has(id)) {
        const manifest = await this.#kv.get<Uint8Array>(manifestKey);
        const header = manifest.value instanceof Uint8Array ? readHeader(manifest.value) : undefined;
        live.set(id, header?.gen ? toHex(header.gen) : undefined);
      }
      const gen = entry.key[g + 1];
      if (!(gen instanceof Uint8Array) || live.get(id) !== toHex(gen)) {
        await this.#kv.delete(entry.key);
        removed++;
      }
    }
    return removed;
  }

  /** Figures for reports. */
  async stats(): Promise<StoreStats> {
    let bytes = 0;
    if (this.path) {
      for (const suffix of ["", "-wal", "-shm"]) {
        try {
          bytes += (await Deno.stat(this.path + suffix)).size;
        } catch {
          // a missing -wal or -shm file counts as empty
        }
      }
    }
    return { path: this.path, bytes };
  }

  /** @internal The underlying Deno KV handle, for tests and benchmarks. */
  get raw(): Deno.Kv {
    return this.#kv;
  }

  /** Closes the database and wipes every derived key. */
  close(): void {
    for (const ns of this.#namespaces.values()) ns.wipe();
    this.#namespaces.clear();
    wipe(this.#master);
    this.#kv.close();
  }

  /** Closes the store, like {@linkcode EncryptedStore.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
