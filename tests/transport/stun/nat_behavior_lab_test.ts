/**
 * RFC 5780 discovery behind real NATs: in the NAT lab (`scripts/nat_lab.ts`), `discoverNatBehavior` runs in
 * hostA (behind gwA, switched through the prc, fc and rc modes) and hostB (behind gwB, sym) against the lab's
 * coturn (203.0.113.10:3478, alternate 203.0.113.11:3479), each run a fresh process and socket. Needs root,
 * iproute2, nftables, conntrack and coturn: skips with the reason printed otherwise.
 */

import { deepStrictEqual as eql, equal } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LAB, type LabHost, labUnavailable, NatLab, type NatMode } from "../../../scripts/nat_lab.ts";

const AGENT = fileURLToPath(new URL("./_netns_agent.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../../../deno.json", import.meta.url));

const reason = await labUnavailable({ upnp: false });
if (reason !== null) console.log(`NAT behaviour lab tests skipped: ${reason}`);

async function discover(lab: NatLab, host: LabHost) {
  const r = await lab.exec(host, [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    "--config",
    CONFIG,
    AGENT,
    "nat",
    LAB.srv,
    "3478",
  ], {
    timeoutMs: 60_000,
  });
  equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const EXPECTED: Record<NatMode, { mapping: string; filtering: string; natType: string }> = {
  prc: { mapping: "endpoint-independent", filtering: "address-and-port-dependent", natType: "port-restricted-cone" },
  fc: { mapping: "endpoint-independent", filtering: "endpoint-independent", natType: "full-cone" },
  rc: { mapping: "endpoint-independent", filtering: "address-dependent", natType: "restricted-cone" },
  sym: { mapping: "address-and-port-dependent", filtering: "address-and-port-dependent", natType: "symmetric" },
};

Deno.test({
  name: "discoverNatBehavior() behind the lab's NATs names each mode: prc, fc, rc on gwA and sym on gwB",
  ignore: reason !== null,
  async fn(t) {
    await using lab = await NatLab.up({ natA: "prc", natB: "sym", upnp: false });
    for (
      const [gw, host, mode, wan] of [
        ["gwB", "hostB", "sym", LAB.gwB],
        ["gwA", "hostA", "prc", LAB.gwA],
        ["gwA", "hostA", "fc", LAB.gwA],
        ["gwA", "hostA", "rc", LAB.gwA],
      ] as const
    ) {
      await t.step(`${host} behind ${gw} in ${mode} mode: ${EXPECTED[mode].natType}`, async () => {
        if (lab.natMode(gw) !== mode) await lab.setNat(gw, mode);
        const { nat } = await discover(lab, host);
        eql({ mapping: nat.mapping, filtering: nat.filtering, natType: nat.natType }, EXPECTED[mode]);
        equal(nat.local, false);
        equal(nat.publicAddr.hostname, wan);
      });
    }
  },
});
