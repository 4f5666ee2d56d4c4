/**
 * NZ-DHT-01 transactions on a {@linkcode PacketSocket} (spec section 4 and 6):
 * requests with random transaction IDs and timeouts, responses matched by
 * transaction ID and source address, signed responses verified, the sender's
 * ID checked against the one expected, tokens bound to a requester's address
 * under a rotating secret, and per-IP and global rate limits on requests.
 * Whatever arrives that is malformed, unsolicited or over a limit is dropped
 * and counted; nothing thrown by a datagram escapes the handler.
 *
 * @module
 */

import { crypto, randomBytes, sha256 } from "../../crypto/mod.ts";
import { createKeyedHmac, type KeyedHmac } from "../../crypto/keyed_hmac.ts";
import { formatUdpAddr, type PacketSocket, type UdpAddr, udpAddrKey } from "../../../transport/udp.ts";
import type { RecordSigner } from "../record.ts";
import { sameId } from "./contact.ts";
import {
  decodeMessage,
  type DhtMessage,
  encodeMessage,
  FLAG_READ_ONLY,
  FLAG_SIGNED,
  FLAG_WANT_SIGNATURE,
  ipBytes,
  isDhtDatagram,
  type MessageHeader,
  signedMessage,
  TOKEN_SIZE,
  TXID_OFFSET,
  TXID_SIZE,
} from "./message.ts";

/** How often the token secret rotates; a token stays valid for one more period (section 6). */
export const TOKEN_ROTATION_MS = 5 * 60_000;
/** Default time to wait for a response. */
export const DEFAULT_RPC_TIMEOUT_MS = 1_000;
/** Default sustained requests per second accepted from one IP address. */
export const DEFAULT_PER_IP_RATE = 100;
/** Default burst of requests accepted from one IP address. */
export const DEFAULT_PER_IP_BURST = 200;
/** Default requests per second accepted from everyone together. */
export const DEFAULT_GLOBAL_RATE = 5_000;
/** How many source IPs the rate limiter tracks (the least recently used is forgotten). */
export const RATE_LIMIT_TRACKED_IPS = 4_096;

/** A request's body: a request message without its header. */
export type RequestBody =
  | { type: "ping" }
  | { type: "find_node"; target: Uint8Array }
  | { type: "find_value"; key: Uint8Array; offset: number }
  | { type: "store"; token: Uint8Array; key: Uint8Array; record: Uint8Array };

type Body<T> = T extends MessageHeader ? Omit<T, keyof MessageHeader> : never;
/** A response's body: a response message without its header. */
export type ResponseBody = Body<Extract<DhtMessage, { type: "pong" | "nodes" | "values" | "stored" | "error" }>>;

/** A request as the handler sees it. */
export interface IncomingRequest {
  /** The decoded request. */
  message: Extract<DhtMessage, { type: RequestBody["type"] }>;
  /** Where it came from. */
  from: UdpAddr;
  /** The requester's node ID (SHA-256 of the header's public key). */
  id: Uint8Array;
}

/** Answers a request synchronously: the response body, or `null` to send nothing. */
export type RequestHandler = (request: IncomingRequest) => ResponseBody | null;

/** The outcome of a request. */
export type RpcReply =
  | {
    ok: true;
    /** The response. */
    message: DhtMessage;
    /** The responder's node ID. */
    id: Uint8Array;
    /** Whether the response carried a signature that verified. */
    signed: boolean;
  }
  | { ok: false; reason: "timeout" | "malformed" | "mismatch" | "bad-signature" | "send-failed" | "closed" };

/** Options of one request. */
export interface RequestOptions {
  /** Ask for a signed response (and refuse one without a valid signature). */
  sign?: boolean;
  /** The node ID the responder must have; a response from another key fails with `mismatch`. */
  expectedId?: Uint8Array;
  /** Overrides the default timeout. */
  timeoutMs?: number;
}

/** Counters of an {@linkcode Rpc}. */
export interface RpcStats {
  /** Requests sent. */
  sent: number;
  /** Requests received and answered or handled. */
  received: number;
  /** Responses matched to a request. */
  responses: number;
  /** Requests that got no response in time. */
  timeouts: number;
  /** Requests sent a second time (no response halfway through the timeout). */
  retransmits: number;
  /** Datagrams dropped, by reason. */
  dropped: {
    /** Requests over the per-IP or global rate limit. */
    rate: number;
    /** Datagrams that did not decode (or a response of the wrong type). */
    malformed: number;
    /** Responses no request waits for (or from another address). */
    unsolicited: number;
    /** Signed responses whose signature did not verify, or from an unexpected key. */
    badSignature: number;
  };
}

