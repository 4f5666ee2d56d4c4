/**
 * Builds standalone node binaries with `deno compile`, baking in exactly the
 * permission profile the `start` task runs with ({@linkcode profileFlags}),
 * for Linux x86_64 and aarch64: `dist/nzcore-<target>`.
 *
 * `deno compile` embeds the program in `denort`, a runtime-only Deno build it
 * downloads from dl.deno.land on first use per target (cached in
 * `$DENO_DIR/dl`). Where that host is out of reach, set `DENORT_BIN` to a
 * denort binary of this Deno version for the target (Deno reads the raw
 * executable, not the zip). A `DENORT_BIN` serves the one target its ELF
 * header names; build the other with a second run.
 *
 * ```sh
 * deno task compile                                   # both targets
 * deno task compile --target aarch64-unknown-linux-gnu
 * DENORT_BIN=/opt/denort deno task compile            # the target of that denort
 * deno task compile --print-flags                     # the `deno run` flags baked in
 * ```
 *
 * Exit codes: 0 built, 1 usage or compile error, 2 no runtime base (denort
 * unreachable, or `DENORT_BIN` unusable).
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "./_bench_lib.ts";

/** The targets built by default, as `deno compile --target` names them. */
export const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] as const;
/** A supported target triple. */
export type Target = typeof TARGETS[number];

/** Where `deno compile` downloads denort from. */
export const DOWNLOAD_HOST = "https://dl.deno.land/";
/** How long the reachability check of {@linkcode DOWNLOAD_HOST} may take. */
const REACH_TIMEOUT_MS = 3_000;

/** Exit code when no runtime base can be had. */
export const EXIT_NO_DENORT = 2;

/**
 * The `deno run` flags of the node's permission profile, exactly as the
 * `start` task passes them; `deno compile` bakes the same ones in. The
 * unstable features (`kv`, `net` for `Deno.listenDatagram`, `worker-options`)
 * come from deno.json's `"unstable"`, which both `deno run` and
 * `deno compile` read, so they need no flag here.
 *
 * @returns a fresh array of flags.
 */
export function profileFlags(): string[] {
  return ["-P=nzcore", "--no-prompt"];
}

/**
 * Modules that only Workers load (by URL, outside `main.ts`'s static import graph): the binary must carry them. The
 * plugin SDK is the Worker side of every plugin (NZ-PLUGIN-01).
 */
export const WORKER_MODULES: readonly string[] = ["kernel/runtime/plugin_sdk.ts"];

/** The `deno compile` arguments for one target, writing to `output`. */
export function compileArgs(target: Target, output: string): string[] {
  const include = WORKER_MODULES.flatMap((path) => ["--include", path]);
  return ["compile", ...profileFlags(), ...include, "--target", target, "--output", output, "main.ts"];
}

/** The output path of one target's binary. */
export function outputPath(target: Target): string {
  return join(PROJECT_ROOT, "dist", `nzcore-${target}`);
}

/**
 * The Linux target an ELF executable is built for, from its header
 * (e_machine at offset 18: 0x3e x86-64, 0xb7 AArch64).
 *
 * @returns the target, or `undefined` for another machine.
 * @throws {TypeError} when `header` is not the start of an ELF file.
 */
export function elfTarget(header: Uint8Array): Target | undefined {
  if (header.length < 20 || header[0] !== 0x7f || header[1] !== 0x45 || header[2] !== 0x4c || header[3] !== 0x46) {
    throw new TypeError("Not an ELF executable: the header does not start with 0x7f 'ELF'");
  }
  const little = header[5] === 1;
  const machine = little ? header[18] | (header[19] << 8) : (header[18] << 8) | header[19];
  if (machine === 0x3e) return "x86_64-unknown-linux-gnu";
  if (machine === 0xb7) return "aarch64-unknown-linux-gnu";
  return undefined;
}

/** Whether `DOWNLOAD_HOST` answers at all within `timeoutMs`. */
export async function reachable(url = DOWNLOAD_HOST, timeoutMs = REACH_TIMEOUT_MS): Promise<boolean> {
  try {
    const res = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/** The denort zip `deno compile` would take from its cache for `target`, if it is there. */
async function cachedDenort(target: Target): Promise<string | undefined> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    cwd: PROJECT_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) return undefined;
  const denoDir = JSON.parse(new TextDecoder().decode(out.stdout)).denoDir as string | undefined;
  if (!denoDir) return undefined;
  const path = join(denoDir, "dl", "release", `v${Deno.version.deno}`, `denort-${target}.zip`);
  try {
    return (await Deno.stat(path)).isFile ? path : undefined;
  } catch {
    return undefined;
  }
}

