/**
 * A PCP client (Port Control Protocol, RFC 6887) for the MAP opcode: the
 * message codecs (requests and responses, version 2, options) and
 * {@linkcode PcpClient}, which maps, renews and deletes with the mapping's
 * nonce, retransmits per section 8.1.1, turns result codes into
 * {@linkcode PortMappingError}s named after section 7.4, and watches the
 * server's epoch (section 8.5) so a caller can re-map after a gateway lost
 * its state.
 *
 * IPv4 only: the client and external addresses are IPv4, carried as
 * IPv4-mapped IPv6 addresses (section 5). ANNOUNCE messages multicast by a
 * rebooted server (section 14.1) are not listened for: that needs port 5350,
 * which other software on the host may hold; the epoch check on every
 * renewal answer covers the same loss of state a little later.
 *
 * @module
 */

import { exchange, retransmitDelays } from "./_exchange.ts";
import { assertPort, formatIPBytes, ipv4Mapped, parseIPv4 } from "./_ip.ts";
import { MalformedPortMapMessageError, PortMappingError } from "./errors.ts";

// --- Spec constants (RFC 6887) ---

/** The PCP version this client speaks (section 9). */
export const PCP_VERSION = 2;
/** The server's UDP port (section 19.1). */
export const PCP_SERVER_PORT = 5351;
/** The largest PCP message, in bytes (section 7). */
export const PCP_MAX_MESSAGE_SIZE = 1100;
/** Opcode ANNOUNCE (section 14.1). */
export const PCP_OPCODE_ANNOUNCE = 0;
/** Opcode MAP (section 11). */
export const PCP_OPCODE_MAP = 1;
/** Opcode PEER (section 12). */
export const PCP_OPCODE_PEER = 2;
/** The IANA protocol numbers PCP carries (section 11.1): UDP 17, TCP 6. */
export const PCP_PROTOCOL = { udp: 17, tcp: 6 } as const;
/** Retransmission: initial timeout (IRT), section 8.1.1. */
export const PCP_IRT_MS = 3_000;
/** Retransmission: maximum timeout (MRT), section 8.1.1. */
export const PCP_MRT_MS = 1_024_000;

/** The size of the common request header (section 7.1). */
const REQUEST_HEADER_SIZE = 24;
/** The size of the common response header (section 7.2). */
const RESPONSE_HEADER_SIZE = 24;
/** The size of the MAP opcode data (section 11.1). */
const MAP_DATA_SIZE = 36;
/** The R bit: set in responses (sections 7.1, 7.2). */
const R_BIT = 0x80;

/** The result codes of section 7.4, by number. */
export const PCP_RESULT_CODES: Readonly<Record<number, string>> = {
  0: "SUCCESS",
  1: "UNSUPP_VERSION",
  2: "NOT_AUTHORIZED",
  3: "MALFORMED_REQUEST",
  4: "UNSUPP_OPCODE",
  5: "UNSUPP_OPTION",
  6: "MALFORMED_OPTION",
  7: "NETWORK_FAILURE",
  8: "NO_RESOURCES",
  9: "UNSUPP_PROTOCOL",
  10: "USER_EX_QUOTA",
  11: "CANNOT_PROVIDE_EXTERNAL",
  12: "ADDRESS_MISMATCH",
  13: "EXCESSIVE_REMOTE_PEERS",
};

/** The name of a PCP result code (`NO_RESOURCES`), or `UNKNOWN_<n>`. */
export function pcpResultName(code: number): string {
  return PCP_RESULT_CODES[code] ?? `UNKNOWN_${code}`;
}

// --- Codecs ---

/** One PCP option (section 7.3): `data` unpadded. */
export interface PcpOption {
  /** Option code (THIRD_PARTY 1, PREFER_FAILURE 2, FILTER 3). */
  code: number;
  /** Option data, without the padding. */
  data: Uint8Array;
}

