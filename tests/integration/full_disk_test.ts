import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { cli, startNode } from "./_node_process.ts";

/** Mounting a small tmpfs needs root and the mount command; without them this test is skipped. */
async function canMountTmpfs(): Promise<boolean> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  const probe = await Deno.makeTempDir({ prefix: "nzcore-mount-probe-" });
  try {
    const mounted = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe] })
      .output().then((o) => o.success, () => false);
    if (mounted) await new Deno.Command("umount", { args: [probe] }).output();
    return mounted;
  } finally {
    await Deno.remove(probe, { recursive: true }).catch(() => {});
  }
}

const mountable = await canMountTmpfs();
if (!mountable) console.warn("full_disk_test: skipped (needs root and tmpfs to make a small disk)");

Deno.test({
  name: "a full disk refuses writes with 507 storage_full, keeps the node running and loses nothing (root)",
  ignore: !mountable,
  async fn() {
    const mountPoint = await Deno.makeTempDir({ prefix: "nzcore-full-" });
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint],
    }).output();
    ok(mount.success);
    try {
      const dataDir = join(mountPoint, "node");
      const node = await startNode(dataDir);
      const acknowledged: string[] = [];
      let refusal: { status: number; code: string } | undefined;
      for (let i = 0; i < 2000 && !refusal; i++) {
        const r = await node.api("/v1/tokens", {
          method: "POST",
          body: JSON.stringify({ name: `fill-${i}-${"x".repeat(40)}` }),
        });
        const body = await r.json();
        if (r.status === 201) acknowledged.push(body.token);
        else refusal = { status: r.status, code: body.error.code };
      }
      ok(refusal, "the disk never filled up");
      equal(refusal.status, 507);
      equal(refusal.code, "storage_full");
      equal((await fetch(node.url + "/v1/health")).status, 200, "the node keeps running");
      equal((await node.api("/v1/state")).status, 200);
      equal((await node.stop()).code, 0);

      // Make room, restart: every acknowledged write is there and the log verifies.
      await new Deno.Command("mount", { args: ["-o", "remount,size=8m", mountPoint] }).output();
      const again = await startNode(dataDir);
      for (const token of acknowledged) {
        const r = await again.api("/v1/state", { token });
        equal(r.status, 200, "an acknowledged token was lost");
        await r.body?.cancel();
      }
      const report = JSON.parse((await cli(["--data-dir", dataDir, "log", "verify", "--json"])).stdout);
      ok(report.ok, report.problems?.join("\n"));
      await again.stop();
    } finally {
      await new Deno.Command("umount", { args: ["-l", mountPoint] }).output();
      await Deno.remove(mountPoint, { recursive: true }).catch(() => {});
    }
  },
});
