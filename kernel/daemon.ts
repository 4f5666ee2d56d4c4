/**
 * A whole running node: the kernel ({@linkcode Node}), the API on TCP and
 * the Unix socket, the local admin token, a periodic log checkpoint, and a
 * clean stop on SIGINT and SIGTERM.
 *
 * The node's own parts run as built-in services of a {@linkcode Supervisor}
 * (`transports`, `api`, `checkpoint`, started in that order and stopped in
 * reverse), followed by the external services of the manifests in the data
 * directory's `services/` (see spec/env.md). A malformed manifest is logged
 * and skipped; the node carries on.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { utf8 } from "./bytes.ts";
import { createApp } from "./api/app.ts";
import { LanDiscovery, type LanMode } from "./discovery/lan.ts";
import { type IntroductionPolicy, type IntroductionService, serveIntroductions } from "./discovery/introduction.ts";
import { API_SERVICE } from "./api/routes/services.ts";
import { type ApiServers, serveApi } from "./api/server.ts";
import { FILES, type HostPort } from "./node/config.ts";
import { Node, type NodeOptions, VERSION } from "./node/node.ts";
import { queryPermissions } from "./node/permissions.ts";
import { writeFileAtomic } from "./storage/master_key.ts";
import { loadServiceManifests } from "./runtime/loader.ts";
import { parseManifest } from "./runtime/manifest.ts";
import { PluginManager } from "./runtime/plugins.ts";
import { Supervisor } from "./runtime/supervisor.ts";
import { workerService } from "./runtime/worker_service.ts";

/** How long a stop waits for open requests (an event stream, say) before it closes the node anyway. */
const SHUTDOWN_GRACE_MS = 3000;

/** Options of {@linkcode startDaemon}. */
export interface DaemonOptions extends NodeOptions {
  /** TCP address of the API; `null` for none. */
  api: HostPort | null;
  /** Serve the API on the Unix socket too (default true). */
  socket?: boolean;
  /** Checkpoint the event log this often (default 5 minutes). */
  checkpointMs?: number;
  /** Transport addresses to listen on for other nodes (`tcp://HOST:PORT`, `udp://HOST:PORT`, `ws://HOST:PORT/PATH`). */
  listen?: readonly string[];
  /**
   * LAN discovery over mDNS / DNS-SD (NZ-LAN-01): which peers found on the link to dial (`known`: those in the
   * address book, `any`, `off`: list only) and the interface (a name or IPv4 address; default all). `null` or absent:
   * no mDNS at all, nothing sent.
   */
  lan?: { mode: LanMode; interface?: string } | null;
  /**
   * Whose peer introductions (NZ-INTRODUCE-01) the node follows by dialing the introduced node: `trusted` (default)
   * when it knows the introducer or the introduced node, `any`, or `off`.
   */
  introductions?: IntroductionPolicy;
}

/** A running daemon. */
export interface Daemon {
  /** The opened node the daemon runs. */
  node: Node;
  /** Where the API listens: the TCP `host:port` and the Unix socket path, each `null` when not served. */
  api: { tcp: string | null; socket: string | null };
  /** Path of the local admin token file. */
  adminTokenPath: string;
  /** The supervisor of the node's services. */
  services: Supervisor;
  /** The node's plugins (NZ-PLUGIN-01). */
  plugins: PluginManager;
  /** LAN discovery while the transports run with it (`options.lan`), else null. */
  readonly lan: LanDiscovery | null;
  /** Resolves when the daemon has stopped. */
  finished: Promise<void>;
  /** Stops the API and closes the node; calling it again returns the same promise. */
  stop(): Promise<void>;
}

