/**
 * Plugin bundles (NZ-PLUGIN-01 "Bundle"): a plugin's files in one signed
 * CBOR value, the `.nzp` file. {@linkcode packBundle} reads a plugin folder
 * and signs it with a node identity; {@linkcode openBundle} checks the
 * signature, that the signer is trusted, every path and every size, and only
 * then returns the manifest and files.
 *
 * ```
 * bundle = { "v": 1, "body": bstr, "signer": tstr (did:key), "sig": bstr .size 64 }
 * body   = { "manifest": bstr (plugin.json), "files": { * tstr => bstr } }
 * sig    = Ed25519(signer, SHA-256("NZ-PLUGIN-01 bundle" || 0x00 || body))
 * ```
 *
 * @module
 */

import { decode, encode } from "cborg";
import { join } from "node:path";
import { concat, utf8 } from "../bytes.ts";
import { sha256 } from "../crypto/mod.ts";
import { decodeDidKey, encodeDidKey } from "../identity/did.ts";
import { Identity } from "../identity/identity.ts";
import { decodePluginManifest, isPluginPath, MAX_MANIFEST_BYTES, type PluginManifest } from "./plugin_manifest.ts";

/** The bundle format's version. */
export const BUNDLE_VERSION = 1;
/** Domain separation of the signed hash. */
export const BUNDLE_DOMAIN: Uint8Array = utf8("NZ-PLUGIN-01 bundle\0");
/** Largest bundle file, in bytes. */
export const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;
/** Most files in a bundle (plugin.json excluded). */
export const MAX_BUNDLE_FILES = 1000;
/** The manifest's file name in a plugin folder. */
export const MANIFEST_FILE = "plugin.json";

/** What a signer needs: the Ed25519 key of a node identity. */
export interface BundleSigner {
  /** The Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Signs with the matching secret key. */
  sign(message: Uint8Array): Uint8Array;
}

/** An opened, verified bundle. */
export interface OpenedBundle {
  /** The validated manifest. */
  manifest: PluginManifest;
  /** The raw `plugin.json`. */
  manifestBytes: Uint8Array;
  /** Every file but `plugin.json`, by relative path. */
  files: Map<string, Uint8Array>;
  /** The signer's DID. */
  signer: string;
}

/** A plugin folder read into memory (what a bundle carries). */
export interface PluginFiles {
  /** The validated manifest. */
  manifest: PluginManifest;
  /** The raw `plugin.json`. */
  manifestBytes: Uint8Array;
  /** Every file but `plugin.json`, by relative path. */
  files: Map<string, Uint8Array>;
}

/** The message an Ed25519 signature of a bundle covers. */
function signedHash(body: Uint8Array): Uint8Array {
  return sha256(concat(BUNDLE_DOMAIN, body));
}

/**
 * Reads a plugin folder: `plugin.json` and every regular file below it
 * (symbolic links and other special files are refused, and so are names
 * outside the portable set).
 *
 * @throws {SyntaxError} when the manifest is malformed, a name is not portable, or the folder is too large.
 * @throws {Deno.errors.NotFound} when the folder or its `plugin.json` is missing.
 */
export async function readPluginDir(dir: string): Promise<PluginFiles> {
  const manifestBytes = await Deno.readFile(join(dir, MANIFEST_FILE));
  const manifest = decodePluginManifest(manifestBytes, join(dir, MANIFEST_FILE));
  const files = new Map<string, Uint8Array>();
  let total = manifestBytes.length;
  const walk = async (rel: string) => {
    for await (const entry of Deno.readDir(rel ? join(dir, rel) : dir)) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (path === MANIFEST_FILE) continue;
      if (!isPluginPath(path)) throw new SyntaxError(`Cannot take the plugin file "${path}": its name is not portable`);
      if (entry.isSymlink) throw new SyntaxError(`Cannot take the plugin file "${path}": it is a symbolic link`);
      if (entry.isDirectory) {
        await walk(path);
        continue;
      }
      if (!entry.isFile) throw new SyntaxError(`Cannot take the plugin file "${path}": it is not a regular file`);
      if (files.size >= MAX_BUNDLE_FILES) throw new SyntaxError(`The plugin has more than ${MAX_BUNDLE_FILES} files`);
      const bytes = await Deno.readFile(join(dir, path));
      total += bytes.length;
      if (total > MAX_BUNDLE_BYTES) throw new SyntaxError(`The plugin's files exceed ${MAX_BUNDLE_BYTES} bytes`);
      files.set(path, bytes);
    }
  };
  await walk("");
  if (!files.has(manifest.entry)) {
    throw new SyntaxError(`Invalid plugin manifest "${join(dir, MANIFEST_FILE)}": entry: no file "${manifest.entry}"`);
  }
  return { manifest, manifestBytes, files };
}

/**
 * Packs the plugin folder `dir` into a bundle signed by `signer`.
 *
 * @returns The bundle's bytes (the `.nzp` file).
 * @throws as {@linkcode readPluginDir}.
 */
