/**
 * Identity export files: an identity's secrets sealed by a passphrase, to be
 * imported on another node (NZ-CRYPTO-01 section "Identity export").
 *
 * The file is JSON: `{ format, did, kdf: { name: "scrypt", N, r, p, salt },
 * nonce, sealed }`. `sealed` is XChaCha20-Poly1305 under the scrypt key, over
 * the CBOR record `{ name, created, seed, x25519Secret }`, with associated data
 * `"nzcore/v1/identity-export" || 0x00 || did`.
 *
 * @module
 */

import { concat, fromBase64Url, toBase64Url, utf8, wipe } from "../bytes.ts";
import {
  checkPassphraseScrypt,
  crypto,
  DEFAULT_SCRYPT,
  passphraseKey,
  randomBytes,
  type ScryptParams,
} from "../crypto/mod.ts";
import { AD_IDENTITY_EXPORT } from "../crypto/labels.ts";
import { CorruptFileError, WrongKeyError } from "../errors.ts";
import { decodeValue, encodeValue } from "../storage/value_codec.ts";
import { Identity, type IdentityRecord } from "./identity.ts";

/** Format tag of an identity export. */
export const IDENTITY_EXPORT_FORMAT = "nzcore-identity/1";

interface ExportFile {
  format: string;
  did: string;
  kdf: { name: "scrypt"; N: number; r: number; p: number; salt: string };
  nonce: string;
  sealed: string;
}

function exportAd(did: string): Uint8Array {
  return concat(utf8(AD_IDENTITY_EXPORT), Uint8Array.of(0), utf8(did));
}

/** Seals `identity` under `passphrase` into the text of an export file. */
export async function exportIdentity(
  identity: Identity,
  passphrase: string,
  options: { scrypt?: ScryptParams } = {},
): Promise<string> {
  if (passphrase.length === 0) throw new RangeError("Invalid passphrase: it is empty");
  const params = options.scrypt ?? DEFAULT_SCRYPT;
  const salt = randomBytes(16), nonce = randomBytes(24);
  const kek = await passphraseKey(passphrase, salt, { ...params, dkLen: 32 });
  const record = identity.toRecord();
  const plaintext = encodeValue(record);
  try {
    const file: ExportFile = {
      format: IDENTITY_EXPORT_FORMAT,
      did: identity.did,
      kdf: { name: "scrypt", N: params.N, r: params.r, p: params.p, salt: toBase64Url(salt) },
      nonce: toBase64Url(nonce),
      sealed: toBase64Url(crypto.xchachaSeal(kek, nonce, plaintext, exportAd(identity.did))),
    };
    return JSON.stringify(file, null, 2) + "\n";
  } finally {
    wipe(kek, plaintext, record.seed, record.x25519Secret);
  }
}

/**
 * Opens an export file. Its scrypt cost must lie within the bounds of
 * `checkPassphraseScrypt` (at most 256 MiB), and derivations run one at a
 * time, so a hostile file or many requests at once cannot exhaust the node.
 *
 * @throws {CorruptFileError} when the text is not an identity export, or its scrypt cost is out of bounds.
 * @throws {WrongKeyError} when the passphrase does not open it.
 */
export async function importIdentity(text: string, passphrase: string): Promise<Identity> {
  let file: ExportFile;
  try {
    file = JSON.parse(text);
  } catch {
    throw new CorruptFileError("The identity file is corrupt: not JSON");
  }
  if (
    typeof file !== "object" || file === null || file.format !== IDENTITY_EXPORT_FORMAT ||
    typeof file.did !== "string" || typeof file.nonce !== "string" || typeof file.sealed !== "string" ||
    typeof file.kdf !== "object" || file.kdf?.name !== "scrypt" || !Number.isInteger(file.kdf.N) ||
    !Number.isInteger(file.kdf.r) || !Number.isInteger(file.kdf.p) || typeof file.kdf.salt !== "string"
  ) {
    throw new CorruptFileError(`The identity file is not an ${IDENTITY_EXPORT_FORMAT} export`);
  }
  const { N, r, p } = file.kdf;
  try {
    checkPassphraseScrypt({ N, r, p });
  } catch (error) {
    throw new CorruptFileError(`The identity file is refused: ${(error as Error).message}`, { cause: error });
  }
  let kek: Uint8Array;
  try {
    kek = await passphraseKey(passphrase, fromBase64Url(file.kdf.salt), { N, r, p, dkLen: 32 });
  } catch (error) {
    // a salt that is not base64url or parameters scrypt refuses: the file is malformed
    throw new CorruptFileError("The identity file is corrupt: unusable kdf salt or parameters", { cause: error });
  }
  let plaintext: Uint8Array;
  try {
    plaintext = crypto.xchachaOpen(kek, fromBase64Url(file.nonce), fromBase64Url(file.sealed), exportAd(file.did));
  } catch {
    throw new WrongKeyError("Wrong passphrase, or the identity file was altered");
  } finally {
    wipe(kek);
  }
  let identity: Identity;
  try {
    const record = decodeValue<IdentityRecord>(plaintext);
    identity = Identity.fromRecord(record);
    wipe(record.seed, record.x25519Secret);
  } catch (error) {
    // authentic, yet not an identity record: sealed by a writer that knew the passphrase
    throw new CorruptFileError("The identity file is corrupt: the sealed record is not an identity", { cause: error });
  } finally {
    wipe(plaintext);
  }
  if (identity.did !== file.did) {
    identity.wipe();
    throw new CorruptFileError("The identity file's keys do not match its did");
  }
  return identity;
}
