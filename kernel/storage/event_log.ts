/**
 * An encrypted append-only event log (NZ-CRYPTO-01 section "Event log").
 *
 * Entry `n` stores `prev`, the hash of entry `n - 1` (32 zero bytes for the
 * first), and its own hash is SHA-256 over the CBOR array
 * `[seq, time, type, data, prev]`. Each append writes the entry and the head
 * (last sequence number and hash) in one atomic commit. Every
 * `checkpointEvery` entries, and on demand, the head is signed by the
 * identity's Ed25519 key. {@linkcode EventLog.verify} walks the chain and
 * finds tampered, reordered, missing and extra entries and bad checkpoints.
 *
 * @module
 */

import { concat, toHex, utf8 } from "../bytes.ts";
import { crypto, sha256 } from "../crypto/mod.ts";
import { SIG_LOG_CHECKPOINT } from "../crypto/labels.ts";
import { IntegrityError } from "../errors.ts";
import type { EncryptedStore, Namespace } from "./encrypted_kv.ts";
import { encodeValue } from "./value_codec.ts";

/** Signs checkpoints; an identity provides it. */
export interface Signer {
  /** Ed25519 public key (32 bytes). */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature of `message`. */
  sign(message: Uint8Array): Uint8Array;
}

/** One entry of the log. */
export interface LogEntry {
  /** Sequence number, from 0. */
  seq: number;
  /** Milliseconds since the Unix epoch. */
  time: number;
  /** Dotted event type, e.g. `node.started`. */
  type: string;
  /** The event's payload (CBOR-encodable). */
  data: unknown;
  /** Hash of the previous entry. */
  prev: Uint8Array;
}

/** A signed statement of the log's head. */
export interface Checkpoint {
  /** Sequence number of the head entry it signs. */
  seq: number;
  /** Hash of that entry (32 bytes, see {@linkcode hashEntry}). */
  hash: Uint8Array;
  /** When it was signed, in milliseconds since the Unix epoch. */
  time: number;
  /** The signer's Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) over {@linkcode checkpointMessage}. */
  signature: Uint8Array;
}

interface Head {
  seq: number;
  hash: Uint8Array;
}

/** What {@linkcode EventLog.verify} found. */
export interface VerifyReport {
  /** Whether no problem was found. */
  ok: boolean;
  /** Number of entries that verified in an unbroken chain from the first. */
  entries: number;
  /** Number of checkpoints examined. */
  checkpoints: number;
  /** Each problem found, in words; empty when `ok`. */
  problems: string[];
}

/** Options of {@linkcode EventLog.open}. */
export interface EventLogOptions {
  /** Sign the head every this many entries (default 64). */
  checkpointEvery?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const ZERO_HASH = new Uint8Array(32);
/** Most entries one {@linkcode EventLog.appendMany} writes (Deno KV allows 1,000 mutations per commit). */
export const MAX_APPEND_BATCH = 256;
const GET_BATCH = 10;

/** Hash of an entry: SHA-256 of CBOR `[seq, time, type, data, prev]`. */
export function hashEntry(entry: LogEntry): Uint8Array {
  return sha256(encodeValue([entry.seq, entry.time, entry.type, entry.data, entry.prev]));
}

/** Bytes a checkpoint signs: label || 0x00 || UTF-8 log name || 0x00 || u64be(seq) || hash. */
export function checkpointMessage(name: string, seq: number, hash: Uint8Array): Uint8Array {
  const seqBytes = new Uint8Array(8);
  new DataView(seqBytes.buffer).setBigUint64(0, BigInt(seq), false);
  return concat(utf8(SIG_LOG_CHECKPOINT), Uint8Array.of(0), utf8(name), Uint8Array.of(0), seqBytes, hash);
}

/** An append-only, hash-chained, signed log in one namespace of the store. */
export class EventLog {
  /** The log's name; its entries live in the namespace `["log", name]`. */
  readonly name: string;
  #store: EncryptedStore;
  #ns: Namespace;
  #signer: Signer;
  #every: number;
  #now: () => number;
  #head: Head | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(store: EncryptedStore, name: string, signer: Signer, options: EventLogOptions) {
    this.name = name;
    this.#store = store;
    this.#ns = store.namespace(["log", name]);
    this.#signer = signer;
    this.#every = options.checkpointEvery ?? 64;
    this.#now = options.now ?? Date.now;
  }

  /** Opens the log called `name`, creating it on the first append. */
  static async open(
    store: EncryptedStore,
    name: string,
    signer: Signer,
    options: EventLogOptions = {},
  ): Promise<EventLog> {
    const log = new EventLog(store, name, signer, options);
    log.#head = await log.#ns.get<Head>(["head"]);
    return log;
  }

  /** Number of entries. */
  get length(): number {
    return this.#head ? this.#head.seq + 1 : 0;
  }

  /**
   * Appends one entry; when the promise resolves the entry is durable.
   * Appends are serialised in call order.
   */
  append(type: string, data: unknown): Promise<LogEntry> {
    const run = this.#tail.then(() => this.#append(type, data));
    this.#tail = run.catch(() => {});
    return run;
  }

  /**
   * Appends several entries in one atomic commit (all or none), in order:
   * the group commit of a busy writer such as the decision log. At most
   * {@linkcode MAX_APPEND_BATCH} entries.
   *
   * @throws {RangeError} for more entries than that.
   */
  appendMany(events: readonly { type: string; data: unknown }[]): Promise<LogEntry[]> {
    if (events.length > MAX_APPEND_BATCH) {
      throw new RangeError(`Cannot append ${events.length} entries at once: at most ${MAX_APPEND_BATCH}`);
    }
    const run = this.#tail.then(() => this.#appendAll(events));
    this.#tail = run.catch(() => {});
    return run;
  }

