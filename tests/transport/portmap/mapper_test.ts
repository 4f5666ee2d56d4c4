import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { PortMapper, PortMappingError } from "../../../transport/mod.ts";
import { isReservedIPv4, parseDefaultGateway } from "../../../transport/portmap/_ip.ts";

const HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";

Deno.test("portmap: parseDefaultGateway() reads the default route of /proc/net/route", () => {
  const text = [
    HEADER,
    "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
    "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
    "wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0",
  ].join("\n");
  equal(parseDefaultGateway(text), "192.168.1.1");
});

Deno.test("portmap: parseDefaultGateway() takes the most general gateway route when there is no default (the NAT lab)", () => {
  const text = [
    HEADER,
    "eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0", // 10.0.1.0/24 on link
    "eth0\t007100CB\t0101000A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0", // 203.0.113.0/24 via 10.0.1.1
    "eth0\t000000E0\t00000000\t0001\t0\t0\t0\t000000F0\t0\t0\t0", // 224.0.0.0/4 on link
  ].join("\n");
  equal(parseDefaultGateway(text), "10.0.1.1");
  equal(parseDefaultGateway(HEADER), null);
  equal(parseDefaultGateway("garbage\nnot a route table"), null);
  // A down route (no RTF_UP) does not count.
  equal(parseDefaultGateway(`${HEADER}\neth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0`), null);
});

Deno.test("portmap: isReservedIPv4() knows the private, shared, documentation and special ranges", () => {
  for (const a of ["10.1.2.3", "100.64.0.1", "172.31.255.255", "192.168.0.1", "203.0.113.101", "198.51.100.7"]) {
    ok(isReservedIPv4(a), a);
  }
  for (const a of ["0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1", "255.255.255.255", "198.18.5.5"]) {
    ok(isReservedIPv4(a), a);
  }
  for (const a of ["1.1.1.1", "8.8.8.8", "100.128.0.1", "172.32.0.1", "203.0.114.1", "192.169.0.1"]) {
    ok(!isReservedIPv4(a), a);
  }
});

Deno.test("portmap: PortMapper validates its options and arguments, naming the parameter", async () => {
  throws(() => new PortMapper({ gateway: "router" }), /gateway is not an IPv4 address/);
  throws(() => new PortMapper({ methods: [] }), /methods must name at least one/);
  throws(() => new PortMapper({ methods: ["stun" as "pcp"] }), /unknown method "stun"/);
  throws(() => new PortMapper({ lifetimeSeconds: 0 }), /lifetimeSeconds must be an integer >= 1/);
  await using mapper = new PortMapper({ gateway: "127.0.0.1", internalAddress: "127.0.0.1" });
  await rejects(mapper.map("sctp" as "udp", 1), /protocol must be "udp" or "tcp"/);
  await rejects(mapper.map("udp", 0), /internalPort must be an integer 1-65535, got 0/);
  await rejects(mapper.map("udp", 1, 70000), /preferredExternalPort/);
  deepEqual(mapper.mappings, []);
});

Deno.test("portmap: PortMapper.map() fails every method within its budgets when nothing answers on 127.0.0.1:5351", async () => {
  const logs: string[] = [];
  await using mapper = new PortMapper({
    gateway: "127.0.0.1",
    internalAddress: "127.0.0.1",
    methods: ["pcp", "nat-pmp"],
    timeoutMs: 300,
    log: (m) => logs.push(m),
  });
  const t = Date.now();
  await rejects(mapper.map("udp", 4000), (e: Error) => {
    ok(e instanceof PortMappingError);
    equal(e.reason, "ALL_METHODS_FAILED");
    equal(e.method, undefined);
    ok(e.message.startsWith(`could not map udp port 4000 with pcp, nat-pmp: pcp: `), e.message);
    ok(e.cause instanceof AggregateError);
    deepEqual(e.cause.errors.map((c: PortMappingError) => [c.method, c.reason]), [
      ["pcp", "TIMEOUT"],
      ["nat-pmp", "TIMEOUT"],
    ]);
    return true;
  });
  const elapsed = Date.now() - t;
  ok(elapsed < 1500, `took ${elapsed} ms`);
  ok(logs.some((l) => l.includes("pcp: could not map")), logs.join("\n"));
  deepEqual(mapper.mappings, []);
  equal(await mapper.externalAddress(), null);
});

Deno.test("portmap: a closed PortMapper refuses to map; an aborted signal closes it", async () => {
  const mapper = new PortMapper({ gateway: "127.0.0.1", internalAddress: "127.0.0.1" });
  await mapper.close();
  await mapper.close(); // twice is fine
  await rejects(mapper.map("udp", 4000), (e: Error) => e instanceof PortMappingError && e.reason === "CLOSED");
  const controller = new AbortController();
  const other = new PortMapper({ gateway: "127.0.0.1", internalAddress: "127.0.0.1", signal: controller.signal });
  controller.abort();
  await rejects(other.map("udp", 4000), /closed/);
});