/** Options of an {@linkcode Rpc}. */
export interface RpcOptions {
  /** The socket; the RPC layer registers one route on it (first bytes 0x90-0x9F). */
  socket: PacketSocket;
  /** Signs responses that ask for it. */
  signer: RecordSigner;
  /** Answers requests. */
  handler: RequestHandler;
  /** Sets the read-only flag on every request. */
  readOnly?: boolean;
  /** Default response timeout; default 1 s. */
  timeoutMs?: number;
  /** Requests per second and burst from one IP, and requests per second overall. */
  rateLimit?: { perIp?: number; burst?: number; global?: number };
  /** The clock, in ms. */
  now?: () => number;
  /** Log lines. */
  log?: (line: string) => void;
}

interface Pending {
  txid: Uint8Array;
  addr: string;
  type: DhtMessage["type"];
  sign: boolean;
  expectedId?: Uint8Array;
  timer: ReturnType<typeof setTimeout>;
  resolve: (reply: RpcReply) => void;
}

const RESPONSE_OF: Record<string, DhtMessage["type"]> = {
  ping: "pong",
  find_node: "nodes",
  find_value: "values",
  store: "stored",
};

/** A token bucket per source IP (least recently used forgotten beyond a bound) and one for everyone. */
export class RateLimiter {
  #perIp: number;
  #burst: number;
  #global: number;
  #ips = new Map<string, { tokens: number; at: number }>();
  #all: { tokens: number; at: number };

  /** `perIp` and `global` are per second; `burst` the most one IP may send at once. */
  constructor(perIp: number, burst: number, global: number, now: number) {
    this.#perIp = perIp;
    this.#burst = burst;
    this.#global = global;
    this.#all = { tokens: global, at: now };
  }

