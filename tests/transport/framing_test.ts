/**
 * Length-prefixed framing: round trips through arbitrary chunk splits,
 * truncation, oversized lengths, and how frames are written.
 */

import { deepStrictEqual as eql, equal, ok, rejects, throws } from "node:assert/strict";
import fc from "fast-check";
import { createFrameIO, DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE } from "../../transport/framing.ts";
import { FrameTooLargeError, ProtocolError } from "../../transport/errors.ts";
import { TcpTransport } from "../../transport/tcp.ts";
import type { Duplex } from "../../transport/types.ts";

/**
 * A duplex whose readable yields `chunks` and whose writable records what is written. With `lend`, it also has
 * the fast path, and `read()` lends each chunk as TCP does: copied into one buffer that the next read overwrites.
 */
function fakeDuplex(chunks: Uint8Array[] = [], options: { error?: unknown; lend?: boolean } = {}) {
  const written: Uint8Array[] = [];
  let abortReason: unknown = undefined;
  let aborted = false;
  let closed = false;
  let index = 0;
  let readController!: ReadableStreamDefaultController<Uint8Array>;
  const readable = new ReadableStream<Uint8Array>({
    start: (c) => {
      readController = c;
    },
    pull: (c) => {
      if (index < chunks.length) c.enqueue(chunks[index++]);
      else if (options.error !== undefined) c.error(options.error);
      else c.close();
    },
  }, { highWaterMark: 0 });
  let writeController!: WritableStreamDefaultController;
  const writable = new WritableStream<Uint8Array>({
    start: (c) => {
      writeController = c;
    },
    write: (chunk) => {
      written.push(chunk.slice());
    },
  });
  const duplex: Duplex = {
    readable,
    writable,
    localAddr: "memory://a",
    remoteAddr: "memory://b",
    close: () => {
      closed = true;
      return Promise.resolve();
    },
    abort: (reason) => {
      aborted = true;
      abortReason = reason;
      try {
        readController.error(reason);
      } catch { /* already closed */ }
      writeController.error(reason);
    },
    closed: Promise.resolve(),
  };
  if (options.lend) {
    const lent = new Uint8Array(chunks.reduce((n, c) => Math.max(n, c.length), 0));
    duplex.read = () => {
      lent.fill(0xee); // whatever the previous chunk was, it is gone now
      if (index < chunks.length) {
        const chunk = chunks[index++];
        lent.set(chunk);
        return Promise.resolve(lent.subarray(0, chunk.length));
      }
      return options.error !== undefined ? Promise.reject(options.error) : Promise.resolve(null);
    };
    duplex.write = (chunk) => {
      written.push(chunk.slice());
      return Promise.resolve();
    };
  }
  return {
    duplex,
    written,
    get aborted() {
      return aborted;
    },
    get abortReason() {
      return abortReason;
    },
    get closed() {
      return closed;
    },
  };
}

function encode(frames: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + FRAME_HEADER_SIZE + f.length, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const frame of frames) {
    view.setUint32(offset, frame.length);
    out.set(frame, offset + FRAME_HEADER_SIZE);
    offset += FRAME_HEADER_SIZE + frame.length;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Splits `bytes` at `cuts` (any numbers; taken modulo the length, sorted, deduplicated). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => (bytes.length ? c % (bytes.length + 1) : 0)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    if (point > start) chunks.push(bytes.subarray(start, point));
    start = Math.max(start, point);
  }
  return chunks;
}

async function readFrames(chunks: Uint8Array[], maxFrameSize?: number, lend = false): Promise<Uint8Array[]> {
  const io = createFrameIO(fakeDuplex(chunks, { lend }).duplex, { maxFrameSize });
  const frames: Uint8Array[] = [];
  for (let frame; (frame = await io.read()) !== null;) frames.push(frame.slice());
  return frames;
}

const framesArb = fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 25 });
const cutsArb = fc.array(fc.nat(), { maxLength: 40 });

