/**
 * Key derivation rules of NZ-CRYPTO-01: subkeys of a master key by label, and
 * the default scrypt cost for passphrases.
 *
 * @module
 */

import { assertBytes, utf8 } from "../bytes.ts";
import { crypto } from "./default.ts";
import type { ScryptParams } from "./provider.ts";

const EMPTY = new Uint8Array(0);

/** Shortest master key `deriveKey` accepts: 256 bits. */
export const MIN_MASTER_LENGTH = 32;

/**
 * Default scrypt cost for passphrases (RFC 7914): N = 2^17, r = 8, p = 1, 32
 * bytes out. It needs 128 MiB and a few hundred milliseconds natively. Frozen.
 */
export const DEFAULT_SCRYPT: ScryptParams = Object.freeze({ N: 2 ** 17, r: 8, p: 1, dkLen: 32 });

/**
 * Derives a subkey of `master` for one purpose, named by `label`:
 *
 * `HKDF-SHA-256(ikm = master, salt = "" (zero length), info = UTF-8(label) || 0x00 || context, length)`
 *
 * The single 0x00 byte ends the label, so a label may not contain U+0000; the
 * context follows verbatim (it may be empty and may contain any bytes).
 * Labels are the constants of `labels.ts`, each used for exactly one purpose.
 *
 * @param master The master key, at least 32 bytes.
 * @param label A purpose label such as `LABEL_BLOB`; non-empty, without U+0000.
 * @param context Optional bytes binding the subkey to an instance (e.g. a namespace name); default empty.
 * @param length Subkey length in bytes, 1..8160; default 32.
 * @returns The subkey.
 * @throws {TypeError} when `master` or `context` is not a Uint8Array, or `label` is not a string.
 * @throws {RangeError} when `master` is shorter than 32 bytes, `label` is empty or contains U+0000, or `length` is out of range.
 *
 * @example Derive the blob key
 * ```ts
 * import { deriveKey } from "./kdf.ts";
 * import { LABEL_BLOB } from "./labels.ts";
 *
 * const master = new Uint8Array(32).fill(1);
 * const key = deriveKey(master, LABEL_BLOB);
 * if (key.length !== 32) throw new Error("Cannot derive key");
 * ```
 */
export function deriveKey(master: Uint8Array, label: string, context: Uint8Array = EMPTY, length = 32): Uint8Array {
  assertBytes(master, undefined, "master");
  if (master.length < MIN_MASTER_LENGTH) {
    throw new RangeError(`Invalid master: length is ${master.length}, expected >= ${MIN_MASTER_LENGTH}`);
  }
  if (typeof label !== "string") throw new TypeError(`Invalid label: expected string, got ${typeof label}`);
  if (label.length === 0 || label.includes("\0")) {
    throw new RangeError(`Invalid label "${label.replaceAll("\0", "\\0")}": expected non-empty text without U+0000`);
  }
  assertBytes(context, undefined, "context");
  const labelBytes = utf8(label);
  const info = new Uint8Array(labelBytes.length + 1 + context.length);
  info.set(labelBytes, 0);
  info[labelBytes.length] = 0x00;
  info.set(context, labelBytes.length + 1);
  return crypto.hkdf(master, EMPTY, info, length);
}
