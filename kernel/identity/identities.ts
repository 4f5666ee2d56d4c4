/**
 * The identities (profiles) of one node: create, list, switch, export and
 * import. Records live sealed in the `["system"]` namespace; each identity's
 * own data lives in the namespace `["identity", nodeId]`, sealed under keys
 * derived for that namespace alone.
 *
 * @module
 */

import { wipe } from "../bytes.ts";
import type { ScryptParams } from "../crypto/mod.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { EncryptedStore, Namespace } from "../storage/encrypted_kv.ts";
import { Identity, type IdentityInfo, type IdentityRecord } from "./identity.ts";
import { exportIdentity, importIdentity } from "./identity_file.ts";

/** An identity's public facts and whether it is the active one. */
export interface IdentityListing extends IdentityInfo {
  /** Whether this is the node's active identity. */
  active: boolean;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks an identity name: 1 to 64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export function assertIdentityName(name: string): void {
  if (!NAME.test(name)) {
    throw new RangeError(
      `Invalid identity name "${name}": use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
}

/** The identities stored in one node. */
export class IdentityStore {
  #store: EncryptedStore;
  #ns: Namespace;
  #loaded = new Map<string, Identity>();
  #active: string | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(store: EncryptedStore) {
    this.#store = store;
    this.#ns = store.namespace(["system"]);
  }

  /** Opens the identity store and loads every identity. */
  static async open(store: EncryptedStore): Promise<IdentityStore> {
    const ids = new IdentityStore(store);
    for await (const { value } of ids.#ns.list<IdentityRecord>(["identity"])) {
      const identity = Identity.fromRecord(value);
      wipe(value.seed, value.x25519Secret);
      ids.#loaded.set(identity.nodeId, identity);
    }
    ids.#active = await ids.#ns.get<string>(["active"]);
    return ids;
  }

  /** Number of identities. */
  get size(): number {
    return this.#loaded.size;
  }

  /** Every identity, oldest first. */
  list(): IdentityListing[] {
    return [...this.#loaded.values()]
      .sort((a, b) => a.created - b.created || a.name.localeCompare(b.name))
      .map((id) => ({ ...id.info(), active: id.nodeId === this.#active }));
  }

  /** The active identity. @throws {NotFoundError} when the node has none yet. */
  active(): Identity {
    const id = this.#active && this.#loaded.get(this.#active);
    if (!id) throw new NotFoundError("This node has no active identity");
    return id;
  }

  /**
   * Finds an identity by node ID, did, name or a unique prefix of its node ID.
   *
   * @throws {NotFoundError} when none matches.
   * @throws {ConflictError} when a prefix matches several.
   */
  resolve(ref: string): Identity {
    const exact = this.#loaded.get(ref);
    if (exact) return exact;
    const all = [...this.#loaded.values()];
    const byName = all.filter((id) => id.name === ref || id.did === ref);
    if (byName.length === 1) return byName[0];
    const byPrefix = ref.length >= 4 ? all.filter((id) => id.nodeId.startsWith(ref.toLowerCase())) : [];
    if (byPrefix.length === 1) return byPrefix[0];
    if (byPrefix.length > 1) throw new ConflictError(`"${ref}" matches ${byPrefix.length} identities; give more of it`);
    throw new NotFoundError(`No identity "${ref}"`);
  }

  async #save(identity: Identity, makeActive: boolean): Promise<void> {
    const record = identity.toRecord();
    try {
      const batch = this.#store.atomic().set(this.#ns, ["identity", identity.nodeId], record);
      if (makeActive) batch.set(this.#ns, ["active"], identity.nodeId);
      await batch.commit();
    } finally {
      wipe(record.seed, record.x25519Secret);
    }
    this.#loaded.set(identity.nodeId, identity);
    if (makeActive) this.#active = identity.nodeId;
  }

  #assertFreeName(name: string): void {
    assertIdentityName(name);
    for (const id of this.#loaded.values()) {
      if (id.name === name) throw new ConflictError(`An identity named "${name}" exists already`);
    }
  }

  /** Creates a new identity; the first one becomes active. */
  create(name: string, options: { activate?: boolean } = {}): Promise<Identity> {
    return this.#serial(async () => {
      this.#assertFreeName(name);
      const identity = Identity.generate(name);
      await this.#save(identity, options.activate ?? this.#active === undefined);
      return identity;
    });
  }

  /**
   * Runs changes one at a time, so two requests at once cannot both pass a
   * check (a free name, an absent node ID) before either has saved.
   */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Makes `ref` the active identity. */
  switch(ref: string): Promise<Identity> {
    return this.#serial(async () => {
      const identity = this.resolve(ref);
      await this.#ns.set(["active"], identity.nodeId);
      this.#active = identity.nodeId;
      return identity;
    });
  }

  /** The text of an export file of `ref`, sealed by `passphrase`. */
  export(ref: string, passphrase: string, options: { scrypt?: ScryptParams } = {}): Promise<string> {
    return exportIdentity(this.resolve(ref), passphrase, options);
  }

  /**
   * Imports an export file. The identity keeps its name unless `name` is
   * given; it becomes active only when `activate` is set or it is the first.
   */
  async import(
    text: string,
    passphrase: string,
    options: { name?: string; activate?: boolean } = {},
  ): Promise<Identity> {
    const imported = await importIdentity(text, passphrase);
    return await this.#serial(() => this.#add(imported, options));
  }

  async #add(imported: Identity, options: { name?: string; activate?: boolean }): Promise<Identity> {
    if (this.#loaded.has(imported.nodeId)) {
      imported.wipe();
      throw new ConflictError(`Identity ${imported.nodeId} is on this node already`);
    }
    let identity = imported;
    if (options.name !== undefined && options.name !== imported.name) {
      const record = imported.toRecord();
      identity = Identity.fromRecord({ ...record, name: options.name });
      wipe(record.seed, record.x25519Secret);
      imported.wipe();
    }
    try {
      this.#assertFreeName(identity.name);
    } catch (error) {
      identity.wipe();
      throw error;
    }
    await this.#save(identity, options.activate ?? this.#active === undefined);
    return identity;
  }

  /** The namespace holding `identity`'s own data, under keys of its own. */
  dataNamespace(identity: Identity): Namespace {
    return this.#store.namespace(["identity", identity.nodeId]);
  }

  /** Wipes every loaded identity's secrets. */
  close(): void {
    for (const id of this.#loaded.values()) id.wipe();
    this.#loaded.clear();
  }
}
