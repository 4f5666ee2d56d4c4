/**
 * The node's master key: 32 random bytes, sealed on disk either by a
 * passphrase (scrypt) or by a key file that only its owner can read
 * (NZ-CRYPTO-01 section "Master key").
 *
 * `master.json` holds the sealed key; `master.key` holds the key-file secret
 * in unattended mode. Both are written atomically (temporary file, fsync,
 * rename, fsync of the directory) so a crash leaves either the old file or
 * the new one.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { concat, fromBase64Url, toBase64Url, toHex, utf8, wipe } from "../bytes.ts";
import {
  checkPassphraseScrypt,
  crypto,
  DEFAULT_SCRYPT,
  passphraseKey,
  randomBytes,
  type ScryptParams,
} from "../crypto/mod.ts";
import { AD_MASTER } from "../crypto/labels.ts";
import { ConflictError, CorruptFileError, NotFoundError, WrongKeyError } from "../errors.ts";

/** Name of the sealed master key file in the data directory. */
export const MASTER_FILE = "master.json";
/** Name of the key file in unattended mode. */
export const KEY_FILE = "master.key";
/** The format tag written into `master.json`. */
export const MASTER_FORMAT = "nzcore-master/1";

/** How the master key is sealed. */
export type MasterKeyMode = "passphrase" | "keyfile";

/** Options of {@linkcode createMasterKey} and {@linkcode openMasterKey}. */
export interface MasterKeyOptions {
  /** Seal with this passphrase; without it, a key file is used. */
  passphrase?: string;
  /** scrypt parameters for a new passphrase seal (tests use small ones). */
  scrypt?: ScryptParams;
}

/** `master.json` as written. */
interface MasterFile {
  format: string;
  mode: MasterKeyMode;
  kdf?: { name: "scrypt"; N: number; r: number; p: number; salt: string };
  nonce: string;
  sealed: string;
}

/** `master.json` checked and decoded by {@linkcode parseMasterFile}. */
interface MasterSeal {
  mode: MasterKeyMode;
  kdf?: { N: number; r: number; p: number; salt: Uint8Array };
  nonce: Uint8Array;
  sealed: Uint8Array;
}

/** Length of the XChaCha20-Poly1305 nonce. */
const NONCE_LENGTH = 24;
/** Length of the sealed master key: 32 bytes and the 16-byte tag. */
const SEALED_LENGTH = 48;
const KDF_FIELDS = ["name", "N", "r", "p", "salt"];

function masterAd(mode: MasterKeyMode): Uint8Array {
  return concat(utf8(AD_MASTER), Uint8Array.of(0), utf8(mode));
}

