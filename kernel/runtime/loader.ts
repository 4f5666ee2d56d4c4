/**
 * External services from manifests on disk: every `*.json` file in a
 * directory (the data directory's `services/`). A file that is not valid
 * JSON or not a valid manifest is refused with a message naming the file
 * and the field; the others load all the same.
 *
 * @module
 */

import { join } from "node:path";
import { isBuiltin, parseManifest, type ServiceManifest } from "./manifest.ts";

/** What {@linkcode loadServiceManifests} found. */
export interface LoadedManifests {
  /** The valid manifests, by file name order, each with its file. */
  manifests: { manifest: ServiceManifest; path: string }[];
  /** The refused files, each with a message that names the file and the fault. */
  errors: { path: string; message: string }[];
}

/** Largest manifest file read. */
const MAX_MANIFEST_BYTES = 64 * 1024;

/**
 * Reads every `*.json` manifest in `dir` (none when `dir` does not exist).
 *
 * @param dir The directory, e.g. `DATA_DIR/services`.
 * @returns The valid manifests and the refused files.
 */
export async function loadServiceManifests(dir: string): Promise<LoadedManifests> {
  const result: LoadedManifests = { manifests: [], errors: [] };
  let names: string[];
  try {
    names = [];
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".json")) names.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return result;
    throw error;
  }
  const seen = new Map<string, string>();
  for (const name of names.sort()) {
    const path = join(dir, name);
    try {
      const { size } = await Deno.stat(path);
      if (size > MAX_MANIFEST_BYTES) throw new RangeError(`the file is larger than ${MAX_MANIFEST_BYTES} bytes`);
      let value: unknown;
      try {
        value = JSON.parse(await Deno.readTextFile(path));
      } catch (error) {
        if (error instanceof SyntaxError) throw new SyntaxError(`not valid JSON: ${error.message}`);
        throw error;
      }
      const manifest = parseManifest(value, path);
      if (isBuiltin(manifest)) {
        throw new RangeError(`entry: "${manifest.entry}" names a built-in service; give a module path`);
      }
      const other = seen.get(manifest.name);
      if (other) throw new RangeError(`name: "${manifest.name}" is taken by ${other}`);
      seen.set(manifest.name, path);
      result.manifests.push({ manifest, path });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      result.errors.push({
        path,
        message: message.startsWith("Invalid service manifest")
          ? message
          : `Invalid service manifest "${path}": ${message}`,
      });
    }
  }
  return result;
}
