/**
 * `did:key` identifiers for Ed25519 public keys (W3C did:key method):
 * `did:key:z` + base58btc(0xed 0x01 || public key), where 0xed01 is the
 * unsigned-varint multicodec code of `ed25519-pub` and `z` the multibase
 * prefix of base58btc.
 *
 * @module
 */

import { base58 } from "@scure/base";
import { assertBytes, concat } from "../bytes.ts";

const MULTICODEC_ED25519_PUB = Uint8Array.of(0xed, 0x01);
const PREFIX = "did:key:z";

/** The did:key of an Ed25519 public key. */
export function encodeDidKey(publicKey: Uint8Array): string {
  assertBytes(publicKey, 32, "publicKey");
  return PREFIX + base58.encode(concat(MULTICODEC_ED25519_PUB, publicKey));
}

/**
 * The Ed25519 public key in a did:key.
 *
 * @throws {SyntaxError} when `did` is not an Ed25519 did:key.
 */
export function decodeDidKey(did: string): Uint8Array {
  if (!did.startsWith(PREFIX)) throw new SyntaxError(`Invalid did:key: expected prefix "${PREFIX}"`);
  let bytes: Uint8Array;
  try {
    bytes = base58.decode(did.slice(PREFIX.length));
  } catch {
    throw new SyntaxError("Invalid did:key: not base58btc");
  }
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01) {
    throw new SyntaxError("Invalid did:key: expected an ed25519-pub multicodec key of 32 bytes");
  }
  return bytes.slice(2);
}
