/**
 * Content-addressed blobs on a real Deno KV file: streamed in and out in
 * chunks, addressed by SHA-256, stored once, and a tampered or missing chunk
 * errors the stream instead of yielding wrong bytes.
 */

import { deepStrictEqual as eql, equal, ok, rejects } from "node:assert/strict";
import { BLOB_CHUNK, BlobStore } from "../../../kernel/storage/blob_store.ts";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";
import { IntegrityError, NotFoundError } from "../../../kernel/errors.ts";
import { sha256 } from "../../../kernel/crypto/mod.ts";
import { concat, toHex, utf8 } from "../../../kernel/bytes.ts";
import { containsBytes, flipRawByte, rawEntries, tempStore } from "./_helpers.ts";

function bytesOf(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1_103_515_245 + 12_345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A stream of `data` in pieces of the given sizes, cycling through them. */
function streamOf(data: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let offset = 0, i = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= data.length) return controller.close();
      const n = sizes[i++ % sizes.length];
      controller.enqueue(data.slice(offset, offset + n));
      offset += n;
    },
  });
}

async function fixture() {
  const t = await tempStore();
  const blobs = new BlobStore(t.store);
  const ns = t.store.namespace(["blobs"]);
  const chunkPrefix = ns.kvKey(["chunk"]);
  return {
    t,
    blobs,
    ns,
    chunkEntries: () => rawEntries(t.store.raw, chunkPrefix),
    [Symbol.asyncDispose]: () => t[Symbol.asyncDispose](),
  };
}

for (
  const [what, size] of [
    ["0 bytes", 0],
    ["1 byte", 1],
    ["exactly one chunk", BLOB_CHUNK],
    ["one chunk and one byte", BLOB_CHUNK + 1],
    ["exactly three chunks", 3 * BLOB_CHUNK],
  ] as const
) {
  Deno.test(`put() and get() round-trip ${what}`, async () => {
    await using f = await fixture();
    const data = bytesOf(size, size + 3);
    const info = await f.blobs.put(data);
    equal(info.address, toHex(sha256(data)));
    equal(info.size, size);
    equal(info.chunks, Math.max(1, Math.ceil(size / BLOB_CHUNK)));
    eql(await f.blobs.bytes(info.address), data);
    equal((await f.chunkEntries()).length, info.chunks);
  });
}

Deno.test("put() streams 1 MiB in odd-sized pieces and get() streams it back", async () => {
  await using f = await fixture();
  const data = bytesOf(1024 * 1024, 42);
  const info = await f.blobs.put(streamOf(data, [1, 7919, 65_537, 3, 12_345, 60_000, 59_999]));
  equal(info.address, toHex(sha256(data)));
  equal(info.size, data.length);
  equal(info.chunks, Math.ceil(data.length / BLOB_CHUNK));
  const pieces: Uint8Array[] = [];
  for await (const piece of await f.blobs.get(info.address)) pieces.push(piece);
  ok(pieces.length >= info.chunks);
  eql(concat(...pieces), data);
});

