/**
 * Our DHT in the simulation: each honest node is an unmodified
 * {@linkcode Dht} (NZ-DHT-01) on a socket of the
 * {@linkcode MemoryDatagramNetwork}, with an Ed25519 key drawn from the run's
 * seed, no prefix-limit exemption (every address is public-looking, so the
 * /24 limits apply as on the internet), joined by `bootstrap()`.
 *
 * A lookup is `Dht.findNode`, which stops once the target answers; its hops
 * are the DHT's own count (`LookupResult.hops`): the starting contacts from
 * the routing table are hop 1, a contact learned from a hop-h answer is hop
 * h + 1, and the lookup's hops are those of the target when it answered. It
 * succeeds when the target answered (`found`).
 *
 * An adversarial node ({@linkcode SybilNode}) is written with the DHT's own
 * message codec and answers as the protocol requires where that keeps it in
 * routing tables (a signed PONG when asked), but never helps a lookup:
 * - `fake` (the default): FIND_NODE and FIND_VALUE get k made-up IDs closer to
 *   the target than any real node (the target's first half, then random
 *   bytes), all at the Sybil's own address, so a lookup that believes them
 *   queries the Sybil again under IDs it cannot prove;
 * - `junk`: the answer to FIND_NODE and FIND_VALUE is random bytes behind a
 *   valid-looking first byte and transaction ID;
 * - either way a STORE is acknowledged and dropped.
 *
 * @module
 */

import { toHex as hex } from "../kernel/bytes.ts";
import { randomBytes, sha256 } from "../kernel/crypto/mod.ts";
import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, sign as nodeSign } from "node:crypto";
import { Dht } from "../kernel/discovery/dht/dht.ts";
import {
  decodeMessage,
  type DhtMessage,
  encodeMessage,
  FIRST_BYTE_BASE,
  FLAG_SIGNED,
  FLAG_WANT_SIGNATURE,
  isDhtDatagram,
  MESSAGE_TYPES,
  TXID_OFFSET,
  TXID_SIZE,
  type WireContact,
} from "../kernel/discovery/dht/message.ts";
import type { RecordSigner } from "../kernel/discovery/record.ts";
import type { MemoryDatagramSocket, UdpAddr } from "../transport/mod.ts";
import type { SimLookup, SimNode } from "./_dht_sim_bittorrent.ts";

/** How a Sybil answers lookups. */
export type SybilMode = "fake" | "junk";

/** Options of {@linkcode nzcoreFactory}. */
export interface NzcoreSimOptions {
  /** Disjoint lookup paths (the DHT's default when absent). */
  paths?: number;
  /** How Sybils answer; default `fake`. */
  sybilMode?: SybilMode;
}

/** The PKCS #8 DER prefix of an Ed25519 private key (RFC 8410 section 7), before its 32-byte seed. */
const ED25519_PKCS8_PREFIX = Uint8Array.of(
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
);

/**
 * An Ed25519 signer from a 32-byte seed (the simulation draws seeds from its
 * seeded random, for repeatable IDs). It holds its own KeyObject: the crypto
 * provider caches a few keys, as a node needs, and thousands of nodes in one
 * process would rebuild one for every signature.
 */
export function seedSigner(seed: Uint8Array): RecordSigner {
  const der = new Uint8Array(ED25519_PKCS8_PREFIX.length + 32);
  der.set(ED25519_PKCS8_PREFIX);
  der.set(seed.subarray(0, 32), ED25519_PKCS8_PREFIX.length);
  const key = createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" });
  const publicKey = new Uint8Array(createPublicKey(key).export({ format: "der", type: "spki" }).subarray(-32));
  return { publicKey, sign: (message) => new Uint8Array(nodeSign(null, message, key)) };
}

/** The adapter of our DHT: starts honest nodes and Sybils. */
export function nzcoreFactory(options: NzcoreSimOptions = {}): {
  start(socket: MemoryDatagramSocket, seed: Uint8Array, bootstrap: readonly UdpAddr[]): Promise<SimNode>;
  startSybil(socket: MemoryDatagramSocket, seed: Uint8Array, bootstrap: readonly UdpAddr[]): Promise<SimNode>;
} {
  return {
    async start(socket, seed, bootstrap) {
      const dht = await Dht.start({
        socket,
        signer: seedSigner(seed),
        bootstrap,
        paths: options.paths,
        prefixLimitExempt: () => false,
      });
      if (bootstrap.length > 0) await dht.bootstrap();
      return {
        id: dht.id,
        addr: socket.addr,
        contacts: () => dht.stats().contacts,
        async lookup(target: Uint8Array): Promise<SimLookup> {
          const r = await dht.findNode(target);
          return {
            found: r.found,
            hops: r.hops,
            answered: r.queried - r.failed,
            failed: r.failed,
            ms: r.durationMs,
            targetMs: r.found ? r.durationMs : undefined,
          };
        },
        async close() {
          await dht.close();
          await socket.close();
        },
      };
    },
    async startSybil(socket, seed, bootstrap) {
      const sybil = new SybilNode(socket, seedSigner(seed), options.sybilMode ?? "fake");
      await sybil.join(bootstrap);
      return sybil;
    },
  };
}

/** The most contacts a Sybil asks in its join (besides the bootstrap nodes). */
const SYBIL_JOIN_FANOUT = 16;
/** How long a Sybil waits for answers while joining. */
const SYBIL_JOIN_WAIT_MS = 1_000;

