/**
 * The node without its network face: it takes the data directory's lock,
 * unseals (or on first start creates) the master key, opens the encrypted
 * store, loads the identities, tokens and event log, and runs the event bus.
 * `kernel/daemon.ts` adds the API listeners and signal handling.
 *
 * @module
 */

import { join } from "node:path";
import type { ScryptParams } from "../crypto/mod.ts";
import { IdentityStore } from "../identity/identities.ts";
import type { Identity } from "../identity/identity.ts";
import { BlobStore } from "../storage/blob_store.ts";
import { EncryptedStore } from "../storage/encrypted_kv.ts";
import { EventLog, type Signer, type VerifyReport } from "../storage/event_log.ts";
import { type DirectoryLock, lockDirectory } from "../storage/lock.ts";
import {
  createMasterKey,
  hasMasterKey,
  KEY_FILE,
  MASTER_FILE,
  type MasterKeyMode,
  masterKeyMode,
  openMasterKey,
} from "../storage/master_key.ts";
import { wipe } from "../bytes.ts";
import { CorruptFileError } from "../errors.ts";
import { decodeDidKey } from "../identity/did.ts";
import { nodeIdOf } from "../identity/identity.ts";
import { AddressBook } from "../peers/address_book.ts";
import { PeerManager, type PeerManagerOptions, type PeerPolicy } from "../peers/manager.ts";
import { TcpTransport } from "../../transport/tcp.ts";
import { WebSocketTransport } from "../../transport/websocket.ts";
import { EventBus } from "./event_bus.ts";
import { FILES } from "./config.ts";
import { TokenStore } from "./tokens.ts";
import { PolicyGate } from "../policy/gate.ts";
import { Reachability, type ReachabilityOptions } from "./reachability.ts";
import { Traversal, type TraversalOptions } from "./traversal.ts";
import { DhtService, type DhtServiceOptions } from "./dht_service.ts";

/** The version of this node software. */
export const VERSION = "0.1.0";

/** Options of {@linkcode Node.open}. */
export interface NodeOptions {
  /** The data directory (created with mode 0700 when missing). */
  dataDir: string;
  /** Seals a new master key, or unseals one sealed by a passphrase. */
  passphrase?: string;
  /** scrypt parameters for a new passphrase seal (tests use small ones). */
  scrypt?: ScryptParams;
  /** Name of the first identity (default "default"). */
  identityName?: string;
  /** Sign the event log's head every this many entries (default 64). */
  checkpointEvery?: number;
  /** Which peers to accept (default `tofu`). */
  peerPolicy?: PeerPolicy;
  /** Tuning of the peer manager (handshake limits, redial delays, channel options), mostly for tests. */
  peerOptions?: Pick<PeerManagerOptions, "limits" | "reconnect" | "channel" | "maxFrameSize" | "datagram">;
  /** STUN servers, port mapping, serving STUN. */
  reachability?: ReachabilityOptions;
  /** Relaying for others, rendezvous, punch timeout. */
  traversal?: TraversalOptions;
  /** The DHT: whether it runs, bootstrap nodes (off unless `enabled`). */
  dht?: DhtServiceOptions;
}

/** Storage figures of `/v1/state`. */
export interface StorageState {
  /** The data directory. */
  path: string;
  /** Size of the store on disk, in bytes (the Deno KV file and its WAL). */
  bytes: number;
  /** How the master key is sealed. */
  keyMode: MasterKeyMode;
  /** Number of entries in the event log. */
  logEntries: number;
}

/** A running node's kernel. */
export class Node {
  /** The data directory this node holds locked. */
  readonly dataDir: string;
  /** Whether this open created the data directory's keys. */
  readonly created: boolean;
  /** When the node was opened, in milliseconds since the Unix epoch. */
  readonly startedAt: number;
  /** How the master key is sealed. */
  readonly keyMode: MasterKeyMode;
  /** The encrypted key-value store. */
  readonly store: EncryptedStore;
  /** The node's identities. */
  readonly identities: IdentityStore;
  /** The API tokens. */
  readonly tokens: TokenStore;
  /** The signed event log `node`. */
  readonly log: EventLog;
  /** The encrypted blob store. */
  readonly blobs: BlobStore;
  /** The in-process event bus. */
  readonly bus: EventBus;
  /** Known peers. */
  readonly book: AddressBook;
  /** Sessions with other nodes; nothing listens until `peers.listen()`. */
  readonly peers: PeerManager;
  /** The policy gate (NZ-POLICY-01): decisions, grants, approvals and the signed decision log. */
  readonly policy: PolicyGate;
  /** Public addresses, NAT type and port mappings; started by the daemon once the node listens. */
  readonly reachability: Reachability;
  /** Hole punching through a rendezvous, relaying, and upgrades of relayed sessions; started by the daemon. */
  readonly traversal: Traversal;
  /** The node's part in the DHT (NZ-DHT-01); started by the daemon. */
  readonly dht: DhtService;
  #lock: DirectoryLock;
  #closed = false;

