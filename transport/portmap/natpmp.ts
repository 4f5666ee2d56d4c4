/**
 * A NAT-PMP client (RFC 6886): the message codecs and
 * {@linkcode NatPmpClient}, which asks the gateway for its public address
 * (section 3.2), maps UDP and TCP ports (section 3.3), deletes a mapping with
 * lifetime 0 (section 3.4), retransmits from 250 ms doubling (section 3.1),
 * turns result codes into {@linkcode PortMappingError}s (section 3.5), and
 * watches the gateway's epoch (section 3.6).
 *
 * Why not the NAT-PMP client of `@achingbrain/nat-port-mapper` 4.0.5: it
 * binds the fixed client port 5350 (taken by any other NAT-PMP listener on
 * the host), never retransmits (a lost datagram waits forever unless the
 * caller aborts), reads every answer without a length check inside the
 * socket's message handler (a short datagram throws there, outside any
 * promise, and ends the process), sends its millisecond `ttl` as the lifetime
 * in seconds (1000 times too long), deletes with the TCP opcode whatever was
 * mapped, and sends the deletion with a non-zero suggested port (section 3.4
 * says zero).
 *
 * @module
 */

import { exchange, retransmitDelays } from "./_exchange.ts";
import { assertPort, formatIPv4, parseIPv4 } from "./_ip.ts";
import { MalformedPortMapMessageError, PortMappingError } from "./errors.ts";

// --- Spec constants (RFC 6886) ---

/** The NAT-PMP version (section 3). */
export const NAT_PMP_VERSION = 0;
/** The gateway's UDP port (section 3.1). */
export const NAT_PMP_SERVER_PORT = 5351;
/** Opcode: public address request (section 3.2). */
export const NAT_PMP_OP_PUBLIC_ADDRESS = 0;
/** Opcode: map UDP (section 3.3). */
export const NAT_PMP_OP_MAP_UDP = 1;
/** Opcode: map TCP (section 3.3). */
export const NAT_PMP_OP_MAP_TCP = 2;
/** Added to the request's opcode in the response (section 3.2). */
const RESPONSE_OP_OFFSET = 128;
/** Retransmission: first wait 250 ms, doubling (section 3.1). */
export const NAT_PMP_INITIAL_TIMEOUT_MS = 250;
/** Retransmission: at most 9 sends (section 3.1). */
export const NAT_PMP_MAX_ATTEMPTS = 9;
/** Response sizes: public address 12 bytes, mapping 16 bytes; an error answer may stop after the 8-byte header. */
const PUBLIC_ADDRESS_RESPONSE_SIZE = 12, MAP_RESPONSE_SIZE = 16, ERROR_HEADER_SIZE = 8;

/** The result codes of section 3.5, by number. */
export const NAT_PMP_RESULT_CODES: Readonly<Record<number, string>> = {
  0: "SUCCESS",
  1: "UNSUPPORTED_VERSION",
  2: "NOT_AUTHORIZED",
  3: "NETWORK_FAILURE",
  4: "OUT_OF_RESOURCES",
  5: "UNSUPPORTED_OPCODE",
};

/** The name of a NAT-PMP result code (`OUT_OF_RESOURCES`), or `UNKNOWN_<n>`. */
export function natPmpResultName(code: number): string {
  return NAT_PMP_RESULT_CODES[code] ?? `UNKNOWN_${code}`;
}

// --- Codecs ---

/** A NAT-PMP request: a public address request, or a mapping request (section 3.3). */
export type NatPmpRequest =
  | { op: 0 }
  | {
    /** 1 UDP, 2 TCP. */
    op: 1 | 2;
    /** The port on this host. */
    internalPort: number;
    /** The external port wanted (0 on deletion, section 3.4). */
    suggestedExternalPort: number;
    /** The lifetime wanted, seconds; 0 deletes. */
    lifetimeSeconds: number;
  };

/** A NAT-PMP response. */
export type NatPmpResponse =
  | {
    /** 0: answers the public address request. */
    op: 0;
    /** Result code (section 3.5). */
    resultCode: number;
    /** Seconds since the gateway's epoch began (section 3.6). */
    epoch: number;
    /** The public IPv4 address; absent in a short error answer. */
    externalAddress?: string;
  }
  | {
    /** 1 UDP, 2 TCP: answers a mapping request. */
    op: 1 | 2;
    /** Result code (section 3.5). */
    resultCode: number;
    /** Seconds since the gateway's epoch began. */
    epoch: number;
    /** The internal port; the rest are absent in a short error answer. */
    internalPort?: number;
    /** The mapped external port. */
    externalPort?: number;
    /** The granted lifetime, seconds. */
    lifetimeSeconds?: number;
  };

