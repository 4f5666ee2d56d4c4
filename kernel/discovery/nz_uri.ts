/**
 * `nz://` URIs (NZ-INTRODUCE-01 section "nz:// URIs"): a node's identity and
 * the transport addresses it is reachable at, in one string short enough for
 * a QR code:
 *
 * ```
 * nz://z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp?addr=udp%3A%2F%2F192.0.2.7%3A7475
 * ```
 *
 * The authority is the method-specific part of the node's `did:key` (`z` and
 * base58btc of the multicodec Ed25519 public key); each `addr` parameter holds
 * one transport address, percent-encoded (RFC 3986 section 2.1).
 *
 * @example
 * ```ts
 * import { formatNzUri, parseNzUri } from "./nz_uri.ts";
 *
 * const uri = formatNzUri({
 *   did: "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
 *   addresses: ["udp://192.0.2.7:7475"],
 * });
 * console.assert(uri === "nz://z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp?addr=udp%3A%2F%2F192.0.2.7%3A7475");
 * console.assert(parseNzUri(uri).addresses[0] === "udp://192.0.2.7:7475");
 * ```
 *
 * @module
 */

import { utf8 } from "../bytes.ts";
import { decodeDidKey, encodeDidKey } from "../identity/did.ts";
import { nodeIdOf } from "../identity/identity.ts";

// --- Spec constants (NZ-INTRODUCE-01, "nz:// URIs") ---

/** The URI scheme, without `://`. */
export const NZ_URI_SCHEME = "nz";
/** The longest URI a parser accepts, in characters. */
export const MAX_NZ_URI_LENGTH = 2048;
/** The most `addr` parameters a URI may hold (as many as a peer record holds, NZ-RECORD-01 2.1). */
export const MAX_NZ_URI_ADDRESSES = 8;
/** The longest address, in bytes of UTF-8 once percent-decoded (as in a peer record). */
export const MAX_ADDRESS_BYTES = 200;

/** What an `nz://` URI names. */
export interface NzUri {
  /** The node's `did:key`. */
  did: string;
  /** The node ID: lowercase hex SHA-256 of the public key. */
  nodeId: string;
  /** The node's Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** Its transport addresses, in the URI's order (possibly none). */
  addresses: string[];
}

/** What {@linkcode formatNzUri} writes: the node (by DID or public key) and its addresses. */
export type NzUriInit =
  & { addresses?: readonly string[] }
  & ({ did: string; publicKey?: undefined } | { publicKey: Uint8Array; did?: undefined });

const DID_PREFIX = "did:key:";
const SCHEME = /^nz:\/\//i;
/** `z` and base58btc (Bitcoin alphabet: no 0, O, I, l). */
const KEY = /^z[1-9A-HJ-NP-Za-km-z]+$/;
/** A parameter's name. */
const PARAM_NAME = /^[a-z0-9._-]+$/;
/** A parameter's value: unreserved characters, percent-encoded octets, and `:` `/` `@` as typed by hand. */
const PARAM_VALUE = /^(?:[A-Za-z0-9\-._~:/@]|%[0-9A-Fa-f]{2})*$/;
/** An address starts with a scheme (NZ-RECORD-01 2.1). */
const ADDRESS_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//;
/** No control character, space or DEL in an address. */
// deno-lint-ignore no-control-regex
const ADDRESS_FORBIDDEN = /[\u0000-\u0020\u007f]/;
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Writes the `nz://` URI of a node: its key, then one `addr` parameter per
 * address, every byte but unreserved ones percent-encoded with uppercase hex
 * (RFC 3986 sections 2.1 and 2.3).
 *
 * @param init The node, by `did` (a did:key) or `publicKey` (Ed25519, 32 bytes), and its addresses.
 * @returns The URI.
 * @throws {SyntaxError} when the DID is not an Ed25519 did:key or an address is not one (section "nz:// URIs").
 * @throws {RangeError} when there are more than {@linkcode MAX_NZ_URI_ADDRESSES} addresses, or the URI gets longer than
 *   {@linkcode MAX_NZ_URI_LENGTH}.
 */
export function formatNzUri(init: NzUriInit): string {
  const did = init.did !== undefined ? encodeDidKey(decodeDidKey(init.did)) : encodeDidKey(init.publicKey);
  const addresses = init.addresses ?? [];
  if (addresses.length > MAX_NZ_URI_ADDRESSES) {
    throw new RangeError(`Invalid addresses: ${addresses.length} given, expected at most ${MAX_NZ_URI_ADDRESSES}`);
  }
  const seen = new Set<string>();
  let uri = `${NZ_URI_SCHEME}://${did.slice(DID_PREFIX.length)}`;
  addresses.forEach((address, i) => {
    checkAddress(address, `addresses[${i}]`);
    if (seen.has(address)) throw new SyntaxError(`Invalid addresses[${i}]: "${address}" is given twice`);
    seen.add(address);
    uri += `${i === 0 ? "?" : "&"}addr=${percentEncode(address)}`;
  });
  if (uri.length > MAX_NZ_URI_LENGTH) {
    throw new RangeError(
      `Invalid addresses: the URI would be ${uri.length} characters, expected at most ${MAX_NZ_URI_LENGTH}`,
    );
  }
  return uri;
}