Deno.test("put() of a stream of empty pieces stores an empty blob", async () => {
  await using f = await fixture();
  const info = await f.blobs.put(ReadableStream.from([new Uint8Array(0), new Uint8Array(0)]));
  equal(info.address, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  equal(info.size, 0);
  eql(await f.blobs.bytes(info.address), new Uint8Array(0));
});

Deno.test("the address is the lowercase hex SHA-256 of the content", async () => {
  await using f = await fixture();
  const info = await f.blobs.put(utf8("abc"));
  // FIPS 180-2 example: SHA-256("abc")
  equal(info.address, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  eql(await f.blobs.stat(info.address), { address: info.address, size: 3, chunks: 1, created: info.created });
});

Deno.test("storing the same content twice keeps one copy", async () => {
  await using f = await fixture();
  const data = bytesOf(150_000, 9);
  const first = await f.blobs.put(data);
  const before = await f.chunkEntries();
  equal(before.length, 3);
  const second = await f.blobs.put(streamOf(data, [1000, 77_777]));
  eql(second, first);
  const after = await f.chunkEntries();
  eql(after.map((e) => e.key), before.map((e) => e.key));
  eql(await f.blobs.bytes(first.address), data);
});

Deno.test("concurrent puts of the same content keep one copy", async () => {
  await using f = await fixture();
  const data = bytesOf(150_000, 13);
  const infos = await Promise.all([f.blobs.put(data), f.blobs.put(streamOf(data, [4096])), f.blobs.put(data)]);
  equal(new Set(infos.map((i) => i.address)).size, 1);
  equal((await f.chunkEntries()).length, infos[0].chunks);
  eql(await f.blobs.bytes(infos[0].address), data);
});

Deno.test("a put racing a delete of the same content leaves the blob either stored whole or gone", async () => {
  await using f = await fixture();
  const data = bytesOf(130_000, 14);
  const { address } = await f.blobs.put(data);
  const [deleted, info] = await Promise.all([f.blobs.delete(address), f.blobs.put(data)]);
  equal(deleted, true);
  equal(info.address, address);
  const stat = await f.blobs.stat(address);
  if (stat) eql(await f.blobs.bytes(address), data);
  equal((await f.chunkEntries()).length, stat ? stat.chunks : 0);
});

Deno.test("different content is stored apart", async () => {
  await using f = await fixture();
  const a = await f.blobs.put(bytesOf(70_000, 1));
  const b = await f.blobs.put(bytesOf(70_000, 2));
  ok(a.address !== b.address);
  equal((await f.chunkEntries()).length, 4);
  eql(await f.blobs.bytes(a.address), bytesOf(70_000, 1));
  eql(await f.blobs.bytes(b.address), bytesOf(70_000, 2));
});

Deno.test("delete() removes the blob and its chunks, and reports whether it existed", async () => {
  await using f = await fixture();
  const keep = await f.blobs.put(bytesOf(10, 5));
  const info = await f.blobs.put(bytesOf(200_000, 6));
  equal(await f.blobs.delete(info.address), true);
  equal(await f.blobs.stat(info.address), undefined);
  await rejects(f.blobs.get(info.address), NotFoundError);
  equal((await f.chunkEntries()).length, 1);
  equal(await f.blobs.delete(info.address), false);
  eql(await f.blobs.bytes(keep.address), bytesOf(10, 5));
  equal(await f.blobs.delete(keep.address), true);
  eql(await rawEntries(f.t.store.raw), []);
});

/** Makes `store`'s atomic commits after the first `allowed` fail, as if the process died there. */
function crashAfterCommits(store: EncryptedStore, allowed: number): () => void {
  const atomic = store.atomic;
  let commits = 0;
  store.atomic = () => {
    const batch = atomic.call(store);
    const commit = batch.commit.bind(batch);
    batch.commit = () => ++commits > allowed ? Promise.reject(new Error("crash")) : commit();
    return batch;
  };
  return () => (store.atomic = atomic);
}

for (
  const [what, chunks, allowed] of [
    ["after the manifest is deleted", 3, 1],
    ["after the first batch of chunks is deleted", 150, 2],
  ] as const
) {
  Deno.test(`collectGarbage() finishes a delete interrupted ${what}`, async () => {
    await using f = await fixture();
    const keep = await f.blobs.put(bytesOf(10, 7));
    const info = await f.blobs.put(bytesOf(chunks * BLOB_CHUNK, 8));
    equal(info.chunks, chunks);
    const restore = crashAfterCommits(f.t.store, allowed);
    await rejects(f.blobs.delete(info.address), /crash/);
    restore();
    equal(await f.blobs.stat(info.address), undefined);
    ok((await f.chunkEntries()).length > 1, "the crash left chunks behind");
    // The next start: a new blob store over the same store.
    const blobs = new BlobStore(f.t.store);
    equal(await blobs.collectGarbage(), 1);
    equal((await f.chunkEntries()).length, 1);
    equal(await blobs.collectGarbage(), 0);
    eql(await blobs.bytes(keep.address), bytesOf(10, 7));
    equal(await blobs.delete(keep.address), true);
    eql(await rawEntries(f.t.store.raw), []);
  });
}

Deno.test("a tampered chunk errors the stream with IntegrityError", async () => {
  await using f = await fixture();
  const info = await f.blobs.put(bytesOf(200_000, 7));
  const chunks = await f.chunkEntries();
  for (const chunk of chunks) {
    await flipRawByte(f.t.store.raw, chunk.key, 100);
    await rejects(f.blobs.bytes(info.address), IntegrityError);
    await f.t.store.raw.set(chunk.key, chunk.value);
  }
  eql(await f.blobs.bytes(info.address), bytesOf(200_000, 7));
});

Deno.test("a tampered chunk never passes on its bytes", async () => {
  await using f = await fixture();
  const info = await f.blobs.put(bytesOf(3 * BLOB_CHUNK, 8));
  const chunks = await f.chunkEntries();
  // tag order is not chunk order: whichever chunk this is, nothing from it or after it arrives
  const second = chunks[1];
  await flipRawByte(f.t.store.raw, second.key, -1);
  const reader = (await f.blobs.get(info.address)).getReader();
  let received = 0;
  const error = await (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return undefined;
      received += value.length;
    }
  })().catch((e) => e);
  ok(error instanceof IntegrityError, String(error));
  ok(received <= 2 * BLOB_CHUNK && received % BLOB_CHUNK === 0);
});

