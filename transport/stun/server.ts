/**
 * A STUN server answering Binding requests on the node's shared
 * {@linkcode UdpSocket} (RFC 8489), with RFC 5780 NAT behaviour discovery
 * when it is given alternate sockets.
 *
 * @module
 */

import { isStunDatagram, type UdpAddr, type UdpSocket } from "../udp.ts";
import {
  addStunAttribute,
  CHANGE_REQUEST,
  createStunMessage,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  ERROR_CODE,
  getStunAttribute,
  hasStunAttribute,
  OTHER_ADDRESS,
  PADDING,
  RESPONSE_ORIGIN,
  RESPONSE_PORT,
  shortTermKey,
  SOFTWARE,
  STUN_METHOD_BINDING,
  StunAttributeType,
  type StunMessage,
  UNKNOWN_ATTRIBUTES,
  unknownRequiredAttributes,
  USERNAME,
  verifyStunFingerprint,
  verifyStunIntegrity,
  XOR_MAPPED_ADDRESS,
} from "./message.ts";

/** A response is at most this many bytes larger than its request (the amplification bound). */
export const STUN_AMPLIFICATION_ALLOWANCE = 48;

/**
 * The sockets a server answers on. RFC 5780 needs two IP addresses A1, A2
 * and two ports P1, P2: `primary` is A1:P1, `alternatePort` A1:P2,
 * `alternateIp` A2:P1 and `alternateBoth` A2:P2. With only some of them, the
 * server honours the CHANGE-REQUEST flags it can and answers 420 to the
 * others. Bind them to specific addresses (not 0.0.0.0): their addresses are
 * what OTHER-ADDRESS and RESPONSE-ORIGIN carry.
 */
export interface StunServerSockets {
  /** A1:P1, the address clients are given. */
  primary: UdpSocket;
  /** A1:P2. */
  alternatePort?: UdpSocket;
  /** A2:P1. */
  alternateIp?: UdpSocket;
  /** A2:P2; OTHER-ADDRESS of a request to the primary. */
  alternateBoth?: UdpSocket;
}

/** The per-source token bucket (RFC 8489 section 16.1.2 leaves the policy to the server). */
export interface StunRateLimit {
  /** Requests refilled per second, per source IP address (default 20). */
  perSecond?: number;
  /** Bucket size: requests a source may send at once (default 40). */
  burst?: number;
  /** Sources tracked at most; the least recently seen is forgotten first (default 4096). */
  maxSources?: number;
}

/** Options of {@linkcode StunServer}. */
export interface StunServerOptions {
  /** SOFTWARE to send (none by default: it only tells attackers the version). */
  software?: string;
  /**
   * Short-term credentials (RFC 8489 section 9.1): the password of a
   * username, or `undefined` for an unknown one. When set, every request must
   * carry USERNAME and MESSAGE-INTEGRITY(-SHA256), and responses are signed.
   */
  credentials?: (username: string) => string | undefined;
  /**
   * Honour RFC 5780 RESPONSE-PORT (answer to another port of the source IP).
   * Off by default: the request is answered 420 (Unknown Attribute).
   */
  allowResponsePort?: boolean;
  /** Rate limit per source IP. */
  rateLimit?: StunRateLimit;
  /** The clock, in ms (default `performance.now`), for the rate limit. */
  now?: () => number;
}

/** Counters of a {@linkcode StunServer}. */
export interface StunServerStats {
  /** STUN requests and indications received. */
  received: number;
  /** Success responses sent. */
  answered: number;
  /** Error responses sent. */
  errors: number;
  /** Indications received (never answered). */
  indications: number;
  /** Datagrams that did not decode, or had a wrong FINGERPRINT (no answer). */
  malformed: number;
  /** Datagrams dropped by the rate limit (no answer). */
  rateLimited: number;
  /** Responses not sent because even without optional attributes they broke the amplification bound. */
  suppressed: number;
  /** Responses that could not be sent. */
  sendErrors: number;
}

