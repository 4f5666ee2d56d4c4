/**
 * A STUN client on the node's shared {@linkcode UdpSocket} (RFC 8489 section
 * 6.2.1 retransmission), and Binding over TCP (section 6.2.2).
 *
 * @module
 */

import { isStunDatagram, type UdpAddr, type UdpSocket } from "../udp.ts";
import { StunError } from "./errors.ts";
import {
  addStunAttribute,
  CHANGE_REQUEST,
  CHANGED_ADDRESS,
  createStunMessage,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  ERROR_CODE,
  getStunAttribute,
  MAPPED_ADDRESS,
  OTHER_ADDRESS,
  RESPONSE_ORIGIN,
  shortTermKey,
  SOFTWARE,
  SOURCE_ADDRESS,
  STUN_HEADER_SIZE,
  STUN_METHOD_BINDING,
  type StunIntegrityOptions,
  type StunMessage,
  stunMessageSize,
  transactionKey,
  USERNAME,
  verifyStunFingerprint,
  verifyStunIntegrity,
  XOR_MAPPED_ADDRESS,
} from "./message.ts";

/** RFC 8489 section 6.2.1: initial retransmission timeout. */
export const STUN_RTO_MS = 500;
/** RFC 8489 section 6.2.1: transmissions of a request, at most. */
export const STUN_RC = 7;
/** RFC 8489 section 6.2.1: the last wait, in RTOs. */
export const STUN_RM = 16;
/** RFC 8489 section 6.2.2: transaction timeout over TCP (39.5 s). */
export const STUN_TCP_TIMEOUT_MS = 39_500;

/** The retransmission timers (RFC 8489 section 6.2.1); shorter ones for tests. */
export interface StunTimers {
  /** Initial RTO in ms (default 500); doubles after each transmission. */
  rtoMs?: number;
  /** Transmissions at most (default 7). */
  rc?: number;
  /** After the last transmission, wait `rm * rtoMs` (default 16) before giving up. */
  rm?: number;
}

/** Options of {@linkcode StunClient}. */
export interface StunClientOptions extends StunTimers {
  /** SOFTWARE to add to every request (none by default). */
  software?: string;
}

/** Options of {@linkcode StunClient.request}. */
export interface StunRequestOptions extends StunTimers {
  /** Cancels the transaction; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Signs the request with this key, and accepts only responses whose integrity verifies with it. */
  integrity?: StunIntegrityOptions;
  /** Appends FINGERPRINT to the request. */
  fingerprint?: boolean;
}

/** A response to {@linkcode StunClient.request}. */
export interface StunResponse {
  /** The decoded success response. */
  message: DecodedStunMessage;
  /** Where it came from. */
  from: UdpAddr;
  /** Time from the latest transmission of the request to the response, in ms. */
  rttMs: number;
}

/** Short-term credentials for a Binding request (RFC 8489 section 9.1). */
export interface StunShortTermCredentials {
  /** Sent in USERNAME. */
  username: string;
  /** The key is OpaqueString(password). */
  password: string;
}

/** Options of {@linkcode StunClient.binding}. */
export interface StunBindingOptions extends StunTimers {
  /** RFC 5780 CHANGE-REQUEST "change IP" flag. */
  changeIp?: boolean;
  /** RFC 5780 CHANGE-REQUEST "change port" flag. */
  changePort?: boolean;
  /** Short-term credentials: USERNAME and MESSAGE-INTEGRITY. */
  credentials?: StunShortTermCredentials;
  /** Appends FINGERPRINT. */
  fingerprint?: boolean;
  /** Cancels the transaction. */
  signal?: AbortSignal;
}

/** What a Binding transaction learnt. */
export interface StunBindingResult {
  /** The server-reflexive address: XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS from an old server). */
  mapped: UdpAddr;
  /** RFC 5780 OTHER-ADDRESS (or RFC 3489 CHANGED-ADDRESS), when the server sent one. */
  otherAddress?: UdpAddr;
  /** RFC 5780 RESPONSE-ORIGIN (or RFC 3489 SOURCE-ADDRESS), when the server sent one. */
  responseOrigin?: UdpAddr;
  /** The address the response came from. */
  from: UdpAddr;
  /** Round-trip time in ms. */
  rttMs: number;
}

