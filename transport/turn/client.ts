/**
 * A TURN client (RFC 8656): an allocation on a TURN server, over UDP (on the
 * node's shared socket or one of its own) or over TCP, that behaves like a UDP
 * socket whose address is the relayed one. It implements
 * {@linkcode PacketSocket}, so the secure channel's datagram endpoint runs over
 * a relay unchanged. The profile is in `spec/turn.md`.
 *
 * ```ts ignore
 * import { TurnClient } from "./client.ts";
 *
 * const allocation = await TurnClient.allocate({
 *   server: { hostname: "203.0.113.10", port: 3478 },
 *   transport: "udp",
 *   username: "test",
 *   password: "test123",
 * });
 * allocation.route((data) => data[0] >= 0x80, (data, from) => console.log(from, data));
 * await allocation.send(new Uint8Array([0x81, 1, 2, 3]), { hostname: "203.0.113.20", port: 7000 });
 * await allocation.close();
 * ```
 *
 * The STUN transactions (RFC 8489 section 6.2.1 retransmission over UDP, one
 * 39.5 s timeout over TCP) are run here rather than by the STUN client, so an
 * allocation's requests, its data indications and ChannelData share one
 * route that claims only the server's traffic.
 *
 * @module
 */

import { TransportError } from "../errors.ts";
import { canonicalIp, parseIp } from "../ip.ts";
import { StunError } from "../stun/errors.ts";
import {
  addStunAttribute,
  createStunMessage,
  type DecodedStunMessage,
  decodeStunMessage,
  encodeStunMessage,
  ERROR_CODE,
  getStunAttribute,
  longTermKey,
  NONCE,
  REALM,
  SOFTWARE,
  type StunAttributeCodec,
  type StunMessage,
  transactionKey,
  USERNAME,
  verifyStunIntegrity,
  XOR_MAPPED_ADDRESS,
} from "../stun/message.ts";
import {
  type DatagramHandler,
  type DatagramMatch,
  DatagramRoutes,
  formatUdpAddr,
  isStunDatagram,
  type PacketSocket,
  type UdpAddr,
  udpAddrKey,
  UdpSocket,
} from "../udp.ts";
import {
  CHANNEL_DATA_MAX_LENGTH,
  CHANNEL_NUMBER,
  DATA,
  decodeChannelData,
  encodeChannelData,
  isChannelData,
  isTurnMethod,
  LIFETIME,
  readDataIndication,
  REQUESTED_TRANSPORT,
  TURN_CHANNEL_MAX,
  TURN_CHANNEL_MIN,
  TURN_METHOD_ALLOCATE,
  TURN_METHOD_CHANNEL_BIND,
  TURN_METHOD_CREATE_PERMISSION,
  TURN_METHOD_DATA,
  TURN_METHOD_REFRESH,
  TURN_METHOD_SEND,
  TURN_TRANSPORT_UDP,
  type TurnPeerData,
  turnStreamMessageSize,
  XOR_PEER_ADDRESS,
  XOR_RELAYED_ADDRESS,
} from "./attributes.ts";
import { TurnError } from "./errors.ts";
import { STUN_RC, STUN_RM, STUN_RTO_MS, STUN_TCP_TIMEOUT_MS } from "../stun/client.ts";

// --- Spec constants -------------------------------------------------------------------------------

/** RFC 8489 section 6.2.1: initial retransmission timeout over UDP (TURN requests are STUN transactions). */
export const TURN_RTO_MS: number = STUN_RTO_MS;
/** RFC 8489 section 6.2.1: transmissions of a request, at most. */
export const TURN_RC: number = STUN_RC;
/** RFC 8489 section 6.2.1: the wait after the last transmission, in initial RTOs. */
export const TURN_RM: number = STUN_RM;
/** RFC 8489 section 6.2.2: transaction timeout over TCP. */
export const TURN_TCP_TIMEOUT_MS: number = STUN_TCP_TIMEOUT_MS;
/** The allocation of this process on each shared socket (one 5-tuple, one allocation). */
const liveOnSocket = new WeakMap<UdpSocket, TurnAllocation>();
/** Allocate attempts after 437 Allocation Mismatch, and the pause between them (see `_start`). */
const ALLOCATE_MISMATCH_TRIES = 4;
const ALLOCATE_MISMATCH_PAUSE_MS = 1_200;
/** RFC 8656 section 7.2: the default allocation lifetime, in seconds. */
export const TURN_DEFAULT_LIFETIME_S = 600;
/** RFC 8656 section 9: a permission lives 300 s; we refresh it after 4 minutes. */
export const TURN_PERMISSION_REFRESH_MS = 240_000;
/** RFC 8656 section 12: a channel binding lives 600 s; we refresh it after 9 minutes. */
export const TURN_CHANNEL_REFRESH_MS = 540_000;

// --- Tuning constants -----------------------------------------------------------------------------