/**
 * Encodes a NAT-PMP request (sections 3.2 and 3.3).
 *
 * @throws {RangeError} for a field out of range.
 *
 * @example
 * ```ts
 * import { encodeNatPmpRequest } from "./natpmp.ts";
 * const bytes = encodeNatPmpRequest({ op: 1, internalPort: 4000, suggestedExternalPort: 4000, lifetimeSeconds: 7200 });
 * if (bytes.length !== 12) throw new Error("a mapping request is 12 bytes");
 * ```
 */
export function encodeNatPmpRequest(request: NatPmpRequest): Uint8Array {
  if (request.op === NAT_PMP_OP_PUBLIC_ADDRESS) return new Uint8Array([NAT_PMP_VERSION, NAT_PMP_OP_PUBLIC_ADDRESS]);
  if (request.op !== NAT_PMP_OP_MAP_UDP && request.op !== NAT_PMP_OP_MAP_TCP) {
    throw new RangeError(`op must be 0, 1 or 2, got ${(request as { op: unknown }).op}`);
  }
  assertPort(request.internalPort, "internalPort");
  assertPort(request.suggestedExternalPort, "suggestedExternalPort", true);
  assertUint32(request.lifetimeSeconds, "lifetimeSeconds");
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  out[0] = NAT_PMP_VERSION;
  out[1] = request.op; // bytes 2-3 reserved, zero
  view.setUint16(4, request.internalPort);
  view.setUint16(6, request.suggestedExternalPort);
  view.setUint32(8, request.lifetimeSeconds);
  return out;
}

/**
 * Decodes a NAT-PMP request (the gateway's view; used by tests and tools).
 *
 * @throws {MalformedPortMapMessageError} when the bytes are not a valid request.
 */
export function decodeNatPmpRequest(bytes: Uint8Array): NatPmpRequest {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes must be a Uint8Array, got ${typeof bytes}`);
  if (bytes.length < 2) malformed("request", `length is ${bytes.length}, expected >= 2`);
  if (bytes[0] !== NAT_PMP_VERSION) malformed("request", `version is ${bytes[0]}, expected 0`);
  const op = bytes[1];
  if (op === NAT_PMP_OP_PUBLIC_ADDRESS) {
    if (bytes.length !== 2) malformed("request", `length is ${bytes.length}, a public address request is 2`);
    return { op };
  }
  if (op !== NAT_PMP_OP_MAP_UDP && op !== NAT_PMP_OP_MAP_TCP) malformed("request", `opcode ${op} is not 0, 1 or 2`);
  if (bytes.length !== 12) malformed("request", `length is ${bytes.length}, a mapping request is 12`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    op,
    internalPort: view.getUint16(4),
    suggestedExternalPort: view.getUint16(6),
    lifetimeSeconds: view.getUint32(8),
  };
}

/**
 * Encodes a NAT-PMP response (the gateway's side; used by tests). Fields
 * left out of an error response make the 8-byte short form.
 *
 * @throws {RangeError} for a field out of range; {SyntaxError} for an address that is not IPv4.
 */
export function encodeNatPmpResponse(response: NatPmpResponse): Uint8Array {
  assertUint32(response.resultCode, "resultCode", 0xffff);
  assertUint32(response.epoch, "epoch");
  let out: Uint8Array;
  if (response.op === NAT_PMP_OP_PUBLIC_ADDRESS) {
    out = new Uint8Array(response.externalAddress === undefined ? ERROR_HEADER_SIZE : PUBLIC_ADDRESS_RESPONSE_SIZE);
    if (response.externalAddress !== undefined) out.set(parseIPv4(response.externalAddress, "externalAddress"), 8);
  } else if (response.op === NAT_PMP_OP_MAP_UDP || response.op === NAT_PMP_OP_MAP_TCP) {
    const full = response.internalPort !== undefined;
    out = new Uint8Array(full ? MAP_RESPONSE_SIZE : ERROR_HEADER_SIZE);
    if (full) {
      assertPort(response.internalPort!, "internalPort");
      assertPort(response.externalPort ?? 0, "externalPort", true);
      assertUint32(response.lifetimeSeconds ?? 0, "lifetimeSeconds");
      const view = new DataView(out.buffer);
      view.setUint16(8, response.internalPort!);
      view.setUint16(10, response.externalPort ?? 0);
      view.setUint32(12, response.lifetimeSeconds ?? 0);
    }
  } else {
    throw new RangeError(`op must be 0, 1 or 2, got ${(response as { op: unknown }).op}`);
  }
  const view = new DataView(out.buffer);
  out[0] = NAT_PMP_VERSION;
  out[1] = RESPONSE_OP_OFFSET + response.op;
  view.setUint16(2, response.resultCode);
  view.setUint32(4, response.epoch);
  return out;
}

/**
 * Decodes a NAT-PMP response: version 0, opcode 128-130; a success answer is
 * exactly 12 (public address) or 16 (mapping) bytes; an error answer has at
 * least the 8-byte header and at most the full size.
 *
 * @param bytes One datagram from the gateway.
 * @returns The decoded response.
 * @throws {MalformedPortMapMessageError} for anything else, naming what is wrong.
 *
 * @example
 * ```ts
 * import { decodeNatPmpResponse } from "./natpmp.ts";
 * const r = decodeNatPmpResponse(new Uint8Array([0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 101]));
 * if (r.op !== 0 || r.externalAddress !== "203.0.113.101") throw new Error("public address");
 * ```
 */
export function decodeNatPmpResponse(bytes: Uint8Array): NatPmpResponse {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes must be a Uint8Array, got ${typeof bytes}`);
  if (bytes.length < ERROR_HEADER_SIZE) malformed("response", `length is ${bytes.length}, expected >= 8`);
  if (bytes[0] !== NAT_PMP_VERSION) malformed("response", `version is ${bytes[0]}, expected 0`);
  const op = bytes[1] - RESPONSE_OP_OFFSET;
  if (op !== 0 && op !== 1 && op !== 2) malformed("response", `opcode ${bytes[1]} is not 128, 129 or 130`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const resultCode = view.getUint16(2);
  const epoch = view.getUint32(4);
  const full = op === 0 ? PUBLIC_ADDRESS_RESPONSE_SIZE : MAP_RESPONSE_SIZE;
  if (bytes.length > full) {
    malformed("response", `length is ${bytes.length}, expected <= ${full} for opcode ${bytes[1]}`);
  }
  if (bytes.length !== full && (resultCode === 0 || bytes.length !== ERROR_HEADER_SIZE)) {
    malformed("response", `length is ${bytes.length}, expected ${full}${resultCode === 0 ? "" : " or 8"}`);
  }
  if (op === 0) {
    return bytes.length === full
      ? { op, resultCode, epoch, externalAddress: formatIPv4(bytes.subarray(8, 12)) }
      : { op, resultCode, epoch };
  }
  return bytes.length === full
    ? {
      op,
      resultCode,
      epoch,
      internalPort: view.getUint16(8),
      externalPort: view.getUint16(10),
      lifetimeSeconds: view.getUint32(12),
    }
    : { op, resultCode, epoch };
}

