import { deepStrictEqual as eql, match, ok, rejects } from "node:assert/strict";
import {
  cleanupStaleLabs,
  deliver,
  LAB,
  labUnavailable,
  natDiscovery,
  NatLab,
  natRules,
  stunReflexive,
} from "../../scripts/nat_lab.ts";

/** The independent clients these tests drive, beside what the lab itself needs. */
async function clientsMissing(): Promise<string | null> {
  const clients = ["turnutils_natdiscovery", "turnutils_uclient", "turnutils_peer", "upnpc", "socat", "getent"];
  const path = (Deno.env.get("PATH") ?? "").split(":");
  const missing = [];
  for (const client of clients) {
    const found = await Promise.all(path.map((dir) => Deno.stat(`${dir}/${client}`).then(() => true, () => false)));
    if (!found.includes(true)) missing.push(client);
  }
  return missing.length ? `the NAT lab tests need ${missing.join(", ")}` : null;
}

const reason = (await labUnavailable()) ?? (await clientsMissing());
if (reason !== null) console.log(`nat_lab tests skipped: ${reason}`);
const ignore = reason !== null;

async function namespaces(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped", stderr: "null" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]).filter((n) => n !== "");
}

function alive(pid: number): boolean {
  try {
    return !Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].startsWith("Z");
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("natRules() gives each mode its own masquerade, port map and the same home-router firewall", () => {
  const prc = natRules("gwA", "prc");
  match(prc, /oifname "wan" ip saddr 10\.0\.1\.0\/24 masquerade\n/);
  ok(!prc.includes("dnat ip to"), "prc maps nothing back in");
  match(natRules("gwB", "sym"), /ip saddr 10\.0\.2\.0\/24 masquerade fully-random/);
  match(natRules("gwA", "fc", 15), /dnat ip to meta l4proto \. th dport map @eif/);
  match(natRules("gwA", "fc", 15), /update @eif \{ meta l4proto \. ct reply proto-dst timeout 15s/);
  match(natRules("gwA", "rc"), /dnat ip to ip saddr \. meta l4proto \. th dport map @adf/);
  for (const mode of ["fc", "rc", "prc", "sym"] as const) {
    const rules = natRules("gwA", mode);
    ok(rules.startsWith("table ip natlab\ndelete table ip natlab\n"), `${mode} replaces the table in one transaction`);
    match(rules, /iifname "wan" socket transparent 0 accept\n\s+iifname "wan" counter drop/);
  }
});

Deno.test("NatLab.up() rejects a bad mode or timeout before touching the machine", async () => {
  // deno-lint-ignore no-explicit-any
  await rejects(NatLab.up({ natA: "cone" as any }), (e: Error) => e instanceof TypeError && /natA/.test(e.message));
  await rejects(NatLab.up({ udpTimeout: 0 }), (e: Error) => e instanceof RangeError && /udpTimeout/.test(e.message));
  await rejects(NatLab.up({ udpStreamTimeout: 1.5 }), RangeError);
});

Deno.test({
  name: "a lab shows each NAT, TURN relay and UPnP mapping to independent clients, and routes nothing out",
  ignore,
  async fn(t) {
    await using lab = await NatLab.up();
    match(lab.prefix, /^nz[0-9a-z]{4}$/);
    eql(lab.netns("hostA2"), `${lab.prefix}-hostA2`);

    await t.step("Deno runs in hostA with only its LAN address, and *.lab.test names resolve there", async () => {
      const script = "console.log(Deno.networkInterfaces().filter((i) => i.family === 'IPv4')" +
        ".map((i) => i.address).sort().join(' '))";
      const deno = await lab.exec("hostA", [Deno.execPath(), "eval", script], { timeoutMs: 20_000 });
      eql(deno.stdout.trim(), `${LAB.hostA} 127.0.0.1`);
      const names = await lab.exec("hostA", ["getent", "hosts", "srv.lab.test"]);
      match(names.stdout, /^203\.0\.113\.10\s+srv\.lab\.test/);
    });

    await t.step("turnutils_stunclient from hostA reports gwA's address, from hostB gwB's", async () => {
      const [a, b] = await Promise.all([stunReflexive(lab, "hostA"), stunReflexive(lab, "hostB")]);
      match(a ?? "", /^203\.0\.113\.101:\d+$/);
      match(b ?? "", /^203\.0\.113\.102:\d+$/);
    });

    await t.step(
      "turnutils_natdiscovery finds prc and sym as the rigs README says, and setNat swaps them",
      async () => {
        eql(lab.natMode("gwA"), "prc");
        eql(lab.natMode("gwB"), "sym");
        const [a, b] = await Promise.all([natDiscovery(lab, "hostA"), natDiscovery(lab, "hostB", false)]);
        eql(a, "NAT with Endpoint Independent Mapping / NAT with Address and Port Dependent Filtering");
        eql(b, "NAT with Address and Port Dependent Mapping");
        await lab.setNat("gwA", "sym");
        await lab.setNat("gwB", "prc");
        eql(lab.natMode("gwA"), "sym");
        const [a2, b2] = await Promise.all([natDiscovery(lab, "hostA", false), natDiscovery(lab, "hostB", false)]);
        eql(a2, "NAT with Address and Port Dependent Mapping");
        eql(b2, "NAT with Endpoint Independent Mapping");
        await lab.setNat("gwA", "prc");
        await lab.setNat("gwB", "sym");
      },
    );

    await t.step(
      "turnutils_uclient from hostB gets a coturn relay that carries data to turnutils_peer on pub",
      async () => {
        const peer = lab.spawn("pub", ["turnutils_peer", "-L", LAB.pub, "-p", "3480"]);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const out = await lab.exec("hostB", [
          "turnutils_uclient",
          "-v",
          "-u",
          LAB.turnUser,
          "-w",
          LAB.turnPassword,
          "-e",
          LAB.pub,
          "-r",
          "3480",
          "-n",
          "5",
          "-m",
          "1",
          LAB.srv,
        ], { timeoutMs: 20_000 });
        match(out.stdout, /Received relay addr: 203\.0\.113\.10:(49[1-9]\d\d)\b/);
        match(out.stdout, /tot_send_msgs=10, tot_recv_msgs=10/);
        match(out.stdout, /Total lost packets 0 /);
        peer.kill();
        await Promise.all([peer.stdout.cancel(), peer.stderr.cancel(), peer.status]);
      },
    );

    await t.step(
      "upnpc maps 40000/udp on gwA's miniupnpd, and a datagram from pub reaches hostA only then",
      async () => {
        eql(await deliver(lab, "pub", "hostA", LAB.gwA, LAB.hostA, 40000, "unmapped", 1500), "");
        const add = await lab.exec(
          "hostA",
          ["upnpc", "-i", "-e", "t", "-a", LAB.hostA, "40000", "40000", "UDP", "600"],
          {
            timeoutMs: 10_000,
          },
        );
        match(add.stdout, /external 203\.0\.113\.101:40000 UDP is redirected to internal 10\.0\.1\.10:40000/);
        eql(await deliver(lab, "pub", "hostA", LAB.gwA, LAB.hostA, 40000, "mapped"), "mapped");
      },
    );

    await t.step("ip route get 198.18.0.1 fails in every namespace of the lab", async () => {
      for (const ns of (await namespaces()).filter((n) => n.startsWith(`${lab.prefix}-`))) {
        const out = await new Deno.Command("ip", { args: ["-n", ns, "route", "get", "198.18.0.1"], stderr: "piped" })
          .output();
        eql(out.code !== 0, true, `${ns} has a route out`);
      }
    });
  },
});

Deno.test({
  name: "two labs run at once without seeing each other, and down() leaves no namespace, process or folder",
  ignore,
  async fn() {
    const [one, two] = await Promise.all([NatLab.up({ natA: "fc", udpTimeout: 10 }), NatLab.up({ upnp: false })]);
    ok(one.prefix !== two.prefix);
    const daemons = [
      ...await Promise.all(["coturn", "miniupnpd"].map((d) => Deno.readTextFile(`${one.stateDir}/${d}/pid`))),
      await Deno.readTextFile(`${two.stateDir}/coturn/pid`),
    ].map(Number);
    try {
      eql(one.natMode("gwA"), "fc");
      eql(two.natMode("gwA"), "prc");
      const timeout = ["sysctl", "-n", "net.netfilter.nf_conntrack_udp_timeout"];
      eql((await one.exec("gwB", timeout)).stdout.trim(), "10");
      eql((await two.exec("gwB", timeout)).stdout.trim(), "30");
      // gwA is a full cone only in lab one: after hostA sends to pub:7000, pub from another port gets through there alone
      for (const lab of [one, two]) {
        await lab.exec("hostA", ["socat", "-u", "-", `UDP4-SENDTO:${LAB.pub}:7000,sourceport=41000`], { stdin: "x" });
      }
      eql(await deliver(one, "pub", "hostA", LAB.gwA, LAB.hostA, 41000, "cone-one"), "cone-one");
      eql(await deliver(two, "pub", "hostA", LAB.gwA, LAB.hostA, 41000, "cone-two", 1500), "");
      // a datagram sent in one lab never reaches the other's host with the same address
      const crossed = one.exec("pub", ["socat", "-u", `UDP4-RECVFROM:7001,bind=${LAB.pub}`, "STDOUT"], {
        timeoutMs: 1500,
      });
      eql(await deliver(two, "hostB", "pub", LAB.pub, LAB.pub, 7001, "lab-two"), "lab-two");
      eql((await crossed).stdout, "");
    } finally {
      await Promise.all([one.down(), two.down()]);
    }
    await one.down(); // twice is fine
    const left = (await namespaces()).filter((n) => n.startsWith(`${one.prefix}-`) || n.startsWith(`${two.prefix}-`));
    eql(left, []);
    for (const lab of [one, two]) {
      for (const host of ["inet", "srv", "hostA"]) eql(await exists(`/etc/netns/${lab.prefix}-${host}`), false);
      eql(await exists(lab.stateDir), false);
    }
    eql(daemons.filter(alive), []);
    await rejects(one.exec("hostA", ["true"]), /is down/);
  },
});

Deno.test({
  name: "cleanupStaleLabs() removes the lab of an owner that was killed, and nothing of a live one",
  ignore,
  async fn() {
    await using live = await NatLab.up({ coturn: false, upnp: false });
    const script = `import { NatLab } from ${JSON.stringify(new URL("../../scripts/nat_lab.ts", import.meta.url).href)};
      const lab = await NatLab.up({ coturn: false, upnp: false });
      console.log(lab.prefix, lab.stateDir);
      await new Promise(() => {});`;
    const owner = new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = owner.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const [prefix, stateDir] = ((await reader.read()).value ?? "").trim().split(" ");
    match(prefix, /^nz[0-9a-z]{4}$/);
    owner.kill("SIGKILL");
    await owner.status;
    await reader.cancel();
    ok((await namespaces()).includes(`${prefix}-hostA`));
    ok(await exists(stateDir));
    const removed = await cleanupStaleLabs();
    // another test process's cleanup may have been first: what counts is that it is gone
    ok(!removed.includes(live.prefix));
    eql((await namespaces()).filter((n) => n.startsWith(`${prefix}-`)), []);
    eql(await exists(stateDir), false);
    eql(await exists(`/etc/netns/${prefix}-hostA`), false);
    ok((await namespaces()).includes(`${live.prefix}-hostA`));
  },
});
