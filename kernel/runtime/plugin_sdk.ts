/**
 * The plugin SDK: the Worker side of the host API (NZ-PLUGIN-01 "Host API").
 * A plugin's entry module default-exports a function that receives a
 * {@linkcode PluginApi}; the node's bootstrap calls it once the Worker runs.
 * This file imports nothing, so a plugin may also copy it into its bundle.
 *
 * ```ts ignore
 * import type { PluginApi } from "nzcore/plugin_sdk.ts";
 *
 * export default function (nz: PluginApi) {
 *   nz.onHttp(async (req) => ({ status: 200, body: `hits: ${await nz.storage.get("hits") ?? 0}` }));
 *   nz.onCli((args) => ({ stdout: `hello ${args.join(" ")}\n` }));
 * }
 * ```
 *
 * @module
 */

/** An HTTP request forwarded from `/v1/plugins/{name}/http/*`. */
export interface PluginHttpRequest {
  /** `GET`, `POST`, ... */
  method: string;
  /** The path below `/v1/plugins/{name}/http`, starting with `/`. */
  path: string;
  /** The query parameters (the last value of each). */
  query: Record<string, string>;
  /** Request headers, lowercase names; `authorization` and `cookie` are never forwarded. */
  headers: Record<string, string>;
  /** The body (empty for none). */
  body: Uint8Array;
}

/** A plugin's HTTP answer. */
export interface PluginHttpResponse {
  /** Status code (default 200). */
  status?: number;
  /** Response headers. */
  headers?: Record<string, string>;
  /** The body: text or bytes. */
  body?: string | Uint8Array;
}

/** A plugin's answer to `nzcore plugin NAME ARGS...`. */
export interface PluginCliResult {
  /** Printed on standard output. */
  stdout?: string;
  /** Printed on standard error. */
  stderr?: string;
  /** The exit code (default 0). */
  code?: number;
}

/** A message from a peer's plugin of the same name. */
export interface PluginPeerMessage {
  /** The sender's node ID. */
  from: string;
  /** The sender's DID. */
  did: string;
  /** The message. */
  data: Uint8Array;
}

/** An event of the node's bus, as pushed to a subscriber. */
export interface PluginEvent {
  /** The event's type. */
  type: string;
  /** When it was published (ms since the epoch). */
  time: number;
  /** Its payload. */
  data: Record<string, unknown>;
}

/** What a plugin's code reaches of the node. */
export interface PluginApi {
  /** The plugin's name. */
  readonly name: string;
  /** The absolute path of the plugin's data folder, where its `read:PATH` and `write:PATH` permissions point. */
  readonly dataDir: string;
  /** The plugin's own encrypted storage namespace (host capability `storage`). */
  readonly storage: {
    get<T = unknown>(key: string): Promise<T | undefined>;
    set(key: string, value: unknown): Promise<void>;
    delete(key: string): Promise<void>;
    list(prefix?: string): Promise<{ key: string; value: unknown }[]>;
  };
  /** Messages to and from the same plugin on other nodes (host capability `peers`). */
  readonly peers: {
    send(peer: string, data: Uint8Array | string): Promise<void>;
    list(): Promise<{ nodeId: string; did: string }[]>;
  };
  /** The node's event bus (host capability `events`). */
  readonly events: {
    publish(type: string, data?: Record<string, unknown>): Promise<void>;
    subscribe(prefix: string, handler: (event: PluginEvent) => void): Promise<void>;
  };
  /** Calls a host method by name (what the helpers above do). */
  call(method: string, params?: unknown): Promise<unknown>;
  /** Answers requests to `/v1/plugins/{name}/http/*` (host capability `http`). */
  onHttp(handler: (request: PluginHttpRequest) => PluginHttpResponse | Promise<PluginHttpResponse>): void;
  /** Answers `nzcore plugin {name} ARGS...` (host capability `cli`). */
  onCli(handler: (args: string[]) => PluginCliResult | string | Promise<PluginCliResult | string>): void;
  /** Receives messages from peers (host capability `peers`). */
  onPeerMessage(handler: (message: PluginPeerMessage) => void | Promise<void>): void;
}

/** A plugin's entry: the entry module's default export. */
export type PluginMain = (api: PluginApi) => void | Promise<void>;