/** The MAP opcode's data (section 11.1), the same layout in requests and responses. */
export interface PcpMapData {
  /** The 96-bit mapping nonce. */
  nonce: Uint8Array;
  /** IANA protocol number (17 UDP, 6 TCP, 0 all). */
  protocol: number;
  /** The internal port (0 with protocol 0 only). */
  internalPort: number;
  /** The suggested (request) or assigned (response) external port. */
  externalPort: number;
  /** The suggested (request) or assigned (response) external address; `0.0.0.0` for "no preference". */
  externalAddress: string;
}

/** A PCP request (section 7.1); this client builds MAP requests only. */
export interface PcpRequest {
  /** The opcode (MAP 1). */
  opcode: number;
  /** The requested lifetime, seconds; 0 deletes. */
  lifetimeSeconds: number;
  /** The PCP client's own IP address (the source address of the request). */
  clientAddress: string;
  /** The MAP data, when the opcode is MAP. */
  map?: PcpMapData;
  /** Options, none by default. */
  options?: PcpOption[];
}

/** A PCP response (section 7.2). */
export interface PcpResponse {
  /** The opcode the response answers (without the R bit). */
  opcode: number;
  /** The result code (section 7.4). */
  resultCode: number;
  /** The granted lifetime on success, or how long an error holds, seconds. */
  lifetimeSeconds: number;
  /** The server's epoch time, seconds (section 8.5). */
  epoch: number;
  /** The MAP data; absent in a short error response. */
  map?: PcpMapData;
  /** Options. */
  options: PcpOption[];
}

/**
 * Encodes a PCP request (section 7.1; MAP data section 11.1).
 *
 * @param request The request; addresses are IPv4 literals.
 * @returns The request bytes, a multiple of 4 long.
 * @throws {RangeError} for a field out of range; {SyntaxError} for an address that is not IPv4.
 *
 * @example
 * ```ts
 * import { encodePcpRequest } from "./pcp.ts";
 * const bytes = encodePcpRequest({
 *   opcode: 1, lifetimeSeconds: 7200, clientAddress: "10.0.1.10",
 *   map: { nonce: new Uint8Array(12), protocol: 17, internalPort: 4000, externalPort: 4000, externalAddress: "0.0.0.0" },
 * });
 * if (bytes.length !== 60) throw new Error("a MAP request is 60 bytes");
 * ```
 */
export function encodePcpRequest(request: PcpRequest): Uint8Array {
  assertUint(request.opcode, 0x7f, "opcode");
  assertUint(request.lifetimeSeconds, 0xffffffff, "lifetimeSeconds");
  const optionBytes = encodeOptions(request.options ?? []);
  const bodySize = request.map ? MAP_DATA_SIZE : 0;
  const size = REQUEST_HEADER_SIZE + bodySize + optionBytes.length;
  if (size > PCP_MAX_MESSAGE_SIZE) throw new RangeError(`PCP request is ${size} bytes, over ${PCP_MAX_MESSAGE_SIZE}`);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = PCP_VERSION;
  out[1] = request.opcode; // R = 0: a request
  view.setUint32(4, request.lifetimeSeconds);
  out.set(ipv4Mapped(parseIPv4(request.clientAddress, "clientAddress")), 8);
  if (request.map) writeMapData(out, REQUEST_HEADER_SIZE, request.map);
  out.set(optionBytes, REQUEST_HEADER_SIZE + bodySize);
  return out;
}

/**
 * Decodes a PCP request (the server's view; used by tests and tools).
 *
 * @throws {MalformedPortMapMessageError} when the bytes are not a valid request.
 */