function assertUint32(value: number, param: string, max = 0xffffffff): void {
  if (typeof value !== "number") throw new TypeError(`${param} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${param} must be an integer 0-${max}, got ${value}`);
  }
}

function malformed(what: string, detail: string): never {
  throw new MalformedPortMapMessageError(`Cannot decode NAT-PMP ${what}: ${detail}`);
}

/**
 * Whether a NAT-PMP gateway kept its state between two answers (RFC 6886
 * section 3.6): its seconds-since-epoch must have advanced by at least 7/8
 * of the client's elapsed time, less 2 seconds of slack.
 */
export function natPmpEpochValid(
  previous: { epoch: number; atMs: number },
  current: { epoch: number; atMs: number },
): boolean {
  const clientDelta = (current.atMs - previous.atMs) / 1000;
  return current.epoch + 2 >= previous.epoch + (clientDelta * 7) / 8;
}

// --- Client ---

/** Options of a {@linkcode NatPmpClient}. */
export interface NatPmpClientOptions {
  /** The gateway's IPv4 address (NAT-PMP speaks only to the default gateway, section 3). */
  gateway: string;
  /** The local address to send from; default `0.0.0.0`. */
  localAddress?: string;
  /** The gateway port; default 5351. */
  port?: number;
  /** Budget of one exchange, ms; default 2000 (section 3.1 allows 64 s: the budget bounds it). */
  timeoutMs?: number;
  /** The clock, ms (for tests); default `Date.now`. */
  now?: () => number;
}

/** A mapping a NAT-PMP gateway granted. */
export interface NatPmpMapResult {
  /** `udp` or `tcp`. */
  protocol: "udp" | "tcp";
  /** The port on this host. */
  internalPort: number;
  /** The mapped external port. */
  externalPort: number;
  /** The granted lifetime, seconds. */
  lifetimeSeconds: number;
  /** The gateway's epoch in the answer. */
  epoch: number;
  /** False when the epoch shows the gateway lost its state since the previous answer (section 3.6). */
  epochValid: boolean;
}

/**
 * A NAT-PMP client for one gateway. Each request opens its own socket for
 * the length of the exchange.
 *
 * @example
 * ```ts ignore
 * const pmp = new NatPmpClient({ gateway: "10.0.1.1" });
 * const m = await pmp.map({ protocol: "udp", internalPort: 4000, lifetimeSeconds: 7200 });
 * console.log(await pmp.externalAddress(), m.externalPort);
 * await pmp.delete(m);
 * ```
 */