type Role = "primary" | "alternatePort" | "alternateIp" | "alternateBoth";
/** [other IP?, other port?] of each role. */
const GRID: Record<Role, [number, number]> = {
  primary: [0, 0],
  alternatePort: [0, 1],
  alternateIp: [1, 0],
  alternateBoth: [1, 1],
};

function roleAt(ip: number, port: number): Role {
  return (Object.keys(GRID) as Role[]).find((r) => GRID[r][0] === ip && GRID[r][1] === port)!;
}

/**
 * Whether a datagram is for a STUN server: a STUN request of any method, or a
 * Binding indication. Responses are the client's; other indications (TURN's
 * Data indication) are left for the routes of whoever uses that method.
 */
export function isStunServerDatagram(data: Uint8Array): boolean {
  if (!isStunDatagram(data)) return false;
  const type = data[0] << 8 | data[1];
  if (type & 0x0100) return false; // C1 set: a success or error response
  // C0 set: an indication; only Binding's (the method bits, class bits masked out, equal 1).
  return (type & 0x0010) === 0 || (type & 0x3eef) === STUN_METHOD_BINDING;
}

/**
 * Answers STUN Binding requests on one or more sockets.
 *
 * - Every success response carries XOR-MAPPED-ADDRESS; with alternate sockets
 *   also RESPONSE-ORIGIN and OTHER-ADDRESS (RFC 5780 section 6). SOFTWARE only
 *   when configured; FINGERPRINT when the request carried one;
 *   MESSAGE-INTEGRITY(-SHA256) under short-term credentials, the kind the
 *   request used.
 * - CHANGE-REQUEST is honoured by answering from the alternate socket; a
 *   change it has no socket for, a comprehension-required attribute it does
 *   not know (RESPONSE-PORT unless enabled) get 420 with UNKNOWN-ATTRIBUTES.
 *   A request it can parse but not accept (another method, PADDING with
 *   RESPONSE-PORT, missing credentials) gets 400; wrong credentials 401.
 *   Garbage, indications and datagrams with a wrong FINGERPRINT get nothing.
 * - **Amplification bound**: a response is at most
 *   `max(request size, 20) + 48` bytes. When it would be larger, SOFTWARE,
 *   PADDING, RESPONSE-ORIGIN and OTHER-ADDRESS are left out in that order;
 *   if it is still too large it is not sent. So a spoofed source can never
 *   be sent more than 48 bytes beyond what the spoofer sent.
 * - **Rate limit**: a token bucket per source IP address (default 20 per
 *   second, burst 40), in a table of at most 4096 sources (the least recently
 *   seen is forgotten first). Over the limit, requests are dropped silently.
 *
 * ```ts
 * import { discoverNatBehavior, StunClient, StunServer, UdpSocket } from "../mod.ts";
 * import { equal } from "node:assert/strict";
 *
 * // RFC 5780: two addresses (127.0.0.1, 127.0.0.2) and two ports.
 * await using primary = await UdpSocket.bind("127.0.0.1:0");
 * await using alternatePort = await UdpSocket.bind("127.0.0.1:0");
 * await using alternateIp = await UdpSocket.bind(`127.0.0.2:${primary.addr.port}`);
 * await using alternateBoth = await UdpSocket.bind(`127.0.0.2:${alternatePort.addr.port}`);
 * using _server = new StunServer({ primary, alternatePort, alternateIp, alternateBoth });
 * await using socket = await UdpSocket.bind("127.0.0.1:0");
 * using client = new StunClient(socket);
 * const found = await discoverNatBehavior(client, primary.addr);
 * equal(found.natType, "open");
 * ```
 */
export class StunServer implements Disposable {
  /** Counters, live. */
  readonly stats: StunServerStats = {
    received: 0,
    answered: 0,
    errors: 0,
    indications: 0,
    malformed: 0,
    rateLimited: 0,
    suppressed: 0,
    sendErrors: 0,
  };
  #sockets: StunServerSockets;
  #options: StunServerOptions;
  #unroutes: (() => void)[] = [];
  #buckets = new Map<string, { tokens: number; at: number }>();
  #perSecond: number;
  #burst: number;
  #maxSources: number;
  #now: () => number;