export function decodePcpRequest(bytes: Uint8Array): PcpRequest {
  checkFrame(bytes, REQUEST_HEADER_SIZE, "request");
  if (bytes[1] & R_BIT) malformed("request", "the R bit is set (that is a response)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const opcode = bytes[1] & 0x7f;
  let offset = REQUEST_HEADER_SIZE;
  let map: PcpMapData | undefined;
  if (opcode === PCP_OPCODE_MAP) {
    if (bytes.length < offset + MAP_DATA_SIZE) {
      malformed("request", `length is ${bytes.length}, a MAP request needs >= ${offset + MAP_DATA_SIZE}`);
    }
    map = readMapData(bytes, offset);
    offset += MAP_DATA_SIZE;
  } else if (opcode !== PCP_OPCODE_ANNOUNCE) {
    malformed("request", `opcode ${opcode} is not supported (MAP 1 and ANNOUNCE 0 are)`);
  }
  return {
    opcode,
    lifetimeSeconds: view.getUint32(4),
    clientAddress: formatIPBytes(bytes.subarray(8, 24)),
    ...(map ? { map } : {}),
    options: decodeOptions(bytes, offset, "request"),
  };
}

/**
 * Encodes a PCP response (section 7.2; the server's side, used by tests).
 *
 * @throws {RangeError} for a field out of range.
 */
export function encodePcpResponse(response: PcpResponse): Uint8Array {
  assertUint(response.opcode, 0x7f, "opcode");
  assertUint(response.resultCode, 0xff, "resultCode");
  assertUint(response.lifetimeSeconds, 0xffffffff, "lifetimeSeconds");
  assertUint(response.epoch, 0xffffffff, "epoch");
  const optionBytes = encodeOptions(response.options);
  const bodySize = response.map ? MAP_DATA_SIZE : 0;
  const size = RESPONSE_HEADER_SIZE + bodySize + optionBytes.length;
  if (size > PCP_MAX_MESSAGE_SIZE) throw new RangeError(`PCP response is ${size} bytes, over ${PCP_MAX_MESSAGE_SIZE}`);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = PCP_VERSION;
  out[1] = R_BIT | response.opcode;
  out[3] = response.resultCode;
  view.setUint32(4, response.lifetimeSeconds);
  view.setUint32(8, response.epoch);
  if (response.map) writeMapData(out, RESPONSE_HEADER_SIZE, response.map);
  out.set(optionBytes, RESPONSE_HEADER_SIZE + bodySize);
  return out;
}

/**
 * Decodes a PCP response (section 7.2): version 2, the R bit set, 24 to 1100
 * bytes in multiples of 4; the MAP data (section 11.1) is required on
 * success and decoded when present on an error; options must fit exactly.
 *
 * @param bytes One datagram from the server.
 * @returns The decoded response.
 * @throws {MalformedPortMapMessageError} for anything else, naming what is wrong.
 *
 * @example
 * ```ts
 * import { decodePcpResponse } from "./pcp.ts";
 * const bytes = new Uint8Array(24);
 * bytes.set([2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42]); // ANNOUNCE response, SUCCESS, epoch 42
 * if (decodePcpResponse(bytes).epoch !== 42) throw new Error("epoch");
 * ```
 */
export function decodePcpResponse(bytes: Uint8Array): PcpResponse {
  checkFrame(bytes, RESPONSE_HEADER_SIZE, "response");
  if (!(bytes[1] & R_BIT)) malformed("response", "the R bit is clear (that is a request)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const opcode = bytes[1] & 0x7f;
  const resultCode = bytes[3];
  let offset = RESPONSE_HEADER_SIZE;
  let map: PcpMapData | undefined;
  if (opcode === PCP_OPCODE_MAP) {
    if (bytes.length >= offset + MAP_DATA_SIZE) {
      map = readMapData(bytes, offset);
      offset += MAP_DATA_SIZE;
    } else if (resultCode === 0) {
      malformed("response", `length is ${bytes.length}, a successful MAP response needs >= ${offset + MAP_DATA_SIZE}`);
    }
  } else if (opcode !== PCP_OPCODE_ANNOUNCE && resultCode === 0) {
    malformed("response", `opcode ${opcode} is not supported (MAP 1 and ANNOUNCE 0 are)`);
  }
  // An error response to another opcode may carry that opcode's data: its options are not ours to read.
  const options = opcode === PCP_OPCODE_MAP || opcode === PCP_OPCODE_ANNOUNCE
    ? decodeOptions(bytes, offset, "response")
    : [];
  return {
    opcode,
    resultCode,
    lifetimeSeconds: view.getUint32(4),
    epoch: view.getUint32(8),
    ...(map ? { map } : {}),
    options,
  };
}

function checkFrame(bytes: Uint8Array, headerSize: number, what: string): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes must be a Uint8Array, got ${typeof bytes}`);
  // Section 7: at most 1100 bytes, a multiple of 4, at least the header.
  if (bytes.length < headerSize) malformed(what, `length is ${bytes.length}, expected >= ${headerSize}`);
  if (bytes.length > PCP_MAX_MESSAGE_SIZE) malformed(what, `length is ${bytes.length}, expected <= 1100`);
  if (bytes.length % 4 !== 0) malformed(what, `length is ${bytes.length}, not a multiple of 4`);
  if (bytes[0] !== PCP_VERSION) malformed(what, `version is ${bytes[0]}, expected 2`);
}

function writeMapData(out: Uint8Array, offset: number, map: PcpMapData): void {
  if (!(map.nonce instanceof Uint8Array) || map.nonce.length !== 12) {
    throw new RangeError(`map.nonce must be 12 bytes, got ${map.nonce?.length}`);
  }
  assertUint(map.protocol, 0xff, "map.protocol");
  assertPort(map.internalPort, "map.internalPort", true);
  assertPort(map.externalPort, "map.externalPort", true);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(map.nonce, offset);
  out[offset + 12] = map.protocol;
  view.setUint16(offset + 16, map.internalPort);
  view.setUint16(offset + 18, map.externalPort);
  out.set(ipv4Mapped(parseIPv4(map.externalAddress, "map.externalAddress")), offset + 20);
}

function readMapData(bytes: Uint8Array, offset: number): PcpMapData {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    nonce: bytes.slice(offset, offset + 12),
    protocol: bytes[offset + 12],
    internalPort: view.getUint16(offset + 16),
    externalPort: view.getUint16(offset + 18),
    externalAddress: formatIPBytes(bytes.subarray(offset + 20, offset + 36)),
  };
}

function encodeOptions(options: PcpOption[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [i, option] of options.entries()) {
    assertUint(option.code, 0xff, `options[${i}].code`);
    if (!(option.data instanceof Uint8Array) || option.data.length > 0xffff) {
      throw new RangeError(`options[${i}].data must be a Uint8Array of at most 65535 bytes`);
    }
    // Section 7.3: code, reserved, length (unpadded), data padded to a multiple of 4.
    const part = new Uint8Array(4 + Math.ceil(option.data.length / 4) * 4);
    part[0] = option.code;
    new DataView(part.buffer).setUint16(2, option.data.length);
    part.set(option.data, 4);
    parts.push(part);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

function decodeOptions(bytes: Uint8Array, offset: number, what: string): PcpOption[] {
  const options: PcpOption[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  while (offset < bytes.length) {
    if (bytes.length - offset < 4) malformed(what, `option header at ${offset} is truncated`);
    const code = bytes[offset];
    const length = view.getUint16(offset + 2);
    const padded = Math.ceil(length / 4) * 4;
    if (offset + 4 + padded > bytes.length) {
      malformed(what, `option ${code} at ${offset} has length ${length}, past the end (${bytes.length})`);
    }
    options.push({ code, data: bytes.slice(offset + 4, offset + 4 + length) });
    offset += 4 + padded;
  }
  return options;
}

function assertUint(value: number, max: number, param: string): void {
  if (typeof value !== "number") throw new TypeError(`${param} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${param} must be an integer 0-${max}, got ${value}`);
  }
}

function malformed(what: string, detail: string): never {
  throw new MalformedPortMapMessageError(`Cannot decode PCP ${what}: ${detail}`);
}

// --- Epoch (section 8.5) ---

/** The server epoch seen in one response and the client's clock then. */
export interface PcpEpochSample {
  /** The server's Epoch Time field, seconds. */
  epoch: number;
  /** The client's clock when the response arrived, ms. */
  atMs: number;
}

/**
 * Whether a server kept its state between two responses (RFC 6887 section
 * 8.5): false when its epoch went backwards by more than 2 s, or when its
 * epoch advanced more than 1/16 (plus 2 s) faster or slower than the
 * client's own clock. A false result means the server lost its mappings and
 * the client must map again.
 */
export function pcpEpochValid(previous: PcpEpochSample, current: PcpEpochSample): boolean {
  if (current.epoch + 2 < previous.epoch) return false;
  const clientDelta = (current.atMs - previous.atMs) / 1000;
  const serverDelta = current.epoch - previous.epoch;
  if (clientDelta + 2 < serverDelta - serverDelta / 16) return false;
  if (serverDelta + 2 < clientDelta - clientDelta / 16) return false;
  return true;
}

// --- Client ---

/** Options of a {@linkcode PcpClient}. */
export interface PcpClientOptions {
  /** The PCP server: the default gateway's IPv4 address. */
  gateway: string;
  /** This host's IPv4 address on the gateway's network; requests go from it and name it (section 8.1). */
  internalAddress: string;
  /** The server port; default 5351. */
  port?: number;
  /** Budget of one exchange (all retransmissions), ms; default 2000. */
  timeoutMs?: number;
  /**
   * The first retransmission timeout, ms. Default 3000 (IRT of section
   * 8.1.1); {@linkcode PortMapper} passes 250 so that a lost datagram is
   * retried within its few-second budget (a deliberate deviation: the
   * section is a SHOULD, and the budget, not the count, bounds the load).
   */
  initialTimeoutMs?: number;
  /** The clock, ms (for tests); default `Date.now`. */
  now?: () => number;
}

/** What a MAP request asks for. */
export interface PcpMapRequest {
  /** `udp` or `tcp`. */
  protocol: "udp" | "tcp";
  /** The port on this host. */
  internalPort: number;
  /** The external port wanted; 0 for any (default: the internal port). */
  suggestedExternalPort?: number;
  /** The lifetime wanted, seconds (0 deletes). */
  lifetimeSeconds: number;
  /** The mapping's nonce: pass the one of an existing mapping to renew or delete it; default a new random one. */
  nonce?: Uint8Array;
  /** The external address wanted (a renewal passes the assigned one); default none. */
  suggestedExternalAddress?: string;
  /** Cancels the request. */
  signal?: AbortSignal;
}

/** A mapping a PCP server granted. */
export interface PcpMapResult {
  /** `udp` or `tcp`. */
  protocol: "udp" | "tcp";
  /** The port on this host. */
  internalPort: number;
  /** The assigned external port. */
  externalPort: number;
  /** The assigned external address. */
  externalAddress: string;
  /** The granted lifetime, seconds. */
  lifetimeSeconds: number;
  /** The nonce that owns the mapping (section 11.1); renew and delete with it. */
  nonce: Uint8Array;
  /** The server's epoch in this answer. */
  epoch: number;
  /** False when the epoch shows the server lost its state since the previous answer (section 8.5): re-map the rest. */
  epochValid: boolean;
}

/**
 * A PCP client for one server. Each request opens its own socket on the
 * internal address for the length of the exchange.
 *
 * @example
 * ```ts ignore
 * const pcp = new PcpClient({ gateway: "10.0.1.1", internalAddress: "10.0.1.10" });
 * const m = await pcp.map({ protocol: "udp", internalPort: 4000, lifetimeSeconds: 7200 });
 * await pcp.delete(m);
 * ```
 */
export class PcpClient {
  /** The server's address. */
  readonly gateway: string;
  /** The client address requests name. */
  readonly internalAddress: string;
  #port: number;
  #timeoutMs: number;
  #irtMs: number;
  #now: () => number;
  #lastEpoch: PcpEpochSample | null = null;

  /** Creates a client; throws SyntaxError for addresses that are not IPv4. */
  constructor(options: PcpClientOptions) {
    parseIPv4(options.gateway, "gateway");
    parseIPv4(options.internalAddress, "internalAddress");
    this.gateway = options.gateway;
    this.internalAddress = options.internalAddress;
    this.#port = options.port ?? PCP_SERVER_PORT;
    assertPort(this.#port, "port");
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#irtMs = options.initialTimeoutMs ?? PCP_IRT_MS;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Sends a MAP request (section 11) and waits for its answer.
   *
   * @returns The mapping granted.
   * @throws {PortMappingError} with `reason` the result code's name when the server refuses, `TIMEOUT` when it does
   *   not answer in time, `UNSUPP_VERSION` when it speaks NAT-PMP only (section 9).
   */
  async map(request: PcpMapRequest): Promise<PcpMapResult> {
    assertPort(request.internalPort, "internalPort");
    const suggested = request.suggestedExternalPort ?? request.internalPort;
    assertPort(suggested, "suggestedExternalPort", true);
    const nonce = request.nonce ?? crypto.getRandomValues(new Uint8Array(12));
    const protocol = PCP_PROTOCOL[request.protocol];
    if (protocol === undefined) throw new TypeError(`protocol must be "udp" or "tcp", got ${request.protocol}`);
    const bytes = encodePcpRequest({
      opcode: PCP_OPCODE_MAP,
      lifetimeSeconds: request.lifetimeSeconds,
      clientAddress: this.internalAddress,
      map: {
        nonce,
        protocol,
        internalPort: request.internalPort,
        externalPort: suggested,
        externalAddress: request.suggestedExternalAddress ?? "0.0.0.0",
      },
    });
    const what = `MAP ${request.protocol} ${request.internalPort} lifetime ${request.lifetimeSeconds}`;
    const response = await exchange({
      method: "pcp",
      gateway: this.gateway,
      port: this.#port,
      localAddress: this.internalAddress,
      request: bytes,
      delays: retransmitDelays(this.#irtMs, PCP_MRT_MS),
      timeoutMs: this.#timeoutMs,
      signal: request.signal,
      what,
      accept: (data) => {
        // Section 9: a NAT-PMP-only server answers version 0 with result 1 (Unsupported Version).
        if (data.length >= 4 && data[0] === 0 && data[1] === (128 | PCP_OPCODE_MAP) && data[3] === 1) {
          throw new PortMappingError(`pcp: ${this.gateway} speaks NAT-PMP only (answered version 0)`, {
            method: "pcp",
            code: 1,
            reason: "UNSUPP_VERSION",
          });
        }
        const r = decodePcpResponse(data);
        if (r.opcode !== PCP_OPCODE_MAP) return undefined;
        // Section 11.3: the answer must echo our nonce, protocol and internal port.
        if (r.map && (!equalBytes(r.map.nonce, nonce) || r.map.protocol !== protocol)) return undefined;
        if (r.map && r.map.internalPort !== request.internalPort) return undefined;
        return r;
      },
    });
    const epochValid = this.#checkEpoch(response.epoch);
    if (response.resultCode !== 0) {
      const name = pcpResultName(response.resultCode);
      throw new PortMappingError(
        `pcp: ${this.gateway} refused ${what}: ${name} (${response.resultCode})`,
        { method: "pcp", code: response.resultCode, reason: name },
      );
    }
    const map = response.map!;
    return {
      protocol: request.protocol,
      internalPort: request.internalPort,
      externalPort: map.externalPort,
      externalAddress: map.externalAddress,
      lifetimeSeconds: response.lifetimeSeconds,
      nonce,
      epoch: response.epoch,
      epochValid,
    };
  }

  /**
   * Deletes a mapping: a MAP request with lifetime 0 and the mapping's own
   * nonce (sections 11.1 and 15); the server refuses another nonce.
   *
   * @throws {PortMappingError} as {@linkcode PcpClient.map}.
   */
  async delete(
    mapping: Pick<PcpMapResult, "protocol" | "internalPort" | "nonce" | "externalPort" | "externalAddress">,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    await this.map({
      protocol: mapping.protocol,
      internalPort: mapping.internalPort,
      suggestedExternalPort: mapping.externalPort,
      suggestedExternalAddress: mapping.externalAddress,
      nonce: mapping.nonce,
      lifetimeSeconds: 0,
      signal: options.signal,
    });
  }

  #checkEpoch(epoch: number): boolean {
    const current = { epoch, atMs: this.#now() };
    const valid = this.#lastEpoch === null || pcpEpochValid(this.#lastEpoch, current);
    this.#lastEpoch = current;
    return valid;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
