/**
 * The plugin manager (NZ-PLUGIN-01 "Lifecycle"): installs plugins from a
 * folder or a signed `.nzp` bundle into `DATA_DIR/plugins/NAME/code/`, keeps
 * their state in the encrypted store (`["plugins"]`), and enables, disables,
 * reloads (also on file change, with `watch`) and uninstalls them. Every
 * install, uninstall and run is decided by the policy gate (`plugin.install`,
 * `plugin.uninstall`, `plugin.run`) and recorded in the signed event log.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { Namespace } from "../storage/encrypted_kv.ts";
import type { ActionName, PrincipalType } from "../policy/request.ts";
import { assertWithinProfile, permissionsFor } from "./worker_service.ts";
import { MANIFEST_FILE, openBundle, type PluginFiles, readPluginDir } from "./plugin_bundle.ts";
import {
  decodePluginManifest,
  grantedOf,
  type HostCapability,
  PLUGIN_NAME,
  type PluginManifest,
} from "./plugin_manifest.ts";
import { PluginCallError, PluginHost, pluginNamespace, type PluginNode, pluginProtocol } from "./plugin_host.ts";

/** What a plugin is granted: Deno permissions and host capabilities. */
export interface PluginGrant {
  /** Deno permissions (`net:HOST`, `read:PATH`, ...). */
  permissions: string[];
  /** Host capabilities. */
  host: HostCapability[];
}

/** A plugin's stored state. */
export interface PluginRecord {
  /** Its name. */
  name: string;
  /** Its version. */
  version: string;
  /** Its description. */
  description: string;
  /** Whether it runs when the node runs. */
  enabled: boolean;
  /** Whether a change of its files reloads it. */
  watch: boolean;
  /** What the owner granted. */
  granted: PluginGrant;
  /** The DID that signed its bundle; `null` for a folder install. */
  signer: string | null;
  /** The folder it was installed from (a reload copies it again); `null` for a bundle. */
  source: string | null;
  /** When it was installed (ms since the epoch). */
  installedAt: number;
}

/** A plugin as {@linkcode PluginManager.list} shows it. */
export interface PluginInfo extends PluginRecord {
  /** `running`, `stopped` (disabled), or `failed` (enabled but ended: `reason` says why). */
  status: "running" | "stopped" | "failed";
  /** Why it failed. */
  reason?: string;
  /** What the manifest requests. */
  requested: PluginGrant;
  /** The Worker's last reported heap, in bytes. */
  heapUsed?: number;
}

/** Who asks for an install or uninstall. */
export interface Actor {
  /** The principal the gate decides for (e.g. `token:ID`). */
  principal: { type: PrincipalType; id: string };
  /**
   * The node's owner (an admin-scoped token): the owner holds every power, so
   * only a policy that forbids the action (or asks for an approval) stops it.
   * Any other principal needs an `ALLOW`.
   */
  owner: boolean;
  /** Where the request came from (`api`, `cli`). */
  source?: string;
}

/** Options of {@linkcode PluginManager.install}. */
export interface InstallOptions {
  /** What to grant of what the manifest requests: a list, or `"all"` (default: nothing). */
  grant?: readonly string[] | "all";
  /** Who asks (default: the owner, from the CLI). */
  actor?: Actor;
}

/** An HTTP request to a plugin. */
export interface PluginHttpCall {
  /** The HTTP method. */
  method: string;
  /** The path below `/v1/plugins/{name}/http`, starting with `/`. */
  path: string;
  /** The query parameters. */
  query: Record<string, string>;
  /** The request headers (without the caller's authorization and cookies). */
  headers: Record<string, string>;
  /** The request body. */
  body: Uint8Array;
}

/** Options of {@linkcode PluginManager.open}. */
export interface PluginManagerOptions {
  /** Start the enabled plugins now (default true). */
  start?: boolean;
}

const OWNER: Actor = { principal: { type: "node", id: "owner" }, owner: true, source: "cli" };
const WATCH_DEBOUNCE_MS = 200;
const MEMORY_CHECK_MS = 250;
/** Resident memory the process may use beyond its start and the plugins' heaps before a Worker is terminated. */
const RSS_MARGIN = 512 * 1024 * 1024;

