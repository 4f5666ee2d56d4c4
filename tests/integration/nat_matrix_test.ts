/**
 * The NAT traversal matrix (scripts/nat_matrix.ts) as a test: real node
 * processes behind real NATs in the lab, for every pair of NAT types. Every
 * pair must end with a working encrypted path that carried a message, direct
 * wherever the two NATs allow one (and relayed only where they do not), and
 * each node must report its own NAT's type in its state.
 */

import { equal, ok } from "node:assert/strict";
import { labUnavailable, NatLab } from "../../scripts/nat_lab.ts";
import { allPairs, directExpected, formatMatrix, NAT_TYPE_OF, runMatrix } from "../../scripts/nat_matrix.ts";

const reason = await labUnavailable({ upnp: false });
if (reason) console.log(`nat matrix: skipped: ${reason}`);

Deno.test({
  name: "NAT matrix: every pair of NAT types ends with a working path, direct wherever one exists",
  ignore: reason !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await NatLab.up({ upnp: false });
    const cells = await runMatrix(lab, { repeats: 1 });
    console.log(formatMatrix(cells));
    equal(cells.length, allPairs().length);
    for (const cell of cells) {
      const name = `${cell.natA}/${cell.natB}`;
      ok(cell.path !== "failed", `${name} failed: ${cell.error}`);
      equal(cell.path, directExpected(cell.natA, cell.natB) ? "direct" : "relayed", name);
      ok(cell.delivered, `${name}: the message did not arrive`);
      if (cell.path === "direct") ok(cell.medianMs! < 1_000, `${name}: ${cell.medianMs} ms to a direct path`);
      // Each node found its own NAT's type (RFC 5780 against coturn) and shows it in its state.
      equal(cell.reported.a, NAT_TYPE_OF[cell.natA], `${name}: A reported ${cell.reported.a}`);
      equal(cell.reported.b, NAT_TYPE_OF[cell.natB], `${name}: B reported ${cell.reported.b}`);
    }
  },
});

Deno.test({
  name: "NAT matrix with TURN: where no direct path exists, the nodes' own TURN allocations carry the session",
  ignore: reason !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using lab = await NatLab.up({ upnp: false });
    // R introduces but does not relay: the only way between symmetric NATs is coturn.
    const cells = await runMatrix(lab, {
      repeats: 1,
      turn: true,
      pairs: [["prc", "prc"], ["prc", "sym"], ["sym", "sym"]],
    });
    console.log(formatMatrix(cells));
    for (const cell of cells) {
      const name = `${cell.natA}/${cell.natB}`;
      ok(cell.path !== "failed", `${name} failed: ${cell.error}`);
      ok(cell.delivered, `${name}: the message did not arrive`);
      if (directExpected(cell.natA, cell.natB)) equal(cell.path, "direct", name);
      else {
        equal(cell.path, "relayed", name);
        equal(cell.transport, "turn", name);
      }
      ok(cell.medianMs! < 2_000, `${name}: ${cell.medianMs} ms to a working path`);
    }
  },
});