  async #append(type: string, data: unknown): Promise<LogEntry> {
    return (await this.#appendAll([{ type, data }]))[0];
  }

  async #appendAll(events: readonly { type: string; data: unknown }[]): Promise<LogEntry[]> {
    const batch = this.#store.atomic();
    const entries: LogEntry[] = [];
    let head = this.#head;
    for (const { type, data } of events) {
      const seq = head ? head.seq + 1 : 0;
      const entry: LogEntry = { seq, time: this.#now(), type, data, prev: head?.hash ?? ZERO_HASH };
      head = { seq, hash: hashEntry(entry) };
      batch.set(this.#ns, ["e", seq], entry);
      if ((seq + 1) % this.#every === 0) batch.set(this.#ns, ["cp", seq], this.#sign(head));
      entries.push(entry);
    }
    if (!head || entries.length === 0) return entries;
    batch.set(this.#ns, ["head"], head);
    await batch.commit();
    this.#head = head;
    return entries;
  }

  #sign(head: Head): Checkpoint {
    const signature = this.#signer.sign(checkpointMessage(this.name, head.seq, head.hash));
    return { seq: head.seq, hash: head.hash, time: this.#now(), publicKey: this.#signer.publicKey, signature };
  }

  /** Signs the current head now (the node does this on stop and on a timer). */
  checkpoint(): Promise<Checkpoint | undefined> {
    const run = this.#tail.then(async () => {
      if (!this.#head) return undefined;
      const existing = await this.#ns.get<Checkpoint>(["cp", this.#head.seq]);
      if (existing) return existing;
      const cp = this.#sign(this.#head);
      await this.#ns.set(["cp", cp.seq], cp);
      return cp;
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Reads entries from `start` (inclusive) in order. */
  async *read(start = 0, end = this.length): AsyncGenerator<LogEntry> {
    for (let seq = start; seq < end; seq += GET_BATCH) {
      const keys = [];
      for (let i = seq; i < Math.min(end, seq + GET_BATCH); i++) keys.push(["e", i]);
      const entries = await this.#ns.getMany<LogEntry>(keys);
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i];
        if (!entry) throw new IntegrityError(`Event log ${this.name} is truncated: entry ${seq + i} is missing`);
        yield entry;
      }
    }
  }

  /**
   * Checks the whole log: every entry opens, has the sequence number of its
   * key, chains to its predecessor, ends at the head, and no entry lies past
   * the head; every checkpoint is signed, by one of `publicKeys` (default:
   * the signer's current key), over a hash the chain reproduces.
   */
  verify(options: { publicKeys?: Uint8Array[] } = {}): Promise<VerifyReport> {
    // In turn with appends: an append between reading the head and listing the entries would look like a rollback.
    const run = this.#tail.then(() => this.#verify(options));
    this.#tail = run.catch(() => {});
    return run;
  }

  async #verify(options: { publicKeys?: Uint8Array[] }): Promise<VerifyReport> {
    const trusted = new Set((options.publicKeys ?? [this.#signer.publicKey]).map(toHex));
    const problems: string[] = [];
    let head: Head | undefined;
    try {
      head = await this.#ns.get<Head>(["head"]);
    } catch (error) {
      problems.push(`head: ${(error as Error).message}`);
    }
    const hashes: Uint8Array[] = [];
    let prev: Uint8Array = ZERO_HASH;
    const count = head ? head.seq + 1 : 0;
    let seq = 0;
    for (; seq < count; seq++) {
      let entry: LogEntry | undefined;
      try {
        entry = await this.#ns.get<LogEntry>(["e", seq]);
      } catch (error) {
        problems.push(`entry ${seq}: ${(error as Error).message}`);
        break;
      }
      if (!entry) {
        problems.push(`entry ${seq} is missing: the log was truncated (head says ${count} entries)`);
        break;
      }
      if (entry.seq !== seq) {
        problems.push(`entry ${seq} carries sequence number ${entry.seq}: entries were reordered`);
        break;
      }
      if (toHex(entry.prev) !== toHex(prev)) {
        problems.push(`entry ${seq} does not chain to entry ${seq - 1}: entries were replaced or reordered`);
        break;
      }
      prev = hashEntry(entry);
      hashes.push(prev);
    }
    if (head && problems.length === 0 && toHex(head.hash) !== toHex(prev)) {
      problems.push("the head does not match the last entry");
    }
    let stored = 0;
    for await (const _ of this.#ns.list(["e"], { onError: () => stored++ })) stored++;
    if (stored > count) problems.push(`${stored - count} entries lie past the head: the head was rolled back`);
    let checkpoints = 0;
    try {
      const onError = (error: Error) => problems.push(`a checkpoint: ${error.message}`);
      for await (const { value: cp } of this.#ns.list<Checkpoint>(["cp"], { onError })) {
        checkpoints++;
        if (!trusted.has(toHex(cp.publicKey))) {
          problems.push(`checkpoint at entry ${cp.seq} is signed by an untrusted key`);
        } else if (!crypto.ed25519Verify(cp.publicKey, checkpointMessage(this.name, cp.seq, cp.hash), cp.signature)) {
          problems.push(`checkpoint at entry ${cp.seq} has a bad signature`);
        } else if (cp.seq >= count) {
          problems.push(`checkpoint at entry ${cp.seq} lies past the head: the log was truncated`);
        } else if (cp.seq < hashes.length && toHex(hashes[cp.seq]) !== toHex(cp.hash)) {
          problems.push(`checkpoint at entry ${cp.seq} does not match the chain`);
        }
      }
    } catch (error) {
      problems.push(`checkpoints: ${(error as Error).message}`);
    }
    return { ok: problems.length === 0, entries: hashes.length, checkpoints, problems };
  }
}