/** Counters of a {@linkcode StunClient}. */
export interface StunClientStats {
  /** Transactions started. */
  requests: number;
  /** Datagrams sent (first transmissions and retransmissions). */
  transmissions: number;
  /** Responses accepted (success or error). */
  responses: number;
  /** STUN responses seen on the socket for no transaction of this client (left to later routes). */
  unmatched: number;
  /** Responses to a transaction that did not decode. */
  malformed: number;
  /** Responses ignored for a missing or wrong MESSAGE-INTEGRITY(-SHA256). */
  badIntegrity: number;
  /** Responses ignored for a wrong FINGERPRINT. */
  badFingerprint: number;
  /** Transactions that timed out. */
  timeouts: number;
}

interface Transaction {
  server: UdpAddr;
  key?: Uint8Array;
  sentAt: number;
  resolve: (response: StunResponse) => void;
  reject: (error: unknown) => void;
}

/** Error codes a server may send without integrity even to a signed request (RFC 8489 sections 9.1.3, 9.2.4). */
const UNSIGNED_ERRORS = new Set([400, 401, 420, 438]);

/**
 * Sends STUN requests from a shared {@linkcode UdpSocket} and matches the
 * responses by transaction ID. It routes only STUN responses whose
 * transaction it waits for; requests and indications go on to the server's
 * route.
 *
 * ```ts
 * import { StunClient, StunServer, UdpSocket } from "../mod.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * await using serverSocket = await UdpSocket.bind("127.0.0.1:0");
 * await using socket = await UdpSocket.bind("127.0.0.1:0");
 * using _server = new StunServer(serverSocket);
 * using client = new StunClient(socket);
 * const { mapped } = await client.binding(serverSocket.addr);
 * deepEqual(mapped, socket.addr); // no NAT on loopback
 * ```
 */
export class StunClient implements Disposable {
  /** Counters, live. */
  readonly stats: StunClientStats = {
    requests: 0,
    transmissions: 0,
    responses: 0,
    unmatched: 0,
    malformed: 0,
    badIntegrity: 0,
    badFingerprint: 0,
    timeouts: 0,
  };
  /** The socket it sends from. */
  readonly socket: UdpSocket;
  #options: StunClientOptions;
  #pending = new Map<string, Transaction>();
  #unroute: () => void;
  #closed = false;

  /** Registers the client's route on `socket`. */
  constructor(socket: UdpSocket, options: StunClientOptions = {}) {
    this.socket = socket;
    this.#options = options;
    this.#unroute = socket.route((data) => this.#matches(data), (data, from) => this.#receive(data, from));
  }