  private constructor(init: {
    dataDir: string;
    created: boolean;
    keyMode: MasterKeyMode;
    lock: DirectoryLock;
    store: EncryptedStore;
    identities: IdentityStore;
    tokens: TokenStore;
    log: EventLog;
    bus: EventBus;
    book: AddressBook;
    policy: PolicyGate;
    options: NodeOptions;
  }) {
    this.dataDir = init.dataDir;
    this.created = init.created;
    this.keyMode = init.keyMode;
    this.#lock = init.lock;
    this.store = init.store;
    this.identities = init.identities;
    this.tokens = init.tokens;
    this.log = init.log;
    this.bus = init.bus;
    this.book = init.book;
    this.policy = init.policy;
    this.blobs = new BlobStore(init.store);
    this.peers = new PeerManager({
      identity: () => this.identities.active(),
      book: init.book,
      transports: [new TcpTransport(), new WebSocketTransport()],
      policy: init.options.peerPolicy,
      ...init.options.peerOptions,
      events: (type, data) => {
        // Sessions opening and closing go to the signed log; refusals (a flood can cause many) and messages only
        // to the bus.
        if (type === "peer.connected" || type === "peer.disconnected") void this.record(type, data);
        else this.bus.publish(type, data);
      },
    });
    this.reachability = new Reachability(this.peers, {
      log: (line) => console.warn(`nzcore: ${line}`),
      ...init.options.reachability,
    });
    this.traversal = new Traversal(this.peers, this.reachability, init.options.traversal);
    this.dht = new DhtService(this.peers, () => this.identities.active(), this.reachability, init.store, {
      log: (line) => console.warn(`nzcore: ${line}`),
      ...init.options.dht,
    });
    this.startedAt = Date.now();
  }

  /**
   * Opens the node in `options.dataDir`, creating everything on first use.
   *
   * @throws {StorageLockedError} when another node holds the directory.
   * @throws {WrongKeyError} when the passphrase or key file does not unseal the master key.
   * @throws {CorruptFileError} when a key file is malformed, or `master.json` is missing beside an existing store.
   */
  static async open(options: NodeOptions): Promise<Node> {
    const dataDir = options.dataDir;
    await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
    const lock = await lockDirectory(dataDir);
    let store: EncryptedStore | undefined;
    let identities: IdentityStore | undefined;
    let bus: EventBus | undefined;
    try {
      await removeStaleTemporaries(dataDir);
      const created = !(await hasMasterKey(dataDir));
      if (created) await assertNoStoreWithoutKey(dataDir);
      const master = created
        ? await createMasterKey(dataDir, { passphrase: options.passphrase, scrypt: options.scrypt })
        : await openMasterKey(dataDir, { passphrase: options.passphrase });
      const keyMode = await masterKeyMode(dataDir);
      try {
        store = await EncryptedStore.open(join(dataDir, FILES.store), master);
      } finally {
        wipe(master);
      }
      await store.collectGarbage();
      const ids = identities = await IdentityStore.open(store);
      if (ids.size === 0) await ids.create(options.identityName ?? "default");
      const tokens = await TokenStore.open(store.namespace(["system"]));
      const signer: Signer = {
        get publicKey() {
          return ids.active().publicKey;
        },
        sign: (message) => ids.active().sign(message),
      };
      const log = await EventLog.open(store, "node", signer, { checkpointEvery: options.checkpointEvery });
      const events = bus = new EventBus();
      const policy = await PolicyGate.open(store, { signer, events: (type, data) => events.publish(type, data) });
      const book = await AddressBook.open(store);
      const node = new Node({
        dataDir,
        created,
        keyMode,
        lock,
        store,
        identities: ids,
        tokens,
        log,
        bus,
        book,
        policy,
        options,
      });
      await node.blobs.collectGarbage();
      await node.record("node.started", { version: VERSION, identity: ids.active().did });
      return node;
    } catch (error) {
      // Undo what this open did in memory, and nothing on disk: the keys and identities it found or made stay.
      runAll([() => bus?.close(), () => identities?.close(), () => store?.close(), () => lock.release()], (cleanup) => {
        console.warn(`nzcore: while abandoning a failed start: ${(cleanup as Error).message}`);
      });
      throw error;
    }
  }