/**
 * Writes `data` to `path` atomically with the given mode: a temporary file,
 * fsynced, is renamed over `path`, then the directory is fsynced so the
 * rename itself survives a power loss.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${toHex(randomBytes(6))}`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    let offset = 0;
    while (offset < data.length) offset += await file.write(data.subarray(offset));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.chmod(tmp, mode);
  await Deno.rename(tmp, path);
  await syncDirectory(dirname(path));
}

/**
 * Flushes a directory's entries to disk (a rename in it). Where a directory
 * cannot be opened or fsynced (Windows, some file systems), the rename is
 * left to the operating system: nothing better can be done there.
 */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(dir, { read: true });
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // fsync of a directory is refused on this platform
  } finally {
    handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Checks that a secret file is a regular file owned by this user and
 * readable by nobody else, as ssh does for private keys.
 *
 * @throws {WrongKeyError} when the file is open to others.
 */
export async function assertPrivateFile(path: string): Promise<void> {
  const info = await Deno.lstat(path);
  if (!info.isFile) throw new CorruptFileError(`${path} is not a regular file`);
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new WrongKeyError(
      `${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  if (info.uid !== null && Deno.build.os !== "windows" && info.uid !== Deno.uid()) {
    throw new WrongKeyError(`${path} is owned by uid ${info.uid}, not by this user (uid ${Deno.uid()})`);
  }
}

async function kekFor(file: MasterSeal, dir: string, passphrase: string | undefined): Promise<Uint8Array> {
  if (file.mode === "passphrase") {
    if (passphrase === undefined) {
      throw new WrongKeyError("The master key is sealed by a passphrase, and none was given");
    }
    const kdf = file.kdf!;
    try {
      return await passphraseKey(passphrase, kdf.salt, { N: kdf.N, r: kdf.r, p: kdf.p, dkLen: 32 });
    } catch (error) {
      // parameters scrypt refuses: the file is malformed
      throw new CorruptFileError(`${join(dir, MASTER_FILE)} is corrupt: unusable kdf parameters`, {
        cause: error,
      });
    }
  }
  const keyPath = join(dir, KEY_FILE);
  if (!(await exists(keyPath))) {
    throw new WrongKeyError(`The key file ${keyPath} is missing; the master key cannot be unsealed without it`);
  }
  await assertPrivateFile(keyPath);
  const kek = await Deno.readFile(keyPath);
  if (kek.length !== 32) {
    throw new CorruptFileError(`The key file ${keyPath} is corrupt: length is ${kek.length}, expected 32`);
  }
  return kek;
}

/**
 * Checks every field of `master.json` and decodes its byte strings.
 *
 * @throws {CorruptFileError} naming the first field that is missing, mistyped, not base64url or of the wrong length.
 */
function parseMasterFile(text: string, path: string): MasterSeal {
  const corrupt = (why: string, options?: ErrorOptions) => new CorruptFileError(`${path} is corrupt: ${why}`, options);
  let file: unknown;
  try {
    file = JSON.parse(text);
  } catch {
    throw corrupt("not JSON");
  }
  if (!isObject(file)) throw corrupt("expected a JSON object");
  if (file.format !== MASTER_FORMAT) throw corrupt(`format is ${describe(file.format)}, expected "${MASTER_FORMAT}"`);
  const mode = file.mode;
  if (mode !== "passphrase" && mode !== "keyfile") {
    throw corrupt(`mode is ${describe(mode)}, expected "passphrase" or "keyfile"`);
  }
  const bytes = (value: unknown, name: string, length?: number) => {
    if (typeof value !== "string") throw corrupt(`${name} is ${describe(value)}, expected a base64url string`);
    let decoded: Uint8Array;
    try {
      decoded = fromBase64Url(value);
    } catch (error) {
      throw corrupt(`${name} is not base64url`, { cause: error });
    }
    if (length !== undefined && decoded.length !== length) {
      throw corrupt(`${name} is ${decoded.length} bytes long, expected ${length}`);
    }
    return decoded;
  };
  const seal: MasterSeal = {
    mode,
    nonce: bytes(file.nonce, "nonce", NONCE_LENGTH),
    sealed: bytes(file.sealed, "sealed", SEALED_LENGTH),
  };
  if (mode === "passphrase") {
    const kdf = file.kdf;
    if (!isObject(kdf)) throw corrupt(`kdf is ${describe(kdf)}, expected an object`);
    if (kdf.name !== "scrypt") throw corrupt(`kdf.name is ${describe(kdf.name)}, expected "scrypt"`);
    const unknown = Object.keys(kdf).find((key) => !KDF_FIELDS.includes(key));
    if (unknown !== undefined) throw corrupt(`kdf has an unknown parameter "${unknown}"`);
    for (const name of ["N", "r", "p"] as const) {
      const value = kdf[name];
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
        throw corrupt(`kdf.${name} is ${describe(value)}, expected a positive integer`);
      }
    }
    const [N, r, p] = [kdf.N as number, kdf.r as number, kdf.p as number];
    try {
      checkPassphraseScrypt({ N, r, p });
    } catch (error) {
      throw corrupt((error as Error).message, { cause: error });
    }
    seal.kdf = { N, r, p, salt: bytes(kdf.salt, "kdf.salt") };
  }
  return seal;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, safe description of a JSON value for an error message. */
function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (typeof value === "string") return value.length > 40 ? "a long string" : JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return Array.isArray(value) ? "an array" : "an object";
}

/** Whether `dir` already holds a sealed master key. */
export function hasMasterKey(dir: string): Promise<boolean> {
  return exists(join(dir, MASTER_FILE));
}

/** How the master key in `dir` is sealed. */
export async function masterKeyMode(dir: string): Promise<MasterKeyMode> {
  const path = join(dir, MASTER_FILE);
  return parseMasterFile(await Deno.readTextFile(path), path).mode;
}

/**
 * Creates a new random master key in `dir` and seals it.
 *
 * @returns the master key; the caller wipes it when done.
 * @throws {ConflictError} when `dir` already holds one.
 */
export async function createMasterKey(dir: string, options: MasterKeyOptions = {}): Promise<Uint8Array> {
  const path = join(dir, MASTER_FILE);
  if (await exists(path)) throw new ConflictError(`${path} already exists`);
  if (options.passphrase !== undefined && options.passphrase.length === 0) {
    throw new RangeError("Invalid passphrase: it is empty");
  }
  const master = randomBytes(32);
  await sealMasterKey(dir, master, options);
  return master;
}

/** Seals `master` into `dir`, replacing `master.json` (and `master.key` in key-file mode). */
async function sealMasterKey(dir: string, master: Uint8Array, options: MasterKeyOptions): Promise<void> {
  const mode: MasterKeyMode = options.passphrase !== undefined ? "passphrase" : "keyfile";
  const file: Partial<MasterFile> = { format: MASTER_FORMAT, mode };
  let kek: Uint8Array;
  if (mode === "passphrase") {
    const params = options.scrypt ?? DEFAULT_SCRYPT;
    const salt = randomBytes(16);
    kek = await passphraseKey(options.passphrase!, salt, { ...params, dkLen: 32 });
    file.kdf = { name: "scrypt", N: params.N, r: params.r, p: params.p, salt: toBase64Url(salt) };
  } else {
    kek = randomBytes(32);
    await writeFileAtomic(join(dir, KEY_FILE), kek, 0o600);
  }
  const nonce = randomBytes(NONCE_LENGTH);
  file.nonce = toBase64Url(nonce);
  file.sealed = toBase64Url(crypto.xchachaSeal(kek, nonce, master, masterAd(mode)));
  wipe(kek);
  await writeFileAtomic(join(dir, MASTER_FILE), utf8(JSON.stringify(file, null, 2) + "\n"), 0o600);
}

/**
 * Unseals the master key in `dir`.
 *
 * @throws {NotFoundError} when `dir` holds none.
 * @throws {WrongKeyError} on a wrong or missing passphrase, or a missing key file.
 * @throws {CorruptFileError} when a file is malformed.
 */
export async function openMasterKey(dir: string, options: MasterKeyOptions = {}): Promise<Uint8Array> {
  const path = join(dir, MASTER_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new NotFoundError(`No master key in ${dir}`);
    throw error;
  }
  const file = parseMasterFile(text, path);
  const kek = await kekFor(file, dir, options.passphrase);
  try {
    return crypto.xchachaOpen(kek, file.nonce, file.sealed, masterAd(file.mode));
  } catch {
    throw file.mode === "passphrase"
      ? new WrongKeyError(`Wrong passphrase: it does not unseal the master key in ${path}`)
      : new WrongKeyError(`The key file does not unseal the master key in ${path} (wrong or corrupt key file)`);
  } finally {
    wipe(kek);
  }
}