Deno.test("a missing chunk errors the stream with IntegrityError", async () => {
  await using f = await fixture();
  const info = await f.blobs.put(bytesOf(200_000, 10));
  const chunks = await f.chunkEntries();
  await f.t.store.raw.delete(chunks[2].key);
  await rejects(f.blobs.bytes(info.address), IntegrityError);
});

Deno.test("chunks swapped with another blob's chunks error the stream with IntegrityError", async () => {
  await using f = await fixture();
  const a = await f.blobs.put(bytesOf(BLOB_CHUNK, 11));
  const b = await f.blobs.put(bytesOf(BLOB_CHUNK, 12));
  const [ca, cb] = await f.chunkEntries();
  await f.t.store.raw.atomic().set(ca.key, cb.value).set(cb.key, ca.value).commit();
  await rejects(f.blobs.bytes(a.address), IntegrityError);
  await rejects(f.blobs.bytes(b.address), IntegrityError);
});

Deno.test("get() and stat() of a missing blob: NotFoundError and undefined", async () => {
  await using f = await fixture();
  const address = toHex(sha256(utf8("never stored")));
  await rejects(f.blobs.get(address), NotFoundError);
  await rejects(f.blobs.bytes(address), NotFoundError);
  equal(await f.blobs.stat(address), undefined);
  equal(await f.blobs.delete(address), false);
});

Deno.test("an invalid address is rejected with SyntaxError", async () => {
  await using f = await fixture();
  const valid = "ab".repeat(32);
  for (
    const bad of ["", "abc", valid.toUpperCase(), valid + "00", valid.slice(2), "g".repeat(64), ` ${valid.slice(1)}`]
  ) {
    await rejects(f.blobs.get(bad), SyntaxError, JSON.stringify(bad));
    await rejects(f.blobs.stat(bad), SyntaxError, JSON.stringify(bad));
    await rejects(f.blobs.delete(bad), SyntaxError, JSON.stringify(bad));
  }
});

Deno.test("a source stream that fails leaves no chunks behind", async () => {
  await using f = await fixture();
  let sent = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= 5) return controller.error(new Error("source broke"));
      controller.enqueue(bytesOf(BLOB_CHUNK, sent++));
    },
  });
  await rejects(f.blobs.put(failing), /source broke/);
  eql(await f.chunkEntries(), []);
});

Deno.test("blob content and addresses do not appear in the raw KV entries", async () => {
  await using f = await fixture();
  const marker = utf8("blob-plaintext-marker-31c7 ".repeat(100));
  const info = await f.blobs.put(marker);
  for (const { key, value } of await rawEntries(f.t.store.raw)) {
    ok(!containsBytes(value as Uint8Array, marker.subarray(0, 27)));
    ok(!containsBytes(value as Uint8Array, utf8(info.address)));
    for (const part of key) ok(typeof part !== "string" || part.length === 1);
  }
});

Deno.test("collectGarbage() removes the chunks of an upload interrupted before its manifest", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/store.kv`;
  const master = new Uint8Array(32).fill(3);
  // A child process starts a large upload and is killed mid-stream.
  const script = `
    import { EncryptedStore } from "${new URL("../../../kernel/storage/encrypted_kv.ts", import.meta.url).href}";
    import { BlobStore } from "${new URL("../../../kernel/storage/blob_store.ts", import.meta.url).href}";
    const store = await EncryptedStore.open(${JSON.stringify(path)}, new Uint8Array(32).fill(3));
    const blobs = new BlobStore(store);
    let n = 0;
    const stream = new ReadableStream({
      async pull(c) {
        c.enqueue(new Uint8Array(60_000).fill(n++ & 0xff));
        if (n === 25) console.log("streaming");
        await new Promise((r) => setTimeout(r, 5));
      },
    });
    await blobs.put(stream);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-kv", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("streaming")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  child.kill("SIGKILL");
  await child.status;
  await reader.cancel().catch(() => {});

  const store = await EncryptedStore.open(path, master);
  const raw = async () => {
    let n = 0;
    for await (const _ of store.raw.list({ prefix: [] })) n++;
    return n;
  };
  const before = await raw();
  ok(before > 20, `the interrupted upload left ${before} records`);
  const blobs = new BlobStore(store);
  equal(await blobs.collectGarbage(), 1);
  equal(await raw(), 0, "nothing of the interrupted upload remains");
  equal(await blobs.collectGarbage(), 0);
  const info = await blobs.put(new Uint8Array([1, 2, 3]));
  eql(await blobs.bytes(info.address), new Uint8Array([1, 2, 3]));
  store.close();
  await Deno.remove(dir, { recursive: true });
});