/** The policy capabilities a host capability brings (besides `plugin.run`). */
const POLICY_OF: Record<HostCapability, ActionName[]> = {
  storage: ["storage.read", "storage.write", "storage.delete"],
  peers: ["peer.send"],
  events: [],
  http: [],
  cli: [],
};

/** What the manager reaches of the node. */
export type PluginManagerNode = PluginNode & { dataDir: string; identities: { list(): { did: string }[] } };

/** Installed plugins and their Workers. */
export class PluginManager {
  /** `DATA_DIR/plugins`. */
  readonly root: string;
  #node: PluginManagerNode;
  #ns: Namespace;
  #records = new Map<string, PluginRecord>();
  #hosts = new Map<string, PluginHost>();
  #failures = new Map<string, string>();
  #watchers = new Map<string, Deno.FsWatcher>();
  #generation = 0;
  #busy = new Map<string, Promise<unknown>>();
  #memoryTimer: ReturnType<typeof setInterval> | undefined;
  #rssBase = Deno.memoryUsage().rss;
  #closed = false;

  private constructor(node: PluginManagerNode) {
    this.#node = node;
    this.root = join(node.dataDir, "plugins");
    this.#ns = node.store.namespace(["plugins"]);
  }

  /** Opens the manager: loads the records, listens for plugin streams and starts the enabled plugins. */
  static async open(node: PluginManagerNode, options: PluginManagerOptions = {}): Promise<PluginManager> {
    const manager = new PluginManager(node);
    await Deno.mkdir(manager.root, { recursive: true, mode: 0o700 });
    for await (const entry of manager.#ns.list<PluginRecord>(["plugin"])) {
      manager.#records.set(entry.value.name, entry.value);
      manager.#listen(entry.value.name);
    }
    if (options.start !== false) await manager.startEnabled();
    return manager;
  }