/** Packets sent to a peer by Send indication before the client binds a channel to it. */
const DEFAULT_CHANNEL_BIND_AFTER = 3;
/** Retries of a request answered 438 Stale Nonce (RFC 8489 section 9.2.5), each with the new nonce. */
const MAX_STALE_NONCE_RETRIES = 3;
/** How long close() waits for its Refresh (LIFETIME 0) before it releases the socket anyway. */
const CLOSE_TIMEOUT_MS = 3_000;
/** After a failed automatic Refresh, the next attempt waits this long (while the allocation lives). */
const REFRESH_RETRY_MS = 10_000;
/** TCP connect timeout. */
const CONNECT_TIMEOUT_MS = 10_000;

/** The STUN retransmission timers (RFC 8489 section 6.2.1); shorter ones for tests. */
export interface TurnTimers {
  /** Initial RTO over UDP, ms (default 500); doubles after each transmission. */
  rtoMs?: number;
  /** Transmissions at most over UDP (default 7). */
  rc?: number;
  /** After the last transmission, wait `rm * rtoMs` (default 16). */
  rm?: number;
  /** Transaction timeout over TCP, ms (default 39500). */
  tcpTimeoutMs?: number;
}

/** Options of {@linkcode TurnClient.allocate}. */
export interface TurnAllocateOptions {
  /** The TURN server: an IP literal and port (3478 usually). */
  server: UdpAddr;
  /** How to reach the server: `"udp"` (default) or `"tcp"` (RFC 8656 section 11.5). The relay is UDP either way. */
  transport?: "udp" | "tcp";
  /** The long-term credential's username. */
  username: string;
  /** The long-term credential's password. */
  password: string;
  /** Over UDP, the node's shared socket; by default a fresh ephemeral one that the allocation owns and closes. */
  socket?: UdpSocket;
  /** The lifetime to ask for, in seconds (default 600; the server may grant another). */
  lifetime?: number;
  /** Aborts the allocation while it is made (a later abort does nothing: `close()` ends the allocation). */
  signal?: AbortSignal;
  /** SOFTWARE to add to every request. */
  software?: string;
  /** Retransmission timers (tests shorten them). */
  timers?: TurnTimers;
  /** Packets sent to a peer by Send indication before a channel is bound to it (default 3; `Infinity`: never). */
  channelBindAfter?: number;
}

/** Counters of a {@linkcode TurnAllocation}, live. */
export interface TurnAllocationStats {
  /** Requests made (Allocate, Refresh, CreatePermission, ChannelBind), not counting retransmissions. */
  requests: number;
  /** Retransmissions of requests over UDP. */
  retransmissions: number;
  /** Successful Refresh requests. */
  refreshes: number;
  /** Successful CreatePermission requests (first ones and refreshes). */
  permissions: number;
  /** Successful ChannelBind requests (first ones and refreshes). */
  channelBinds: number;
  /** Send indications sent. */
  sendIndications: number;
  /** ChannelData messages sent. */
  channelDataSent: number;
  /** Data indications received. */
  dataIndications: number;
  /** ChannelData messages received. */
  channelDataReceived: number;
  /** Responses ignored: unknown transaction, wrong method, failed or missing integrity. */
  ignored: number;
  /** Messages from the server that did not decode (malformed STUN, ChannelData longer than its datagram). */
  malformed: number;
  /** Peer data dropped: on an unknown channel, or no route claimed it. */
  dropped: number;
}

/** Makes TURN allocations. */
export class TurnClient {
  /**
   * Allocates a relayed address (RFC 8656 section 7) with the long-term
   * credential mechanism: an Allocate without credentials draws 401 with REALM
   * and NONCE, the second carries USERNAME, REALM, NONCE and
   * MESSAGE-INTEGRITY (438 Stale Nonce: again with the new nonce).
   *
   * @param options The server, transport, credentials and limits.
   * @returns The allocation, refreshed automatically until `close()`.
   * @throws {TurnError} for an error response (code 401: the server refused the credentials), a timeout, or a response without a relayed address.
   * @throws {TransportError} when the server cannot be reached over TCP.
   * @throws {TypeError} for a server that is not an IP literal, or missing credentials.
   */
  static allocate(options: TurnAllocateOptions): Promise<TurnAllocation> {
    return openAllocation(options);
  }
}

