/**
 * A whole running node: the kernel ({@linkcode Node}), the API on TCP and
 * the Unix socket, the local admin token, a periodic log checkpoint, and a
 * clean stop on SIGINT and SIGTERM.
 *
 * @module
 */

import { join } from "node:path";
import { utf8 } from "./bytes.ts";
import { createApp } from "./api/app.ts";
import { serveApi } from "./api/server.ts";
import { FILES, type HostPort } from "./node/config.ts";
import { Node, type NodeOptions } from "./node/node.ts";
import { queryPermissions } from "./node/permissions.ts";
import { writeFileAtomic } from "./storage/master_key.ts";

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
  /** Transport addresses to listen on for other nodes (`tcp://HOST:PORT`, `ws://HOST:PORT/PATH`). */
  listen?: readonly string[];
}

/** A running daemon. */
export interface Daemon {
  /** The opened node the daemon runs. */
  node: Node;
  /** Where the API listens: the TCP `host:port` and the Unix socket path, each `null` when not served. */
  api: { tcp: string | null; socket: string | null };
  /** Path of the local admin token file. */
  adminTokenPath: string;
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
  let servers;
  const adminTokenPath = join(node.dataDir, FILES.adminToken);
  try {
    await node.peers.listen(options.listen ?? []);
    const { all: permissions } = await queryPermissions();
    const app = createApp({ node, listeners, permissions });
    const admin = await node.tokens.create("local-admin", { persist: false });
    await writeFileAtomic(adminTokenPath, utf8(admin.token + "\n"), 0o600);
    servers = await serveApi(app.fetch, {
      tcp: options.api,
      socketPath: options.socket === false ? null : join(node.dataDir, FILES.socket),
    });
    listeners.tcp = servers.tcp;
    listeners.socket = servers.socket;
    await writeFileAtomic(
      join(node.dataDir, FILES.apiInfo),
      utf8(JSON.stringify({ pid: Deno.pid, tcp: servers.tcp, socket: servers.socket }) + "\n"),
      0o600,
    );
  } catch (error) {
    removeSignals();
    await servers?.shutdown().catch(() => {});
    await Deno.remove(adminTokenPath).catch(() => {});
    await node.close().catch(() => {});
    throw error;
  }
  node.peers.reconnectKnown();
  const timer = setInterval(() => {
    node.log.checkpoint().catch((error) => console.error("nzcore: cannot checkpoint the event log:", error));
  }, options.checkpointMs ?? 5 * 60_000);
  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
  let stopping: Promise<void> | undefined;
  const running = servers;
  stop = () => {
    stopping ??= (async () => {
      clearInterval(timer);
      removeSignals();
      node.bus.close();
      // Open requests get a few seconds to finish; a client that stops reading cannot hold the stop for longer.
      let grace: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        running.shutdown(),
        new Promise<void>((resolve) => (grace = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
      ]);
      clearTimeout(grace);
      await Deno.remove(adminTokenPath).catch(() => {});
      await Deno.remove(join(node.dataDir, FILES.apiInfo)).catch(() => {});
      await node.close();
      resolveFinished();
    })();
    return stopping;
  };
  if (stopRequested) void stop();
  return { node, api: { ...listeners }, adminTokenPath, finished, stop: () => stop() };
}
