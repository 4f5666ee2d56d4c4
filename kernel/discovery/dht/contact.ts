/**
 * Contacts and the XOR metric of NZ-DHT-01 (section 2): node IDs are 256-bit
 * SHA-256 digests of Ed25519 public keys, and the distance between two IDs is
 * their bitwise XOR read as an unsigned big-endian integer (Maymounkov and
 * Mazieres 2002, section 2.1).
 *
 * @module
 */

import { toHex } from "../../bytes.ts";
import type { UdpAddr } from "../../../transport/udp.ts";

/** A DHT node: its ID and the UDP address it answered at. */
export interface Contact {
  /** The node ID: SHA-256 of its Ed25519 public key (32 bytes). */
  id: Uint8Array;
  /** Where it answers. */
  addr: UdpAddr;
}

/** A map key for an ID: lowercase hex. */
export function idKey(id: Uint8Array): string {
  return toHex(id);
}

/**
 * Compares the XOR distances of `a` and `b` to `target`: negative when `a` is
 * closer, positive when `b` is, 0 when they are the same ID.
 */
export function compareDistance(a: Uint8Array, b: Uint8Array, target: Uint8Array): number {
  for (let i = 0; i < 32; i++) {
    const d = (a[i] ^ target[i]) - (b[i] ^ target[i]);
    if (d !== 0) return d;
  }
  return 0;
}

/** The number of leading bits `a` and `b` share, 0-256 (256 when they are equal). */
export function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 32; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 256;
}

/** Whether two IDs are equal. */
export function sameId(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return a.length === b.length;
}

/** Sorts contacts by distance to `target`, closest first (in place), and returns them. */
export function sortByDistance<T extends { id: Uint8Array }>(contacts: T[], target: Uint8Array): T[] {
  return contacts.sort((a, b) => compareDistance(a.id, b.id, target));
}
