/**
 * Transport addresses: `tcp://HOST:PORT`, `ws://HOST:PORT/PATH` and
 * `wss://HOST:PORT/PATH`, where HOST is a host name, an IPv4 address or an
 * IPv6 address in brackets (`tcp://[::1]:4001`). `memory://NAME` belongs to
 * `memory.ts`, which checks its own names.
 *
 * @module
 */

import type { Transport } from "./types.ts";

/** The schemes {@linkcode parseAddress} understands. */
export type AddressScheme = "tcp" | "udp" | "ws" | "wss";

/** A parsed transport address. */
export interface TransportAddress {
  /** `tcp`, `ws` or `wss`, lowercase. */
  scheme: AddressScheme;
  /** A host name (lowercase), an IPv4 address, or an IPv6 address without its brackets (`::1`). */
  host: string;
  /** The port, 0 to 65535 (0 asks `listen` for a free port). */
  port: number;
  /** `""` for `tcp`; for `ws` and `wss` the request path, starting with `/` (default `/`). */
  path: string;
}

const DEFAULT_PORTS: Record<string, number> = { ws: 80, wss: 443 };
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?$/;
const PATH = /^\/[\x21-\x22\x24-\x7e]*$/; // visible ASCII except "#"; no spaces

function quote(addr: string): string {
  return JSON.stringify(addr.length > 120 ? `${addr.slice(0, 120)}...` : addr);
}

/**
 * Returns the scheme of an address, lowercase and without `://`.
 *
 * @param addr A transport address.
 * @returns The scheme (`"tcp"`, `"ws"`, `"memory"`, ...).
 * @throws {TypeError} If `addr` is not a string.
 * @throws {SyntaxError} If `addr` does not start with `SCHEME://`.
 *
 * @example Read the scheme
 * ```ts
 * import { schemeOf } from "./address.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(schemeOf("WS://example.org:80/p2p"), "ws");
 * ```
 */
export function schemeOf(addr: string): string {
  if (typeof addr !== "string") {
    throw new TypeError(`Cannot parse address: expected a string, got ${addr === null ? "null" : typeof addr}`);
  }
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(addr);
  if (!match) throw new SyntaxError(`Cannot parse address ${quote(addr)}: expected SCHEME://HOST:PORT`);
  return match[1].toLowerCase();
}

function checkIpv4(host: string, addr: string): void {
  const parts = host.split(".");
  if (parts.length !== 4 || parts.some((p) => p === "" || p.length > 3 || Number(p) > 255)) {
    throw new SyntaxError(`Cannot parse address ${quote(addr)}: ${JSON.stringify(host)} is not a valid IPv4 address`);
  }
}

function parseHost(raw: string, addr: string): string {
  if (raw.startsWith("[")) {
    const inner = raw.slice(1, -1);
    if (!raw.endsWith("]") || !/^[0-9A-Fa-f:.]+$/.test(inner) || !inner.includes(":")) {
      throw new SyntaxError(`Cannot parse address ${quote(addr)}: ${JSON.stringify(raw)} is not a valid IPv6 address`);
    }
    try {
      // The URL parser validates IPv6 (RFC 4291 section 2.2) and gives its canonical text (RFC 5952).
      return new URL(`http://${raw}/`).hostname.slice(1, -1);
    } catch {
      throw new SyntaxError(`Cannot parse address ${quote(addr)}: ${JSON.stringify(raw)} is not a valid IPv6 address`);
    }
  }
  if (raw === "") throw new SyntaxError(`Cannot parse address ${quote(addr)}: the host is empty`);
  if (raw.includes(":")) {
    throw new SyntaxError(
      `Cannot parse address ${quote(addr)}: an IPv6 host must be in brackets, as in tcp://[::1]:4001`,
    );
  }
  const host = raw.toLowerCase();
  if (!HOST_NAME.test(host)) {
    throw new SyntaxError(`Cannot parse address ${quote(addr)}: ${JSON.stringify(raw)} is not a valid host name`);
  }
  if (/^[0-9.]+$/.test(host)) checkIpv4(host, addr);
  return host;
}

function parsePort(raw: string | undefined, scheme: AddressScheme, addr: string): number {
  if (raw === undefined) {
    const port = DEFAULT_PORTS[scheme];
    if (port === undefined) throw new SyntaxError(`Cannot parse address ${quote(addr)}: the port is missing`);
    return port;
  }
  if (!/^[0-9]{1,5}$/.test(raw)) {
    throw new SyntaxError(`Cannot parse address ${quote(addr)}: the port ${JSON.stringify(raw)} is not a number`);
  }
  const port = Number(raw);
  if (port > 65535) throw new RangeError(`Cannot parse address ${quote(addr)}: the port ${port} is above 65535`);
  return port;
}