/** An adversarial node: see the module doc. */
export class SybilNode implements SimNode {
  /** Its real ID (SHA-256 of its key), which it uses to get into routing tables. */
  readonly id: Uint8Array;
  /** Where it is bound. */
  readonly addr: UdpAddr;
  /** Requests it answered, by type. */
  readonly answered: Record<string, number> = {};
  #socket: MemoryDatagramSocket;
  #signer: RecordSigner;
  #mode: SybilMode;
  #pending = new Map<string, (message: DhtMessage) => void>();
  #known = new Map<string, UdpAddr>();

  /** Binds its route on `socket`. */
  constructor(socket: MemoryDatagramSocket, signer: RecordSigner, mode: SybilMode) {
    this.#socket = socket;
    this.#signer = signer;
    this.#mode = mode;
    this.id = sha256(signer.publicKey);
    this.addr = socket.addr;
    socket.route(isDhtDatagram, (data, from) => this.#onDatagram(data, from));
  }

  /** Nodes it heard of while joining. */
  contacts(): number {
    return this.#known.size;
  }

  /** FIND_NODE and FIND_VALUE requests it answered (with made-up IDs or junk). */
  lookupQueriesAnswered(): number {
    return (this.answered.find_node ?? 0) + (this.answered.find_value ?? 0);
  }

  /** A Sybil does not look up. */
  lookup(): Promise<SimLookup> {
    return Promise.reject(new Error("a Sybil node does not look up"));
  }

  /**
   * Gets into routing tables the way an honest node does: FIND_NODE for its
   * own ID to the bootstrap nodes, then to the closest nodes they named
   * (each asked is a requester that may admit it after a PING, which it
   * answers correctly).
   */
  async join(bootstrap: readonly UdpAddr[]): Promise<void> {
    const named = (await Promise.all(bootstrap.map((addr) => this.#findNode(addr, this.id)))).flat();
    const next = new Map<string, UdpAddr>();
    for (const c of named) next.set(`${c.addr.hostname}|${c.addr.port}`, c.addr);
    await Promise.all([...next.values()].slice(0, SYBIL_JOIN_FANOUT).map((addr) => this.#findNode(addr, this.id)));
  }

  /** Unbinds. */
  close(): Promise<void> {
    for (const resolve of this.#pending.values()) resolve({ type: "stored" } as DhtMessage);
    return this.#socket.close();
  }

  #findNode(to: UdpAddr, target: Uint8Array): Promise<WireContact[]> {
    const txid = randomBytes(TXID_SIZE);
    const key = hex(txid);
    const data = encodeMessage({ type: "find_node", flags: 0, txid, publicKey: this.#signer.publicKey, target });
    return new Promise<WireContact[]>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        resolve([]);
      }, SYBIL_JOIN_WAIT_MS);
      this.#pending.set(key, (message) => {
        clearTimeout(timer);
        this.#pending.delete(key);
        if (message.type !== "nodes") return resolve([]);
        for (const c of message.contacts) this.#known.set(hex(c.id), c.addr);
        resolve(message.contacts);
      });
      this.#socket.send(data, to).catch(() => {});
    });
  }

  #onDatagram(data: Uint8Array, from: UdpAddr): void {
    let message: DhtMessage;
    try {
      message = decodeMessage(data).message;
    } catch {
      return;
    }
    if (message.type === "nodes" || message.type === "pong" || message.type === "error") {
      this.#pending.get(hex(message.txid))?.(message);
      return;
    }
    if (
      message.type !== "ping" && message.type !== "find_node" && message.type !== "find_value" &&
      message.type !== "store"
    ) {
      return;
    }
    this.answered[message.type] = (this.answered[message.type] ?? 0) + 1;
    let body: Record<string, unknown>;
    if (message.type === "ping") {
      body = { type: "pong", observed: from };
    } else if (message.type === "store") {
      body = { type: "stored" };
    } else if (this.#mode === "junk") {
      const junk = randomBytes(64 + (data[TXID_OFFSET] & 0x3f));
      junk[0] = FIRST_BYTE_BASE | (message.type === "find_node" ? MESSAGE_TYPES.nodes : MESSAGE_TYPES.values);
      junk[1] = 0;
      junk.set(message.txid, TXID_OFFSET);
      this.#socket.send(junk, from).catch(() => {});
      return;
    } else {
      const target = message.type === "find_node" ? message.target : message.key;
      const contacts = this.#fakes(target);
      body = message.type === "find_node"
        ? { type: "nodes", token: randomBytes(8), contacts }
        : { type: "values", token: randomBytes(8), total: 0, records: [], contacts };
    }
    const flags = message.flags & FLAG_WANT_SIGNATURE ? FLAG_SIGNED : 0;
    const out = encodeMessage(
      { ...body, flags, txid: message.txid, publicKey: this.#signer.publicKey } as DhtMessage,
      (m) => this.#signer.sign(m),
    );
    this.#socket.send(out, from).catch(() => {});
  }

  /** 20 made-up IDs sharing the target's first 16 bytes, all at our own address. */
  #fakes(target: Uint8Array): WireContact[] {
    return Array.from({ length: 20 }, () => {
      const id = randomBytes(32);
      id.set(target.subarray(0, 16));
      return { id, addr: this.addr };
    });
  }
}
