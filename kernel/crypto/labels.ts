/**
 * Every KDF label and associated-data prefix of NZ-CRYPTO-01 (spec/crypto.md).
 * A label is used for exactly one purpose; changing one changes the format.
 *
 * @module
 */

/** HKDF info for the subkey that seals KV values of one namespace; the namespace's encoded name follows. */
export const LABEL_KV_VALUE = "nzcore/v1/kv/value";
/** HKDF info for the subkey that turns KV key parts into opaque tags; the namespace's encoded name follows. */
export const LABEL_KV_TAG = "nzcore/v1/kv/tag";
/** HKDF info for the subkey that seals blob chunks. */
export const LABEL_BLOB = "nzcore/v1/blob/chunk";
/** HKDF info for the subkey that hides blob addresses in KV keys. */
export const LABEL_BLOB_TAG = "nzcore/v1/blob/tag";
/** HKDF info for the subkey that hides API token hashes in KV keys. */
export const LABEL_TOKEN = "nzcore/v1/api/token";
/** HKDF info for a sealed box's key (salt = ephemeral public || recipient public). */
export const LABEL_SEALED_BOX = "nzcore/v1/sealed-box";
/** Associated data prefix of the master key sealed by a passphrase or key file. */
export const AD_MASTER = "nzcore/v1/master";
/** Associated data prefix of an identity export file. */
export const AD_IDENTITY_EXPORT = "nzcore/v1/identity-export";
/** Domain prefix of an event log checkpoint signature. */
export const SIG_LOG_CHECKPOINT = "nzcore/v1/log/checkpoint";
/** Domain prefix of an NZ-RECORD-01 signed record's signature (a zero byte follows it). */
export const SIG_RECORD = "nzcore/v1/record";
