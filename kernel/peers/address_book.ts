/**
 * The address book: what the node knows of other nodes (identity, the
 * addresses they were reached at, when they were seen, whether to keep
 * dialing them), kept in the encrypted store. It also pins each dialed
 * address to the identity that answered there, for trust on first use.
 *
 * @module
 */

import { ConflictError, NotFoundError } from "../errors.ts";
import type { EncryptedStore, Namespace } from "../storage/encrypted_kv.ts";

/** One known peer. */
export interface PeerRecord {
  /** Lowercase hex SHA-256 of the peer's Ed25519 public key. */
  nodeId: string;
  /** The peer's `did:key`. */
  did: string;
  /** Addresses the peer was reached at or announced, newest first. */
  addresses: string[];
  /** When the peer was first seen, in milliseconds since the Unix epoch. */
  firstSeen: number;
  /** When a session with the peer last opened. */
  lastSeen: number;
  /** Whether the node dials the peer again after a lost session, and at start. */
  autoConnect: boolean;
}

/** How many addresses a peer record keeps. */
const MAX_ADDRESSES = 8;

/** The store's view of known peers; reads come from memory, writes go through. */
export class AddressBook {
  #store: EncryptedStore;
  #ns: Namespace;
  #peers = new Map<string, PeerRecord>();
  #pins = new Map<string, string>();

  private constructor(store: EncryptedStore, ns: Namespace) {
    this.#store = store;
    this.#ns = ns;
  }

  /** Loads the address book from the namespace `["peers"]` of `store`. */
  static async open(store: EncryptedStore): Promise<AddressBook> {
    const ns = store.namespace(["peers"]);
    const book = new AddressBook(store, ns);
    for await (const entry of ns.list<PeerRecord>(["peer"])) book.#peers.set(entry.value.nodeId, entry.value);
    for await (const entry of ns.list<string>(["pin"])) book.#pins.set(String(entry.key[1]), entry.value);
    return book;
  }

  /** Every known peer. */
  list(): PeerRecord[] {
    return [...this.#peers.values()];
  }

  /** The peer with `nodeId`, if known. */
  get(nodeId: string): PeerRecord | undefined {
    return this.#peers.get(nodeId);
  }

  /** The node ID that answered at `address` before, if any. */
  pinned(address: string): string | undefined {
    return this.#pins.get(address);
  }

  /** Records a session with a peer: creates or refreshes its record, and pins `dialed` to it. */
  async seen(peer: { nodeId: string; did: string }, options: { address?: string; dialed?: string } = {}): Promise<
    PeerRecord
  > {
    const now = Date.now();
    const old = this.#peers.get(peer.nodeId);
    const record: PeerRecord = old
      ? { ...old, lastSeen: now }
      : { nodeId: peer.nodeId, did: peer.did, addresses: [], firstSeen: now, lastSeen: now, autoConnect: false };
    const address = options.dialed ?? options.address;
    if (address) record.addresses = [address, ...record.addresses.filter((a) => a !== address)].slice(0, MAX_ADDRESSES);
    const op = this.#store.atomic().set(this.#ns, ["peer", peer.nodeId], record);
    if (options.dialed) op.set(this.#ns, ["pin", options.dialed], peer.nodeId);
    await op.commit();
    this.#peers.set(peer.nodeId, record);
    if (options.dialed) this.#pins.set(options.dialed, peer.nodeId);
    return record;
  }

  /** Sets whether the node keeps dialing `nodeId`. */
  async setAutoConnect(nodeId: string, autoConnect: boolean): Promise<void> {
    const old = this.#peers.get(nodeId);
    if (!old || old.autoConnect === autoConnect) return;
    const record = { ...old, autoConnect };
    await this.#ns.set(["peer", nodeId], record);
    this.#peers.set(nodeId, record);
  }

  /** Forgets a peer and the addresses pinned to it. */
  async forget(nodeId: string): Promise<void> {
    const op = this.#store.atomic().delete(this.#ns, ["peer", nodeId]);
    const pins = [...this.#pins].filter(([, id]) => id === nodeId).map(([address]) => address);
    for (const address of pins) op.delete(this.#ns, ["pin", address]);
    await op.commit();
    this.#peers.delete(nodeId);
    for (const address of pins) this.#pins.delete(address);
  }
}

/**
 * Finds the one candidate named by `name`: its node ID or DID, or a unique
 * prefix of either (a DID prefix must go past `did:key:z`).
 *
 * @throws {NotFoundError} when none matches.
 * @throws {ConflictError} when the prefix matches several.
 */
export function resolvePeerName<T extends { nodeId: string; did: string }>(name: string, candidates: Iterable<T>): T {
  const wanted = name.trim();
  if (wanted.length === 0) throw new NotFoundError('No peer named "": give a DID, a node ID, or a prefix of either');
  const matches = new Map<string, T>();
  for (const c of candidates) {
    if (c.nodeId === wanted || c.did === wanted) return c;
    const nodeIdPrefix = /^[0-9a-f]+$/.test(wanted) && c.nodeId.startsWith(wanted);
    const didPrefix = wanted.length > "did:key:z".length && c.did.startsWith(wanted);
    if (nodeIdPrefix || didPrefix) matches.set(c.nodeId, c);
  }
  if (matches.size === 1) return matches.values().next().value!;
  if (matches.size === 0) throw new NotFoundError(`No known peer is named "${wanted}"`);
  throw new ConflictError(`"${wanted}" names ${matches.size} peers: give more of the DID or node ID`);
}