Deno.test("read() returns random frame sequences intact through any chunk split", async () => {
  await fc.assert(
    fc.asyncProperty(framesArb, cutsArb, async (frames, cuts) => {
      eql(await readFrames(split(encode(frames), cuts)), frames);
    }),
    { numRuns: 300 },
  );
});

Deno.test("read() over a fast path that lends its chunks returns random frame sequences intact", async () => {
  // The transport overwrites each chunk at its next read: framing must copy what it keeps across reads.
  await fc.assert(
    fc.asyncProperty(framesArb, cutsArb, async (frames, cuts) => {
      eql(await readFrames(split(encode(frames), cuts), undefined, true), frames);
    }),
    { numRuns: 300 },
  );
});

Deno.test("a frame split across chunks is assembled in a buffer reused once the next frame is read", async () => {
  const frames = [new Uint8Array(100).fill(1), new Uint8Array(100).fill(2)];
  const io = createFrameIO(fakeDuplex(split(encode(frames), [50, 154])).duplex);
  const first = (await io.read())!;
  eql(first, frames[0]);
  eql(await io.read(), frames[1]);
  equal(first[0], 2, "the first frame's bytes were reused for the second");
});

Deno.test("write() output read back through any chunk split gives the same frames", async () => {
  await fc.assert(
    fc.asyncProperty(framesArb, cutsArb, async (frames, cuts) => {
      const sink = fakeDuplex();
      const io = createFrameIO(sink.duplex);
      for (const frame of frames) await io.write(frame);
      const bytes = concat(sink.written);
      eql(bytes, encode(frames));
      eql(await readFrames(split(bytes, cuts)), frames);
    }),
    { numRuns: 200 },
  );
});