/** Starts a node and its API; stop it with `stop()` or a signal. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  // Listen for signals from the first moment: a SIGTERM during start-up is kept and honoured as soon as the
  // node is up, instead of killing the process with its socket, token and lock files half written.
  let stopRequested = false;
  let stop: () => Promise<void> = () => {
    stopRequested = true;
    return Promise.resolve();
  };
  const onSignal = () => void stop();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const removeSignals = () => {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  };

  let node: Node;
  try {
    node = await Node.open(options);
  } catch (error) {
    removeSignals();
    throw error;
  }
  const listeners = { tcp: null as string | null, socket: null as string | null };
  const adminTokenPath = join(node.dataDir, FILES.adminToken);
  const services = new Supervisor({ publish: (type, data) => void node.bus.publish(type, data) });
  // The node's own parts are services too, each with a health check the supervisor runs every 30 s (a failing part is
  // shown as unhealthy on /v1/services and the event bus; it is not restarted: the node owns its state).
  const builtin = (name: string) =>
    parseManifest({
      name,
      version: VERSION,
      entry: `builtin:${name}`,
      restart: { policy: "never" },
      health: { intervalMs: 30_000, timeoutMs: 5_000, failureThreshold: 2 },
    });
  let plugins: PluginManager | undefined;
  let lan: LanDiscovery | null = null;
  try {
    plugins = await PluginManager.open(node, { start: false });
    const { all: permissions } = await queryPermissions();
    const app = createApp({ node, listeners, permissions, services, plugins, lan: () => lan });
    let introductions: IntroductionService | undefined;
    services.register(builtin("transports"), {
      async start() {
        await node.peers.listen(options.listen ?? []);
        introductions = serveIntroductions(node.peers, {
          policy: options.introductions,
          self: () => node.identity.nodeId,
          known: (nodeId) => node.book.get(nodeId) !== undefined,
          events: (type, data) => node.bus.publish(type, data),
        });
        await node.reachability.start();
        node.traversal.start();
        if (options.lan) {
          // After listen: the announcement carries the bound ports. A LAN without mDNS is no reason not to start.
          const discovery = new LanDiscovery({
            identity: () => node.identity,
            connect: (address, o) => node.peers.connect(address, o),
            connected: (nodeId) => node.peers.sessions().some((s) => s.nodeId === nodeId),
            known: (nodeId) => node.book.get(nodeId) !== undefined,
            listening: () => node.peers.listening,
            events: (type, data) => node.bus.publish(type, data),
            mode: options.lan.mode,
            mdns: options.lan.interface ? { interface: options.lan.interface } : {},
          });
          try {
            await discovery.start();
            lan = discovery;
          } catch (error) {
            console.error(`nzcore: LAN discovery is off: ${(error as Error).message}`);
          }
        }
        await node.dht.start();
      },
      async stop() {
        await lan?.stop();
        lan = null;
        await introductions?.close();
        await node.peers.unlisten();
      },
      // Every listen address is still bound, and the UDP socket (sessions, STUN, punching) is open.
      health() {
        const udp = node.peers.udpSocket;
        if (udp?.closed) throw new Error("the UDP socket is closed");
        const bound = node.peers.listening.length;
        const wanted = options.listen?.length ?? 0;
        if (bound < wanted) throw new Error(`${bound} of ${wanted} listen addresses are bound`);
      },
    });
    let servers: ApiServers | undefined;
    services.register(builtin(API_SERVICE), {
      async start() {
        servers = await serveApi(app.fetch, {
          tcp: options.api,
          socketPath: options.socket === false ? null : join(node.dataDir, FILES.socket),
        });
        listeners.tcp = servers.tcp;
        listeners.socket = servers.socket;
      },
      async stop() {
        // Open requests get a few seconds to finish; a client that stops reading cannot hold the stop for longer.
        let grace: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          servers?.shutdown(),
          new Promise<void>((resolve) => (grace = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
        ]);
        clearTimeout(grace);
      },
      // The API answers its own health route over TCP (the Unix socket is served by the same handler).
      async health({ signal }) {
        if (!listeners.tcp) return listeners.socket !== null;
        const response = await fetch(`http://${listeners.tcp}/v1/health`, { signal });
        await response.body?.cancel();
        if (!response.ok) throw new Error(`GET /v1/health answered ${response.status}`);
      },
    });
    let timer: ReturnType<typeof setInterval> | undefined;
    let checkpointError: string | undefined;
    services.register(builtin("checkpoint"), {
      start() {
        timer = setInterval(() => {
          node.log.checkpoint().then(
            () => (checkpointError = undefined),
            (error) => {
              checkpointError = (error as Error).message;
              console.error("nzcore: cannot checkpoint the event log:", error);
            },
          );
        }, options.checkpointMs ?? 5 * 60_000);
      },
      stop: () => clearInterval(timer),
      health() {
        if (checkpointError) throw new Error(`the last checkpoint failed: ${checkpointError}`);
      },
    });
    await services.start("transports");
    const admin = await node.tokens.create("local-admin", { persist: false });
    await writeFileAtomic(adminTokenPath, utf8(admin.token + "\n"), 0o600);
    await services.start(API_SERVICE);
    await writeFileAtomic(
      join(node.dataDir, FILES.apiInfo),
      utf8(JSON.stringify({ pid: Deno.pid, tcp: listeners.tcp, socket: listeners.socket }) + "\n"),
      0o600,
    );
  } catch (error) {
    removeSignals();
    plugins?.close();
    await services.stopAll().catch(() => {});
    await Deno.remove(adminTokenPath).catch(() => {});
    await node.close().catch(() => {});
    throw error;
  }
  node.peers.reconnectKnown();
  await services.start("checkpoint");
  await startExternalServices(services, join(node.dataDir, "services"));
  const pluginManager = plugins;
  await pluginManager.startEnabled();
  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
  let stopping: Promise<void> | undefined;
  stop = () => {
    stopping ??= (async () => {
      removeSignals();
      pluginManager.close();
      node.bus.close();
      await services.stopAll();
      await Deno.remove(adminTokenPath).catch(() => {});
      await Deno.remove(join(node.dataDir, FILES.apiInfo)).catch(() => {});
      await node.close();
      resolveFinished();
    })();
    return stopping;
  };
  if (stopRequested) void stop();
  return {
    node,
    api: { ...listeners },
    adminTokenPath,
    services,
    plugins: pluginManager,
    get lan() {
      return lan;
    },
    finished,
    stop: () => stop(),
  };
}

/** Registers and starts the services of the manifests in `dir`; whatever is wrong is logged, and the node carries on. */
async function startExternalServices(services: Supervisor, dir: string): Promise<void> {
  const { manifests, errors } = await loadServiceManifests(dir).catch((error) => ({
    manifests: [],
    errors: [{ path: dir, message: `Cannot read the services directory "${dir}": ${error.message}` }],
  }));
  for (const { message } of errors) console.error(`nzcore: ${message}; the service is not loaded`);
  for (const { manifest, path } of manifests) {
    try {
      services.register(manifest, workerService(manifest, { baseDir: dirname(path) }));
    } catch (error) {
      console.error(`nzcore: service manifest "${path}": ${(error as Error).message}; the service is not loaded`);
    }
  }
  try {
    await services.startAll();
  } catch (error) {
    console.error(`nzcore: the external services are not started: ${(error as Error).message}`);
  }
}
