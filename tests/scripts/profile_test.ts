import { deepStrictEqual as eql } from "node:assert";
import { join } from "node:path";
import { profileFlags } from "../../scripts/compile.ts";
import { spawnDeno, stop, waitForOutput } from "../../scripts/_bench_lib.ts";

Deno.test("the node under profileFlags() holds read, write and net, not run or ffi, and stops cleanly", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "nzcore-profile-test-" });
  const node = spawnDeno([
    "run",
    ...profileFlags(),
    "main.ts",
    "start",
    "--data-dir",
    dataDir,
    "--api",
    "127.0.0.1:0",
    "--listen",
    "tcp://127.0.0.1:0",
    "--no-lan",
  ]);
  try {
    await waitForOutput(node, /^ready$/m, 30_000);
    const token = (await Deno.readTextFile(join(dataDir, "admin.token"))).trim();
    const { tcp } = JSON.parse(await Deno.readTextFile(join(dataDir, "api.json")));
    const res = await fetch(`http://${tcp}/v1/state`, { headers: { Authorization: `Bearer ${token}` } });
    const state = await res.json();
    eql(res.status, 200, JSON.stringify(state));
    const p = state.permissions;
    eql({ read: p.read, write: p.write, net: p.net, run: p.run, ffi: p.ffi }, {
      read: "granted",
      write: "granted",
      net: "granted",
      run: "prompt",
      ffi: "prompt",
    });

    const status = await stop(node);
    eql({ code: status.code, signal: status.signal }, { code: 0, signal: null }, node.output());
  } finally {
    await stop(node);
    await Deno.remove(dataDir, { recursive: true });
  }
});