export class NatPmpClient {
  /** The gateway's address. */
  readonly gateway: string;
  #localAddress: string;
  #port: number;
  #timeoutMs: number;
  #now: () => number;
  #lastEpoch: { epoch: number; atMs: number } | null = null;

  /** Creates a client; throws SyntaxError for addresses that are not IPv4. */
  constructor(options: NatPmpClientOptions) {
    parseIPv4(options.gateway, "gateway");
    this.gateway = options.gateway;
    this.#localAddress = options.localAddress ?? "0.0.0.0";
    parseIPv4(this.#localAddress, "localAddress");
    this.#port = options.port ?? NAT_PMP_SERVER_PORT;
    assertPort(this.#port, "port");
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Asks for the gateway's public address (section 3.2).
   *
   * @throws {PortMappingError} on a refusal (`reason` the result code's name) or `TIMEOUT`.
   */
  async externalAddress(options: { signal?: AbortSignal } = {}): Promise<string> {
    const r = await this.#request({ op: 0 }, "public address request", options.signal);
    if (r.op !== 0 || r.externalAddress === undefined) throw new Error("unreachable: checked by #request");
    return r.externalAddress;
  }

  /**
   * Maps a port (section 3.3); mapping the same internal port again renews it.
   *
   * @throws {PortMappingError} on a refusal (`reason` the result code's name) or `TIMEOUT`.
   */
  async map(request: {
    protocol: "udp" | "tcp";
    internalPort: number;
    suggestedExternalPort?: number;
    lifetimeSeconds: number;
    signal?: AbortSignal;
  }): Promise<NatPmpMapResult> {
    const op = opFor(request.protocol);
    const what = `map ${request.protocol} ${request.internalPort} lifetime ${request.lifetimeSeconds}`;
    const r = await this.#request(
      {
        op,
        internalPort: request.internalPort,
        suggestedExternalPort: request.suggestedExternalPort ?? request.internalPort,
        lifetimeSeconds: request.lifetimeSeconds,
      },
      what,
      request.signal,
    );
    if (r.op === 0 || r.externalPort === undefined) throw new Error("unreachable: checked by #request");
    return {
      protocol: request.protocol,
      internalPort: request.internalPort,
      externalPort: r.externalPort,
      lifetimeSeconds: r.lifetimeSeconds!,
      epoch: r.epoch,
      epochValid: this.#epochValid,
    };
  }

  /**
   * Deletes a mapping: lifetime 0 and suggested external port 0 (section 3.4).
   *
   * @throws {PortMappingError} on a refusal or `TIMEOUT`.
   */
  async delete(
    mapping: { protocol: "udp" | "tcp"; internalPort: number },
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    await this.#request(
      {
        op: opFor(mapping.protocol),
        internalPort: mapping.internalPort,
        suggestedExternalPort: 0,
        lifetimeSeconds: 0,
      },
      `delete ${mapping.protocol} ${mapping.internalPort}`,
      options.signal,
    );
  }

  #epochValid = true;

  async #request(request: NatPmpRequest, what: string, signal?: AbortSignal): Promise<NatPmpResponse> {
    const r = await exchange({
      method: "nat-pmp",
      gateway: this.gateway,
      port: this.#port,
      localAddress: this.#localAddress,
      request: encodeNatPmpRequest(request),
      delays: retransmitDelays(NAT_PMP_INITIAL_TIMEOUT_MS, Infinity, NAT_PMP_MAX_ATTEMPTS, 0),
      timeoutMs: this.#timeoutMs,
      signal,
      what,
      accept: (data) => {
        const response = decodeNatPmpResponse(data);
        if (response.op !== request.op) return undefined;
        // A mapping answer for another internal port belongs to another request.
        if (response.op !== 0 && response.internalPort !== undefined && request.op !== 0) {
          if (response.internalPort !== request.internalPort) return undefined;
        }
        return response;
      },
    });
    const current = { epoch: r.epoch, atMs: this.#now() };
    this.#epochValid = this.#lastEpoch === null || natPmpEpochValid(this.#lastEpoch, current);
    this.#lastEpoch = current;
    if (r.resultCode !== 0) {
      const name = natPmpResultName(r.resultCode);
      throw new PortMappingError(
        `nat-pmp: ${this.gateway} refused ${what}: ${name} (${r.resultCode})`,
        { method: "nat-pmp", code: r.resultCode, reason: name },
      );
    }
    return r;
  }
}

function opFor(protocol: "udp" | "tcp"): 1 | 2 {
  if (protocol === "udp") return NAT_PMP_OP_MAP_UDP;
  if (protocol === "tcp") return NAT_PMP_OP_MAP_TCP;
  throw new TypeError(`protocol must be "udp" or "tcp", got ${protocol}`);
}
