/**
 * Where a node keeps its data and how it listens (spec/env.md).
 *
 * @module
 */

import { join, resolve } from "node:path";

/** Default TCP address of the API. */
export const DEFAULT_API = "127.0.0.1:7474";
/** Environment variable naming the data directory. */
/**
 * Where the node listens for other nodes when `--listen` is not given: TCP and UDP (the secure channel's datagram
 * mode, STUN, hole punching) on every interface, the same port number for both.
 */
export const DEFAULT_LISTEN: readonly string[] = ["tcp://0.0.0.0:7475", "udp://0.0.0.0:7475"];
export const ENV_HOME = "NZCORE_HOME";
/** Environment variable the passphrase is read from by default. */
export const ENV_PASSPHRASE = "NZCORE_PASSPHRASE";

/** Names of the files in a data directory. */
export const FILES = {
  store: "store.kv",
  socket: "api.sock",
  adminToken: "admin.token",
  apiInfo: "api.json",
} as const;

/**
 * The data directory: `flag` if given, else `$NZCORE_HOME`, else
 * `$XDG_DATA_HOME/nzcore`, else `$HOME/.local/share/nzcore`.
 *
 * @throws {Error} when none of these is set.
 */
export function resolveDataDir(flag?: string): string {
  if (flag) return resolve(flag);
  const fromEnv = Deno.env.get(ENV_HOME);
  if (fromEnv) return resolve(fromEnv);
  const xdg = Deno.env.get("XDG_DATA_HOME");
  if (xdg) return join(resolve(xdg), "nzcore");
  const home = Deno.env.get("HOME");
  if (home) return join(home, ".local", "share", "nzcore");
  throw new Error(`Cannot choose a data directory: pass --data-dir, or set ${ENV_HOME} or HOME`);
}

/** A parsed `HOST:PORT`. */
export interface HostPort {
  /** Host name or IP address (an IPv6 address without brackets). */
  hostname: string;
  /** TCP port, 0 to 65535. */
  port: number;
}

/**
 * Parses `HOST:PORT` (`[v6]:PORT` for IPv6).
 *
 * @throws {SyntaxError} when it is not of that form.
 */
export function parseHostPort(text: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new SyntaxError(`Invalid address "${text}": expected HOST:PORT`);
  return { hostname: match[1] ?? match[2], port };
}

/**
 * Reads the passphrase from the environment variable `name`.
 *
 * @throws {Error} when the variable is unset or empty, or not readable under the permission profile.
 */
export function passphraseFromEnv(name: string): string {
  let value: string | undefined;
  try {
    value = Deno.env.get(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `Cannot read the passphrase from $${name}: the permission profile lets the node read only NZCORE_* variables`,
      );
    }
    throw error;
  }
  if (!value) throw new Error(`The passphrase variable $${name} is not set or is empty`);
  return value;
}
