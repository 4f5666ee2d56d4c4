/**
 * PortMapper against a real miniupnpd (UPnP IGD, NAT-PMP, PCP) in the NAT
 * lab: every method maps, forwards a datagram from the public host, is
 * listed by miniupnpc's `upnpc -l`, survives its lease by renewal, and is
 * gone after `close()`; a gateway that answers nothing fails every method
 * within a few seconds. Needs root and miniupnpd/miniupnpc/socat: skips
 * with a printed reason otherwise.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LAB, labUnavailable, NatLab } from "../../../scripts/nat_lab.ts";

const FIXTURE = fileURLToPath(new URL("./_map_fixture.ts", import.meta.url));

async function missingTools(): Promise<string | null> {
  for (const tool of ["upnpc", "socat"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" }).output()
      .then((o) => o.success, () => false);
    if (!found) return `the port-mapping lab tests need ${tool} (Debian: miniupnpc, socat)`;
  }
  return null;
}

const reason = (await labUnavailable({ upnp: true })) ?? (await missingTools());
if (reason !== null) console.log(`portmap lab tests skipped: ${reason}`);

// deno-lint-ignore no-explicit-any
type Event = Record<string, any>;

/** A fixture process in a lab host and the JSON events it printed. */
class Fixture {
  readonly events: Event[] = [];
  #child: Deno.ChildProcess;
  #waiters: Array<() => void> = [];
  #done: Promise<void>;
  #stderr: Promise<string>;