  /**
   * Runs one transaction: sends `message` (a request) to `server`, resends it
   * on RFC 8489's schedule (RTO 500 ms doubling, 7 transmissions, then 16 RTO),
   * and resolves with the first success response whose checks pass.
   *
   * @param server Where to send.
   * @param message The request; its transaction ID identifies the response.
   * @param options Signal, integrity key, fingerprint, timers.
   * @returns The response, where it came from, and the round-trip time.
   * @throws {StunError} on an error response (`code`, `reason`, `response`), a timeout, a send failure or a closed client.
   */
  request(server: UdpAddr, message: StunMessage, options: StunRequestOptions = {}): Promise<StunResponse> {
    if (this.#closed) return Promise.reject(new StunError("STUN client is closed"));
    if (message.class !== "request") throw new RangeError(`message.class is ${message.class}, expected request`);
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const rto = options.rtoMs ?? this.#options.rtoMs ?? STUN_RTO_MS;
    const rc = options.rc ?? this.#options.rc ?? STUN_RC;
    const rm = options.rm ?? this.#options.rm ?? STUN_RM;
    if (!(rto > 0) || !(rc >= 1) || !(rm > 0)) {
      throw new RangeError(`timers must be positive: rtoMs ${rto}, rc ${rc}, rm ${rm}`);
    }
    if (this.#options.software !== undefined && !message.attributes.some((a) => a.type === SOFTWARE.type)) {
      addStunAttribute(message, SOFTWARE, this.#options.software);
    }
    const bytes = encodeStunMessage(message, { integrity: options.integrity, fingerprint: options.fingerprint });
    const id = transactionKey(message.transactionId);
    if (this.#pending.has(id)) throw new RangeError("a transaction with this ID is already running");
    this.stats.requests++;

    const { promise, resolve, reject } = Promise.withResolvers<StunResponse>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let sent = 0;
    const finish = () => {
      clearTimeout(timer);
      this.#pending.delete(id);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      finish();
      reject(signal!.reason);
    };
    const tx: Transaction = {
      server,
      key: options.integrity?.key,
      sentAt: 0,
      resolve: (r) => {
        finish();
        resolve(r);
      },
      reject: (e) => {
        finish();
        reject(e);
      },
    };
    const transmit = () => {
      sent++;
      this.stats.transmissions++;
      tx.sentAt = performance.now();
      this.socket.send(bytes, server).catch((error) => {
        if (this.#pending.get(id) === tx) {
          tx.reject(new StunError(`STUN request could not be sent: ${error.message}`, { cause: error }));
        }
      });
      // RFC 8489 section 6.2.1: waits of RTO, 2 RTO, 4 RTO... between transmissions, Rm * RTO after the last.
      if (sent < rc) timer = setTimeout(transmit, rto * 2 ** (sent - 1));
      else {
        timer = setTimeout(() => {
          this.stats.timeouts++;
          tx.reject(
            new StunError(`STUN request to ${server.hostname}:${server.port} timed out after ${rc} transmissions`),
          );
        }, rto * rm);
      }
    };
    this.#pending.set(id, tx);
    signal?.addEventListener("abort", onAbort, { once: true });
    transmit();
    return promise;
  }

  /**
   * A Binding transaction (RFC 8489 section 3; RFC 5780 section 7.2 for
   * CHANGE-REQUEST).
   *
   * @param server The STUN server.
   * @param options CHANGE-REQUEST flags, credentials, fingerprint, signal, timers.
   * @returns The mapped address, RFC 5780 OTHER-ADDRESS and RESPONSE-ORIGIN when sent, where the answer came from, and the RTT.
   * @throws {StunError} on an error response, a response without a mapped address, or a timeout.
   */
  async binding(server: UdpAddr, options: StunBindingOptions = {}): Promise<StunBindingResult> {
    const request = bindingRequest(options);
    const integrity = options.credentials ? { key: shortTermKey(options.credentials.password) } : undefined;
    const { message, from, rttMs } = await this.request(server, request, { ...options, integrity });
    return { ...bindingResult(message), from, rttMs };
  }

  /**
   * A Binding transaction over a fresh TCP connection to `server` (RFC 8489
   * section 6.2.2: no retransmission, 39.5 s timeout).
   *
   * @throws {StunError} on an error response, a malformed or missing response, a refused connection or a timeout.
   */
  bindingOverTcp(server: UdpAddr, options: StunTcpOptions = {}): Promise<StunBindingResult> {
    return stunBindingOverTcp(server, { software: this.#options.software, ...options });
  }

  /** Removes the route and fails the transactions still running. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unroute();
    for (const tx of [...this.#pending.values()]) tx.reject(new StunError("STUN client is closed"));
  }

  /** Same as {@linkcode StunClient.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #matches(data: Uint8Array): boolean {
    // Responses only: class bit C1 (type bit 8, the low bit of byte 0).
    if (!isStunDatagram(data) || (data[0] & 0x01) === 0) return false;
    if (this.#pending.has(transactionKey(data.subarray(8, STUN_HEADER_SIZE)))) return true;
    this.stats.unmatched++;
    return false;
  }

  #receive(data: Uint8Array, from: UdpAddr): void {
    const tx = this.#pending.get(transactionKey(data.subarray(8, STUN_HEADER_SIZE)));
    if (!tx) return;
    const rttMs = performance.now() - tx.sentAt;
    let message: DecodedStunMessage;
    try {
      message = decodeStunMessage(data);
    } catch {
      this.stats.malformed++;
      return;
    }
    if (message.fingerprint && !verifyStunFingerprint(message)) {
      this.stats.badFingerprint++;
      return;
    }
    const error = message.class === "error" ? getStunAttribute(message, ERROR_CODE) : undefined;
    if (tx.key) {
      const signed = message.messageIntegrity || message.messageIntegritySha256;
      if (signed ? !verifyStunIntegrity(message, tx.key) : !(error && UNSIGNED_ERRORS.has(error.code))) {
        this.stats.badIntegrity++;
        return;
      }
    }
    this.stats.responses++;
    if (message.class === "error") {
      const code = error?.code ?? 0;
      const reason = error?.reason ?? "";
      tx.reject(new StunError(`STUN error response ${code} ${reason}`.trim(), { code, reason, response: message }));
      return;
    }
    tx.resolve({ message, from, rttMs });
  }
}

/** Options of {@linkcode stunBindingOverTcp}. */
export interface StunTcpOptions {
  /** Cancels the transaction. */
  signal?: AbortSignal;
  /** Gives up after this many ms (default 39 500, RFC 8489 section 6.2.2). */
  timeoutMs?: number;
  /** Short-term credentials. */
  credentials?: StunShortTermCredentials;
  /** Appends FINGERPRINT. */
  fingerprint?: boolean;
  /** SOFTWARE to add. */
  software?: string;
}

/**
 * A Binding transaction over a fresh TCP connection: one request, one
 * response framed by the STUN header's length (RFC 8489 section 6.2.2).
 *
 * @param server The STUN server's TCP address.
 * @param options Signal, timeout, credentials, fingerprint.
 * @returns What the Binding learnt; `from` is `server`.
 * @throws {StunError} on an error response, a malformed or missing response, a refused connection or a timeout.
 */
export async function stunBindingOverTcp(server: UdpAddr, options: StunTcpOptions = {}): Promise<StunBindingResult> {
  const request = bindingRequest(options);
  if (options.software !== undefined) addStunAttribute(request, SOFTWARE, options.software);
  const key = options.credentials ? shortTermKey(options.credentials.password) : undefined;
  const bytes = encodeStunMessage(request, { integrity: key && { key }, fingerprint: options.fingerprint });
  const timeout = AbortSignal.timeout(options.timeoutMs ?? STUN_TCP_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  signal.throwIfAborted();
  const started = performance.now();
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ transport: "tcp", hostname: server.hostname, port: server.port });
  } catch (error) {
    throw new StunError(`STUN over TCP: cannot connect to ${server.hostname}:${server.port}: ${describe(error)}`, {
      cause: error,
    });
  }
  const onAbort = () => {
    try {
      conn.close();
    } catch { /* closed */ }
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await conn.write(bytes);
    let buffer = new Uint8Array(0);
    let size: number | null = null;
    while (size === null || buffer.length < size) {
      const chunk = new Uint8Array(4096);
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw new StunError(`STUN over TCP: read failed: ${describe(error)}`, { cause: error });
      }
      if (n === null) {
        if (signal.aborted) throw signal.reason;
        throw new StunError("STUN over TCP: connection closed before a full response");
      }
      const next = new Uint8Array(buffer.length + n);
      next.set(buffer);
      next.set(chunk.subarray(0, n), buffer.length);
      buffer = next;
      size ??= stunMessageSize(buffer);
    }
    const rttMs = performance.now() - started;
    const message = decodeStunMessage(buffer.subarray(0, size));
    if (transactionKey(message.transactionId) !== transactionKey(request.transactionId)) {
      throw new StunError("STUN over TCP: the response's transaction ID is not the request's");
    }
    if (message.fingerprint && !verifyStunFingerprint(message)) throw new StunError("STUN over TCP: wrong FINGERPRINT");
    const error = message.class === "error" ? getStunAttribute(message, ERROR_CODE) : undefined;
    if (key && (message.messageIntegrity || message.messageIntegritySha256 || !error)) {
      if (!verifyStunIntegrity(message, key)) throw new StunError("STUN over TCP: response integrity does not verify");
    }
    if (message.class === "error") {
      throw new StunError(`STUN error response ${error?.code ?? 0} ${error?.reason ?? ""}`.trim(), {
        code: error?.code ?? 0,
        reason: error?.reason ?? "",
        response: message,
      });
    }
    if (message.class !== "success") throw new StunError(`STUN over TCP: got a ${message.class}, expected a response`);
    return { ...bindingResult(message), from: server, rttMs };
  } finally {
    signal.removeEventListener("abort", onAbort);
    onAbort();
  }
}

function bindingRequest(options: StunBindingOptions | StunTcpOptions): StunMessage {
  const request = createStunMessage(STUN_METHOD_BINDING, "request");
  if ("changeIp" in options || "changePort" in options) {
    const { changeIp = false, changePort = false } = options as StunBindingOptions;
    if (changeIp || changePort) addStunAttribute(request, CHANGE_REQUEST, { changeIp, changePort });
  }
  if (options.credentials) addStunAttribute(request, USERNAME, options.credentials.username);
  return request;
}

function bindingResult(message: DecodedStunMessage): Omit<StunBindingResult, "from" | "rttMs"> {
  const mapped = getStunAttribute(message, XOR_MAPPED_ADDRESS) ?? getStunAttribute(message, MAPPED_ADDRESS);
  if (!mapped) throw new StunError("Binding response has no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS");
  const result: Omit<StunBindingResult, "from" | "rttMs"> = { mapped };
  const other = getStunAttribute(message, OTHER_ADDRESS) ?? getStunAttribute(message, CHANGED_ADDRESS);
  if (other) result.otherAddress = other;
  const origin = getStunAttribute(message, RESPONSE_ORIGIN) ?? getStunAttribute(message, SOURCE_ADDRESS);
  if (origin) result.responseOrigin = origin;
  return result;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