/** What carries messages to and from the server: a UDP socket's route, or a TCP connection. */
interface ServerLink {
  readonly reliable: boolean;
  send(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

type Timer = ReturnType<typeof setTimeout>;

interface Pending {
  method: number;
  key: Uint8Array | null;
  resolve(message: DecodedStunMessage): void;
  reject(error: unknown): void;
}

interface Permission {
  ready: Promise<void>;
  used: boolean;
  timer?: Timer;
}

interface Channel {
  number: number;
  peer: UdpAddr;
  bound: boolean;
  used: boolean;
  timer?: Timer;
}

interface Credentials {
  username: string;
  password: string;
  realm: string;
  nonce: string;
  key: Uint8Array;
}

let createAllocation: (options: TurnAllocateOptions, server: UdpAddr) => TurnAllocation;

async function openAllocation(options: TurnAllocateOptions): Promise<TurnAllocation> {
  const { server, username, password } = options;
  if (typeof server?.hostname !== "string" || parseIp(server.hostname) === null) {
    throw new TypeError(`Cannot allocate: server.hostname must be an IP literal, got ${server?.hostname}`);
  }
  if (!Number.isInteger(server.port) || server.port < 1 || server.port > 0xffff) {
    throw new RangeError(`Cannot allocate: server.port is ${server.port}, expected 1-65535`);
  }
  if (typeof username !== "string" || username === "") throw new TypeError("Cannot allocate: username is required");
  if (typeof password !== "string") throw new TypeError("Cannot allocate: password is required");
  const lifetime = options.lifetime ?? TURN_DEFAULT_LIFETIME_S;
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > 0xffffffff) {
    throw new RangeError(`Cannot allocate: lifetime is ${lifetime}, expected a positive whole number of seconds`);
  }
  const transport = options.transport ?? "udp";
  if (transport !== "udp" && transport !== "tcp") {
    throw new TypeError(`Cannot allocate: transport is ${transport}, expected "udp" or "tcp"`);
  }
  options.signal?.throwIfAborted();
  const allocation = createAllocation(options, { hostname: canonicalIp(server.hostname), port: server.port });
  try {
    await allocation._start(transport, lifetime);
  } catch (error) {
    await allocation._release();
    throw error;
  }
  return allocation;
}

/**
 * An allocation on a TURN server: a UDP address on the server (`url`,
 * `relayedAddress`) through which the client sends to and hears from peers.
 * Sending to a peer creates its permission (and after a few packets binds a
 * channel); data from peers reaches the routes with the peer's address as
 * `from`. Refreshed automatically; `close()` deletes it on the server.
 */
export class TurnAllocation implements PacketSocket, AsyncDisposable {
  /** Counters, live. */
  readonly stats: TurnAllocationStats = {
    requests: 0,
    retransmissions: 0,
    refreshes: 0,
    permissions: 0,
    channelBinds: 0,
    sendIndications: 0,
    channelDataSent: 0,
    dataIndications: 0,
    channelDataReceived: 0,
    ignored: 0,
    malformed: 0,
    dropped: 0,
  };
  /** The server, as given (IP canonical). */
  readonly server: UdpAddr;
  #options: TurnAllocateOptions;
  #timers: Required<TurnTimers>;
  #link: ServerLink | null = null;
  #credentials: Credentials | null = null;
  #pending = new Map<string, Pending>();
  #routes = new DatagramRoutes("turn");
  #permissions = new Map<string, Permission>();
  #channels = new Map<string, Channel>();
  #channelsByNumber = new Map<number, Channel>();
  #sendCounts = new Map<string, number>();
  #refusedChannels = new Set<string>();
  #nextChannel = TURN_CHANNEL_MIN;
  #relayed: UdpAddr | null = null;
  #mapped: UdpAddr | null = null;
  #lifetime = 0;
  #requestedLifetime = TURN_DEFAULT_LIFETIME_S;
  #expiresAt = 0;
  #refreshTimer: Timer | undefined;
  #closing: Promise<void> | null = null;
  #closed = false;

  static {
    createAllocation = (options, server) => new TurnAllocation(options, server);
  }

  private constructor(options: TurnAllocateOptions, server: UdpAddr) {
    this.#options = options;
    this.server = server;
    this.#timers = {
      rtoMs: options.timers?.rtoMs ?? TURN_RTO_MS,
      rc: options.timers?.rc ?? TURN_RC,
      rm: options.timers?.rm ?? TURN_RM,
      tcpTimeoutMs: options.timers?.tcpTimeoutMs ?? TURN_TCP_TIMEOUT_MS,
    };
  }

  /** The relayed address as `udp://HOST:PORT`: where peers send to reach this client. */
  get url(): string {
    return formatUdpAddr(this.relayedAddress);
  }