/**
 * Reads an `nz://` URI (NZ-INTRODUCE-01, "nz:// URIs"). The scheme and the
 * hex digits of percent-encodings may be of either case; parameters other
 * than `addr` are ignored when well formed.
 *
 * @param uri The URI.
 * @returns The node it names and its addresses.
 * @throws {SyntaxError} naming what is wrong: the length, the scheme, the key, a path or fragment, a malformed
 *   parameter, an address that is not one, an address given twice, or too many addresses.
 */
export function parseNzUri(uri: string): NzUri {
  if (typeof uri !== "string") throw new SyntaxError(`Invalid nz:// URI: expected a string, got ${typeof uri}`);
  if (uri.length > MAX_NZ_URI_LENGTH) {
    throw new SyntaxError(`Invalid nz:// URI: length is ${uri.length}, expected at most ${MAX_NZ_URI_LENGTH}`);
  }
  if (!SCHEME.test(uri)) throw new SyntaxError('Invalid nz:// URI: expected it to start with "nz://"');
  if (uri.includes("#")) throw new SyntaxError("Invalid nz:// URI: a fragment (#) is not allowed");
  const rest = uri.slice("nz://".length);
  const q = rest.indexOf("?");
  const key = q < 0 ? rest : rest.slice(0, q);
  if (key.includes("/")) throw new SyntaxError("Invalid nz:// URI: a path is not allowed after the node key");
  if (!KEY.test(key)) {
    throw new SyntaxError(
      'Invalid nz:// URI: the node key must be "z" followed by base58btc (the did:key without "did:key:")',
    );
  }
  let publicKey: Uint8Array;
  try {
    publicKey = decodeDidKey(DID_PREFIX + key);
  } catch {
    throw new SyntaxError("Invalid nz:// URI: the node key is not an Ed25519 did:key (0xed01 and 32 bytes)");
  }
  const addresses: string[] = [];
  if (q >= 0) {
    const params = rest.slice(q + 1).split("&");
    params.forEach((param, i) => {
      const eq = param.indexOf("=");
      const name = eq < 0 ? param : param.slice(0, eq);
      if (eq < 0 || !PARAM_NAME.test(name)) {
        throw new SyntaxError(`Invalid nz:// URI: parameter ${i + 1} is not NAME=VALUE with a lowercase name`);
      }
      const raw = param.slice(eq + 1);
      if (!PARAM_VALUE.test(raw)) {
        throw new SyntaxError(
          `Invalid nz:// URI: the value of parameter ${i + 1} (${name}) holds a character that must be ` +
            "percent-encoded, or a malformed %XX",
        );
      }
      if (name !== "addr") return; // other parameters are for later versions
      const address = percentDecode(raw, `addr ${addresses.length + 1}`);
      checkAddress(address, `nz:// URI: addr ${addresses.length + 1}`);
      if (addresses.includes(address)) throw new SyntaxError(`Invalid nz:// URI: addr "${address}" is given twice`);
      if (addresses.length === MAX_NZ_URI_ADDRESSES) {
        throw new SyntaxError(`Invalid nz:// URI: more than ${MAX_NZ_URI_ADDRESSES} addr parameters`);
      }
      addresses.push(address);
    });
  }
  return { did: DID_PREFIX + key, nodeId: nodeIdOf(publicKey), publicKey, addresses };
}

/**
 * Whether `text` looks like an `nz://` URI (its scheme only; {@linkcode parseNzUri} checks the rest).
 *
 * @param text Any string.
 * @returns true when it starts with `nz://`, in any case.
 */
export function isNzUri(text: string): boolean {
  return SCHEME.test(text);
}

/** Checks an address as NZ-RECORD-01 2.1 does, and that it holds no control character or space. */
function checkAddress(address: string, name: string): void {
  if (typeof address !== "string") throw new SyntaxError(`Invalid ${name}: expected a string`);
  const bytes = utf8(address).length;
  if (bytes === 0 || bytes > MAX_ADDRESS_BYTES) {
    throw new SyntaxError(`Invalid ${name}: length is ${bytes} bytes, expected 1..${MAX_ADDRESS_BYTES}`);
  }
  if (!ADDRESS_SCHEME.test(address)) {
    throw new SyntaxError(`Invalid ${name}: "${address}" does not start with a scheme (SCHEME://)`);
  }
  if (ADDRESS_FORBIDDEN.test(address)) {
    throw new SyntaxError(`Invalid ${name}: it holds a control character or a space`);
  }
}

/** Percent-encodes every byte of the UTF-8 of `text` but the unreserved characters (RFC 3986 section 2.3). */
function percentEncode(text: string): string {
  let out = "";
  for (const byte of utf8(text)) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && UNRESERVED.test(c) ? c : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Decodes `%XX` (checked by PARAM_VALUE) and the UTF-8 they make. */
function percentDecode(raw: string, name: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === "%") {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(raw.charCodeAt(i));
    }
  }
  try {
    return strictDecoder.decode(Uint8Array.from(bytes));
  } catch {
    throw new SyntaxError(`Invalid nz:// URI: ${name} is not UTF-8 once percent-decoded`);
  }
}
