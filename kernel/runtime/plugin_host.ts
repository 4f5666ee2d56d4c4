/**
 * One running plugin (NZ-PLUGIN-01 "Host API", "Limits"): a module Worker
 * whose Deno permissions are exactly the manifest's, narrowed by the owner's
 * grant and by what the node holds, and the host side of its RPC. Every host
 * call is checked against the plugin's host capabilities and the policy gate
 * (principal `plugin:NAME`); a refused call gets an error, is logged and
 * published as `plugin.refused`. A NotCapable error the plugin meets is
 * recorded as `plugin.denied`.
 *
 * Limits: every call has a deadline; the host pings the Worker every
 * {@linkcode PING_INTERVAL_MS} and terminates it when a ping goes unanswered
 * past `callTimeoutMs` (an endless loop) or when the heap the Worker reports
 * passes `maxHeapMb`. Deno 2.9 gives a Web Worker no heap limit of its own
 * (`resourceLimits` is honoured only by `node:worker_threads`, whose Workers
 * cannot be given narrower Deno permissions), and a V8 heap exhausted in any
 * isolate aborts the whole process; so the host also watches the process's
 * resident memory and terminates the Worker whose ping is the most overdue
 * when it grows past the plugins' budgets (a Worker allocating in a tight
 * loop answers no ping).
 *
 * @module
 */

import { pathToFileURL } from "node:url";
import type { NodeEvent } from "../node/event_bus.ts";
import type { Node } from "../node/node.ts";
import type { Namespace } from "../storage/encrypted_kv.ts";
import { encodeValue } from "../storage/value_codec.ts";
import type { ActionName, ResourceType } from "../policy/request.ts";
import type { HostCapability, PluginManifest } from "./plugin_manifest.ts";

/** How often the host pings a running plugin. */
export const PING_INTERVAL_MS = 500;
/** How long a new Worker has to post `ready`. */
export const START_TIMEOUT_MS = 10_000;
/** Largest value a plugin may store under one key, in bytes of its CBOR encoding (checked by the store's codec). */
export const MAX_STORAGE_VALUE_BYTES = 1024 * 1024;
/** Largest peer message a plugin may send, in bytes. */
export const MAX_PEER_MESSAGE_BYTES = 256 * 1024;
/** Most event subscriptions one plugin may hold. */
export const MAX_SUBSCRIPTIONS = 16;
/** The event types a plugin may subscribe to: prefixes of these. */
export const SUBSCRIBABLE = ["plugin.", "peer.connected", "peer.disconnected"] as const;

/** The stream protocol between the plugins named `name` of two nodes. */
export function pluginProtocol(name: string): string {
  return `nz/plugin/${name}/1`;
}

/** The store namespace of plugin `name`. */
export function pluginNamespace(name: string): readonly string[] {
  return ["plugin", name];
}

/** An error answered to a call: `{code, message}`. */
export class PluginCallError extends Error {
  /** Stable code: `denied`, `not_capable`, `invalid`, `not_found`, `timeout`, `stopped`, `plugin_error`, `unsupported`. */
  readonly code: string;
  /** Makes one. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "PluginCallError";
    this.code = code;
  }
}

/** What a plugin host reaches of the node. */
export type PluginNode = Pick<Node, "store" | "bus" | "peers" | "policy" | "record" | "peerIdOf">;

/** Options of {@linkcode PluginHost}. */
export interface PluginHostOptions {
  /** The node. */
  node: PluginNode;
  /** The validated manifest. */
  manifest: PluginManifest;
  /** The folder holding the plugin's files. */
  codeDir: string;
  /** The plugin's data folder (its `read:`/`write:` paths are inside). */
  dataDir: string;
  /** The Worker's permissions (manifest ∩ grant ∩ node). */
  permissions: Deno.PermissionOptionsObject;
  /** The host capabilities granted. */
  host: readonly HostCapability[];
  /** Appended to the entry's URL, so a reload loads changed files (`?v=N`). */
  generation: number;
  /** Called once when the Worker ends on its own or is terminated by a limit (not after `stop()`). */
  onExit(reason: string): void;
}

interface Waiter {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const SDK_URL = new URL("./plugin_sdk.ts", import.meta.url).href;

/** The source of the Worker's bootstrap module: the SDK, then the plugin's entry. */
function bootstrapUrl(entry: string, name: string, dataDir: string): string {
  const source = `import { runPlugin } from ${JSON.stringify(SDK_URL)};\n` +
    `import * as plugin from ${JSON.stringify(entry)};\n` +
    `if (typeof plugin.default !== "function") throw new TypeError("The plugin's entry has no default export function");\n` +
    `runPlugin(plugin.default, ${JSON.stringify(name)}, ${JSON.stringify(dataDir)});\n`;
  return `data:application/javascript;base64,${btoa(source)}`;
}

/** A plugin running in a Worker. */
export class PluginHost {
  /** The manifest it runs. */
  readonly manifest: PluginManifest;
  #options: PluginHostOptions;
  #worker: Worker | undefined;
  #ns: Namespace;
  #nextId = 1;
  #pending = new Map<number, Waiter>();
  #subscriptions = new Map<string, AbortController>();
  #ping: ReturnType<typeof setInterval> | undefined;
  #pingSent = 0;
  #pingOutstanding: number | undefined;
  #heapUsed = 0;
  #ended = false;
  #started = Promise.withResolvers<void>();