  /** The relayed transport address (XOR-RELAYED-ADDRESS, RFC 8656 section 7.3). */
  get relayedAddress(): UdpAddr {
    return { ...this.#relayed! };
  }

  /** The client's address as the server saw it (XOR-MAPPED-ADDRESS of the Allocate response). */
  get mappedAddress(): UdpAddr {
    return { ...this.#mapped! };
  }

  /** The lifetime the server granted at the last Allocate or Refresh, in seconds. */
  get lifetimeSeconds(): number {
    return this.#lifetime;
  }

  /** Whether the allocation is closed (by `close()`, an expiry, or a broken TCP connection). */
  get closed(): boolean {
    return this.#closed || this.#closing !== null;
  }

  /** Peers with a channel bound, as `udp://HOST:PORT`. */
  get channels(): string[] {
    return [...this.#channels.values()].filter((c) => c.bound).map((c) => formatUdpAddr(c.peer));
  }

  /**
   * Routes data from peers whose `match` is true to `handler`, with the peer's
   * address as `from` (the earliest route that matches wins). Returns a
   * function that removes the route.
   */
  route(match: DatagramMatch, handler: DatagramHandler): () => void {
    return this.#routes.add(match, handler);
  }

  /**
   * Sends `data` to the peer `to` through the relay: creates the peer's
   * permission first if needed (RFC 8656 section 10), then a Send indication
   * (section 11.4), or ChannelData once a channel is bound (section 12.4).
   *
   * @throws {TransportError} when the allocation is closed or the server cannot be reached.
   * @throws {TurnError} when the server refuses the permission (403 for a peer it forbids).
   * @throws {RangeError} for data longer than 65535 bytes, or a peer that is not an IP literal and a port.
   */
  async send(data: Uint8Array, to: UdpAddr): Promise<void> {
    if (this.closed) throw new TransportError("Cannot send: the TURN allocation is closed");
    if (!(data instanceof Uint8Array)) throw new TypeError("Cannot send: data must be a Uint8Array");
    if (data.length > CHANNEL_DATA_MAX_LENGTH) {
      throw new RangeError(`Cannot send: data length is ${data.length}, expected <= ${CHANNEL_DATA_MAX_LENGTH}`);
    }
    const ip = parseIp(to.hostname);
    if (ip === null) throw new RangeError(`Cannot send: ${to.hostname} is not an IP address`);
    if (!Number.isInteger(to.port) || to.port < 1 || to.port > 0xffff) {
      throw new RangeError(`Cannot send: port is ${to.port}, expected 1-65535`);
    }
    const peer = { hostname: canonicalIp(to.hostname), port: to.port };
    await this.#permission(peer.hostname);
    if (this.closed) throw new TransportError("Cannot send: the TURN allocation is closed");
    const link = this.#link!;
    const key = udpAddrKey(peer);
    const channel = this.#channels.get(key);
    if (channel?.bound) {
      channel.used = true;
      this.stats.channelDataSent++;
      await link.send(encodeChannelData(channel.number, data, link.reliable));
      return;
    }
    const indication = createStunMessage(TURN_METHOD_SEND, "indication");
    addStunAttribute(indication, XOR_PEER_ADDRESS, peer);
    addStunAttribute(indication, DATA, data);
    this.stats.sendIndications++;
    // Counted before the send's await, so that concurrent sends start one ChannelBind, not one each.
    const count = (this.#sendCounts.get(key) ?? 0) + 1;
    this.#sendCounts.set(key, count);
    const after = this.#options.channelBindAfter ?? DEFAULT_CHANNEL_BIND_AFTER;
    if (count >= after && !channel && !this.#refusedChannels.has(key) && this.#nextChannel <= TURN_CHANNEL_MAX) {
      this.#bindChannel(peer);
    }
    await link.send(encodeStunMessage(indication));
  }

  /**
   * Refreshes the allocation now (RFC 8656 section 8) and schedules the next
   * automatic refresh; `lifetime` 0 deletes it (what `close()` does).
   *
   * @param lifetime Seconds to ask for (default: what `allocate()` asked for).
   * @param options `signal` aborts the wait for the answer.
   * @returns The lifetime the server granted, in seconds.
   * @throws {TurnError} for an error response (437: the server no longer knows the allocation) or a timeout.
   */
  async refresh(lifetime: number = this.#requestedLifetime, options: { signal?: AbortSignal } = {}): Promise<number> {
    if (this.closed) throw new TransportError("Cannot refresh: the TURN allocation is closed");
    const response = await this.#request(TURN_METHOD_REFRESH, (m) => addStunAttribute(m, LIFETIME, lifetime), options);
    this.stats.refreshes++;
    this.#granted(this.#read(response, LIFETIME) ?? lifetime);
    return this.#lifetime;
  }

  /**
   * Deletes the allocation on the server (Refresh with LIFETIME 0, waiting at
   * most 3 s), then releases the socket route, the socket or the TCP
   * connection it owns. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopTimers();
      if (!this.#closed && this.#relayed) {
        try {
          await this.#request(TURN_METHOD_REFRESH, (m) => addStunAttribute(m, LIFETIME, 0), {
            signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS),
          });
        } catch { /* deleted or not, the allocation expires on the server */ }
      }
      await this._release();
    })();
    return this.#closing;
  }

  /** Same as {@linkcode TurnAllocation.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal Connects to the server and makes the allocation. */
  async _start(transport: "udp" | "tcp", lifetime: number): Promise<void> {
    const signal = this.#options.signal;
    this.#link = transport === "tcp" ? await this.#connectTcp(signal) : this.#attachUdp();
    this.#requestedLifetime = lifetime;
    const allocate = () =>
      this.#request(TURN_METHOD_ALLOCATE, (m) => {
        addStunAttribute(m, REQUESTED_TRANSPORT, TURN_TRANSPORT_UDP);
        addStunAttribute(m, LIFETIME, lifetime);
      }, { signal, allocate: true });
    let response: DecodedStunMessage;
    for (let attempt = 1;; attempt++) {
      try {
        response = await allocate();
        break;
      } catch (error) {
        // 437 Allocation Mismatch (RFC 8656 section 7.2): the server still holds an allocation of this 5-tuple, one
        // a previous run of the node left (a restart on the same port within the old allocation's lifetime, or just
        // after it deleted it: coturn forgets a deleted allocation on its next one-second tick). A shared socket
        // cannot move to another port, so that allocation is deleted (a Refresh with LIFETIME 0 under the same
        // credentials, from the same 5-tuple) and the Allocate made again after a pause, a few times.
        // Only when no allocation of this process lives on the socket: then the mismatch is one left by another
        // process (a second allocation on a live one's 5-tuple is refused, as the server says).
        const shared = this.#options.socket;
        const mine = shared ? liveOnSocket.get(shared) : undefined;
        if (!(error instanceof TurnError && error.code === 437) || attempt >= ALLOCATE_MISMATCH_TRIES || mine) {
          throw error;
        }
        await this.#request(TURN_METHOD_REFRESH, (m) => addStunAttribute(m, LIFETIME, 0), { signal }).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, ALLOCATE_MISMATCH_PAUSE_MS));
        signal?.throwIfAborted();
      }
    }
    const relayed = this.#read(response, XOR_RELAYED_ADDRESS);
    const mapped = this.#read(response, XOR_MAPPED_ADDRESS);
    if (!relayed || !mapped) {
      throw new TurnError("Cannot allocate: the Allocate response lacks XOR-RELAYED-ADDRESS or XOR-MAPPED-ADDRESS");
    }
    this.#relayed = relayed;
    this.#mapped = mapped;
    const shared = this.#options.socket;
    if (shared) liveOnSocket.set(shared, this);
    this.#granted(this.#read(response, LIFETIME) ?? TURN_DEFAULT_LIFETIME_S);
  }

  /** @internal Stops everything and releases the link, without telling the server. */
  async _release(): Promise<void> {
    this.#closed = true;
    const shared = this.#options.socket;
    if (shared && liveOnSocket.get(shared) === this) liveOnSocket.delete(shared);
    this.#stopTimers();
    const error = new TransportError("The TURN allocation is closed");
    for (const pending of [...this.#pending.values()]) pending.reject(error);
    this.#pending.clear();
    const link = this.#link;
    this.#link = null;
    await link?.close();
  }

  // --- Transactions (RFC 8489 sections 6.2, 9.2) ---------------------------------------------------

  /** Makes a request with the long-term credentials, handling 401 (first Allocate) and 438 Stale Nonce. */
  async #request(
    method: number,
    fill: (message: StunMessage) => void,
    options: { signal?: AbortSignal; allocate?: boolean },
  ): Promise<DecodedStunMessage> {
    for (let attempt = 0;; attempt++) {
      const message = createStunMessage(method, "request");
      fill(message);
      const software = this.#options.software;
      if (software !== undefined) addStunAttribute(message, SOFTWARE, software);
      const credentials = this.#credentials;
      if (credentials) {
        addStunAttribute(message, USERNAME, credentials.username);
        addStunAttribute(message, REALM, credentials.realm);
        addStunAttribute(message, NONCE, credentials.nonce);
      }
      const bytes = encodeStunMessage(message, credentials ? { integrity: { key: credentials.key } } : {});
      const response = await this.#transact(method, message.transactionId, bytes, credentials?.key ?? null, options);
      if (response.class === "success") return response;
      const error = this.#read(response, ERROR_CODE) ?? { code: 0, reason: "no ERROR-CODE" };
      error.reason = error.reason.replace(/\0+$/, ""); // coturn ends its reasons with a NUL
      const realm = this.#read(response, REALM);
      const nonce = this.#read(response, NONCE);
      // RFC 8489 section 9.2.3: the first request draws 401 with the realm and a nonce.
      if (error.code === 401 && !credentials && options.allocate && realm !== undefined && nonce !== undefined) {
        const { username, password } = this.#options;
        this.#credentials = { username, password, realm, nonce, key: longTermKey({ username, realm, password }) };
        continue;
      }
      // RFC 8489 section 9.2.5: 438 Stale Nonce, retry with the new one.
      if (error.code === 438 && credentials && nonce !== undefined && attempt < MAX_STALE_NONCE_RETRIES) {
        credentials.nonce = nonce;
        if (realm !== undefined && realm !== credentials.realm) {
          credentials.realm = realm;
          credentials.key = longTermKey(credentials);
        }
        continue;
      }
      const what = error.code === 401 && credentials ? " (the server refused the username or password)" : "";
      throw new TurnError(`TURN ${methodName(method)} failed: ${error.code} ${error.reason}${what}`, {
        code: error.code,
        reason: error.reason,
      });
    }
  }

  /** One transaction: sends, retransmits over UDP (RFC 8489 section 6.2.1), resolves with the response. */
  #transact(
    method: number,
    transactionId: Uint8Array,
    bytes: Uint8Array,
    key: Uint8Array | null,
    options: { signal?: AbortSignal },
  ): Promise<DecodedStunMessage> {
    const link = this.#link;
    if (!link) return Promise.reject(new TransportError("The TURN allocation is closed"));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.stats.requests++;
    const id = transactionKey(transactionId);
    const { rtoMs, rc, rm, tcpTimeoutMs } = this.#timers;
    return new Promise((resolve, reject) => {
      let timer: Timer | undefined;
      let sends = 0;
      let rto = rtoMs;
      const cleanup = () => {
        clearTimeout(timer);
        this.#pending.delete(id);
        signal?.removeEventListener("abort", onAbort);
      };
      const fail = (error: unknown) => {
        cleanup();
        reject(error);
      };
      const onAbort = () => fail(signal!.reason);
      const timedOut = () =>
        fail(new TurnError(`TURN ${methodName(method)} timed out: no answer from ${formatUdpAddr(this.server)}`));
      const transmit = () => {
        if (sends++ > 0) this.stats.retransmissions++;
        link.send(bytes).catch((error) =>
          fail(new TransportError(`Cannot reach TURN server ${formatUdpAddr(this.server)}`, { cause: error }))
        );
        if (link.reliable) {
          timer = setTimeout(timedOut, tcpTimeoutMs);
        } else if (sends < rc) {
          timer = setTimeout(transmit, rto);
          rto *= 2;
        } else {
          timer = setTimeout(timedOut, rm * rtoMs);
        }
      };
      this.#pending.set(id, {
        method,
        key,
        resolve: (message) => {
          cleanup();
          resolve(message);
        },
        reject: fail,
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      transmit();
    });
  }

  // --- Receiving ----------------------------------------------------------------------------------

  /** One message from the server: STUN or ChannelData. */
  #receive(bytes: Uint8Array): void {
    if (isChannelData(bytes)) return this.#receiveChannelData(bytes);
    let message: DecodedStunMessage;
    try {
      message = decodeStunMessage(bytes);
    } catch {
      this.stats.malformed++;
      return;
    }
    if (message.class === "indication") {
      if (message.method === TURN_METHOD_DATA) return this.#receiveDataIndication(message);
      this.stats.ignored++;
      return;
    }
    const pending = this.#pending.get(transactionKey(message.transactionId));
    if (!pending || message.class === "request" || pending.method !== message.method) {
      this.stats.ignored++;
      return;
    }
    // RFC 8489 section 9.2.5: a response to an authenticated request must carry valid integrity.
    // Deliberate deviation: an error response without any is accepted too (coturn sends 437 and
    // 403 without it); it can only fail the request, never forge an address or a lifetime.
    // A response whose integrity is present and wrong is always ignored.
    if (pending.key) {
      const hasIntegrity = message.messageIntegrity !== undefined || message.messageIntegritySha256 !== undefined;
      const acceptable = hasIntegrity ? verifyStunIntegrity(message, pending.key) : message.class === "error";
      if (!acceptable) {
        this.stats.ignored++;
        return;
      }
    }
    pending.resolve(message);
  }

  /** A Data indication (RFC 8656 section 11.6): XOR-PEER-ADDRESS and DATA. */
  #receiveDataIndication(message: DecodedStunMessage): void {
    let indication: TurnPeerData;
    try {
      indication = readDataIndication(message);
    } catch {
      this.stats.malformed++;
      return;
    }
    this.stats.dataIndications++;
    this.#deliver(indication.data, indication.peer);
  }

  /** A ChannelData message (RFC 8656 section 12.6); one that runs past its datagram is dropped. */
  #receiveChannelData(bytes: Uint8Array): void {
    let decoded;
    try {
      decoded = decodeChannelData(bytes);
    } catch {
      this.stats.malformed++;
      return;
    }
    const channel = this.#channelsByNumber.get(decoded.channel);
    if (!channel) {
      this.stats.dropped++;
      return;
    }
    this.stats.channelDataReceived++;
    channel.used = true;
    this.#deliver(decoded.data.slice(), channel.peer);
  }

  #deliver(data: Uint8Array, from: UdpAddr): void {
    const permission = this.#permissions.get(from.hostname);
    if (permission) permission.used = true; // traffic either way keeps the permission refreshed
    if (!this.#routes.dispatch(data, { ...from })) this.stats.dropped++;
  }

  // --- Permissions and channels (RFC 8656 sections 9, 10, 12) --------------------------------------

  /** The permission for `ip`, created on first use; refreshed every 4 minutes while used. */
  #permission(ip: string): Promise<void> {
    let permission = this.#permissions.get(ip);
    if (!permission) {
      const entry: Permission = { ready: Promise.resolve(), used: true };
      entry.ready = this.#createPermission(ip).then(
        () => this.#schedulePermissionRefresh(ip, entry),
        (error) => {
          if (this.#permissions.get(ip) === entry) this.#permissions.delete(ip);
          throw error;
        },
      );
      this.#permissions.set(ip, entry);
      permission = entry;
    }
    permission.used = true;
    return permission.ready;
  }

  async #createPermission(ip: string): Promise<void> {
    // The port of XOR-PEER-ADDRESS is ignored (RFC 8656 section 9).
    await this.#request(
      TURN_METHOD_CREATE_PERMISSION,
      (m) => addStunAttribute(m, XOR_PEER_ADDRESS, { hostname: ip, port: 0 }),
      {},
    );
    this.stats.permissions++;
  }

  #schedulePermissionRefresh(ip: string, entry: Permission): void {
    if (this.closed) return;
    entry.used = false;
    entry.timer = setTimeout(() => {
      if (this.closed || this.#permissions.get(ip) !== entry) return;
      if (!entry.used) {
        // Idle for 4 minutes: let it expire on the server; a later send creates it again.
        this.#permissions.delete(ip);
        for (const key of this.#sendCounts.keys()) {
          if (key.startsWith(`${ip}|`) && !this.#channels.has(key)) this.#sendCounts.delete(key);
        }
        return;
      }
      this.#createPermission(ip).then(
        () => this.#schedulePermissionRefresh(ip, entry),
        () => this.#permissions.delete(ip),
      );
    }, TURN_PERMISSION_REFRESH_MS);
    Deno.unrefTimer(entry.timer!);
  }

  /** Binds the next channel number to `peer` in the background; sends go by Send indication meanwhile. */
  #bindChannel(peer: UdpAddr): void {
    const channel: Channel = { number: this.#nextChannel++, peer, bound: false, used: true };
    const key = udpAddrKey(peer);
    this.#channels.set(key, channel);
    // The server may send ChannelData as soon as it has bound the channel, before its response arrives.
    this.#channelsByNumber.set(channel.number, channel);
    this.#channelBind(channel).then(
      () => {
        channel.bound = true;
        this.#scheduleChannelRefresh(key, channel);
      },
      (error) => {
        // Refused: Send indications for this peer from now on; timed out: try again after a few more
        // packets. The number is not reused either way.
        this.#channelsByNumber.delete(channel.number);
        if (this.#channels.get(key) === channel) this.#channels.delete(key);
        if (error instanceof TurnError && error.code !== undefined) this.#refusedChannels.add(key);
        else this.#sendCounts.delete(key);
      },
    );
  }

  async #channelBind(channel: Channel): Promise<void> {
    await this.#request(TURN_METHOD_CHANNEL_BIND, (m) => {
      addStunAttribute(m, CHANNEL_NUMBER, channel.number);
      addStunAttribute(m, XOR_PEER_ADDRESS, channel.peer);
    }, {});
    this.stats.channelBinds++;
  }

  #scheduleChannelRefresh(key: string, channel: Channel): void {
    if (this.closed) return;
    channel.used = false;
    channel.timer = setTimeout(() => {
      if (this.closed || this.#channels.get(key) !== channel) return;
      const drop = () => {
        // A channel number is not reused within the allocation (RFC 8656 section 12: 5 minutes at least).
        this.#channels.delete(key);
        this.#channelsByNumber.delete(channel.number);
        this.#sendCounts.delete(key);
      };
      if (!channel.used) return drop();
      this.#channelBind(channel).then(() => this.#scheduleChannelRefresh(key, channel), drop);
    }, TURN_CHANNEL_REFRESH_MS);
    Deno.unrefTimer(channel.timer!);
  }

  // --- Lifetime (RFC 8656 section 8) ---------------------------------------------------------------

  /** Records the granted lifetime and schedules the next refresh: a minute before expiry, or halfway for short ones. */
  #granted(lifetime: number): void {
    this.#lifetime = lifetime;
    this.#expiresAt = Date.now() + lifetime * 1000;
    if (lifetime > 0) this.#scheduleRefresh(Math.max(lifetime / 2, lifetime - 60) * 1000);
  }

  #scheduleRefresh(delayMs: number): void {
    clearTimeout(this.#refreshTimer);
    if (this.closed) return;
    this.#refreshTimer = setTimeout(() => {
      this.refresh().catch((error) => {
        if (this.closed) return;
        const left = this.#expiresAt - Date.now();
        if ((error instanceof TurnError && error.code === 437) || left <= REFRESH_RETRY_MS) {
          // The server no longer knows the allocation, or it is about to expire: it is gone.
          void this._release();
          return;
        }
        this.#scheduleRefresh(REFRESH_RETRY_MS);
      });
    }, delayMs);
    Deno.unrefTimer(this.#refreshTimer!);
  }

  #stopTimers(): void {
    clearTimeout(this.#refreshTimer);
    for (const p of this.#permissions.values()) clearTimeout(p.timer);
    for (const c of this.#channels.values()) clearTimeout(c.timer);
  }

  /** Reads an attribute of a response; a malformed value is a TurnError. */
  #read<T>(message: StunMessage, codec: StunAttributeCodec<T>): T | undefined {
    try {
      return getStunAttribute(message, codec);
    } catch (error) {
      if (error instanceof StunError) {
        this.stats.malformed++;
        throw new TurnError(`TURN ${methodName(message.method)} response: ${error.message}`, { cause: error });
      }
      throw error;
    }
  }

  // --- Links to the server ------------------------------------------------------------------------

  /** Over UDP: a route on the socket that claims the server's TURN messages and ChannelData, nothing else. */
  #attachUdp(): ServerLink {
    const given = this.#options.socket;
    const server = this.server;
    let socket: UdpSocket | null = given ?? null;
    let owned: Promise<UdpSocket> | null = null;
    if (!socket) {
      owned = UdpSocket.bind(parseIp(server.hostname)!.length === 4 ? "udp://0.0.0.0:0" : "udp://[::]:0");
    }
    let unroute = () => {};
    const attach = (s: UdpSocket) => {
      socket = s;
      unroute = s.route(
        (data, from) =>
          from.port === server.port &&
          (from.hostname === server.hostname || canonicalIp(from.hostname) === server.hostname) &&
          (isChannelData(data) || (isStunDatagram(data) && this.#claims(data))),
        (data) => this.#receive(data),
      );
      return s;
    };
    const ready = owned ? owned.then(attach) : Promise.resolve(attach(socket!));
    return {
      reliable: false,
      send: async (bytes) => {
        await (await ready).send(bytes, server);
      },
      close: async () => {
        const s = await ready.catch(() => null);
        unroute();
        if (owned && s) await s.close();
      },
    };
  }

  /** Of the server's STUN messages on a shared socket, the ones that are this allocation's: Data indications, responses to its transactions. */
  #claims(data: Uint8Array): boolean {
    const method = stunMethod(data);
    if (!isTurnMethod(method)) return false;
    if ((data[0] & 0x01) === 0 && (data[1] & 0x10) !== 0) return method === TURN_METHOD_DATA; // class 01: indication
    return this.#pending.has(transactionKey(data.subarray(8, 20)));
  }

  /** Over TCP (RFC 8656 section 11.5): STUN messages and padded ChannelData on one stream. */
  async #connectTcp(signal: AbortSignal | undefined): Promise<ServerLink> {
    const { hostname, port } = this.server;
    const connecting = Deno.connect({ hostname, port, transport: "tcp" });
    const timeout = AbortSignal.any([AbortSignal.timeout(CONNECT_TIMEOUT_MS), ...(signal ? [signal] : [])]);
    let conn: Deno.TcpConn;
    try {
      conn = await new Promise<Deno.TcpConn>((resolve, reject) => {
        const onAbort = () => reject(timeout.reason);
        timeout.addEventListener("abort", onAbort, { once: true });
        connecting.then(resolve, reject).finally(() => timeout.removeEventListener("abort", onAbort));
      });
    } catch (error) {
      connecting.then((c) => c.close(), () => {});
      if (signal?.aborted) throw signal.reason;
      throw new TransportError(`Cannot connect to TURN server tcp://${formatUdpAddr(this.server).slice(6)}`, {
        cause: error,
      });
    }
    conn.setNoDelay(true);
    let writing = Promise.resolve();
    let closed = false;
    const reading = this.#readTcp(conn).finally(() => {
      closed = true;
      if (!this.#closed) void this._release();
    });
    return {
      reliable: true,
      send: (bytes) => {
        if (closed) return Promise.reject(new TransportError("The TURN server's TCP connection is closed"));
        const write = writing.then(async () => {
          for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
        });
        writing = write.catch(() => {});
        return write;
      },
      close: async () => {
        if (!closed) {
          closed = true;
          try {
            conn.close();
          } catch { /* already closed */ }
        }
        await reading;
      },
    };
  }

  async #readTcp(conn: Deno.TcpConn): Promise<void> {
    let buffer = new Uint8Array(0);
    const chunk = new Uint8Array(65_536);
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) return;
        const joined = new Uint8Array(buffer.length + n);
        joined.set(buffer);
        joined.set(chunk.subarray(0, n), buffer.length);
        buffer = joined;
        while (true) {
          let size: number | null;
          try {
            size = turnStreamMessageSize(buffer);
          } catch {
            this.stats.malformed++;
            return; // the stream is out of step: the connection (and with it the allocation) ends
          }
          if (size === null || buffer.length < size) break;
          this.#receive(buffer.slice(0, size));
          buffer = buffer.subarray(size);
        }
      }
    } catch {
      return; // closed or reset
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }
}

/** The method of a STUN message's first two bytes (RFC 8489 section 5). */
function stunMethod(data: Uint8Array): number {
  const type = data[0] << 8 | data[1];
  return (type & 0x000f) | (type & 0x00e0) >> 1 | (type & 0x3e00) >> 2;
}

function methodName(method: number): string {
  switch (method) {
    case TURN_METHOD_ALLOCATE:
      return "Allocate";
    case TURN_METHOD_REFRESH:
      return "Refresh";
    case TURN_METHOD_CREATE_PERMISSION:
      return "CreatePermission";
    case TURN_METHOD_CHANNEL_BIND:
      return "ChannelBind";
    default:
      return `method 0x${method.toString(16)}`;
  }
}
