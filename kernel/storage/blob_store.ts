/**
 * Content-addressed encrypted blobs (NZ-CRYPTO-01 section "Blobs").
 *
 * A blob's address is the lowercase hex SHA-256 of its plaintext. Blobs are
 * streamed in and out in chunks of {@linkcode BLOB_CHUNK} bytes; each chunk is
 * a sealed value of the `["blobs"]` namespace under `["chunk", upload, i]`,
 * and the manifest under `["blob", address]` is committed only after every
 * chunk is durable. Storing the same content twice keeps one copy.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { IntegrityError, NotFoundError } from "../errors.ts";
import { randomBytes } from "../crypto/mod.ts";
import type { EncryptedStore, Namespace } from "./encrypted_kv.ts";
import { createHash } from "node:crypto";

/** Plaintext bytes per stored chunk. */
export const BLOB_CHUNK = 60_000;
const WRITE_BATCH = 10;

/** What is known of a stored blob. */
export interface BlobInfo {
  /** The blob's address: lowercase hex SHA-256 of its plaintext. */
  address: string;
  /** Plaintext length, in bytes. */
  size: number;
  /** Number of stored chunks. */
  chunks: number;
  /** When the blob was first stored, in milliseconds since the Unix epoch. */
  created: number;
}

interface Manifest extends BlobInfo {
  upload: Uint8Array;
}

const ADDRESS = /^[0-9a-f]{64}$/;

function checkAddress(address: string): void {
  if (!ADDRESS.test(address)) throw new SyntaxError(`Invalid blob address: expected 64 lowercase hex characters`);
}

/** Stores and streams content-addressed blobs. */
export class BlobStore {
  #store: EncryptedStore;
  #ns: Namespace;
  #tail: Promise<unknown> = Promise.resolve();

  /** Creates a blob store over `store`'s `["blobs"]` namespace. */
  constructor(store: EncryptedStore) {
    this.#store = store;
    this.#ns = store.namespace(["blobs"]);
  }

