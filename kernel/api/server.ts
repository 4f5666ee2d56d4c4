/**
 * Serves the API app on its two listeners: TCP and a Unix socket. The
 * socket lives in the data directory (mode 0700), and is itself set to 0600.
 *
 * @module
 */

import type { HostPort } from "../node/config.ts";

/** Options of {@linkcode serveApi}. */
export interface ServeOptions {
  /** TCP address; `null` for none. */
  tcp: HostPort | null;
  /** Path of the Unix socket; `null` for none. */
  socketPath: string | null;
  /** Ends both listeners. */
  signal?: AbortSignal;
}

/** The running listeners. */
export interface ApiServers {
  /** `HOST:PORT` actually bound, port 0 resolved. */
  tcp: string | null;
  socket: string | null;
  /** Stops accepting and waits for open requests to end. */
  shutdown(): Promise<void>;
}

type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;

async function removeStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (!info.isSocket) throw new Error(`Cannot listen on ${path}: a file that is not a socket is in the way`);
  // The caller holds the data directory's lock, so no other node uses this socket.
  await Deno.remove(path);
}

/**
 * Starts the listeners.
 *
 * @throws {Error} with a clear message when the TCP address is in use.
 */
export async function serveApi(fetch: Handler, options: ServeOptions): Promise<ApiServers> {
  const servers: Deno.HttpServer[] = [];
  let tcp: string | null = null, socket: string | null = null;
  const onError = (error: unknown) => {
    console.error("nzcore: API request failed", error);
    return new Response(JSON.stringify({ error: { code: "internal", message: "Internal error" } }), {
      status: 500,
      headers: { "content-type": "application/json" },
    });
  };
  try {
    if (options.tcp) {
      let server: Deno.HttpServer<Deno.NetAddr>;
      try {
        server = Deno.serve({
          hostname: options.tcp.hostname,
          port: options.tcp.port,
          signal: options.signal,
          onListen() {},
          onError,
        }, fetch);
      } catch (error) {
        const where = `${options.tcp.hostname}:${options.tcp.port}`;
        if (error instanceof Deno.errors.AddrInUse) {
          throw new Error(`Cannot listen on ${where}: the address is in use (choose another with --api)`);
        }
        if (error instanceof Deno.errors.AddrNotAvailable) {
          throw new Error(`Cannot listen on ${where}: no such local address`);
        }
        throw new Error(`Cannot listen on ${where}: ${(error as Error).message}`, { cause: error });
      }
      servers.push(server);
      const addr = server.addr;
      tcp = `${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
    }
    if (options.socketPath) {
      await removeStaleSocket(options.socketPath);
      const server = Deno.serve({
        path: options.socketPath,
        transport: "unix",
        signal: options.signal,
        onListen() {},
        onError,
      }, fetch as never);
      servers.push(server);
      await Deno.chmod(options.socketPath, 0o600);
      socket = options.socketPath;
    }
  } catch (error) {
    await Promise.all(servers.map((s) => s.shutdown()));
    throw error;
  }
  return {
    tcp,
    socket,
    async shutdown() {
      await Promise.all(servers.map((s) => s.shutdown().catch(() => {})));
      if (socket) await Deno.remove(socket).catch(() => {});
    },
  };
}
