/**
 * DNS-SD names and TXT records (RFC 6763): service types such as
 * `_nzcore._udp`, instance names, and the `key=value` strings of a TXT
 * record. Pure functions, no sockets: the wire format itself is `dns-packet`'s.
 *
 * @module
 */

/** The mDNS domain (RFC 6762 section 3). */
export const LOCAL_DOMAIN = "local";

/** The name that lists every service type on the link (RFC 6763 section 9). */
export const SERVICES_META_QUERY = "_services._dns-sd._udp.local";

/** The longest instance name, in UTF-8 bytes: one DNS label (RFC 6763 section 4.1.1). */
export const MAX_INSTANCE_BYTES = 63;

/** The longest string of a TXT record, in bytes: a one-byte length (RFC 6763 section 6.1). */
export const MAX_TXT_STRING_BYTES = 255;

/** The largest TXT record we send or accept, in bytes of RDATA (RFC 6763 section 6.2 keeps it under 1300 where possible; 8900 is the upper bound). */
export const MAX_TXT_BYTES = 1300;

/** A TXT record as key/value pairs (RFC 6763 section 6.4): a key alone is `true`, `key=` is the empty string. */
export type TxtRecord = Record<string, string | true>;

const SERVICE_TYPE_RE = /^_[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?\._(?:tcp|udp)$/i;
const HOST_LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks a service type (`_nzcore._udp`): an underscore and 1-15 letters,
 * digits or hyphens (RFC 6335 section 5.1), then `._tcp` or `._udp` (RFC 6763
 * section 7).
 *
 * @returns the type in lowercase.
 * @throws {SyntaxError} when `type` is not one.
 */
export function checkServiceType(type: string): string {
  if (typeof type !== "string" || !SERVICE_TYPE_RE.test(type) || type.includes("--")) {
    throw new SyntaxError(`Invalid service type "${type}": expected _NAME._udp or _NAME._tcp (RFC 6763 section 7)`);
  }
  return type.toLowerCase();
}

/**
 * Checks an instance name: 1-63 bytes of UTF-8 (RFC 6763 section 4.1.1),
 * without control characters, and without dots (the DNS codec would split it
 * into labels).
 *
 * @throws {RangeError} when `instance` is empty, too long or holds a control character or a dot.
 */
export function checkInstanceName(instance: string): string {
  const bytes = typeof instance === "string" ? encoder.encode(instance).length : 0;
  if (bytes === 0 || bytes > MAX_INSTANCE_BYTES) {
    throw new RangeError(`Invalid instance name: ${bytes} bytes, expected 1-${MAX_INSTANCE_BYTES}`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f.]/.test(instance)) {
    throw new RangeError(`Invalid instance name "${instance}": no dots or control characters`);
  }
  return instance;
}

/**
 * Checks a host name label (`nzcore-0a1b2c3d4e5f`, without `.local`): letters,
 * digits and hyphens, 1-63 characters (RFC 1123 section 2.1).
 *
 * @throws {SyntaxError} when `host` is not one.
 */
export function checkHostLabel(host: string): string {
  if (typeof host !== "string" || !HOST_LABEL_RE.test(host)) {
    throw new SyntaxError(`Invalid host name "${host}": expected letters, digits and hyphens, at most 63`);
  }
  return host.toLowerCase();
}

/** `<instance>.<type>.local`, the name of a service instance (RFC 6763 section 4.1). */
export function instanceFqdn(instance: string, type: string): string {
  return `${instance}.${type}.${LOCAL_DOMAIN}`;
}

/** `<type>.local`, the name browsed for instances of `type` (RFC 6763 section 4.1). */
export function typeFqdn(type: string): string {
  return `${type}.${LOCAL_DOMAIN}`;
}

/**
 * The instance part of a service instance name `<instance>.<type>.local`, or
 * null when `fqdn` is not of that type or the instance part is not a valid
 * instance name. Compares the type case-insensitively (RFC 6762 section 16).
 */
export function instanceOf(fqdn: string, type: string): string | null {
  const suffix = `.${typeFqdn(type)}`;
  if (fqdn.length <= suffix.length || fqdn.slice(-suffix.length).toLowerCase() !== suffix.toLowerCase()) return null;
  const instance = fqdn.slice(0, -suffix.length);
  try {
    return checkInstanceName(instance);
  } catch {
    return null;
  }
}

/** Whether two DNS names are the same: ASCII case-insensitive (RFC 6762 section 16). */
export function sameName(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}

/**
 * Encodes key/value pairs as the strings of a TXT record (RFC 6763 section
 * 6.3-6.4): `key=value`, or `key` alone for `true`. An empty record is one
 * empty string (RFC 6763 section 6.1).
 *
 * ```ts
 * import { encodeTxt } from "./dns_sd.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(encodeTxt({ v: "1", relay: true }).map((s) => new TextDecoder().decode(s)), ["v=1", "relay"]);
 * ```
 *
 * @throws {SyntaxError} for a key that is empty, longer than 9 characters or not printable ASCII without `=`.
 * @throws {RangeError} for a string over 255 bytes, or a record over {@linkcode MAX_TXT_BYTES}.
 */
export function encodeTxt(txt: TxtRecord): Uint8Array[] {
  const strings: Uint8Array[] = [];
  let total = 0;
  const seen = new Set<string>();
  for (const [key, value] of Object.entries(txt)) {
    // RFC 6763 section 6.4: printable US-ASCII except '=', at least one character, 9 or fewer recommended.
    if (!/^[\x20-\x3c\x3e-\x7e]{1,9}$/.test(key)) {
      throw new SyntaxError(`Invalid TXT key "${key}": expected 1-9 printable ASCII characters without "="`);
    }
    if (seen.has(key.toLowerCase())) throw new SyntaxError(`Invalid TXT record: the key "${key}" appears twice`);
    seen.add(key.toLowerCase());
    if (value !== true && typeof value !== "string") throw new TypeError(`Invalid TXT value of "${key}": not a string`);
    const bytes = encoder.encode(value === true ? key : `${key}=${value}`);
    if (bytes.length > MAX_TXT_STRING_BYTES) {
      throw new RangeError(`Invalid TXT value of "${key}": ${bytes.length} bytes, expected <= ${MAX_TXT_STRING_BYTES}`);
    }
    total += bytes.length + 1;
    strings.push(bytes);
  }
  if (total > MAX_TXT_BYTES) throw new RangeError(`Invalid TXT record: ${total} bytes, expected <= ${MAX_TXT_BYTES}`);
  return strings.length ? strings : [new Uint8Array(0)];
}

/**
 * Decodes the strings of a TXT record into key/value pairs (RFC 6763 section
 * 6.4): keys in lowercase (they compare case-insensitively), the first of a
 * repeated key wins, a string without `=` is a boolean `true`, and empty
 * strings, strings that start with `=` and strings that are not UTF-8 are
 * skipped. Never throws on what a peer sends.
 *
 * ```ts
 * import { decodeTxt } from "./dns_sd.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const strings = ["ID=ab", "id=cd", "relay", "", "=x"].map((s) => new TextEncoder().encode(s));
 * deepEqual(decodeTxt(strings), { id: "ab", relay: true });
 * ```
 */
export function decodeTxt(strings: readonly Uint8Array[]): TxtRecord {
  const txt: TxtRecord = {};
  for (const bytes of strings) {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes[0] === 0x3d) continue;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      continue;
    }
    const eq = text.indexOf("=");
    const key = (eq < 0 ? text : text.slice(0, eq)).toLowerCase();
    if (Object.hasOwn(txt, key)) continue;
    // defineProperty, not assignment: a key "__proto__" is data here, never the object's prototype.
    Object.defineProperty(txt, key, { value: eq < 0 ? true : text.slice(eq + 1), enumerable: true, writable: true });
  }
  return txt;
}