  /** Starts every enabled plugin; one that fails is logged (and shown as `failed`), and the others start. */
  async startEnabled(): Promise<void> {
    for (const record of this.#records.values()) {
      if (!record.enabled) continue;
      await this.#serial(record.name, async () => {
        await this.#start(record);
        if (record.watch) this.#watch(record.name);
      }).catch((error) => {
        console.error(`nzcore: plugin "${record.name}" did not start: ${(error as Error).message}`);
      });
    }
  }

  /** The DIDs whose bundles are installed: the node's own identities and those the owner trusts. */
  async trusted(): Promise<Set<string>> {
    const dids = new Set(this.#node.identities.list().map((i) => i.did));
    for await (const entry of this.#ns.list<{ did: string }>(["trust"])) dids.add(entry.value.did);
    return dids;
  }

  /** The DIDs the owner added with {@linkcode PluginManager.trust}. */
  async trustedByOwner(): Promise<string[]> {
    const out: string[] = [];
    for await (const entry of this.#ns.list<{ did: string }>(["trust"])) out.push(entry.value.did);
    return out.sort();
  }

  /**
   * Trusts bundles signed by `did`.
   *
   * @throws {SyntaxError} when `did` is not an Ed25519 did:key.
   */
  async trust(did: string): Promise<void> {
    this.#node.peerIdOf(did);
    if (!did.startsWith("did:key:")) throw new SyntaxError(`Invalid DID "${did}": expected a did:key`);
    await this.#ns.set(["trust", did], { did, addedAt: Date.now() });
    await this.#node.record("plugin.trusted", { did });
  }

  /** Every installed plugin, by name. */
  list(): PluginInfo[] {
    return [...this.#records.keys()].sort().map((name) => this.info(name));
  }

  /**
   * One plugin.
   *
   * @throws {NotFoundError} when none has that name.
   */
  info(name: string): PluginInfo {
    const record = this.#record(name);
    const host = this.#hosts.get(name);
    const running = host?.running === true;
    const failure = this.#failures.get(name);
    const manifest = host?.manifest;
    return {
      ...record,
      status: running ? "running" : record.enabled && failure ? "failed" : "stopped",
      ...(failure && !running ? { reason: failure } : {}),
      requested: manifest ? { permissions: manifest.permissions, host: manifest.host } : record.granted,
      ...(running ? { heapUsed: host!.heapUsed } : {}),
    };
  }

  #record(name: string): PluginRecord {
    const record = this.#records.get(name);
    if (!record) throw new NotFoundError(`No plugin named "${name}"`);
    return record;
  }

  /** Runs `fn` after any other operation on the plugin `name`. */
  #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#busy.get(name) ?? Promise.resolve();
    const run = before.catch(() => {}).then(fn);
    this.#busy.set(name, run);
    run.finally(() => {
      if (this.#busy.get(name) === run) this.#busy.delete(name);
    }).catch(() => {});
    return run;
  }

  async #decide(actor: Actor, action: ActionName, name: string): Promise<void> {
    const decision = await this.#node.policy.check({
      principal: actor.principal,
      action,
      resource: { type: "plugin", id: name },
      context: { source: actor.source ?? "api" },
    });
    if (decision.outcome === "ALLOW") return;
    if (decision.outcome === "DENY" && actor.owner && decision.policies.length === 0) return;
    const why = decision.reasons.join("; ") || "no policy permits it";
    throw new PluginCallError(
      "denied",
      decision.approval
        ? `${action} of "${name}" needs an operator's approval (${decision.approval.id}): ${why}`
        : `${action} of "${name}" is denied by policy: ${why}`,
    );
  }

  /**
   * Installs the plugin at `path`: a plugin folder (with `plugin.json`) or a
   * `.nzp` bundle signed by a trusted DID. It is installed disabled.
   *
   * @throws {SyntaxError} for a malformed manifest or bundle.
   * @throws {RangeError} for a bad signature, an untrusted signer, or a grant beyond the manifest or the node.
   * @throws {ConflictError} when a plugin of that name is installed.
   * @throws {PluginCallError} `denied` when the policy gate refuses.
   */
  async install(path: string, options: InstallOptions = {}): Promise<PluginInfo> {
    const source = resolve(path);
    let content: PluginFiles;
    let signer: string | null = null;
    const stat = await Deno.stat(source).catch((error) => {
      if (error instanceof Deno.errors.NotFound) throw new NotFoundError(`No plugin folder or bundle at "${source}"`);
      throw error;
    });
    if (stat.isDirectory) content = await readPluginDir(source);
    else {
      const opened = openBundle(await Deno.readFile(source), await this.trusted());
      content = opened;
      signer = opened.signer;
    }
    const { manifest } = content;
    const name = manifest.name;
    return await this.#serial(name, async () => {
      if (this.#records.has(name)) throw new ConflictError(`A plugin named "${name}" is installed already`);
      await this.#decide(options.actor ?? OWNER, "plugin.install", name);
      const granted = grantedOf(manifest, options.grant ?? []);
      this.#assertWithinNode(name, granted.permissions);
      await this.#writeFiles(name, content);
      await Deno.mkdir(this.#dataDir(name), { recursive: true, mode: 0o700 });
      const principal = { type: "plugin" as const, id: name };
      for (const capability of ["plugin.run", ...granted.host.flatMap((h) => POLICY_OF[h])]) {
        await this.#node.policy.grant(principal, capability);
      }
      const record: PluginRecord = {
        name,
        version: manifest.version,
        description: manifest.description,
        enabled: false,
        watch: false,
        granted,
        signer,
        source: stat.isDirectory ? source : null,
        installedAt: Date.now(),
      };
      await this.#ns.set(["plugin", name], record);
      this.#records.set(name, record);
      this.#listen(name);
      await this.#node.record("plugin.installed", {
        plugin: name,
        version: manifest.version,
        signer,
        granted: [...granted.permissions, ...granted.host],
      });
      return this.info(name);
    });
  }

  #assertWithinNode(name: string, permissions: readonly string[]): void {
    try {
      assertWithinProfile(name, permissions, this.#dataDir(name));
    } catch (error) {
      throw new RangeError(`Cannot grant plugin "${name}" more than the node holds: ${(error as Error).message}`);
    }
  }

  #codeDir(name: string): string {
    return join(this.root, name, "code");
  }

  #dataDir(name: string): string {
    return join(this.root, name, "data");
  }

  /** Writes the files into a fresh folder, then swaps it in for `code/`. */
  async #writeFiles(name: string, content: PluginFiles): Promise<void> {
    const base = join(this.root, name);
    await Deno.mkdir(base, { recursive: true, mode: 0o700 });
    const fresh = join(base, `code.tmp-${crypto.randomUUID().slice(0, 12)}`);
    try {
      await Deno.mkdir(fresh, { mode: 0o700 });
      await Deno.writeFile(join(fresh, MANIFEST_FILE), content.manifestBytes, { mode: 0o600 });
      for (const [path, bytes] of content.files) {
        const target = join(fresh, path);
        await Deno.mkdir(join(target, ".."), { recursive: true, mode: 0o700 });
        await Deno.writeFile(target, bytes, { mode: 0o600, createNew: true }).catch((error) => {
          throw new SyntaxError(`Cannot write the plugin file "${path}": ${(error as Error).message}`);
        });
      }
      const code = this.#codeDir(name);
      await Deno.remove(code, { recursive: true }).catch(() => {});
      await Deno.rename(fresh, code);
    } catch (error) {
      await Deno.remove(fresh, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  async #readManifest(name: string): Promise<PluginManifest> {
    const path = join(this.#codeDir(name), MANIFEST_FILE);
    return decodePluginManifest(await Deno.readFile(path), path);
  }

  /** The Worker permissions of a plugin now: manifest ∩ grant ∩ node. */
  #permissions(record: PluginRecord, manifest: PluginManifest): Deno.PermissionOptionsObject {
    const wanted = manifest.permissions.filter((p) => record.granted.permissions.includes(p));
    this.#assertWithinNode(record.name, wanted);
    return permissionsFor(wanted, this.#dataDir(record.name));
  }

  async #start(record: PluginRecord): Promise<void> {
    const name = record.name;
    if (this.#hosts.get(name)?.running) return;
    this.#failures.delete(name);
    try {
      const manifest = await this.#readManifest(name);
      if (manifest.name !== name) throw new SyntaxError(`The manifest's name changed to "${manifest.name}"`);
      await this.#decide(
        { principal: { type: "plugin", id: name }, owner: false, source: "plugin" },
        "plugin.run",
        name,
      );
      const host = new PluginHost({
        node: this.#node,
        manifest,
        codeDir: this.#codeDir(name),
        dataDir: this.#dataDir(name),
        permissions: this.#permissions(record, manifest),
        host: manifest.host.filter((h) => record.granted.host.includes(h)),
        generation: ++this.#generation,
        onExit: (reason) => {
          if (this.#hosts.get(name) !== host) return;
          this.#failures.set(name, reason);
          console.error(`nzcore: plugin "${name}" stopped: ${reason}`);
          void this.#node.record("plugin.stopped", { plugin: name, reason });
        },
      });
      this.#hosts.set(name, host);
      this.#watchMemory();
      await host.start();
      await this.#node.record("plugin.started", { plugin: name, version: manifest.version });
    } catch (error) {
      this.#failures.set(name, (error as Error).message);
      throw error;
    }
  }

  #stop(name: string): void {
    const host = this.#hosts.get(name);
    this.#hosts.delete(name);
    host?.stop();
    this.#watchers.get(name)?.close();
    this.#watchers.delete(name);
  }

  /**
   * Enables a plugin and starts it; with `watch`, a change of its files reloads it.
   *
   * @throws {NotFoundError} when none has that name; the start's error when it fails (it stays enabled).
   */
  enable(name: string, options: { watch?: boolean } = {}): Promise<PluginInfo> {
    return this.#serial(name, async () => {
      const record = this.#record(name);
      const updated = { ...record, enabled: true, watch: options.watch ?? record.watch };
      await this.#save(updated);
      await this.#start(updated);
      if (updated.watch) this.#watch(name);
      await this.#node.record("plugin.enabled", { plugin: name });
      return this.info(name);
    });
  }

  /** Stops a plugin and keeps it stopped across restarts. */
  disable(name: string): Promise<PluginInfo> {
    return this.#serial(name, async () => {
      const record = this.#record(name);
      this.#stop(name);
      this.#failures.delete(name);
      await this.#save({ ...record, enabled: false });
      await this.#node.record("plugin.disabled", { plugin: name });
      return this.info(name);
    });
  }

  /**
   * Hot reload: stops the Worker, reads the files again (from the folder it
   * was installed from, if any) and starts it again when enabled.
   *
   * @throws {SyntaxError} when the new files are malformed (the plugin stays stopped, its old files in place).
   */
  reload(name: string): Promise<PluginInfo> {
    return this.#serial(name, async () => {
      let record = this.#record(name);
      if (record.source) {
        const content = await readPluginDir(record.source);
        if (content.manifest.name !== name) {
          throw new SyntaxError(
            `Cannot reload "${name}": the manifest at ${record.source} names "${content.manifest.name}"`,
          );
        }
        this.#stop(name);
        await this.#writeFiles(name, content);
        record = { ...record, version: content.manifest.version, description: content.manifest.description };
        await this.#save(record);
      } else this.#stop(name);
      if (record.enabled) {
        await this.#start(record);
        if (record.watch) this.#watch(name);
      }
      await this.#node.record("plugin.reloaded", { plugin: name, version: record.version });
      return this.info(name);
    });
  }

  /**
   * Stops and removes a plugin: its files, its data folder, its storage
   * namespace and its grants.
   *
   * @throws {NotFoundError} when none has that name; {@linkcode PluginCallError} `denied` when the gate refuses.
   */
  uninstall(name: string, options: { actor?: Actor } = {}): Promise<void> {
    return this.#serial(name, async () => {
      const record = this.#record(name);
      await this.#decide(options.actor ?? OWNER, "plugin.uninstall", name);
      this.#stop(name);
      const ns = this.#node.store.namespace(pluginNamespace(name));
      const keys = [];
      for await (const entry of ns.list([])) keys.push(entry.key);
      for (const key of keys) await ns.delete(key);
      const principal = { type: "plugin" as const, id: name };
      const held = this.#node.policy.capabilities.list().find((g) =>
        g.principal.type === "plugin" && g.principal.id === name
      );
      const capabilities = held?.capabilities ??
        ["plugin.run", ...record.granted.host.flatMap((h) => POLICY_OF[h])];
      for (const capability of capabilities) await this.#node.policy.revoke(principal, capability).catch(() => {});
      await Deno.remove(join(this.root, name), { recursive: true }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      await this.#ns.delete(["plugin", name]);
      this.#records.delete(name);
      this.#failures.delete(name);
      await this.#node.record("plugin.uninstalled", { plugin: name });
    });
  }

  async #save(record: PluginRecord): Promise<void> {
    await this.#ns.set(["plugin", record.name], record);
    this.#records.set(record.name, record);
  }

  #running(name: string, capability: HostCapability): PluginHost {
    const record = this.#record(name);
    const host = this.#hosts.get(name);
    if (!host?.running) {
      throw new ConflictError(
        `The plugin "${name}" is not running${this.#failures.has(name) ? `: ${this.#failures.get(name)}` : ""}`,
      );
    }
    if (!record.granted.host.includes(capability) || !host.manifest.host.includes(capability)) {
      throw new PluginCallError("denied", `The plugin "${name}" does not hold the host capability "${capability}"`);
    }
    return host;
  }

  /**
   * Forwards an HTTP request to the plugin's handler.
   *
   * @throws {NotFoundError}, {@linkcode ConflictError} (not running), {@linkcode PluginCallError}.
   */
  async http(
    name: string,
    request: PluginHttpCall,
  ): Promise<{ status: number; headers: Record<string, string>; body: Uint8Array }> {
    const out = await this.#running(name, "http").request("http", request) as {
      status?: unknown;
      headers?: unknown;
      body?: unknown;
    } | null;
    const status = typeof out?.status === "number" && out.status >= 200 && out.status <= 599 ? out.status : 200;
    const headers: Record<string, string> = {};
    if (typeof out?.headers === "object" && out.headers !== null) {
      for (const [k, v] of Object.entries(out.headers)) if (typeof v === "string") headers[k.toLowerCase()] = v;
    }
    const body = out?.body instanceof Uint8Array
      ? out.body
      : new TextEncoder().encode(typeof out?.body === "string" ? out.body : "");
    return { status, headers, body };
  }

  /** Runs the plugin's CLI handler with `args`. */
  async cli(name: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    const out = await this.#running(name, "cli").request("cli", { args }) as {
      stdout?: unknown;
      stderr?: unknown;
      code?: unknown;
    } | null;
    return {
      stdout: typeof out?.stdout === "string" ? out.stdout : "",
      stderr: typeof out?.stderr === "string" ? out.stderr : "",
      code: typeof out?.code === "number" && Number.isInteger(out.code) ? out.code : 0,
    };
  }

  /** The host of a running plugin (tests and the benchmark). */
  host(name: string): PluginHost | undefined {
    return this.#hosts.get(name);
  }

  /** Delivers streams of `nz/plugin/NAME/1` to the running plugin `name`. */
  #listen(name: string): void {
    this.#node.peers.handle(pluginProtocol(name), async (stream, session) => {
      for (;;) {
        const message = await stream.receive();
        if (message === null) return;
        const host = this.#hosts.get(name);
        if (!host?.running || !this.#records.get(name)?.granted.host.includes("peers")) {
          await stream.close().catch(() => {});
          return;
        }
        host.deliverPeerMessage({ from: session.nodeId, did: session.did, data: message });
      }
    });
  }

  #watch(name: string): void {
    const record = this.#records.get(name);
    if (!record || this.#watchers.has(name)) return;
    const dir = record.source ?? this.#codeDir(name);
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(dir, { recursive: true });
    } catch (error) {
      console.warn(`nzcore: cannot watch plugin "${name}" at ${dir}: ${(error as Error).message}`);
      return;
    }
    this.#watchers.set(name, watcher);
    let timer: ReturnType<typeof setTimeout> | undefined;
    void (async () => {
      for await (const _event of watcher) {
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (this.#watchers.get(name) !== watcher) return;
          this.reload(name).then(
            () => console.warn(`nzcore: plugin "${name}" reloaded after a file change`),
            (error) => console.error(`nzcore: plugin "${name}" did not reload: ${(error as Error).message}`),
          );
        }, WATCH_DEBOUNCE_MS);
      }
    })().catch(() => {});
  }

  /** Terminates the most overdue Worker when the process's memory grows past the plugins' budgets. */
  #watchMemory(): void {
    if (this.#memoryTimer !== undefined) return;
    this.#memoryTimer = setInterval(() => {
      const hosts = [...this.#hosts.values()].filter((h) => h.running);
      if (hosts.length === 0) return;
      const budget = hosts.reduce((sum, h) => sum + h.manifest.limits.maxHeapMb * 1024 * 1024, 0);
      const rss = Deno.memoryUsage().rss;
      if (rss <= this.#rssBase + budget + RSS_MARGIN) return;
      const culprit = hosts.reduce((a, b) =>
        b.pingOverdueMs > a.pingOverdueMs || (b.pingOverdueMs === a.pingOverdueMs && b.heapUsed > a.heapUsed) ? b : a
      );
      culprit.kill(`the node's memory reached ${Math.round(rss / 1048576)} MiB while it allocated without answering`);
    }, MEMORY_CHECK_MS);
  }

  /** Stops every plugin. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#memoryTimer);
    for (const name of [...this.#hosts.keys()]) this.#stop(name);
  }
}

/** Whether `name` is a valid plugin name. */
export function isPluginName(name: string): boolean {
  return PLUGIN_NAME.test(name);
}