  /** Runs `fn` after every earlier manifest update, so no two check-then-write steps interleave. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  /**
   * Stores the bytes of `source`, streaming them in chunks.
   *
   * @returns the blob's address and size.
   */
  async put(source: ReadableStream<Uint8Array> | Uint8Array): Promise<BlobInfo> {
    const stream = source instanceof Uint8Array ? ReadableStream.from([source]) : source;
    const upload = randomBytes(16);
    // The marker lets collectGarbage() find the chunks of an upload that a crash interrupted.
    await this.#ns.set(["upload", upload], { started: Date.now() });
    const hash = createHash("sha256");
    let pending = new Uint8Array(BLOB_CHUNK);
    let filled = 0, size = 0, index = 0;
    let batch = this.#store.atomic(), inBatch = 0;
    const flushChunk = async () => {
      const piece = pending.slice(0, filled);
      batch.set(this.#ns, ["chunk", upload, index++], piece);
      filled = 0;
      if (++inBatch >= WRITE_BATCH) {
        await batch.commit();
        batch = this.#store.atomic();
        inBatch = 0;
      }
    };
    try {
      for await (const data of stream) {
        hash.update(data);
        size += data.length;
        let offset = 0;
        while (offset < data.length) {
          const n = Math.min(BLOB_CHUNK - filled, data.length - offset);
          pending.set(data.subarray(offset, offset + n), filled);
          filled += n;
          offset += n;
          if (filled === BLOB_CHUNK) await flushChunk();
        }
      }
      if (filled > 0 || index === 0) await flushChunk();
      if (inBatch > 0) await batch.commit();
    } catch (error) {
      await this.#removeChunks(upload, index).catch(() => {});
      await this.#ns.delete(["upload", upload]).catch(() => {});
      throw error;
    }
    pending = new Uint8Array(0);
    const address = toHex(hash.digest());
    return await this.#serial(async () => {
      const existing = await this.#ns.get<Manifest>(["blob", address]);
      if (existing) {
        await this.#removeChunks(upload, index);
        await this.#ns.delete(["upload", upload]);
        return { address, size: existing.size, chunks: existing.chunks, created: existing.created };
      }
      const manifest: Manifest = { address, size, chunks: index, created: Date.now(), upload };
      await this.#store.atomic().set(this.#ns, ["blob", address], manifest).delete(this.#ns, ["upload", upload])
        .commit();
      return { address, size, chunks: index, created: manifest.created };
    });
  }

  /** What is known of blob `address`, or undefined when absent. */
  async stat(address: string): Promise<BlobInfo | undefined> {
    checkAddress(address);
    const m = await this.#ns.get<Manifest>(["blob", address]);
    return m && { address: m.address, size: m.size, chunks: m.chunks, created: m.created };
  }

  /**
   * Streams the plaintext of blob `address`. Each chunk is authenticated
   * before it is passed on, and the stream errors with `IntegrityError` if
   * the whole does not hash to the address.
   *
   * @throws {NotFoundError} when no such blob is stored.
   */
  async get(address: string): Promise<ReadableStream<Uint8Array>> {
    checkAddress(address);
    const manifest = await this.#ns.get<Manifest>(["blob", address]);
    if (!manifest) throw new NotFoundError(`No blob ${address}`);
    const ns = this.#ns;
    const hash = createHash("sha256");
    let index = 0;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          if (index >= manifest.chunks) {
            if (toHex(hash.digest()) !== address) {
              throw new IntegrityError(`Blob ${address} does not match its address`);
            }
            controller.close();
            return;
          }
          const chunk = await ns.get<Uint8Array>(["chunk", manifest.upload, index]);
          if (!(chunk instanceof Uint8Array)) {
            throw new IntegrityError(`Blob ${address} is truncated: chunk ${index} is missing`);
          }
          index++;
          hash.update(chunk);
          if (chunk.length > 0) controller.enqueue(chunk);
        } catch (error) {
          controller.error(error);
        }
      },
    });
  }

  /** Reads a whole blob into memory. */
  async bytes(address: string): Promise<Uint8Array> {
    return new Uint8Array(await new Response(await this.get(address)).arrayBuffer());
  }

  /**
   * Deletes blob `address`; returns whether it existed. The manifest goes in
   * the same commit that writes its upload's marker back, so a crash before
   * the chunks are gone leaves them to {@linkcode BlobStore.collectGarbage}.
   */
  async delete(address: string): Promise<boolean> {
    checkAddress(address);
    return await this.#serial(async () => {
      const manifest = await this.#ns.get<Manifest>(["blob", address]);
      if (!manifest) return false;
      await this.#store.atomic().delete(this.#ns, ["blob", address])
        .set(this.#ns, ["upload", manifest.upload], { started: Date.now() }).commit();
      await this.#removeChunks(manifest.upload, manifest.chunks);
      await this.#ns.delete(["upload", manifest.upload]);
      return true;
    });
  }

  /**
   * Removes the chunks of uploads that never got a manifest (the process died
   * mid-upload) or whose manifest a delete removed before it could finish.
   * Run it when no `put` is under way; the node does at start.
   *
   * @returns the number of interrupted uploads cleaned up.
   */
  async collectGarbage(): Promise<number> {
    const interrupted: Uint8Array[] = [];
    for await (const { key } of this.#ns.list(["upload"], { onError: () => {} })) {
      if (key[1] instanceof Uint8Array) interrupted.push(key[1]);
    }
    for (const upload of interrupted) {
      let count = 0;
      for (;; count += WRITE_BATCH) {
        const keys = Array.from({ length: WRITE_BATCH }, (_, i) => ["chunk", upload, count + i]);
        // A chunk that fails authentication still counts as present: it is removed with the rest.
        const values = await this.#ns.getMany(keys).catch((error) => {
          if (error instanceof IntegrityError) return [true];
          throw error;
        });
        const present = values.some((v) => v !== undefined);
        if (!present) break;
      }
      await this.#removeChunks(upload, count);
      await this.#ns.delete(["upload", upload]);
    }
    return interrupted.length;
  }

  /**
   * Deletes chunks `0..count-1` of `upload`, last ones first: what a crash
   * leaves is always a run from chunk 0, which is how collectGarbage() looks
   * for chunks.
   */
  async #removeChunks(upload: Uint8Array, count: number): Promise<void> {
    for (let end = count; end > 0; end -= 100) {
      const batch = this.#store.atomic();
      for (let i = Math.max(0, end - 100); i < end; i++) batch.delete(this.#ns, ["chunk", upload, i]);
      await batch.commit();
    }
  }
}