  /**
   * Registers the server's route (STUN requests and indications) on each socket.
   *
   * @param sockets One socket, or the RFC 5780 set.
   * @param options Software, credentials, RESPONSE-PORT, rate limit.
   */
  constructor(sockets: UdpSocket | StunServerSockets, options: StunServerOptions = {}) {
    this.#sockets = "primary" in sockets ? sockets : { primary: sockets };
    this.#options = options;
    this.#perSecond = options.rateLimit?.perSecond ?? 20;
    this.#burst = options.rateLimit?.burst ?? 40;
    this.#maxSources = options.rateLimit?.maxSources ?? 4096;
    if (!(this.#perSecond > 0) || !(this.#burst >= 1) || !(this.#maxSources >= 1)) {
      throw new RangeError("rateLimit: perSecond, burst and maxSources must be positive");
    }
    this.#now = options.now ?? (() => performance.now());
    for (const role of Object.keys(GRID) as Role[]) {
      const socket = this.#sockets[role];
      if (!socket) continue;
      this.#unroutes.push(socket.route(isStunServerDatagram, (data, from) => this.#handle(role, data, from)));
    }
  }

  /** Whether the server has an alternate socket (RFC 5780 mode). */
  get rfc5780(): boolean {
    return Boolean(this.#sockets.alternatePort || this.#sockets.alternateIp || this.#sockets.alternateBoth);
  }

  /** Source addresses currently in the rate-limit table. */
  get trackedSources(): number {
    return this.#buckets.size;
  }

  /** Removes the routes (the sockets stay open: they are the caller's). */
  close(): void {
    for (const unroute of this.#unroutes.splice(0)) unroute();
  }

  /** Same as {@linkcode StunServer.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #allow(source: string): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(source);
    if (bucket) {
      this.#buckets.delete(source); // re-inserted below: the Map's order is least recently seen first
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perSecond / 1000);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= this.#maxSources) this.#buckets.delete(this.#buckets.keys().next().value!);
      bucket = { tokens: this.#burst, at: now };
    }
    this.#buckets.set(source, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #handle(role: Role, data: Uint8Array, from: UdpAddr): void {
    this.stats.received++;
    if (!this.#allow(from.hostname)) {
      this.stats.rateLimited++;
      return;
    }
    let request: DecodedStunMessage;
    try {
      request = decodeStunMessage(data);
    } catch {
      this.stats.malformed++;
      return;
    }
    if (request.fingerprint && !verifyStunFingerprint(request)) {
      this.stats.malformed++;
      return;
    }
    if (request.class === "indication") {
      this.stats.indications++;
      return;
    }
    const fingerprint = request.fingerprint !== undefined;
    const socket = this.#sockets[role]!;
    const reply = (message: StunMessage, via = socket, to = from, key?: Uint8Array) =>
      this.#send(request, message, via, to, { fingerprint, key, sha256: !!request.messageIntegritySha256 });
    const fail = (code: number, reason: string, unknown?: number[]) => {
      const response = createStunMessage(request.method, "error", { transactionId: request.transactionId });
      addStunAttribute(response, ERROR_CODE, { code, reason });
      if (unknown) addStunAttribute(response, UNKNOWN_ATTRIBUTES, unknown);
      if (reply(response)) this.stats.errors++;
    };

    if (request.method !== STUN_METHOD_BINDING) return fail(400, "Bad Request: unsupported method");
    const known = new Set<number>([StunAttributeType.USERNAME, StunAttributeType.PADDING]);
    if (this.rfc5780) known.add(StunAttributeType.CHANGE_REQUEST);
    if (this.#options.allowResponsePort) known.add(StunAttributeType.RESPONSE_PORT);
    const unknown = unknownRequiredAttributes(request, known);
    if (unknown.length > 0) return fail(420, "Unknown Attribute", unknown);

    // RFC 5780 section 6.1: CHANGE-REQUEST picks the socket to answer from.
    const change = getStunAttribute(request, CHANGE_REQUEST) ?? { changeIp: false, changePort: false };
    const [ip, port] = GRID[role];
    const via = this.#sockets[roleAt(change.changeIp ? 1 - ip : ip, change.changePort ? 1 - port : port)];
    if (!via) return fail(420, "Unknown Attribute", [StunAttributeType.CHANGE_REQUEST]);

    // RFC 5780 section 7.6: PADDING and RESPONSE-PORT together are refused.
    const responsePort = getStunAttribute(request, RESPONSE_PORT);
    const padding = getStunAttribute(request, PADDING);
    if (responsePort !== undefined && padding !== undefined) {
      return fail(400, "Bad Request: PADDING with RESPONSE-PORT");
    }

    // RFC 8489 section 9.1.3: short-term credentials.
    let key: Uint8Array | undefined;
    if (this.#options.credentials) {
      const username = getStunAttribute(request, USERNAME);
      if (username === undefined || !(request.messageIntegrity || request.messageIntegritySha256)) {
        return fail(400, "Bad Request: credentials required");
      }
      const password = this.#options.credentials(username);
      if (password === undefined) return fail(401, "Unauthenticated");
      key = shortTermKey(password);
      if (!verifyStunIntegrity(request, key)) return fail(401, "Unauthenticated");
    }

    const response = createStunMessage(STUN_METHOD_BINDING, "success", { transactionId: request.transactionId });
    addStunAttribute(response, XOR_MAPPED_ADDRESS, from);
    const optional: number[] = [];
    if (this.rfc5780) {
      addStunAttribute(response, RESPONSE_ORIGIN, via.addr);
      const [vip, vport] = GRID[roleAt(change.changeIp ? 1 - ip : ip, change.changePort ? 1 - port : port)];
      const other = this.#sockets[roleAt(1 - vip, 1 - vport)] ?? this.#sockets[roleAt(vip, 1 - vport)] ??
        this.#sockets[roleAt(1 - vip, vport)];
      if (other) addStunAttribute(response, OTHER_ADDRESS, other.addr);
    }
    if (padding !== undefined) addStunAttribute(response, PADDING, new Uint8Array(padding.length));
    if (this.#options.software !== undefined) addStunAttribute(response, SOFTWARE, this.#options.software);
    optional.push(SOFTWARE.type, PADDING.type, RESPONSE_ORIGIN.type, OTHER_ADDRESS.type);
    const to = responsePort === undefined ? from : { hostname: from.hostname, port: responsePort };
    if (
      this.#send(request, response, via, to, { fingerprint, key, sha256: !!request.messageIntegritySha256 }, optional)
    ) {
      this.stats.answered++;
    }
  }

  /** Encodes within the amplification bound (dropping `optional` attribute types in order) and sends. */
  #send(
    request: DecodedStunMessage,
    response: StunMessage,
    via: UdpSocket,
    to: UdpAddr,
    check: { fingerprint: boolean; key?: Uint8Array; sha256: boolean },
    optional: number[] = [],
  ): boolean {
    const limit = Math.max(request.bytes.length, 20) + STUN_AMPLIFICATION_ALLOWANCE;
    const integrity = check.key
      ? { key: check.key, algorithm: check.sha256 ? "sha256" as const : "sha1" as const }
      : undefined;
    let bytes = encodeStunMessage(response, { fingerprint: check.fingerprint, integrity });
    for (const type of optional) {
      if (bytes.length <= limit) break;
      if (!hasStunAttribute(response, type)) continue;
      response.attributes = response.attributes.filter((a) => a.type !== type);
      bytes = encodeStunMessage(response, { fingerprint: check.fingerprint, integrity });
    }
    if (bytes.length > limit) {
      this.stats.suppressed++;
      return false;
    }
    via.send(bytes, to).catch(() => this.stats.sendErrors++);
    return true;
  }
}
