/**
 * Key derivation rules of NZ-CRYPTO-01: subkeys of a master key by label, and
 * the passphrase KDF: its default scrypt cost, the bounds of a cost read from
 * a file, and derivation one at a time.
 *
 * @module
 */

import { assertBytes, utf8, wipe } from "../bytes.ts";
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

/** Most memory a passphrase KDF may need, 128 * N * r bytes: 256 MiB, twice the default's. */
export const PASSPHRASE_MAX_MEMORY = 256 * 2 ** 20;
/** Most work a passphrase KDF may ask for, 128 * N * r * p: 1 GiB, eight times the default's. */
export const PASSPHRASE_MAX_WORK = 2 ** 30;

/**
 * Checks scrypt parameters read from a file (a sealed master key, an identity
 * export) against the bounds of a passphrase KDF, so a hostile file cannot
 * make the node allocate gigabytes or compute for minutes: N a power of two
 * of at least 2, r in 1..32, p in 1..16, 128 * N * r at most 256 MiB, and
 * 128 * N * r * p at most 1 GiB.
 *
 * @param params The parameters; dkLen is not checked.
 * @throws {RangeError} naming the parameter out of bounds.
 *
 * @example Refuse a cost of 1 GiB
 * ```ts
 * import { checkPassphraseScrypt, DEFAULT_SCRYPT } from "./kdf.ts";
 *
 * checkPassphraseScrypt(DEFAULT_SCRYPT);
 * let refused = false;
 * try {
 *   checkPassphraseScrypt({ N: 2 ** 20, r: 8, p: 1 });
 * } catch {
 *   refused = true;
 * }
 * if (!refused) throw new Error("Cannot bound scrypt");
 * ```
 */
export function checkPassphraseScrypt(params: Pick<ScryptParams, "N" | "r" | "p">): void {
  const { N, r, p } = params;
  for (const [name, value, max] of [["N", N, 2 ** 30], ["r", r, 32], ["p", p, 16]] as const) {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > max) {
      throw new RangeError(`Invalid scrypt ${name}: ${String(value)}, expected an integer in 1..${max}`);
    }
  }
  // RFC 7914 section 2: N is a power of two greater than 1.
  if (N < 2 || (N & (N - 1)) !== 0) throw new RangeError(`Invalid scrypt N: ${N}, expected a power of two >= 2`);
  const memory = 128 * N * r;
  if (memory > PASSPHRASE_MAX_MEMORY) {
    throw new RangeError(
      `Invalid scrypt cost: N = ${N}, r = ${r} need ${memory / 2 ** 20} MiB, expected at most ${
        PASSPHRASE_MAX_MEMORY / 2 ** 20
      } MiB`,
    );
  }
  if (memory * p > PASSPHRASE_MAX_WORK) {
    throw new RangeError(
      `Invalid scrypt cost: N = ${N}, r = ${r}, p = ${p} is ${memory * p / 2 ** 20} MiB of work, expected at most ${
        PASSPHRASE_MAX_WORK / 2 ** 20
      } MiB`,
    );
  }
}

let passphraseTail: Promise<unknown> = Promise.resolve();

/**
 * Derives a key from a passphrase: scrypt (RFC 7914) of the UTF-8 of its NFKC
 * form. Derivations run one at a time, in call order, across the process, so
 * parallel requests queue up rather than each taking its share of memory and
 * CPU at once.
 *
 * @param passphrase The passphrase, normalised to NFKC here.
 * @param salt The salt.
 * @param params The scrypt cost and output length, within {@linkcode checkPassphraseScrypt}'s bounds.
 * @returns `params.dkLen` bytes; the caller wipes them when done.
 * @throws {RangeError} when the parameters are out of bounds (the promise rejects).
 *
 * @example Derive a key-encryption key
 * ```ts
 * import { passphraseKey } from "./kdf.ts";
 *
 * const salt = new Uint8Array(16);
 * const kek = await passphraseKey("correct horse", salt, { N: 1024, r: 8, p: 1, dkLen: 32 });
 * if (kek.length !== 32) throw new Error("Cannot derive key");
 * ```
 */
export function passphraseKey(passphrase: string, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  const run = passphraseTail.then(async () => {
    checkPassphraseScrypt(params);
    const bytes = utf8(passphrase.normalize("NFKC"));
    try {
      return await crypto.scrypt(bytes, salt, params);
    } finally {
      wipe(bytes);
    }
  });
  passphraseTail = run.catch(() => {});
  return run;
}

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