class NoDenortError extends Error {
  override name = "NoDenortError";
}

const DENORT_HELP = [
  "Set DENORT_BIN to the path of a denort executable of Deno " + Deno.version.deno + " for the target",
  "(the unzipped `denort` from denort-<target>.zip of that Deno release), for example:",
  "  DENORT_BIN=/opt/denort-" + Deno.version.deno + "/denort deno task compile --target x86_64-unknown-linux-gnu",
].join("\n");

/**
 * Checks `DENORT_BIN` and decides which targets it can serve.
 *
 * @throws {NoDenortError} when it is missing, unreadable, not ELF, or of another architecture than `wanted`.
 */
async function checkDenortBin(path: string, wanted: Target[], explicit: boolean): Promise<Target[]> {
  let header: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    header = new Uint8Array(64);
    const n = (await file.read(header)) ?? 0;
    header = header.subarray(0, n);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "no such file" : (error as Error).message;
    throw new NoDenortError(`DENORT_BIN=${path} cannot be read: ${why}.\n${DENORT_HELP}`);
  }
  let target: Target | undefined;
  try {
    target = elfTarget(header);
  } catch (error) {
    throw new NoDenortError(`DENORT_BIN=${path} is not a denort binary: ${(error as Error).message}.\n${DENORT_HELP}`);
  }
  if (!target) {
    throw new NoDenortError(`DENORT_BIN=${path} is an ELF binary for neither target (${TARGETS.join(", ")})`);
  }
  if (!wanted.includes(target)) {
    if (explicit) {
      throw new NoDenortError(
        `DENORT_BIN=${path} is a denort for ${target}, but --target ${
          wanted.join(", ")
        } was asked for.\n${DENORT_HELP}`,
      );
    }
    return [];
  }
  return [target];
}

async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        target: { type: "string" },
        "print-flags": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    console.error(`compile: ${(error as Error).message}\nUsage: deno task compile [--target <triple>] [--print-flags]`);
    return 1;
  }
  if (values.help) {
    console.log("Usage: deno task compile [--target <triple>] [--print-flags]");
    console.log(`Targets: ${TARGETS.join(", ")} (default: both). Output: dist/nzcore-<target>.`);
    console.log("--print-flags  print the `deno run` flags the binary bakes in, then exit");
    console.log(`Offline: ${DENORT_HELP}`);
    return 0;
  }
  if (values["print-flags"]) {
    console.log(profileFlags().join(" "));
    return 0;
  }
  if (values.target !== undefined && !(TARGETS as readonly string[]).includes(values.target)) {
    console.error(`compile: Invalid --target "${values.target}": expected one of ${TARGETS.join(", ")}`);
    return 1;
  }
  const explicit = values.target !== undefined;
  let targets: Target[] = explicit ? [values.target as Target] : [...TARGETS];

  const denortBin = Deno.env.get("DENORT_BIN");
  try {
    if (denortBin) {
      const served = await checkDenortBin(denortBin, targets, explicit);
      for (const t of targets.filter((t) => !served.includes(t))) {
        console.log(
          `Skipping ${t}: DENORT_BIN=${denortBin} is a denort for another target; run again with one for ${t}.`,
        );
      }
      targets = served;
    } else {
      const uncached = [];
      for (const t of targets) if (!(await cachedDenort(t))) uncached.push(t);
      if (uncached.length && !(await reachable())) {
        throw new NoDenortError(
          `Cannot compile: deno compile needs denort for ${uncached.join(", ")}, which is not in Deno's cache, ` +
            `and ${DOWNLOAD_HOST} did not answer within ${REACH_TIMEOUT_MS / 1000} s.\n${DENORT_HELP}`,
        );
      }
    }
  } catch (error) {
    if (error instanceof NoDenortError) {
      console.error(`compile: ${error.message}`);
      return EXIT_NO_DENORT;
    }
    throw error;
  }

  await Deno.mkdir(join(PROJECT_ROOT, "dist"), { recursive: true });
  for (const target of targets) {
    const output = outputPath(target);
    const argv = compileArgs(target, output);
    console.log(`deno ${argv.join(" ")}${denortBin ? `  (DENORT_BIN=${denortBin})` : ""}`);
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: argv,
      cwd: PROJECT_ROOT,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (code !== 0) {
      console.error(`compile: deno compile failed for ${target} (exit code ${code})`);
      return 1;
    }
    console.log(`Built ${output}`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