  /** The active identity. */
  get identity(): Identity {
    return this.identities.active();
  }

  /** Appends an event to the signed log and publishes it on the bus. */
  async record(type: string, data: Record<string, unknown>): Promise<void> {
    try {
      await this.log.append(type, data);
    } catch (error) {
      // The change this records is already made: a failed log entry (a full disk, say) must not turn its
      // success into an error that the client would retry. It is reported, and the event still published.
      console.warn(`nzcore: could not record ${type} in the event log: ${(error as Error).message}`);
    }
    this.bus.publish(type, data);
  }

  /** Checks the node's event log against the keys of every identity of the node. */
  verifyLog(): Promise<VerifyReport> {
    return this.log.verify({
      publicKeys: this.identities.list().map((i) => this.identities.resolve(i.nodeId).publicKey),
    });
  }

  /** Storage figures. */
  async storage(): Promise<StorageState> {
    const stats = await this.store.stats();
    return { path: this.dataDir, bytes: stats.bytes, keyMode: this.keyMode, logEntries: this.log.length };
  }

  /**
   * Stops the node: signs the log's head, closes the store, wipes keys and
   * releases the lock. Each step runs even when an earlier one fails, so the
   * lock is released whatever happens.
   *
   * @throws the first error of a step that failed, after every step has run.
   */
  /**
   * The node ID named by `peer`: a node ID (64 hex digits) or a `did:key`.
   *
   * @throws {SyntaxError} when it is neither.
   */
  peerIdOf(peer: string): string {
    if (/^[0-9a-f]{64}$/.test(peer)) return peer;
    if (peer.startsWith("did:key:")) return nodeIdOf(decodeDidKey(peer));
    throw new SyntaxError(`Invalid peer "${peer}": expected a node ID (64 hex digits) or a did:key`);
  }

  /** Closes the sessions, records the stop in the log, closes the store and releases the directory lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.dht.close().catch((error) => console.warn(`nzcore: while closing the DHT: ${(error as Error).message}`));
    await this.traversal.close();
    await this.reachability.close();
    try {
      await this.peers.close();
    } catch (error) {
      console.warn(`nzcore: while closing sessions: ${(error as Error).message}`);
    }
    try {
      await this.policy.close();
    } catch (error) {
      console.warn(`nzcore: could not write the last decisions to the decision log: ${(error as Error).message}`);
    }
    try {
      await this.log.append("node.stopped", {});
      await this.log.checkpoint();
    } catch (error) {
      // Stopping must not fail for want of a last log entry (a full disk, say): the log stays valid without it.
      console.warn(`nzcore: could not record the stop in the event log: ${(error as Error).message}`);
    }
    const failures: unknown[] = [];
    runAll(
      [() => this.bus.close(), () => this.identities.close(), () => this.store.close(), () => this.#lock.release()],
      (error) => failures.push(error),
    );
    if (failures.length > 0) throw failures[0];
  }
}

/** Runs every step in order, each in its own try, handing a failure to `onError` and going on. */
function runAll(steps: (() => void)[], onError: (error: unknown) => void): void {
  for (const step of steps) {
    try {
      step();
    } catch (error) {
      onError(error);
    }
  }
}

/**
 * Refuses to create a new master key beside an existing store: the store's
 * records are sealed under keys derived from the old master key, so a new one
 * would start an empty node over data it can never read.
 *
 * @throws {CorruptFileError} when the store file exists.
 */
async function assertNoStoreWithoutKey(dataDir: string): Promise<void> {
  const storePath = join(dataDir, FILES.store);
  try {
    await Deno.lstat(storePath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  throw new CorruptFileError(
    `${join(dataDir, MASTER_FILE)} is missing, but the store ${storePath} exists: its data cannot be read without ` +
      `the master key. Restore ${MASTER_FILE} (and ${KEY_FILE} in key-file mode) from a backup; to start a new node ` +
      `instead, move the data directory away`,
  );
}

/**
 * Removes temporary files that an atomic write left when its process died
 * between writing and renaming (`NAME.tmp-` followed by 12 hex digits). The
 * caller holds the directory's lock, so no write is under way.
 */
async function removeStaleTemporaries(dataDir: string): Promise<void> {
  for await (const entry of Deno.readDir(dataDir)) {
    if (entry.isFile && /\.tmp-[0-9a-f]{12}$/.test(entry.name)) {
      await Deno.remove(join(dataDir, entry.name)).catch(() => {});
    }
  }
}
