/**
 * Small IPv4 helpers shared by the port-mapping clients: strict parsing,
 * IPv4-mapped IPv6 addresses (RFC 6887 section 5), the reserved ranges that
 * make an external address useless for reachability, and reading the default
 * gateway from `/proc/net/route`.
 *
 * @module
 */

import { formatIp } from "../ip.ts";

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Whether `value` is a dotted-quad IPv4 literal (no leading zeros). */
export function isIPv4(value: string): boolean {
  return IPV4.test(value);
}

/** Parses a dotted-quad IPv4 literal; throws `SyntaxError` naming `param`. */
export function parseIPv4(value: string, param: string): Uint8Array {
  if (typeof value !== "string") throw new TypeError(`${param} must be a string, got ${typeof value}`);
  if (!IPV4.test(value)) throw new SyntaxError(`${param} is not an IPv4 address: ${JSON.stringify(value)}`);
  return new Uint8Array(value.split(".").map(Number));
}

/** Formats 4 bytes as a dotted quad. */
export function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** The IPv4-mapped IPv6 form `::ffff:a.b.c.d` of an IPv4 address, 16 bytes (RFC 6887 section 5, RFC 4291 2.5.5.2). */
export function ipv4Mapped(ipv4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(ipv4.subarray(0, 4), 12);
  return out;
}

/** Whether 16 address bytes are an IPv4-mapped IPv6 address. */
export function isIPv4MappedBytes(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** Formats 16 address bytes: the dotted quad when IPv4-mapped, else RFC 5952 IPv6 text. */
export function formatIPBytes(bytes: Uint8Array): string {
  return isIPv4MappedBytes(bytes) ? formatIPv4(bytes.subarray(12, 16)) : formatIp(bytes);
}

// Ranges that are not publicly routable: RFC 6890's special-purpose registry
// plus multicast and class E, the same list miniupnpd 2.3 and miniupnpc 2.2
// use to call an IGD's external address unusable ("not connected").
const RESERVED_V4: ReadonlyArray<readonly [number, number]> = [
  [0x00000000, 8], // 0.0.0.0/8 "this network"
  [0x0a000000, 8], // 10.0.0.0/8 private
  [0x64400000, 10], // 100.64.0.0/10 shared address space (CGN)
  [0x7f000000, 8], // 127.0.0.0/8 loopback
  [0xa9fe0000, 16], // 169.254.0.0/16 link local
  [0xac100000, 12], // 172.16.0.0/12 private
  [0xc0000000, 24], // 192.0.0.0/24 IETF protocol assignments
  [0xc0000200, 24], // 192.0.2.0/24 TEST-NET-1
  [0xc0586300, 24], // 192.88.99.0/24 6to4 relay anycast
  [0xc0a80000, 16], // 192.168.0.0/16 private
  [0xc6120000, 15], // 198.18.0.0/15 benchmarking
  [0xc6336400, 24], // 198.51.100.0/24 TEST-NET-2
  [0xcb007100, 24], // 203.0.113.0/24 TEST-NET-3
  [0xe0000000, 4], // 224.0.0.0/4 multicast
  [0xf0000000, 4], // 240.0.0.0/4 reserved, and the broadcast address
];

/** Whether an IPv4 literal lies in a private, shared, documentation or otherwise non-routable range. */
export function isReservedIPv4(address: string): boolean {
  if (!IPV4.test(address)) return false;
  const b = address.split(".").map(Number);
  const value = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  return RESERVED_V4.some(([net, bits]) => ((value ^ net) >>> (32 - bits)) === 0);
}

/** Whether an IPv4 literal lies in the `/prefix` network of `network` (both dotted quads). */
export function inSubnet(address: string, network: string, prefix: number): boolean {
  if (!IPV4.test(address) || !IPV4.test(network) || prefix < 0 || prefix > 32) return false;
  if (prefix === 0) return true;
  const a = parseIPv4(address, "address"), n = parseIPv4(network, "network");
  const av = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) >>> 0;
  const nv = ((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]) >>> 0;
  return ((av ^ nv) >>> (32 - prefix)) === 0;
}

/**
 * The IPv4 gateway in the text of Linux's `/proc/net/route`: of the up
 * routes (flag RTF_UP 0x1) through a gateway (RTF_GATEWAY 0x2), the most
 * general one (the default route 0.0.0.0/0 when there is one; else the
 * shortest mask, as in a lab host routed only to its "internet"), lowest
 * metric first. The kernel prints addresses and masks as 8 hex digits in
 * host byte order (little endian here). Returns null when there is no such
 * route.
 */
export function parseDefaultGateway(procNetRoute: string): string | null {
  let best: { gateway: string; bits: number; metric: number } | null = null;
  for (const line of procNetRoute.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [, , gatewayHex, flagsHex, , , metricText, maskHex] = f;
    if (!/^[0-9A-Fa-f]{8}$/.test(gatewayHex) || !/^[0-9A-Fa-f]{8}$/.test(maskHex)) continue;
    const flags = parseInt(flagsHex, 16);
    if (!(flags & 1) || !(flags & 2)) continue;
    const v = parseInt(gatewayHex, 16);
    if (v === 0) continue;
    const gateway = `${v & 0xff}.${(v >>> 8) & 0xff}.${(v >>> 16) & 0xff}.${v >>> 24}`;
    const bits = [...parseInt(maskHex, 16).toString(2)].filter((c) => c === "1").length;
    const metric = Number(metricText) || 0;
    if (best === null || bits < best.bits || (bits === best.bits && metric < best.metric)) {
      best = { gateway, bits, metric };
    }
  }
  return best?.gateway ?? null;
}

/** Validates a port number 1-65535 (0 too when `allowZero`); throws RangeError/TypeError naming `param`. */
export function assertPort(value: number, param: string, allowZero = false): void {
  if (typeof value !== "number") throw new TypeError(`${param} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1) || value > 65535) {
    throw new RangeError(`${param} must be an integer ${allowZero ? 0 : 1}-65535, got ${value}`);
  }
}
