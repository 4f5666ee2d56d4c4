/**
 * The writable half shared by the transports: a WritableStream over an async
 * sink that counts the chunks queued in it, so that `Duplex.close()` can wait
 * for them even while the caller holds the writer.
 *
 * @module
 */

/** What a transport does with the chunks written to a {@linkcode WriteSide}. */
export interface WriteSink {
  /** Sends one chunk; resolves once the transport took it. */
  write(chunk: Uint8Array): Promise<void>;
  /** The writable was closed after its last chunk was sent. */
  close(): Promise<void>;
  /** The writable was aborted with `reason`. */
  abort(reason: unknown): void;
}

/** A WritableStream of Uint8Array over a {@linkcode WriteSink}, with a byte high-water mark. */
export class WriteSide {
  /** The stream handed out as `Duplex.writable`. */
  readonly writable: WritableStream<Uint8Array>;
  #controller!: WritableStreamDefaultController;
  #pending = 0;
  #done = false;
  #idle: PromiseWithResolvers<void> | null = null;
  #failure: { error: unknown } | null = null;

  /** Creates the stream; `highWaterMark` is in bytes. */
  constructor(sink: WriteSink, highWaterMark: number) {
    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      write: async (chunk) => {
        try {
          if (!(chunk instanceof Uint8Array)) {
            throw new TypeError(`Cannot write: expected a Uint8Array chunk, got ${typeof chunk}`);
          }
          if (this.#failure) throw this.#failure.error;
          await sink.write(chunk);
        } catch (error) {
          this.#finish();
          throw error;
        } finally {
          this.#pending--;
          if (this.#pending <= 0) this.#wake();
        }
      },
      close: async () => {
        const failed = this.#failure !== null;
        this.#finish();
        if (!failed) await sink.close();
      },
      abort: (reason) => {
        this.#finish();
        sink.abort(reason);
      },
    }, {
      highWaterMark,
      size: (chunk) => {
        if (!this.#done) this.#pending++;
        return chunk instanceof Uint8Array ? chunk.byteLength : 0;
      },
    });
  }

  /** Whether the stream was closed, aborted or errored. */
  get done(): boolean {
    return this.#done;
  }

  /** Resolves once every chunk written so far was sent, or the stream is done. */
  drained(): Promise<void> {
    if (this.#done || this.#pending <= 0) return Promise.resolve();
    this.#idle ??= Promise.withResolvers<void>();
    return this.#idle.promise;
  }

  /**
   * The connection is gone but the stream stays usable: writes reject with
   * `error`, and closing it succeeds, so a `pipeTo` into it ends cleanly.
   */
  fail(error: unknown): void {
    if (this.#done) return;
    this.#failure = { error };
    this.#finish();
  }

  /** Errors the stream: queued chunks are dropped, later writes reject with `reason`. */
  error(reason: unknown): void {
    if (this.#done) return;
    this.#finish();
    this.#controller.error(reason);
  }

  #finish(): void {
    this.#done = true;
    this.#wake();
  }

  #wake(): void {
    this.#idle?.resolve();
    this.#idle = null;
  }
}