  constructor(lab: NatLab, args: string[], host: "hostA" | "hostA2" = "hostA") {
    const child = lab.spawn(host, [Deno.execPath(), "run", "-A", "--quiet", FIXTURE, ...args]);
    this.#child = child;
    this.#stderr = new Response(child.stderr).text();
    this.#done = (async () => {
      const lines = child.stdout.pipeThrough(new TextDecoderStream());
      let buffer = "";
      for await (const chunk of lines) {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          try {
            this.events.push(JSON.parse(line));
          } catch {
            this.events.push({ event: "text", line });
          }
          for (const w of this.#waiters.splice(0)) w();
        }
      }
      for (const w of this.#waiters.splice(0)) w();
    })();
  }

  /** Waits for an event `match` accepts; throws with everything printed so far after `timeoutMs`. */
  async wait(match: (e: Event) => boolean, timeoutMs: number, what: string): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const found = this.events.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        const stderr = await Promise.race([this.#stderr, new Promise<string>((r) => setTimeout(() => r(""), 100))]);
        throw new Error(
          `fixture: no ${what} within ${timeoutMs} ms; events:\n${
            this.events.map((e) => JSON.stringify(e)).join("\n")
          }\nstderr: ${stderr.slice(-2000)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async finished(): Promise<void> {
    await this.#child.status;
    await this.#done;
    await this.#stderr;
  }
}

/** The lines of `upnpc -i -l` (run in hostA) naming mappings to the lab's LAN hosts. */
async function listed(lab: NatLab): Promise<string[]> {
  const r = await lab.exec("hostA", ["upnpc", "-i", "-l"], { timeoutMs: 10_000 });
  return r.stdout.split("\n").filter((l) => /->10\.0\.1\.\d+:/.test(l));
}

/** The line of a mapping in `upnpc -l` output (`  0 UDP 42010->10.0.1.10:42010 'desc' '' 58`), if listed. */
function line(lines: string[], protocol: string, externalPort: number, internalPort: number, host: string = LAB.hostA) {
  const re = new RegExp(`\\b${protocol}\\s+${externalPort}->${host.replaceAll(".", "\\.")}:${internalPort}\\b`);
  return lines.find((l) => re.test(l));
}

function has(lines: string[], protocol: string, externalPort: number, internalPort: number, host: string = LAB.hostA) {
  return line(lines, protocol, externalPort, internalPort, host) !== undefined;
}

/** The remaining lease upnpc prints last on a mapping's line, seconds. */
function leaseLeft(text: string | undefined): number {
  return Number(text?.trim().split(/\s+/).at(-1));
}

Deno.test({
  name: "PortMapper maps, forwards, renews, moves and deletes with PCP, NAT-PMP and UPnP on miniupnpd",
  ignore: reason !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using lab = await NatLab.up({ natA: "prc", natB: "prc", upnp: true });
    // NAT-PMP and UPnP honour a 6 s lease, so their renewal (at 3 s) is seen early; miniupnpd raises a PCP
    // lifetime to its min_lifetime (60 s), so PCP's renewal comes at 30 s, while the rest runs.
    const cases = [
      { method: "pcp", port: 42010 },
      { method: "nat-pmp", port: 42020 },
      { method: "upnp", port: 42030 },
    ] as const;
    const gw = ["--gateway", LAB.gwALan];
    const fixtures = cases.map((c) =>
      new Fixture(lab, [...gw, "--method", c.method, "--port", String(c.port), "--lifetime", "6", "--external-first"])
    );
    // Default discovery (the gateway from /proc/net/route, the default method order) with TCP; the
    // reserved-address refusal without allowReservedExternal; and, on hostA2, a NAT-PMP mapping whose
    // renewals will be dropped, to move to UPnP.
    const auto = new Fixture(lab, ["--port", "42040", "--protocol", "tcp"]);
    const strict = new Fixture(lab, [...gw, "--method", "upnp", "--port", "42050", "--strict"]);
    const moving = new Fixture(
      lab,
      [...gw, "--method", "nat-pmp,upnp", "--port", "42060", "--lifetime", "4"],
      "hostA2",
    );

    const movingMapped = await moving.wait((e) => e.event === "mapped", 10_000, "hostA2 mapping");
    equal(movingMapped.mapping.method, "nat-pmp");
    // gwA now drops NAT-PMP and PCP from hostA2 (before its first renewal, due 2 s after the mapping).
    for (
      const rule of [
        ["add", "table", "ip", "portmap_test"],
        ["add", "chain", "ip", "portmap_test", "input", "{ type filter hook input priority -10; policy accept; }"],
        ["add", "rule", "ip", "portmap_test", "input", "ip", "saddr", LAB.hostA2, "udp", "dport", "5351", "drop"],
      ]
    ) {
      const r = await lab.exec("gwA", ["nft", ...rule]);
      equal(r.code, 0, r.stderr);
    }

    const mapped = await Promise.all(
      fixtures.map((f, i) => f.wait((e) => e.event === "mapped", 10_000, `${cases[i].method} mapping`)),
    );
    // externalAddress() before any mapping: NAT-PMP's public address request and UPnP's GetExternalIPAddress
    // answer; PCP has no such query.
    const external = fixtures.map((f) => f.events.find((e) => e.event === "external")?.address);
    deepEqual(external, [null, LAB.gwA, LAB.gwA]);
    for (const [i, e] of mapped.entries()) {
      const c = cases[i];
      equal(e.mapping.method, c.method);
      equal(e.mapping.protocol, "udp");
      equal(e.mapping.internalPort, c.port);
      equal(e.mapping.externalAddress, LAB.gwA);
      ok(e.mapping.externalPort > 0);
      ok(e.mapping.lifetimeSeconds >= 6, `${c.method} lifetime ${e.mapping.lifetimeSeconds}`);
      ok(Math.abs(e.mapping.expiresAt - (e.at + e.mapping.lifetimeSeconds * 1000)) < 2_000);
      ok(e.ms < 5_000, `${c.method} took ${e.ms} ms`);
    }
    const autoMapped = await auto.wait((e) => e.event === "mapped" || e.event === "error", 10_000, "auto mapping");
    equal(autoMapped.event, "mapped", JSON.stringify(autoMapped));
    equal(autoMapped.mapping.method, "pcp");
    equal(autoMapped.mapping.protocol, "tcp");
    const refused = await strict.wait((e) => e.event === "error", 10_000, "strict refusal");
    equal(refused.name, "PortMappingError");
    equal(refused.causes?.[0], "RESERVED_EXTERNAL_ADDRESS", refused.message);
    ok(refused.message.includes("allowReservedExternal"), refused.message);

    // miniupnpc lists the mappings.
    let lines = await listed(lab);
    for (const [i, e] of mapped.entries()) {
      ok(
        has(lines, "UDP", e.mapping.externalPort, cases[i].port),
        `${cases[i].method} not listed:\n${lines.join("\n")}`,
      );
    }
    ok(has(lines, "TCP", autoMapped.mapping.externalPort, 42040), `tcp not listed:\n${lines.join("\n")}`);
    ok(!lines.some((l) => l.includes(":42050 ")), `the refused mapping exists:\n${lines.join("\n")}`);

    // A datagram from the public host reaches hostA through each mapping.
    for (const [i, e] of mapped.entries()) {
      const word = `hello-${cases[i].method}`;
      const sent = await lab.exec("pub", ["socat", "-u", "-", `UDP4-SENDTO:${LAB.gwA}:${e.mapping.externalPort}`], {
        stdin: `${word}\n`,
        timeoutMs: 5_000,
      });
      equal(sent.code, 0, sent.stderr);
      const got = await fixtures[i].wait((d) => d.event === "datagram" && d.text === word, 5_000, `${word} datagram`);
      equal(got.from, LAB.pub);
    }

    // Renewal: past the 6 s lease of the NAT-PMP and UPnP mappings, both are still there, renewed.
    for (const i of [1, 2]) {
      await fixtures[i].wait(
        (e) => e.event === "log" && e.msg.includes("renewed"),
        8_000,
        `${cases[i].method} renewal`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.max(mapped[1].at, mapped[2].at) + 7_500 - Date.now())));
    lines = await listed(lab);
    for (const i of [1, 2]) {
      ok(
        has(lines, "UDP", mapped[i].mapping.externalPort, cases[i].port),
        `${cases[i].method} lapsed:\n${lines.join("\n")}`,
      );
    }

    // hostA2's renewals over NAT-PMP get no answer: after two failed tries (1 s, then 2 s of backoff) the
    // mapping moves to UPnP, onChange says so, and it forwards.
    const moved = await moving.wait((e) => e.event === "change", 16_000, "a move to UPnP");
    equal(moved.mapping.method, "upnp");
    equal(moved.mapping.internalPort, 42060);
    ok(moved.at - movingMapped.at >= 6_000, `moved after ${moved.at - movingMapped.at} ms`);
    ok(moving.events.filter((e) => e.event === "log" && /renewal \d of/.test(e.msg)).length >= 2);
    lines = await listed(lab);
    ok(
      has(lines, "UDP", moved.mapping.externalPort, 42060, LAB.hostA2),
      `moved mapping not listed:\n${lines.join("\n")}`,
    );
    await lab.exec("pub", ["socat", "-u", "-", `UDP4-SENDTO:${LAB.gwA}:${moved.mapping.externalPort}`], {
      stdin: "hello-moved\n",
      timeoutMs: 5_000,
    });
    await moving.wait((d) => d.event === "datagram" && d.text === "hello-moved", 5_000, "a datagram after the move");

    // PCP: renewed at half of its 60 s, so miniupnpd's remaining lease is back near 60 s.
    await fixtures[0].wait((e) => e.event === "log" && e.msg.includes("pcp: renewed"), 36_000, "pcp renewal");
    lines = await listed(lab);
    const pcpLine = line(lines, "UDP", mapped[0].mapping.externalPort, cases[0].port);
    ok(leaseLeft(pcpLine) > 45, `pcp lease after renewal: ${pcpLine}`);

    // close() deletes every mapping.
    const closers: Array<[Fixture, "hostA" | "hostA2", number]> = [
      ...fixtures.map((f, i): [Fixture, "hostA", number] => [f, "hostA", cases[i].port]),
      [auto, "hostA", 42040],
      [moving, "hostA2", 42060],
    ];
    for (const [f, host, port] of closers) {
      await lab.exec(host, ["socat", "-u", "-", `UDP4-SENDTO:127.0.0.1:${port}`], {
        stdin: "close\n",
        timeoutMs: 5_000,
      });
      const closed = await f.wait((e) => e.event === "closed", 5_000, "close");
      ok(closed.ms < 3_500, `close took ${closed.ms} ms`);
      equal(closed.mappings, 0);
    }
    lines = await listed(lab);
    equal(lines.length, 0, `left after close():\n${lines.join("\n")}`);
    await Promise.all([...fixtures, auto, strict, moving].map((f) => f.finished()));
  },
});

Deno.test({
  name: "PortMapper fails every method within a few seconds when the gateway answers nothing",
  ignore: reason !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using lab = await NatLab.up({ natA: "prc", natB: "prc", upnp: false, coturn: false });
    const f = new Fixture(lab, ["--gateway", LAB.gwALan, "--port", "42060"]);
    const e = await f.wait((e) => e.event === "error" || e.event === "mapped", 15_000, "failure");
    equal(e.event, "error", JSON.stringify(e));
    equal(e.name, "PortMappingError");
    equal(e.reason, "ALL_METHODS_FAILED");
    ok(e.ms < 8_000, `took ${e.ms} ms`); // 2 s each for PCP, NAT-PMP and the SSDP search
    for (const m of ["pcp", "nat-pmp", "upnp"]) ok(e.message.includes(`${m}:`), e.message);
    equal(e.causes.join(","), "TIMEOUT,TIMEOUT,NO_GATEWAY", e.message);
    await f.finished();
  },
});