Deno.test("read() rejects a stream cut inside a frame, after returning the whole frames before it", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 10 }),
      fc.nat(),
      cutsArb,
      async (frames, at, cuts) => {
        const bytes = encode(frames);
        const boundaries = new Set<number>([0]);
        let offset = 0;
        for (const frame of frames) boundaries.add(offset += FRAME_HEADER_SIZE + frame.length);
        const end = at % bytes.length;
        fc.pre(!boundaries.has(end));
        const sink = fakeDuplex(split(bytes.subarray(0, end), cuts));
        const io = createFrameIO(sink.duplex);
        const whole = frames.filter((_, i) => encode(frames.slice(0, i + 1)).length <= end);
        for (const frame of whole) eql(await io.read(), frame);
        await rejects(io.read(), (error) => {
          ok(error instanceof ProtocolError, `expected ProtocolError, got ${error}`);
          ok(/^Cannot read frame: the stream ended/.test(error.message), error.message);
          return true;
        });
        ok(sink.aborted, "the duplex is aborted");
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("read() names the bytes missing from a truncated header and payload", async () => {
  await rejects(
    createFrameIO(fakeDuplex([new Uint8Array([0, 0])]).duplex).read(),
    /ended after 2 of 4 header bytes/,
  );
  await rejects(
    createFrameIO(fakeDuplex([new Uint8Array([0, 0, 0, 9, 1, 2, 3])]).duplex).read(),
    /ended after 3 of 9 bytes/,
  );
  await rejects(
    createFrameIO(fakeDuplex([new Uint8Array([0, 0, 0, 9])]).duplex).read(),
    /ended after its header, expected 9 bytes/,
  );
});

Deno.test("read() rejects a length above maxFrameSize before reading or allocating the payload", async () => {
  const sink = fakeDuplex([new Uint8Array([0xff, 0xff, 0xff, 0xff])]);
  const io = createFrameIO(sink.duplex, { maxFrameSize: 1024 });
  await rejects(io.read(), (error) => {
    ok(error instanceof FrameTooLargeError);
    equal(error.size, 0xffff_ffff);
    equal(error.maxFrameSize, 1024);
    equal(error.name, "FrameTooLargeError");
    return true;
  });
  ok(sink.aborted);
  await rejects(io.read(), FrameTooLargeError, "later reads fail the same way");
});

Deno.test("read() accepts a frame of exactly maxFrameSize and zero-length frames", async () => {
  const frames = [new Uint8Array(0), new Uint8Array(100).fill(1), new Uint8Array(0)];
  eql(await readFrames([encode(frames)], 100), frames);
  await rejects(readFrames([encode([new Uint8Array(101)])], 100), FrameTooLargeError);
});

Deno.test("read() returns null at a clean end, again and again", async () => {
  const io = createFrameIO(fakeDuplex([]).duplex);
  equal(await io.read(), null);
  equal(await io.read(), null);
});

Deno.test("read() skips empty chunks", async () => {
  const bytes = encode([new Uint8Array([5, 6])]);
  eql(await readFrames([new Uint8Array(0), bytes.subarray(0, 3), new Uint8Array(0), bytes.subarray(3)]), [
    new Uint8Array([5, 6]),
  ]);
});

Deno.test("concurrent read() calls get whole frames in order, each valid until the next is read", async () => {
  const frames = Array.from({ length: 10 }, (_, i) => new Uint8Array(i * 7).fill(i));
  const io = createFrameIO(fakeDuplex(split(encode(frames), [1, 2, 3, 50, 51, 52, 200])).duplex);
  eql(await Promise.all(frames.map(() => io.read().then((frame) => frame?.slice()))), frames);
  equal(await io.read(), null);
});

Deno.test("read() rejects with the connection's error when it breaks", async () => {
  const broken = new Error("connection reset");
  const io = createFrameIO(fakeDuplex([encode([new Uint8Array([1])])], { error: broken }).duplex);
  eql(await io.read(), new Uint8Array([1]));
  await rejects(io.read(), (error) => error === broken);
});

Deno.test("write() sends a small frame as one chunk and a large one as header and payload", async () => {
  const sink = fakeDuplex();
  const io = createFrameIO(sink.duplex);
  await io.write(new Uint8Array([1, 2, 3]));
  eql(sink.written, [new Uint8Array([0, 0, 0, 3, 1, 2, 3])]);
  const large = new Uint8Array(512 * 1024).fill(9);
  await io.write(large);
  equal(sink.written.length, 3);
  eql(sink.written[1], new Uint8Array([0, 8, 0, 0]));
  eql(sink.written[2], large);
});

Deno.test("write() rejects a frame above maxFrameSize and writes nothing", async () => {
  const sink = fakeDuplex();
  const io = createFrameIO(sink.duplex, { maxFrameSize: 10 });
  await rejects(io.write(new Uint8Array(11)), (error) => error instanceof FrameTooLargeError && error.size === 11);
  await rejects(io.write("text" as unknown as Uint8Array), TypeError);
  eql(sink.written, []);
  await io.write(new Uint8Array(10));
  equal(sink.written.length, 1);
});

Deno.test("writeFrames() joins each frame's parts behind its length, all frames in one chunk", async () => {
  const sink = fakeDuplex();
  const io = createFrameIO(sink.duplex);
  await io.writeFrames([[new Uint8Array([1, 2]), new Uint8Array([3])], [], [new Uint8Array(0), new Uint8Array([4])]]);
  eql(sink.written, [new Uint8Array([0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1, 4])]);
  await io.writeFrames([]);
  equal(sink.written.length, 1, "no frames, no write");
});

Deno.test("writeFrames() output read back through any chunk split gives the same frames", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 4 }), { maxLength: 12 }),
      async (frames) => {
        const sink = fakeDuplex();
        const io = createFrameIO(sink.duplex);
        // Two batches: the second may reuse the first one's buffer.
        await io.writeFrames(frames.slice(0, 5));
        await io.writeFrames(frames.slice(5));
        eql(await readFrames(sink.written), frames.map(concat));
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("writeFrames() rejects when any frame is above maxFrameSize, and writes nothing", async () => {
  const sink = fakeDuplex();
  const io = createFrameIO(sink.duplex, { maxFrameSize: 10 });
  await rejects(
    io.writeFrames([[new Uint8Array(3)], [new Uint8Array(6), new Uint8Array(5)]]),
    (error) => error instanceof FrameTooLargeError && error.size === 11,
  );
  await rejects(io.writeFrames([["text" as unknown as Uint8Array]]), TypeError);
  eql(sink.written, []);
});

Deno.test("writeFrames() batches larger than its pooled buffer cross a TCP connection intact", async () => {
  const tcp = new TcpTransport();
  const accepted = Promise.withResolvers<Duplex>();
  await using listener = await tcp.listen("tcp://127.0.0.1:0", { onConnection: accepted.resolve });
  const client = createFrameIO(await tcp.dial(listener.addr));
  const server = createFrameIO(await accepted.promise);
  const frame = (i: number, size: number) => Uint8Array.from({ length: size }, (_, j) => (i * 31 + j) & 0xff);
  const batches = [[frame(0, 1000)], [frame(1, 300_000), frame(2, 300_000)], [frame(3, 65_535), frame(4, 7)]];
  const sending = (async () => {
    for (const batch of batches) await client.writeFrames(batch.map((f) => [f.subarray(0, 5), f.subarray(5)]));
    await client.close();
  })();
  for (const frame of batches.flat()) eql(await server.read(), frame);
  equal(await server.read(), null);
  await sending;
  await server.close();
});

Deno.test("abort() rejects a pending read with its reason", async () => {
  const sink = fakeDuplex();
  const io = createFrameIO(sink.duplex);
  const pending = io.read();
  const reason = new Error("bye");
  io.abort(reason);
  await rejects(pending, (error) => error === reason);
  equal(sink.abortReason, reason);
});

Deno.test("close() closes the writer, then the duplex", async () => {
  const sink = fakeDuplex();
  const io = createFrameIO(sink.duplex);
  await io.write(new Uint8Array([1]));
  await io.close();
  ok(sink.closed);
  await rejects(io.write(new Uint8Array([2])));
});

Deno.test("createFrameIO() checks maxFrameSize and that the streams are free", () => {
  equal(createFrameIO(fakeDuplex().duplex).maxFrameSize, DEFAULT_MAX_FRAME_SIZE);
  equal(DEFAULT_MAX_FRAME_SIZE, 1024 * 1024 + 64);
  throws(() => createFrameIO(fakeDuplex().duplex, { maxFrameSize: -1 }), RangeError);
  throws(() => createFrameIO(fakeDuplex().duplex, { maxFrameSize: 2 ** 32 }), RangeError);
  throws(() => createFrameIO(fakeDuplex().duplex, { maxFrameSize: 1.5 }), RangeError);
  const { duplex } = fakeDuplex();
  duplex.readable.getReader();
  throws(() => createFrameIO(duplex), TypeError);
});

Deno.test("frames of every size up to maxFrameSize cross a TCP connection intact", async () => {
  const tcp = new TcpTransport();
  const accepted = Promise.withResolvers<Duplex>();
  await using listener = await tcp.listen("tcp://127.0.0.1:0", { onConnection: accepted.resolve });
  const client = createFrameIO(await tcp.dial(listener.addr));
  const server = createFrameIO(await accepted.promise);
  const sizes = [0, 1, 3, 4, 5, 1000, 65_536, 128 * 1024, 128 * 1024 + 1, 300_000, DEFAULT_MAX_FRAME_SIZE];
  const frames = sizes.map((size, i) => Uint8Array.from({ length: size }, (_, j) => (i * 31 + j) & 0xff));
  const sending = (async () => {
    for (const frame of frames) await client.write(frame);
    await client.close();
  })();
  for (const frame of frames) eql(await server.read(), frame);
  equal(await server.read(), null);
  await sending;
  await server.close();
});