/** An error the host returned for a call. */
export class HostCallError extends Error {
  /** The host's error code (`denied`, `not_capable`, `invalid`, `timeout`, ...). */
  readonly code: string;
  /** Makes one. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "HostCallError";
    this.code = code;
  }
}

interface Port {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
}

type Handler = (params: unknown) => unknown;

function isNotCapable(error: unknown): boolean {
  const NotCapable = (globalThis as { Deno?: { errors?: { NotCapable?: unknown } } }).Deno?.errors?.NotCapable;
  return (typeof NotCapable === "function" && error instanceof (NotCapable as new () => Error)) ||
    (error as Error | undefined)?.name === "NotCapable";
}

/**
 * Connects the plugin `main` to the host over `port` (the Worker's global
 * scope): answers pings, serves the host's calls, reports NotCapable errors,
 * then runs `main` and posts `ready`. Called by the node's bootstrap.
 */
export function runPlugin(
  main: PluginMain,
  name: string,
  dataDir: string,
  port: Port = globalThis as unknown as Port,
): void {
  const post = port.postMessage.bind(port);
  // Captured before the plugin runs: the plugin cannot replace what the host's pings read.
  const memoryUsage = (globalThis as { Deno?: { memoryUsage?: () => { heapUsed: number } } }).Deno?.memoryUsage;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const handlers = new Map<string, Handler>();
  const subscriptions = new Map<string, (event: PluginEvent) => void>();
  let peerHandler: ((m: PluginPeerMessage) => void | Promise<void>) | undefined;
  let nextId = 1;

  const denied = (error: unknown, where: string) => {
    if (isNotCapable(error)) post({ type: "denied", where, message: (error as Error).message });
  };
  const addEventListener = (globalThis as { addEventListener?: (t: string, l: (e: Event) => void) => void })
    .addEventListener;
  addEventListener?.call(globalThis, "unhandledrejection", (event: Event) => {
    denied((event as PromiseRejectionEvent).reason, "unhandled rejection");
  });
  addEventListener?.call(globalThis, "error", (event: Event) => {
    denied((event as ErrorEvent).error, "uncaught error");
  });

  const call = (method: string, params?: unknown): Promise<unknown> => {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      post({ id, method, params });
    });
  };

  port.addEventListener("message", async (event: MessageEvent) => {
    const m = event.data as {
      id?: number;
      type?: string;
      method?: string;
      params?: unknown;
      result?: unknown;
      error?: { code: string; message: string };
      event?: PluginEvent & { subscription?: string };
    };
    if (m.type === "ping") {
      post({ type: "pong", id: m.id, heapUsed: memoryUsage?.().heapUsed ?? 0 });
    } else if (m.type === "event" && m.event) {
      const handler = subscriptions.get(m.event.subscription ?? "");
      try {
        handler?.({ type: m.event.type, time: m.event.time, data: m.event.data });
      } catch (error) {
        denied(error, "event handler");
      }
    } else if (m.type === "peer.message") {
      try {
        await peerHandler?.(m.params as PluginPeerMessage);
      } catch (error) {
        denied(error, "peer message handler");
      }
    } else if (typeof m.method === "string" && typeof m.id === "number") {
      const handler = handlers.get(m.method);
      try {
        if (!handler) throw new HostCallError("unsupported", `The plugin "${name}" does not handle ${m.method}`);
        post({ id: m.id, result: await handler(m.params) });
      } catch (error) {
        denied(error, m.method);
        const e = error as Error;
        post({
          id: m.id,
          error: { code: isNotCapable(error) ? "not_capable" : "plugin_error", message: e?.message ?? String(error) },
        });
      }
    } else if (typeof m.id === "number") {
      const waiter = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) waiter?.reject(new HostCallError(m.error.code, m.error.message));
      else waiter?.resolve(m.result);
    }
  });

  const api: PluginApi = {
    name,
    dataDir,
    storage: {
      get: (key) => call("storage.get", { key }) as Promise<never>,
      set: (key, value) => call("storage.set", { key, value }).then(() => {}),
      delete: (key) => call("storage.delete", { key }).then(() => {}),
      list: (prefix = "") => call("storage.list", { prefix }) as Promise<{ key: string; value: unknown }[]>,
    },
    peers: {
      send: (peer, data) =>
        call("peers.send", { peer, data: typeof data === "string" ? new TextEncoder().encode(data) : data }).then(
          () => {},
        ),
      list: () => call("peers.list") as Promise<{ nodeId: string; did: string }[]>,
    },
    events: {
      publish: (type, data = {}) => call("events.publish", { type, data }).then(() => {}),
      subscribe: async (prefix, handler) => {
        const { subscription } = await call("events.subscribe", { prefix }) as { subscription: string };
        subscriptions.set(subscription, handler);
      },
    },
    call,
    onHttp(handler) {
      handlers.set("http", handler as Handler);
    },
    onCli(handler) {
      handlers.set("cli", async (params) => {
        const out = await handler((params as { args: string[] }).args);
        return typeof out === "string" ? { stdout: out, code: 0 } : out;
      });
    },
    onPeerMessage(handler) {
      peerHandler = handler;
    },
  };

  Promise.resolve().then(() => main(api)).then(
    () => post({ type: "ready" }),
    (error) => {
      denied(error, "start");
      post({ type: "exit", error: (error as Error)?.message ?? String(error) });
    },
  );
}
