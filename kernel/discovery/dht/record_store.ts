/**
 * The records a DHT node stores for others (NZ-DHT-01 section 7): only what
 * NZ-RECORD-01 accepts (peer, mutable and service records, signed, not
 * expired, not too long-lived), under one of the record's own keys, the
 * newest per slot (higher seq wins, a stale one is refused), at most 64 slots
 * per key and a byte cap over all; expired records are dropped.
 *
 * @module
 */

import { toHex } from "../../bytes.ts";
import { compareRecords, MAX_RECORD_SIZE, openRecord, RecordError, recordKeys, type SignedRecord } from "../record.ts";
import { ERROR_CODES } from "./message.ts";

/** Default most records (slots) under one key. */
export const DEFAULT_MAX_PER_KEY = 64;
/** Default most bytes of records held in all. */
export const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;

/** Options of a {@linkcode RecordStore}. */
export interface RecordStoreOptions {
  /** Most records under one key; default 64. */
  maxPerKey?: number;
  /** Most bytes of records in all; default 8 MiB. */
  maxBytes?: number;
}

/** A stored record with when it was last stored. */
export interface StoredRecord {
  /** The accepted record. */
  record: SignedRecord;
  /** When a STORE (or a local put) last brought it, in ms. */
  storedAt: number;
}

/** What `put` did. */
export type StoreOutcome =
  | { ok: true; result: "added" | "replaced" | "refreshed" }
  | { ok: false; code: number; reason: string };

function slotOf(record: SignedRecord): string {
  return `${record.kind}|${toHex(record.publicKey)}|${toHex(record.name)}`;
}

/**
 * Records by key and slot.
 *
 * @example
 * ```ts
 * import { RecordStore } from "./record_store.ts";
 * import { peerKey, peerRecord } from "../record.ts";
 * import { Identity } from "../../identity/identity.ts";
 *
 * const store = new RecordStore();
 * const record = peerRecord(Identity.generate("a"), ["udp://192.0.2.1:7475"]);
 * const outcome = store.put(peerKey(record.publicKey), record.bytes, Date.now());
 * if (!outcome.ok || store.get(peerKey(record.publicKey), Date.now()).length !== 1) throw new Error("Cannot store");
 * ```
 */
export class RecordStore {
  #keys = new Map<string, { key: Uint8Array; slots: Map<string, StoredRecord> }>();
  #bytes = 0;
  #count = 0;
  #maxPerKey: number;
  #maxBytes: number;

  /** An empty store. */
  constructor(options: RecordStoreOptions = {}) {
    this.#maxPerKey = options.maxPerKey ?? DEFAULT_MAX_PER_KEY;
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** Records held. */
  get size(): number {
    return this.#count;
  }

  /** Bytes of the records held. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Stores the record `bytes` under `key`, as section 7.1 says: refused when
   * over 1080 bytes (`tooLarge`), not accepted by NZ-RECORD-01, an
   * introduction, or not stored under `key` (`refusedRecord`), older than or
   * conflicting with the record of its slot (`stale`), or when the key or the
   * store is full (`full`).
   */
  put(key: Uint8Array, bytes: Uint8Array, now: number): StoreOutcome {
    if (bytes.length > MAX_RECORD_SIZE) {
      return refuse("tooLarge", `record of ${bytes.length} bytes, the limit is ${MAX_RECORD_SIZE}`);
    }
    let record: SignedRecord;
    try {
      record = openRecord(bytes.slice(), now);
    } catch (error) {
      if (error instanceof RecordError) return refuse("refusedRecord", `record ${error.reason}: ${error.message}`);
      throw error;
    }
    if (record.kind === "introduction") return refuse("refusedRecord", "an introduction is never stored");
    const keyHex = toHex(key);
    if (!recordKeys(record).some((k) => toHex(k) === keyHex)) {
      return refuse("refusedRecord", "the record is not stored under this key");
    }
    this.#expireKey(keyHex, now);
    let entry = this.#keys.get(keyHex);
    const slot = slotOf(record);
    const kept = entry?.slots.get(slot);
    if (kept) {
      const order = compareRecords(record, kept.record);
      if (order < 0) {
        return refuse("stale", `stale record: seq ${record.seq}, the kept one has seq ${kept.record.seq}`);
      }
      if (order === 0) {
        kept.storedAt = now;
        return { ok: true, result: "refreshed" };
      }
      const grow = record.bytes.length - kept.record.bytes.length;
      if (this.#bytes + grow > this.#maxBytes) return refuse("full", "the store is full");
      entry!.slots.set(slot, { record, storedAt: now });
      this.#bytes += grow;
      return { ok: true, result: "replaced" };
    }
    if (entry && entry.slots.size >= this.#maxPerKey) {
      return refuse("full", `this key holds ${this.#maxPerKey} records already`);
    }
    if (this.#bytes + record.bytes.length > this.#maxBytes) return refuse("full", "the store is full");
    if (!entry) {
      entry = { key: key.slice(), slots: new Map() };
      this.#keys.set(keyHex, entry);
    }
    entry.slots.set(slot, { record, storedAt: now });
    this.#bytes += record.bytes.length;
    this.#count++;
    return { ok: true, result: "added" };
  }

  /** The records under `key` that have not expired at `now`, oldest slot first. */
  get(key: Uint8Array, now: number): SignedRecord[] {
    const keyHex = toHex(key);
    this.#expireKey(keyHex, now);
    const entry = this.#keys.get(keyHex);
    return entry ? [...entry.slots.values()].map((s) => s.record) : [];
  }

  /** Every key with its stored records (for republishing), after dropping expired ones. */
  entries(now: number): { key: Uint8Array; records: StoredRecord[] }[] {
    this.expire(now);
    return [...this.#keys.values()].map((e) => ({ key: e.key, records: [...e.slots.values()] }));
  }

  /** Drops every record expired at `now`; returns how many. */
  expire(now: number): number {
    const before = this.#count;
    for (const keyHex of [...this.#keys.keys()]) this.#expireKey(keyHex, now);
    return before - this.#count;
  }

  #expireKey(keyHex: string, now: number): void {
    const entry = this.#keys.get(keyHex);
    if (!entry) return;
    for (const [slot, stored] of entry.slots) {
      if (stored.record.expires <= now) {
        entry.slots.delete(slot);
        this.#bytes -= stored.record.bytes.length;
        this.#count--;
      }
    }
    if (entry.slots.size === 0) this.#keys.delete(keyHex);
  }
}

function refuse(code: keyof typeof ERROR_CODES, reason: string): StoreOutcome {
  return { ok: false, code: ERROR_CODES[code], reason: reason.slice(0, 200) };
}