/**
 * Parses a `tcp://`, `ws://` or `wss://` address. `ws` and `wss` default to
 * ports 80 and 443 and to the path `/`; `tcp` needs a port and takes no path.
 *
 * @param addr The address, as `tcp://HOST:PORT` or `ws[s]://HOST[:PORT][/PATH]`.
 * @returns Its parts; the host is lowercase, an IPv6 host has no brackets.
 * @throws {TypeError} If `addr` is not a string.
 * @throws {RangeError} If the scheme is not `tcp`, `ws` or `wss`, or the port is above 65535.
 * @throws {SyntaxError} If the address is malformed; the message names the faulty part.
 *
 * @example Parse an IPv6 TCP address
 * ```ts
 * import { parseAddress } from "./address.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(parseAddress("tcp://[::1]:4001"), { scheme: "tcp", host: "::1", port: 4001, path: "" });
 * deepEqual(parseAddress("ws://Node.example:8080/p2p"), {
 *   scheme: "ws",
 *   host: "node.example",
 *   port: 8080,
 *   path: "/p2p",
 * });
 * ```
 */
export function parseAddress(addr: string): TransportAddress {
  const scheme = schemeOf(addr);
  if (scheme !== "tcp" && scheme !== "udp" && scheme !== "ws" && scheme !== "wss") {
    throw new RangeError(
      `Cannot parse address ${quote(addr)}: unsupported scheme "${scheme}" (expected tcp, udp, ws or wss)`,
    );
  }
  const rest = addr.slice(scheme.length + 3);
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const rawPath = slash === -1 ? "" : rest.slice(slash);
  if (authority.includes("@")) {
    throw new SyntaxError(`Cannot parse address ${quote(addr)}: user information ("...@") is not allowed`);
  }
  if (/[?#]/.test(authority)) {
    throw new SyntaxError(`Cannot parse address ${quote(addr)}: unexpected "?" or "#" after the host`);
  }
  let rawHost = authority;
  let rawPort: string | undefined;
  const close = authority.lastIndexOf("]");
  const colon = authority.lastIndexOf(":");
  if (colon > close && (authority.startsWith("[") || authority.indexOf(":") === colon)) {
    rawHost = authority.slice(0, colon);
    rawPort = authority.slice(colon + 1);
  }
  const host = parseHost(rawHost, addr);
  const port = parsePort(rawPort, scheme, addr);
  let path = rawPath;
  if (scheme === "tcp" || scheme === "udp") {
    if (path !== "") throw new SyntaxError(`Cannot parse address ${quote(addr)}: a ${scheme} address takes no path`);
  } else {
    if (path === "") path = "/";
    if (!PATH.test(path)) {
      throw new SyntaxError(`Cannot parse address ${quote(addr)}: the path has a space, "#" or non-ASCII character`);
    }
  }
  return { scheme, host, port, path };
}

/**
 * Formats an address; the inverse of {@linkcode parseAddress}. IPv6 hosts get
 * their brackets, ports are always written, `ws`/`wss` paths default to `/`.
 *
 * @param address The parts of the address.
 * @returns The address as a string.
 * @throws {TypeError} If a part has the wrong type.
 * @throws {RangeError} If the scheme is unsupported or the port out of range.
 * @throws {SyntaxError} If the host or path is malformed.
 *
 * @example Format an IPv6 WebSocket address
 * ```ts
 * import { formatAddress } from "./address.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(formatAddress({ scheme: "ws", host: "::1", port: 8080, path: "/p2p" }), "ws://[::1]:8080/p2p");
 * ```
 */
export function formatAddress(address: TransportAddress): string {
  const { scheme, host, port } = address;
  if (typeof host !== "string") throw new TypeError(`Cannot format address: host must be a string`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot format address: port must be an integer from 0 to 65535, got ${port}`);
  }
  const path = scheme === "tcp" || scheme === "udp" ? (address.path ?? "") : (address.path || "/");
  const text = `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}${path}`;
  // Parsing what we wrote checks every part and gives the canonical form.
  const parsed = parseAddress(text);
  return `${parsed.scheme}://${
    parsed.host.includes(":") ? `[${parsed.host}]` : parsed.host
  }:${parsed.port}${parsed.path}`;
}

/**
 * Picks the transport that handles an address's scheme.
 *
 * @param addr A transport address.
 * @param transports The transports to choose from, first match wins.
 * @returns The transport whose `schemes` include the address's scheme.
 * @throws {TypeError} If `addr` is not a string.
 * @throws {SyntaxError} If `addr` has no `SCHEME://`.
 * @throws {RangeError} If no transport handles the scheme; the message lists those that exist.
 *
 * @example Choose between TCP and memory
 * ```ts
 * import { selectTransport } from "./address.ts";
 * import { MemoryTransport } from "./memory.ts";
 * import { TcpTransport } from "./tcp.ts";
 * import { ok } from "node:assert/strict";
 *
 * const tcp = new TcpTransport();
 * ok(selectTransport("tcp://127.0.0.1:4001", [new MemoryTransport(), tcp]) === tcp);
 * ```
 */
export function selectTransport<T extends Transport>(addr: string, transports: Iterable<T>): T {
  const scheme = schemeOf(addr);
  const known: string[] = [];
  for (const transport of transports) {
    if (transport.schemes.includes(scheme)) return transport;
    known.push(...transport.schemes);
  }
  throw new RangeError(
    `No transport for address ${quote(addr)}: scheme "${scheme}" is not one of ${
      known.length ? known.join(", ") : "(no transports)"
    }`,
  );
}
