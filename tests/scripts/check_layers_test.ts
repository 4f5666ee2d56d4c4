import { deepStrictEqual as eql } from "node:assert/strict";
import { join } from "node:path";
import { checkLayers, importsOf } from "../../scripts/check_layers.ts";

async function tree(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "nzcore-layers-test-" });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(join(root, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, path), text);
  }
  return root;
}

Deno.test("importsOf() finds static, type, re-export, side-effect and dynamic imports with their lines", () => {
  const source = [
    'import { a } from "./a.ts";',
    'import type { B } from "../b.ts";',
    'export * from "./c.ts";',
    'import "./d.ts";',
    'const e = await import("./e.ts");',
    'import fc from "fast-check";',
    "import {",
    "  f,",
    '} from "./f.ts";',
  ].join("\n");
  eql(importsOf(source).map((i) => [i.specifier, i.line]), [
    ["./a.ts", 1],
    ["../b.ts", 2],
    ["./c.ts", 3],
    ["./d.ts", 4],
    ["./e.ts", 5],
    ["./f.ts", 9],
  ]);
});

Deno.test("checkLayers() passes on this repository", async () => {
  eql(await checkLayers(join(import.meta.dirname!, "..", "..")), []);
});

Deno.test("checkLayers() reports transport importing kernel and crypto importing node", async () => {
  const root = await tree({
    "transport/tcp.ts": 'import { x } from "./address.ts";\nimport { concat } from "../kernel/bytes.ts";\n',
    "transport/sub/deep.ts": '/** ```ts\n * import { Node } from "../../kernel/node/node.ts";\n * ```\n */\n',
    "transport/address.ts": "export const x = 1;\n",
    "kernel/crypto/aead.ts": 'import { crypto } from "./default.ts";\nimport type { Node } from "../node/node.ts";\n',
    "kernel/storage/kv.ts": 'import { crypto } from "../crypto/default.ts";\n',
    "kernel/identity/id.ts": 'export { app } from "../api/app.ts";\n',
    "kernel/node/node.ts": 'import { app } from "../api/app.ts";\n',
  });
  try {
    eql(await checkLayers(root), [
      { file: "transport/sub/deep.ts", line: 2, specifier: "../../kernel/node/node.ts", forbidden: "kernel" },
      { file: "transport/tcp.ts", line: 2, specifier: "../kernel/bytes.ts", forbidden: "kernel" },
      { file: "kernel/crypto/aead.ts", line: 2, specifier: "../node/node.ts", forbidden: "kernel/node" },
      { file: "kernel/identity/id.ts", line: 1, specifier: "../api/app.ts", forbidden: "kernel/api" },
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the script exits 1 and names the file when a layer is crossed", async () => {
  const root = await tree({ "transport/bad.ts": 'import "../kernel/errors.ts";\n' });
  try {
    const script = join(import.meta.dirname!, "..", "..", "scripts", "check_layers.ts");
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", script, root],
      stdout: "null",
    }).output();
    eql(code, 1);
    eql(/transport\/bad\.ts:1: imports "\.\.\/kernel\/errors\.ts"/.test(new TextDecoder().decode(stderr)), true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
