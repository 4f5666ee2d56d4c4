/**
 * Fails when a module imports across a layer boundary it must not cross:
 * `transport/` never imports `kernel/`, and the kernel's low layers (crypto,
 * storage, identity) never import `kernel/node/` or `kernel/api/`. Imports
 * are read from the source text (static, dynamic, `export ... from`, and those
 * in doc examples, which run too), and resolved relative to the importing file.
 *
 * `deno run --allow-read scripts/check_layers.ts [ROOT]` (part of `deno task check`).
 *
 * @module
 */

import { dirname, join, relative, resolve, sep as SEPARATOR } from "node:path";

/** One layer that may not import from some directories. */
export interface LayerRule {
  /** The directory the rule applies to, relative to the root (`transport`). */
  from: string;
  /** Directories it may not import from, relative to the root. */
  forbidden: string[];
}

/** The rules of ARCHITECTURE.md's layers that this script enforces. */
export const RULES: LayerRule[] = [
  { from: "transport", forbidden: ["kernel"] },
  { from: "kernel/crypto", forbidden: ["kernel/node", "kernel/api"] },
  { from: "kernel/storage", forbidden: ["kernel/node", "kernel/api"] },
  { from: "kernel/identity", forbidden: ["kernel/node", "kernel/api"] },
  { from: "kernel/policy", forbidden: ["kernel/node", "kernel/api"] },
  { from: "kernel/discovery", forbidden: ["kernel/node", "kernel/api", "kernel/runtime"] },
];

/** An import that breaks a rule. */
export interface LayerViolation {
  /** The importing file, relative to the root, with `/` separators. */
  file: string;
  /** 1-based line of the import. */
  line: number;
  /** The specifier as written. */
  specifier: string;
  /** The directory it reaches into. */
  forbidden: string;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g;

/** The relative specifiers a source text imports, with their line numbers. */
export function importsOf(source: string): { specifier: string; line: number }[] {
  const found: { specifier: string; line: number }[] = [];
  for (const match of source.matchAll(IMPORT)) {
    const specifier = match[1];
    if (!specifier.startsWith(".") && !specifier.startsWith("/")) continue;
    found.push({ specifier, line: source.slice(0, match.index).split("\n").length });
  }
  return found;
}

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sourceFiles(path);
    else if (/\.(ts|tsx|js|mjs|mts)$/.test(entry.name)) yield path;
  }
}

function inside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + SEPARATOR);
}

/**
 * Lists the imports under `root` that break `rules`.
 *
 * @param root The project root.
 * @param rules The rules; default {@linkcode RULES}.
 * @returns The violations, in file order; empty when the layers hold.
 */
export async function checkLayers(root: string, rules: LayerRule[] = RULES): Promise<LayerViolation[]> {
  const violations: LayerViolation[] = [];
  for (const rule of rules) {
    const forbidden = rule.forbidden.map((dir) => resolve(root, dir));
    for await (const file of sourceFiles(resolve(root, rule.from))) {
      for (const { specifier, line } of importsOf(await Deno.readTextFile(file))) {
        const target = resolve(dirname(file), specifier);
        const hit = forbidden.findIndex((dir) => inside(target, dir));
        if (hit >= 0) {
          const name = relative(root, file).split(SEPARATOR).join("/");
          violations.push({ file: name, line, specifier, forbidden: rule.forbidden[hit] });
        }
      }
    }
  }
  return violations;
}

if (import.meta.main) {
  const root = resolve(Deno.args[0] ?? join(import.meta.dirname!, ".."));
  const violations = await checkLayers(root);
  for (const v of violations) {
    console.error(`${v.file}:${v.line}: imports "${v.specifier}", but may not import from ${v.forbidden}/`);
  }
  if (violations.length) {
    console.error(`check_layers: ${violations.length} import(s) cross a layer boundary (see ARCHITECTURE.md)`);
    Deno.exit(1);
  }
  console.log("check_layers: ok");
}