export async function packBundle(dir: string, signer: BundleSigner): Promise<Uint8Array> {
  const { manifestBytes, files } = await readPluginDir(dir);
  return encodeBundle({ manifestBytes, files }, signer);
}

/** Encodes and signs a bundle of `manifestBytes` and `files`. */
export function encodeBundle(
  content: { manifestBytes: Uint8Array; files: ReadonlyMap<string, Uint8Array> },
  signer: BundleSigner,
): Uint8Array {
  const body = encode({ manifest: content.manifestBytes, files: Object.fromEntries(content.files) });
  const sig = signer.sign(signedHash(body));
  return encode({ v: BUNDLE_VERSION, body, signer: encodeDidKey(signer.publicKey), sig });
}

const bad = (why: string) => new SyntaxError(`Invalid plugin bundle: ${why}`);

/** Decodes CBOR into Maps (never plain objects: no `__proto__` keys), within limits. */
function decodeMap(bytes: Uint8Array, what: string): Map<unknown, unknown> {
  let value: unknown;
  try {
    value = decode(bytes, { useMaps: true, rejectDuplicateMapKeys: true, strict: true });
  } catch (error) {
    throw bad(`${what} is not valid CBOR (${(error as Error).message})`);
  }
  if (!(value instanceof Map)) throw bad(`${what} is not a CBOR map`);
  return value;
}

/**
 * Opens a bundle: checks its form and size, that `sig` is the signer's
 * signature of its body, that the signer is one of `trusted` (DIDs), every
 * path and the manifest.
 *
 * @param bytes The bundle file.
 * @param trusted The DIDs whose bundles are accepted.
 * @throws {SyntaxError} when it is malformed, oversized, unsigned, or holds an unsafe path or invalid manifest.
 * @throws {RangeError} when the signature does not verify, or the signer is not trusted.
 */
export function openBundle(bytes: Uint8Array, trusted: ReadonlySet<string>): OpenedBundle {
  if (bytes.length > MAX_BUNDLE_BYTES) throw bad(`${bytes.length} bytes, expected at most ${MAX_BUNDLE_BYTES}`);
  const outer = decodeMap(bytes, "the file");
  for (const key of outer.keys()) {
    if (!["v", "body", "signer", "sig"].includes(key as string)) throw bad(`unknown field "${String(key)}"`);
  }
  if (outer.get("v") !== BUNDLE_VERSION) throw bad(`version ${String(outer.get("v"))}, expected ${BUNDLE_VERSION}`);
  const body = outer.get("body");
  if (!(body instanceof Uint8Array)) throw bad(`"body" is missing or not a byte string`);
  const signer = outer.get("signer");
  const sig = outer.get("sig");
  if (signer === undefined || sig === undefined) throw bad("it is unsigned (no signer or signature)");
  if (typeof signer !== "string") throw bad(`"signer" is not a string`);
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw bad(`"sig" is not a 64-byte Ed25519 signature`);
  let publicKey: Uint8Array;
  try {
    publicKey = decodeDidKey(signer);
  } catch (error) {
    throw bad(`"signer": ${(error as Error).message}`);
  }
  if (!Identity.verify(publicKey, signedHash(body), sig)) {
    throw new RangeError(
      `The plugin bundle's signature does not verify: it is not signed by ${signer}, or was altered`,
    );
  }
  if (!trusted.has(signer)) {
    throw new RangeError(
      `The plugin bundle is signed by ${signer}, which this node does not trust (nzcore plugins trust <did>)`,
    );
  }
  const inner = decodeMap(body, "the body");
  for (const key of inner.keys()) {
    if (key !== "manifest" && key !== "files") throw bad(`unknown body field "${String(key)}"`);
  }
  const manifestBytes = inner.get("manifest");
  if (!(manifestBytes instanceof Uint8Array)) throw bad(`"manifest" is missing or not a byte string`);
  if (manifestBytes.length > MAX_MANIFEST_BYTES) throw bad(`"manifest" exceeds ${MAX_MANIFEST_BYTES} bytes`);
  const list = inner.get("files");
  if (!(list instanceof Map)) throw bad(`"files" is missing or not a map`);
  if (list.size > MAX_BUNDLE_FILES) throw bad(`${list.size} files, expected at most ${MAX_BUNDLE_FILES}`);
  const files = new Map<string, Uint8Array>();
  for (const [path, content] of list) {
    if (typeof path !== "string" || !isPluginPath(path) || path === MANIFEST_FILE) {
      throw bad(`the file name ${JSON.stringify(path)} is not a safe relative path`);
    }
    if (!(content instanceof Uint8Array)) throw bad(`the file "${path}" is not a byte string`);
    files.set(path, content);
  }
  const manifest = decodePluginManifest(manifestBytes, `bundle ${MANIFEST_FILE}`);
  if (!files.has(manifest.entry)) throw bad(`the manifest's entry "${manifest.entry}" is not in the bundle`);
  return { manifest, manifestBytes, files, signer };
}