  /** Takes one token for `ip`; false when its bucket or the global one is empty. */
  allow(ip: string, now: number): boolean {
    let bucket = this.#ips.get(ip);
    if (bucket) {
      this.#ips.delete(ip);
    } else {
      bucket = { tokens: this.#burst, at: now };
      if (this.#ips.size >= RATE_LIMIT_TRACKED_IPS) this.#ips.delete(this.#ips.keys().next().value!);
    }
    this.#ips.set(ip, bucket);
    refill(bucket, this.#perIp, this.#burst, now);
    refill(this.#all, this.#global, this.#global, now);
    if (bucket.tokens < 1 || this.#all.tokens < 1) return false;
    bucket.tokens--;
    this.#all.tokens--;
    return true;
  }
}

function refill(bucket: { tokens: number; at: number }, rate: number, cap: number, now: number): void {
  if (now > bucket.at) {
    bucket.tokens = Math.min(cap, bucket.tokens + (now - bucket.at) * rate / 1000);
    bucket.at = now;
  }
}

/**
 * Tokens (section 6): `HMAC-SHA-256(secret, IP bytes || port u16be)` cut to
 * 8 bytes, under a secret that rotates every 5 minutes; a token of the
 * current or the previous secret is valid.
 */
export class TokenMinter {
  #current: KeyedHmac;
  #previous: KeyedHmac;
  #rotated: number;

  /** Starts with a fresh secret at `now` (ms). */
  constructor(now: number, secret: Uint8Array = randomBytes(32)) {
    this.#current = createKeyedHmac(secret);
    this.#previous = createKeyedHmac(randomBytes(32));
    this.#rotated = now;
  }

  /** The token for a requester at `addr`. */
  mint(addr: UdpAddr, now: number): Uint8Array {
    this.#rotate(now);
    return tokenOf(this.#current, addr);
  }

  /** Whether `token` was minted for `addr` under the current or previous secret. */
  check(addr: UdpAddr, token: Uint8Array, now: number): boolean {
    this.#rotate(now);
    if (token.length !== TOKEN_SIZE) return false;
    return equal(tokenOf(this.#current, addr), token) || equal(tokenOf(this.#previous, addr), token);
  }

  #rotate(now: number): void {
    if (now - this.#rotated < TOKEN_ROTATION_MS) return;
    this.#previous.destroy();
    // After a long pause both secrets are stale: the previous one is then replaced too.
    this.#previous = now - this.#rotated >= 2 * TOKEN_ROTATION_MS ? createKeyedHmac(randomBytes(32)) : this.#current;
    this.#current = createKeyedHmac(randomBytes(32));
    this.#rotated = now;
  }
}

/** The token bytes of `addr` under one secret: the first 8 bytes of the HMAC of IP bytes || port. */
export function tokenOf(mac: KeyedHmac, addr: UdpAddr): Uint8Array {
  const ip = ipBytes(addr.hostname) ?? new Uint8Array(0);
  const input = new Uint8Array(ip.length + 2);
  input.set(ip);
  input[ip.length] = addr.port >>> 8;
  input[ip.length + 1] = addr.port & 0xff;
  return mac.digest(input).subarray(0, TOKEN_SIZE);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length && i < b.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

const REQUEST_NIBBLES = new Set([0x0, 0x2, 0x4, 0x6]);

/**
 * The RPC layer of one DHT node.
 *
 * @example
 * ```ts
 * import { Rpc } from "./rpc.ts";
 * import { Identity } from "../../identity/identity.ts";
 * import { UdpSocket } from "../../../transport/udp.ts";
 *
 * await using a = await UdpSocket.bind("udp://127.0.0.1:0");
 * await using b = await UdpSocket.bind("udp://127.0.0.1:0");
 * const pong = () => ({ type: "error" as const, code: 0, reason: "" });
 * const ra = new Rpc({ socket: a, signer: Identity.generate("a"), handler: pong });
 * const rb = new Rpc({ socket: b, signer: Identity.generate("b"), handler: (r) => ({ type: "pong", observed: r.from }) });
 * const reply = await ra.request(b.addr, { type: "ping" }, { sign: true });
 * if (!reply.ok || !reply.signed) throw new Error("Cannot ping");
 * ra.close();
 * rb.close();
 * ```
 */
export class Rpc {
  /** Our node ID. */
  readonly id: Uint8Array;
  /** Counters, live. */
  readonly stats: RpcStats = {
    sent: 0,
    received: 0,
    responses: 0,
    timeouts: 0,
    retransmits: 0,
    dropped: { rate: 0, malformed: 0, unsolicited: 0, badSignature: 0 },
  };
  readonly #socket: PacketSocket;
  readonly #signer: RecordSigner;
  readonly #handler: RequestHandler;
  readonly #readOnly: boolean;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #log: (line: string) => void;
  readonly #limiter: RateLimiter;
  readonly #tokens: TokenMinter;
  readonly #pending = new Map<number, Pending>();
  readonly #unroute: () => void;
  #closed = false;

  /** Registers the route on the socket; `close()` removes it. */
  constructor(options: RpcOptions) {
    this.#socket = options.socket;
    this.#signer = options.signer;
    this.#handler = options.handler;
    this.#readOnly = options.readOnly ?? false;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
    this.id = sha256(this.#signer.publicKey);
    const limit = options.rateLimit ?? {};
    this.#limiter = new RateLimiter(
      limit.perIp ?? DEFAULT_PER_IP_RATE,
      limit.burst ?? DEFAULT_PER_IP_BURST,
      limit.global ?? DEFAULT_GLOBAL_RATE,
      this.#now(),
    );
    this.#tokens = new TokenMinter(this.#now());
    this.#unroute = this.#socket.route(isDhtDatagram, (data, from) => this.#onDatagram(data, from));
  }

  /** The token to hand a requester at `addr` (in NODES and VALUES). */
  token(addr: UdpAddr): Uint8Array {
    return this.#tokens.mint(addr, this.#now());
  }

  /** Whether a STORE's token is valid for its source address. */
  checkToken(addr: UdpAddr, token: Uint8Array): boolean {
    return this.#tokens.check(addr, token, this.#now());
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Sends a request to `to` and waits for its response. Never rejects: the
   * reply says what went wrong.
   */
  request(to: UdpAddr, body: RequestBody, options: RequestOptions = {}): Promise<RpcReply> {
    if (this.#closed) return Promise.resolve({ ok: false, reason: "closed" });
    let txid: Uint8Array, key: number;
    do {
      txid = randomBytes(TXID_SIZE);
      key = txidKey(txid, 0);
    } while (this.#pending.has(key));
    const flags = (options.sign ? FLAG_WANT_SIGNATURE : 0) | (this.#readOnly ? FLAG_READ_ONLY : 0);
    const data = encodeMessage({ ...body, flags, txid, publicKey: this.#signer.publicKey } as DhtMessage);
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return new Promise<RpcReply>((resolve) => {
      const pending: Pending = {
        txid,
        addr: udpAddrKey(to),
        type: RESPONSE_OF[body.type],
        sign: options.sign ?? false,
        expectedId: options.expectedId,
        resolve,
        // Section 4: the same bytes are sent once more halfway through the timeout, so that one lost
        // datagram does not fail the request (requests are idempotent).
        timer: setTimeout(() => {
          if (this.#closed || !this.#pending.has(key)) return;
          this.stats.retransmits++;
          this.#socket.send(data, to).catch(() => {});
          pending.timer = setTimeout(() => {
            this.#pending.delete(key);
            this.stats.timeouts++;
            resolve({ ok: false, reason: "timeout" });
          }, timeoutMs - (timeoutMs >> 1));
        }, timeoutMs >> 1),
      };
      this.#pending.set(key, pending);
      this.stats.sent++;
      this.#socket.send(data, to).catch(() => this.#settle(key, { ok: false, reason: "send-failed" }));
    });
  }

  /** Removes the route and fails every request in flight with `closed`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unroute();
    for (const key of [...this.#pending.keys()]) this.#settle(key, { ok: false, reason: "closed" });
  }

  #settle(key: number, reply: RpcReply): void {
    const pending = this.#pending.get(key);
    if (!pending) return;
    this.#pending.delete(key);
    clearTimeout(pending.timer);
    pending.resolve(reply);
  }

  #onDatagram(data: Uint8Array, from: UdpAddr): void {
    if (this.#closed) return;
    if (data.length >= 1 && REQUEST_NIBBLES.has(data[0] & 0x0f)) {
      if (!this.#limiter.allow(from.hostname, this.#now())) {
        this.stats.dropped.rate++;
        return;
      }
      this.#onRequest(data, from);
    } else {
      this.#onResponse(data, from);
    }
  }

  #onRequest(data: Uint8Array, from: UdpAddr): void {
    let message: DhtMessage;
    try {
      message = decodeMessage(data).message;
    } catch {
      this.stats.dropped.malformed++;
      return;
    }
    this.stats.received++;
    let body: ResponseBody | null;
    try {
      body = this.#handler({ message: message as IncomingRequest["message"], from, id: sha256(message.publicKey) });
    } catch (error) {
      this.#log(`dht: the handler failed on a ${message.type} from ${formatUdpAddr(from)}: ${describe(error)}`);
      return;
    }
    if (body === null) return;
    const flags = message.flags & FLAG_WANT_SIGNATURE ? FLAG_SIGNED : 0;
    let out: Uint8Array;
    try {
      out = encodeMessage(
        { ...body, flags, txid: message.txid, publicKey: this.#signer.publicKey } as DhtMessage,
        (m) => this.#signer.sign(m),
      );
    } catch (error) {
      this.#log(`dht: cannot encode a ${body.type} for ${formatUdpAddr(from)}: ${describe(error)}`);
      return;
    }
    this.#socket.send(out, from).catch(() => {});
  }

  #onResponse(data: Uint8Array, from: UdpAddr): void {
    if (data.length < TXID_OFFSET + TXID_SIZE) {
      this.stats.dropped.malformed++;
      return;
    }
    const key = txidKey(data, TXID_OFFSET);
    const pending = this.#pending.get(key);
    if (!pending || pending.addr !== udpAddrKey(from) || !sameTxid(pending.txid, data)) {
      this.stats.dropped.unsolicited++;
      return;
    }
    let decoded;
    try {
      decoded = decodeMessage(data);
    } catch {
      this.stats.dropped.malformed++;
      this.#settle(key, { ok: false, reason: "malformed" });
      return;
    }
    const { message, signature, signed } = decoded;
    if (message.type !== pending.type && message.type !== "error") {
      this.stats.dropped.malformed++;
      this.#settle(key, { ok: false, reason: "malformed" });
      return;
    }
    const id = sha256(message.publicKey);
    if (pending.expectedId && !sameId(id, pending.expectedId)) {
      this.stats.dropped.badSignature++;
      this.#settle(key, { ok: false, reason: "mismatch" });
      return;
    }
    let verified = false;
    if (signature && signed) {
      verified = crypto.ed25519Verify(message.publicKey, signedMessage(signed), signature);
      if (!verified) {
        this.stats.dropped.badSignature++;
        this.#settle(key, { ok: false, reason: "bad-signature" });
        return;
      }
    }
    if (pending.sign && !verified) {
      this.stats.dropped.badSignature++;
      this.#settle(key, { ok: false, reason: "bad-signature" });
      return;
    }
    this.stats.responses++;
    this.#settle(key, { ok: true, message, id, signed: verified });
  }
}

/** A map key of a transaction ID: its first 6 bytes as a number (the other two are compared on a match). */
function txidKey(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 16 | bytes[at + 1] << 8 | bytes[at + 2]) >>> 0) * 2 ** 24 +
    ((bytes[at + 3] << 16 | bytes[at + 4] << 8 | bytes[at + 5]) >>> 0);
}

function sameTxid(txid: Uint8Array, data: Uint8Array): boolean {
  for (let i = 0; i < TXID_SIZE; i++) if (txid[i] !== data[TXID_OFFSET + i]) return false;
  return true;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
