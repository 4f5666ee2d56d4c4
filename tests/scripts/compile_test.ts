import { deepStrictEqual as eql, ok } from "node:assert";
import {
  compileArgs,
  elfTarget,
  EXIT_NO_DENORT,
  profileFlags,
  reachable,
  WORKER_MODULES,
} from "../../scripts/compile.ts";
import { PROJECT_ROOT } from "../../scripts/_bench_lib.ts";

/** Runs scripts/compile.ts with `args` and an environment without DENORT_BIN plus `env`. */
async function compile(args: string[], env: Record<string, string> = {}) {
  const base = Deno.env.toObject();
  delete base.DENORT_BIN;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/compile.ts", ...args],
    cwd: PROJECT_ROOT,
    clearEnv: true,
    env: { ...base, NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    seconds: (performance.now() - t0) / 1000,
  };
}

const online = await reachable();

Deno.test({
  name: "compile.ts without DENORT_BIN and without network stops with exit 2 and names DENORT_BIN",
  ignore: online,
  async fn() {
    // A fresh DENO_DIR holds no cached denort, so the script must look for the network.
    const denoDir = await Deno.makeTempDir({ prefix: "nzcore-compile-test-" });
    try {
      const r = await compile([], { DENO_DIR: denoDir });
      eql(r.code, EXIT_NO_DENORT, r.stdout + r.stderr);
      ok(r.seconds < 15, `took ${r.seconds.toFixed(1)} s`);
      ok(r.stderr.includes("DENORT_BIN"), r.stderr);
      ok(r.stderr.includes("dl.deno.land"), r.stderr);
    } finally {
      await Deno.remove(denoDir, { recursive: true });
    }
  },
});

Deno.test("compile.ts with DENORT_BIN naming a missing file fails and says so", async () => {
  const missing = `/nonexistent/nzcore-test/denort-${crypto.randomUUID()}`;
  const r = await compile([], { DENORT_BIN: missing });
  eql(r.code, EXIT_NO_DENORT, r.stdout + r.stderr);
  ok(r.stderr.includes(`DENORT_BIN=${missing}`), r.stderr);
  ok(r.stderr.includes("no such file"), r.stderr);
});

Deno.test("compile.ts with DENORT_BIN naming a file that is not ELF fails and says so", async () => {
  const r = await compile([], { DENORT_BIN: new URL("../../deno.json", import.meta.url).pathname });
  eql(r.code, EXIT_NO_DENORT, r.stdout + r.stderr);
  ok(r.stderr.includes("is not a denort binary"), r.stderr);
});

Deno.test("compile.ts --print-flags prints the permission profile of the start task", async () => {
  const r = await compile(["--print-flags"]);
  eql(r.code, 0, r.stderr);
  eql(r.stdout.trim(), profileFlags().join(" "));
  ok(r.stdout.split(/\s+/).includes("-P=nzcore"), r.stdout);
  ok(r.stdout.split(/\s+/).includes("--no-prompt"), r.stdout);
});

Deno.test("compile.ts rejects an unknown target with exit 1", async () => {
  const r = await compile(["--target", "riscv64-unknown-linux-gnu"]);
  eql(r.code, 1);
  ok(r.stderr.includes("Invalid --target"), r.stderr);
});

Deno.test("compileArgs() bakes in exactly profileFlags() for the target, and includes the Worker-only modules", () => {
  eql(compileArgs("aarch64-unknown-linux-gnu", "dist/x"), [
    "compile",
    ...profileFlags(),
    "--include",
    "kernel/runtime/plugin_sdk.ts",
    "--target",
    "aarch64-unknown-linux-gnu",
    "--output",
    "dist/x",
    "main.ts",
  ]);
});

Deno.test("elfTarget() reads the machine of an ELF header", () => {
  const header = (machine: number) => {
    const h = new Uint8Array(64);
    h.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
    h[18] = machine & 0xff;
    h[19] = machine >> 8;
    return h;
  };
  eql(elfTarget(header(0x3e)), "x86_64-unknown-linux-gnu");
  eql(elfTarget(header(0xb7)), "aarch64-unknown-linux-gnu");
  eql(elfTarget(header(0x28)), undefined);
});

Deno.test("elfTarget() rejects bytes that are not an ELF header", () => {
  let error: unknown;
  try {
    elfTarget(new TextEncoder().encode("#!/bin/sh\necho not elf\n"));
  } catch (e) {
    error = e;
  }
  ok(error instanceof TypeError);
});

Deno.test("every Worker-only module the binary includes exists", async () => {
  for (const path of WORKER_MODULES) {
    const info = await Deno.stat(new URL(`../../${path}`, import.meta.url));
    ok(info.isFile, path);
  }
});