  /** Makes a host; nothing runs before {@linkcode PluginHost.start}. */
  constructor(options: PluginHostOptions) {
    this.#options = options;
    this.manifest = options.manifest;
    this.#ns = options.node.store.namespace(pluginNamespace(options.manifest.name));
  }

  /** Whether the Worker runs. */
  get running(): boolean {
    return this.#worker !== undefined && !this.#ended;
  }

  /** The heap the Worker reported last, in bytes. */
  get heapUsed(): number {
    return this.#heapUsed;
  }

  /** Milliseconds the oldest unanswered ping has waited (0 when none). */
  get pingOverdueMs(): number {
    return this.#pingOutstanding === undefined ? 0 : Date.now() - this.#pingSent;
  }

  /**
   * Starts the Worker and waits for the plugin's `ready`.
   *
   * @throws {PluginCallError} `start_failed` when it fails, exits or times out first.
   */
  start(): Promise<void> {
    const { manifest, codeDir, generation } = this.#options;
    const entry = pathToFileURL(`${codeDir}/${manifest.entry}`);
    entry.search = `v=${generation}`;
    const worker = new Worker(bootstrapUrl(entry.href, manifest.name, this.#options.dataDir), {
      type: "module",
      name: `plugin:${manifest.name}`,
      deno: { permissions: this.#options.permissions },
    });
    this.#worker = worker;
    const timer = setTimeout(
      () => this.#end(`it did not post "ready" within ${START_TIMEOUT_MS} ms`),
      START_TIMEOUT_MS,
    );
    this.#started.promise.then(() => clearTimeout(timer), () => clearTimeout(timer));
    worker.onerror = (event) => {
      // Handled here: an error in a plugin never reaches (and never kills) the node.
      event.preventDefault();
      const message = event.message || "the worker failed";
      if (/NotCapable/.test(message)) this.#denied(message, "uncaught error");
      this.#end(`it crashed: ${message}`);
    };
    worker.onmessageerror = () => this.#end("it sent a message that cannot be read");
    worker.onmessage = (event: MessageEvent) => this.#onMessage(event.data);
    return this.#started.promise;
  }

  /** Stops the Worker; pending calls fail with `stopped`. */
  stop(): void {
    this.#end(undefined);
  }

  /** Terminates the Worker for `reason` (a limit), reporting it through `onExit`. */
  kill(reason: string): void {
    this.#end(reason);
  }

  #end(reason: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#ping);
    this.#worker?.terminate();
    for (const sub of this.#subscriptions.values()) sub.abort();
    this.#subscriptions.clear();
    for (const waiter of this.#pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new PluginCallError("stopped", `The plugin "${this.manifest.name}" stopped`));
    }
    this.#pending.clear();
    if (reason !== undefined) {
      this.#started.reject(new PluginCallError("start_failed", `The plugin "${this.manifest.name}" failed: ${reason}`));
      this.#options.onExit(reason);
    } else {
      this.#started.reject(new PluginCallError("stopped", `The plugin "${this.manifest.name}" was stopped`));
    }
    this.#started.promise.catch(() => {});
  }

  /**
   * Calls the plugin's handler `method` (`http`, `cli`) and waits for its answer.
   *
   * @throws {PluginCallError} `timeout` after `callTimeoutMs`, `stopped`, or the plugin's own error code.
   */
  request(method: string, params: unknown): Promise<unknown> {
    const worker = this.#worker;
    if (!worker || this.#ended) {
      return Promise.reject(new PluginCallError("stopped", `The plugin "${this.manifest.name}" is not running`));
    }
    const id = this.#nextId++;
    const timeoutMs = this.manifest.limits.callTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new PluginCallError("timeout", `The plugin "${this.manifest.name}" did not answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      worker.postMessage({ id, method, params });
    });
  }

  /** Pushes a message from a peer to the plugin. */
  deliverPeerMessage(message: { from: string; did: string; data: Uint8Array }): void {
    if (this.running) this.#worker!.postMessage({ type: "peer.message", params: message });
  }

  #onMessage(m: unknown): void {
    if (this.#ended || typeof m !== "object" || m === null) return;
    const msg = m as {
      id?: unknown;
      type?: unknown;
      method?: unknown;
      params?: unknown;
      result?: unknown;
      error?: { code?: unknown; message?: unknown };
      heapUsed?: unknown;
      message?: unknown;
      where?: unknown;
    };
    if (typeof msg.method === "string" && typeof msg.id === "number") {
      void this.#serve(msg.id, msg.method, msg.params);
    } else if (msg.type === "pong") {
      if (msg.id === this.#pingOutstanding) this.#pingOutstanding = undefined;
      this.#heapUsed = typeof msg.heapUsed === "number" ? msg.heapUsed : 0;
      const limit = this.manifest.limits.maxHeapMb * 1024 * 1024;
      if (this.#heapUsed > limit) {
        this.#end(
          `its heap of ${
            Math.round(this.#heapUsed / 1048576)
          } MiB passed its limit of ${this.manifest.limits.maxHeapMb} MiB`,
        );
      }
    } else if (msg.type === "ready") {
      this.#started.resolve();
      this.#ping = setInterval(() => this.#sendPing(), PING_INTERVAL_MS);
    } else if (msg.type === "denied") {
      this.#denied(String(msg.message).slice(0, 1024), String(msg.where).slice(0, 64));
    } else if (msg.type === "exit") {
      this.#end(msg.error === undefined ? "it exited" : `it exited: ${String(msg.error).slice(0, 1024)}`);
    } else if (typeof msg.id === "number") {
      const waiter = this.#pending.get(msg.id);
      if (!waiter) return;
      this.#pending.delete(msg.id);
      clearTimeout(waiter.timer);
      if (msg.error) {
        waiter.reject(new PluginCallError(String(msg.error.code ?? "plugin_error"), String(msg.error.message ?? "")));
      } else waiter.resolve(msg.result);
    }
  }

  #sendPing(): void {
    if (this.#pingOutstanding !== undefined) {
      const waited = Date.now() - this.#pingSent;
      if (waited > this.manifest.limits.callTimeoutMs) {
        this.#end(`it stopped answering (no answer to a health ping in ${waited} ms)`);
      }
      return;
    }
    this.#pingOutstanding = this.#nextId++;
    this.#pingSent = Date.now();
    this.#worker?.postMessage({ type: "ping", id: this.#pingOutstanding });
  }

  #denied(message: string, where: string): void {
    const name = this.manifest.name;
    console.warn(`nzcore: plugin "${name}" was denied by Deno (${where}): ${message}`);
    void this.#options.node.record("plugin.denied", { plugin: name, where, message });
  }

  async #serve(id: number, method: string, params: unknown): Promise<void> {
    let reply: unknown;
    try {
      reply = { id, result: await this.#dispatch(method, params) };
    } catch (error) {
      const code = error instanceof PluginCallError
        ? error.code
        : error instanceof RangeError || error instanceof SyntaxError || error instanceof TypeError
        ? "invalid"
        : (error as Error)?.name === "NotFoundError"
        ? "not_found"
        : "failed";
      if (code === "denied") this.#refused(method, (error as Error).message);
      reply = { id, error: { code, message: (error as Error)?.message ?? String(error) } };
    }
    if (!this.#ended) this.#worker?.postMessage(reply);
  }

  #refused(method: string, message: string): void {
    const name = this.manifest.name;
    console.warn(`nzcore: plugin "${name}" was refused ${method}: ${message}`);
    this.#options.node.bus.publish("plugin.refused", { plugin: name, method, message });
  }

  #need(capability: HostCapability, method: string): void {
    if (!this.#options.host.includes(capability)) {
      throw new PluginCallError(
        "denied",
        `${method} needs the host capability "${capability}", which the plugin "${this.manifest.name}" was not granted`,
      );
    }
  }

  async #gate(action: ActionName, resource: { type: ResourceType; id: string }, context = {}): Promise<void> {
    const decision = await this.#options.node.policy.check({
      principal: { type: "plugin", id: this.manifest.name },
      action,
      resource,
      context: { source: "plugin", ...context },
    });
    if (decision.outcome !== "ALLOW") {
      throw new PluginCallError(
        "denied",
        `${action} refused by policy (${decision.outcome}): ${decision.reasons.join("; ") || "no policy permits it"}`,
      );
    }
  }

  #dispatch(method: string, params: unknown): Promise<unknown> | unknown {
    const p = (params ?? {}) as Record<string, unknown>;
    const name = this.manifest.name;
    const storage = { type: "storage" as const, id: `plugin/${name}` };
    switch (method) {
      case "ping":
        return "pong";
      case "storage.get":
        this.#need("storage", method);
        return this.#gate("storage.read", storage).then(() => this.#ns.get([storageKey(p.key)]));
      case "storage.set": {
        this.#need("storage", method);
        const key = storageKey(p.key);
        const size = encodeValue(p.value).length;
        if (size > MAX_STORAGE_VALUE_BYTES) {
          throw new RangeError(`Invalid value: ${size} bytes encoded, expected at most ${MAX_STORAGE_VALUE_BYTES}`);
        }
        return this.#gate("storage.write", storage).then(() => this.#ns.set([key], p.value));
      }
      case "storage.delete": {
        this.#need("storage", method);
        const key = storageKey(p.key);
        return this.#gate("storage.delete", storage).then(() => this.#ns.delete([key]));
      }
      case "storage.list": {
        this.#need("storage", method);
        const prefix = p.prefix === undefined ? "" : String(p.prefix);
        return this.#gate("storage.read", storage).then(async () => {
          const out: { key: string; value: unknown }[] = [];
          for await (const entry of this.#ns.list([])) {
            const key = String(entry.key[0]);
            if (key.startsWith(prefix)) out.push({ key, value: entry.value });
            if (out.length >= 1000) break;
          }
          return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        });
      }
      case "peers.list":
        this.#need("peers", method);
        return this.#options.node.peers.sessions().map((s) => ({ nodeId: s.nodeId, did: s.did }));
      case "peers.send":
        this.#need("peers", method);
        return this.#sendToPeer(p.peer, p.data);
      case "events.publish": {
        this.#need("events", method);
        const type = p.type;
        const prefix = `plugin.${name}.`;
        if (typeof type !== "string" || !type.startsWith(prefix) || type.length > 128) {
          throw new RangeError(`Invalid event type: a plugin publishes types starting with "${prefix}"`);
        }
        const data = p.data === undefined ? {} : p.data;
        if (typeof data !== "object" || data === null || Array.isArray(data)) {
          throw new TypeError("Invalid event data: expected an object");
        }
        this.#options.node.bus.publish(type, { ...(data as Record<string, unknown>), plugin: name });
        return undefined;
      }
      case "events.subscribe":
        this.#need("events", method);
        return this.#subscribe(p.prefix);
      default:
        throw new PluginCallError("unsupported", `Unknown host method "${method.slice(0, 64)}"`);
    }
  }

  async #sendToPeer(peer: unknown, data: unknown): Promise<void> {
    if (typeof peer !== "string") throw new TypeError("Invalid peer: expected a node ID or DID");
    if (!(data instanceof Uint8Array)) throw new TypeError("Invalid data: expected bytes");
    if (data.length > MAX_PEER_MESSAGE_BYTES) {
      throw new RangeError(`Invalid data: ${data.length} bytes, expected at most ${MAX_PEER_MESSAGE_BYTES}`);
    }
    const session = this.#options.node.peers.session(peer);
    await this.#gate("peer.send", { type: "peer", id: session.nodeId }, { peer: session.nodeId, bytes: data.length });
    const stream = await session.openStream(pluginProtocol(this.manifest.name));
    try {
      await stream.send(data);
    } finally {
      await stream.close();
    }
  }

  #subscribe(prefix: unknown): { subscription: string } {
    if (typeof prefix !== "string" || prefix.length > 128 || !SUBSCRIBABLE.some((s) => prefix.startsWith(s))) {
      throw new RangeError(
        `Invalid prefix: a plugin subscribes to event types starting with ${SUBSCRIBABLE.join(", ")}`,
      );
    }
    if (this.#subscriptions.size >= MAX_SUBSCRIPTIONS) {
      throw new RangeError(`Too many subscriptions: at most ${MAX_SUBSCRIPTIONS}`);
    }
    const subscription = String(this.#nextId++);
    const stop = new AbortController();
    this.#subscriptions.set(subscription, stop);
    void (async () => {
      for await (const event of this.#options.node.bus.subscribe({ types: [prefix], signal: stop.signal })) {
        if (this.#ended) return;
        this.#worker?.postMessage({ type: "event", event: { ...eventView(event), subscription } });
      }
    })().catch(() => {});
    return { subscription };
  }
}

function eventView(event: NodeEvent): { type: string; time: number; data: Record<string, unknown> } {
  return { type: event.type, time: event.time, data: event.data };
}

function storageKey(key: unknown): string {
  if (typeof key !== "string" || key.length === 0 || key.length > 256) {
    throw new RangeError("Invalid key: expected a string of 1 to 256 characters");
  }
  return key;
}
