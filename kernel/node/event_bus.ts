/**
 * The node's event bus: components publish typed events, subscribers (the
 * SSE stream, the CLI, tests) read them as async iterables. A slow
 * subscriber never blocks publishers: past `bufferSize` pending events it
 * loses the oldest and is told how many it missed.
 *
 * @module
 */

/** One event on the bus. */
export interface NodeEvent {
  /** Increasing number, unique per node run. */
  id: number;
  /** Dotted type, e.g. `identity.created`. */
  type: string;
  /** Milliseconds since the Unix epoch. */
  time: number;
  /** The event's payload; its fields depend on `type`. */
  data: Record<string, unknown>;
}

/** Options of {@linkcode EventBus.subscribe}. */
export interface SubscribeOptions {
  /** Only events whose type starts with one of these. */
  types?: string[];
  /** Ends the subscription. */
  signal?: AbortSignal;
  /** Pending events kept for a slow reader (default 1024). */
  bufferSize?: number;
}

interface Subscriber {
  types?: string[];
  queue: NodeEvent[];
  dropped: number;
  bufferSize: number;
  wake?: () => void;
  closed: boolean;
}

/** Publish and subscribe within one node. */
export class EventBus {
  #next = 1;
  #subscribers = new Set<Subscriber>();
  #closed = false;
  #closing = new AbortController();
  #now: () => number;

  /** Creates a bus; `options.now` is the clock in milliseconds (default `Date.now`). */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Number of live subscriptions. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Publishes an event to every matching subscriber. */
  publish(type: string, data: Record<string, unknown> = {}): NodeEvent {
    const event: NodeEvent = { id: this.#next++, type, time: this.#now(), data };
    for (const sub of this.#subscribers) {
      if (sub.types && !sub.types.some((t) => type.startsWith(t))) continue;
      if (sub.queue.length >= sub.bufferSize) {
        sub.queue.shift();
        sub.dropped++;
      }
      sub.queue.push(event);
      sub.wake?.();
    }
    return event;
  }

  /** Reads events published from now on, until the signal aborts or `close()`. */
  async *subscribe(options: SubscribeOptions = {}): AsyncGenerator<NodeEvent> {
    const sub: Subscriber = {
      types: options.types,
      queue: [],
      dropped: 0,
      bufferSize: options.bufferSize ?? 1024,
      closed: false,
    };
    if (this.#closed) return;
    const stop = () => {
      sub.closed = true;
      sub.wake?.();
    };
    options.signal?.addEventListener("abort", stop, { once: true });
    this.#subscribers.add(sub);
    try {
      while (!sub.closed && !options.signal?.aborted) {
        if (sub.dropped > 0) {
          const dropped = sub.dropped;
          sub.dropped = 0;
          yield { id: 0, type: "bus.dropped", time: this.#now(), data: { dropped } };
        }
        const event = sub.queue.shift();
        if (event) {
          yield event;
          continue;
        }
        await new Promise<void>((resolve) => (sub.wake = resolve));
        sub.wake = undefined;
      }
    } finally {
      this.#subscribers.delete(sub);
      options.signal?.removeEventListener("abort", stop);
    }
  }

  /** Aborted when the bus closes: readers blocked elsewhere (a slow client's socket) watch it. */
  get signal(): AbortSignal {
    return this.#closing.signal;
  }

  /** Ends every subscription; later subscriptions end at once. */
  close(): void {
    this.#closed = true;
    this.#closing.abort();
    for (const sub of this.#subscribers) {
      sub.closed = true;
      sub.wake?.();
    }
  }
}
