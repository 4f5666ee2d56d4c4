/**
 * PortMapper against a real miniupnpd (UPnP IGD, NAT-PMP, PCP) in the NAT
 * lab: every method maps, forwards a datagram from the public host, is
 * listed by miniupnpc's `upnpc -l`, survives its lease by renewal, and is
 * gone after `close()`; a gateway that answers nothing fails every method
 * within a few seconds. Needs root and miniupnpd/miniupnpc/socat: skips
 * with a printed reason otherwise.
 */

import { equal, ok } from "node:assert/strict";
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

  constructor(lab: NatLab, args: string[]) {
    const child = lab.spawn("hostA", [Deno.execPath(), "run", "-A", "--quiet", FIXTURE, ...args]);
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

/** The lines of `upnpc -i -l` in hostA naming mappings to hostA. */
async function listed(lab: NatLab): Promise<string[]> {
  const r = await lab.exec("hostA", ["upnpc", "-i", "-l"], { timeoutMs: 10_000 });
  return r.stdout.split("\n").filter((l) => l.includes(`->${LAB.hostA}:`));
}

function has(lines: string[], protocol: string, externalPort: number, internalPort: number): boolean {
  return lines.some((l) =>
    new RegExp(`\\b${protocol}\\s+${externalPort}->${LAB.hostA.replaceAll(".", "\\.")}:${internalPort}\\b`).test(l)
  );
}

Deno.test({
  name: "PortMapper maps, forwards, renews and deletes with PCP, NAT-PMP and UPnP on miniupnpd",
  ignore: reason !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using lab = await NatLab.up({ natA: "prc", natB: "prc", upnp: true });
    // NAT-PMP and UPnP honour a 6 s lease, so renewal (at 3 s) is seen inside the test; miniupnpd raises a PCP
    // lifetime to its min_lifetime (60 s), so PCP's renewal is left to the unit-level schedule.
    const cases = [
      { method: "pcp", port: 42010, lifetime: 6 },
      { method: "nat-pmp", port: 42020, lifetime: 6 },
      { method: "upnp", port: 42030, lifetime: 6 },
    ] as const;
    const fixtures = cases.map((c) =>
      new Fixture(lab, [
        "--gateway",
        LAB.gwALan,
        "--method",
        c.method,
        "--port",
        String(c.port),
        "--lifetime",
        String(c.lifetime),
      ])
    );
    // Default discovery (the gateway from /proc/net/route, default method order) with TCP, and the
    // reserved-address refusal without allowReservedExternal, at the same time.
    const auto = new Fixture(lab, ["--port", "42040", "--protocol", "tcp"]);
    const strict = new Fixture(lab, ["--gateway", LAB.gwALan, "--method", "upnp", "--port", "42050", "--strict"]);

    const mapped = await Promise.all(
      fixtures.map((f, i) => f.wait((e) => e.event === "mapped", 10_000, `${cases[i].method} mapping`)),
    );
    for (const [i, e] of mapped.entries()) {
      const c = cases[i];
      equal(e.mapping.method, c.method);
      equal(e.mapping.protocol, "udp");
      equal(e.mapping.internalPort, c.port);
      equal(e.mapping.externalAddress, LAB.gwA);
      ok(e.mapping.externalPort > 0);
      ok(e.mapping.lifetimeSeconds >= c.lifetime, `${c.method} lifetime ${e.mapping.lifetimeSeconds}`);
      ok(e.ms < 3_000, `${c.method} took ${e.ms} ms`);
    }
    const autoMapped = await auto.wait((e) => e.event === "mapped" || e.event === "error", 10_000, "auto mapping");
    equal(autoMapped.event, "mapped", JSON.stringify(autoMapped));
    equal(autoMapped.mapping.method, "pcp");
    equal(autoMapped.mapping.protocol, "tcp");
    const refused = await strict.wait((e) => e.event === "error", 10_000, "strict refusal");
    equal(refused.name, "PortMappingError");
    equal(refused.causes?.[0], "RESERVED_EXTERNAL_ADDRESS", refused.message);
    ok(refused.message.includes("allowReservedExternal"), refused.message);

    // miniupnpc lists all four mappings.
    let lines = await listed(lab);
    for (const [i, e] of mapped.entries()) {
      ok(
        has(lines, "UDP", e.mapping.externalPort, cases[i].port),
        `${cases[i].method} not in upnpc -l:\n${lines.join("\n")}`,
      );
    }
    ok(has(lines, "TCP", autoMapped.mapping.externalPort, 42040), `tcp not in upnpc -l:\n${lines.join("\n")}`);

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
    const renewedBy = Math.max(mapped[1].at, mapped[2].at) + 7_500;
    for (const i of [1, 2]) {
      await fixtures[i].wait(
        (e) => e.event === "log" && e.msg.includes("renewed"),
        8_000,
        `${cases[i].method} renewal`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.max(0, renewedBy - Date.now())));
    lines = await listed(lab);
    for (const i of [1, 2]) {
      ok(
        has(lines, "UDP", mapped[i].mapping.externalPort, cases[i].port),
        `${cases[i].method} lapsed:\n${lines.join("\n")}`,
      );
    }

    // close() deletes every mapping.
    for (const [i, f] of [...fixtures, auto].entries()) {
      const port = i < 3 ? cases[i].port : 42040;
      await lab.exec("hostA", ["socat", "-u", "-", `UDP4-SENDTO:127.0.0.1:${port}`], {
        stdin: "close\n",
        timeoutMs: 5_000,
      });
      const closed = await f.wait((e) => e.event === "closed", 5_000, "close");
      ok(closed.ms < 3_500, `close took ${closed.ms} ms`);
      equal(closed.mappings, 0);
    }
    lines = await listed(lab);
    equal(lines.length, 0, `left after close():\n${lines.join("\n")}`);
    await Promise.all([...fixtures, auto, strict].map((f) => f.finished()));
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
    ok(e.ms < 7_500, `took ${e.ms} ms`);
    for (const m of ["pcp", "nat-pmp", "upnp"]) ok(e.message.includes(`${m}:`), e.message);
    equal(e.causes.join(","), "TIMEOUT,TIMEOUT,NO_GATEWAY", e.message);
    await f.finished();
  },
});
