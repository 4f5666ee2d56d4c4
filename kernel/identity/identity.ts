/**
 * A node identity: an Ed25519 signing key and an X25519 agreement key, with
 * the node ID and did:key derived from the Ed25519 public key.
 *
 * The node ID is the lowercase hex SHA-256 of the 32-byte Ed25519 public key
 * (NZ-CRYPTO-01 section "Identity").
 *
 * @module
 */

import { assertBytes, toHex, wipe } from "../bytes.ts";
import { crypto, randomBytes, sha256 } from "../crypto/mod.ts";
import { openSealed, sealTo } from "../crypto/sealed_box.ts";
import { encodeDidKey } from "./did.ts";

/** The stored form of an identity, secrets included; only ever written sealed. */
export interface IdentityRecord {
  /** The identity's local name. */
  name: string;
  /** Creation time, in milliseconds since the Unix epoch. */
  created: number;
  /** Ed25519 seed (32 bytes). */
  seed: Uint8Array;
  /** X25519 secret (32 bytes). */
  x25519Secret: Uint8Array;
}

/** What may be shown of an identity. */
export interface IdentityInfo {
  /** The identity's local name. */
  name: string;
  /** The node ID: lowercase hex SHA-256 of the Ed25519 public key. */
  nodeId: string;
  /** The `did:key` of the Ed25519 public key. */
  did: string;
  /** The Ed25519 public key, lowercase hex (32 bytes). */
  publicKey: string;
  /** The X25519 public key, lowercase hex (32 bytes). */
  agreementKey: string;
  /** Creation time, in milliseconds since the Unix epoch. */
  created: number;
}

/** The node ID of an Ed25519 public key: hex SHA-256 of it. */
export function nodeIdOf(publicKey: Uint8Array): string {
  assertBytes(publicKey, 32, "publicKey");
  return toHex(sha256(publicKey));
}

/**
 * Checks that `nodeId` is a node ID as {@linkcode nodeIdOf} writes it (64
 * lowercase hex digits) and returns it.
 *
 * @param nodeId The value to check.
 * @param name Names the parameter in the error.
 * @returns `nodeId`.
 * @throws {TypeError} for anything else.
 */
export function validNodeId(nodeId: string, name: string): string {
  if (typeof nodeId !== "string" || !/^[0-9a-f]{64}$/.test(nodeId)) {
    throw new TypeError(`Invalid ${name}: expected a node ID (64 lowercase hex digits)`);
  }
  return nodeId;
}

/** A loaded identity. Call `wipe()` when it is no longer needed. */
export class Identity {
  /** The identity's local name. */
  readonly name: string;
  /** Creation time, in milliseconds since the Unix epoch. */
  readonly created: number;
  /** Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** X25519 public key. */
  readonly agreementKey: Uint8Array;
  /** The node ID: lowercase hex SHA-256 of {@linkcode Identity.publicKey}. */
  readonly nodeId: string;
  /** The `did:key` of {@linkcode Identity.publicKey}. */
  readonly did: string;
  #seed: Uint8Array;
  #x25519Secret: Uint8Array;
  #info: IdentityInfo | undefined;

  private constructor(record: IdentityRecord) {
    assertBytes(record.seed, 32, "seed");
    assertBytes(record.x25519Secret, 32, "x25519Secret");
    this.name = record.name;
    this.created = record.created;
    this.#seed = record.seed.slice();
    this.#x25519Secret = record.x25519Secret.slice();
    this.publicKey = crypto.ed25519PublicKey(this.#seed);
    this.agreementKey = crypto.x25519PublicKey(this.#x25519Secret);
    this.nodeId = nodeIdOf(this.publicKey);
    this.did = encodeDidKey(this.publicKey);
  }

  /** A new identity with fresh random keys. */
  static generate(name: string, now = Date.now()): Identity {
    const seed = randomBytes(32), x25519Secret = randomBytes(32);
    try {
      return new Identity({ name, created: now, seed, x25519Secret });
    } finally {
      wipe(seed, x25519Secret);
    }
  }

  /** An identity from its stored record (the record's bytes are copied). */
  static fromRecord(record: IdentityRecord): Identity {
    return new Identity(record);
  }

  /** The record to store, secrets included; the caller wipes it after sealing. */
  toRecord(): IdentityRecord {
    return {
      name: this.name,
      created: this.created,
      seed: this.#seed.slice(),
      x25519Secret: this.#x25519Secret.slice(),
    };
  }

  /** Public facts, for the API. */
  info(): IdentityInfo {
    this.#info ??= Object.freeze({
      name: this.name,
      nodeId: this.nodeId,
      did: this.did,
      publicKey: toHex(this.publicKey),
      agreementKey: toHex(this.agreementKey),
      created: this.created,
    });
    return this.#info;
  }

  /** Signs `message` with Ed25519. */
  sign(message: Uint8Array): Uint8Array {
    return crypto.ed25519Sign(this.#seed, message);
  }

  /** Verifies an Ed25519 signature by `publicKey`. */
  static verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    return crypto.ed25519Verify(publicKey, message, signature);
  }

  /** Seals `plaintext` so only the holder of `agreementKey`'s secret can open it. */
  static sealTo(agreementKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return sealTo(agreementKey, plaintext);
  }

  /** Opens a sealed box addressed to this identity. */
  openSealed(sealed: Uint8Array): Uint8Array {
    return openSealed(this.#x25519Secret, sealed);
  }

  /** Overwrites the secret keys held by this object. */
  wipe(): void {
    wipe(this.#seed, this.#x25519Secret);
  }
}
