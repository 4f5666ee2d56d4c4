/**
 * Runs inside a NAT lab host for portmap_lab_test.ts: binds a UDP socket,
 * maps its port with a {@linkcode PortMapper}, and prints one JSON line per
 * event (`mapped`, `error`, `log`, `change`, `datagram`, `closed`). A datagram
 * `close` (sent to the socket from the host itself) closes the mapper and
 * ends the process.
 *
 * `deno run -A _map_fixture.ts --port 40000 [--protocol udp|tcp] [--method pcp,nat-pmp,upnp] [--lifetime 7200]
 *  [--gateway 10.0.1.1] [--strict] [--timeout 2000] [--external-first]`
 *
 * `--external-first` asks `externalAddress()` before mapping and prints it (`external`).
 *
 * @module
 */

import { PortMapper, PortMappingError } from "../../../transport/mod.ts";
import type { MappingMethod } from "../../../transport/mod.ts";

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

function print(event: Record<string, unknown>): void {
  console.log(JSON.stringify({ ...event, at: Date.now() }));
}

const port = Number(arg("port"));
const protocol = (arg("protocol") ?? "udp") as "udp" | "tcp";
const started = Date.now();
const conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
const mapper = new PortMapper({
  gateway: arg("gateway"),
  methods: arg("method")?.split(",") as MappingMethod[] | undefined,
  lifetimeSeconds: arg("lifetime") ? Number(arg("lifetime")) : undefined,
  timeoutMs: arg("timeout") ? Number(arg("timeout")) : undefined,
  allowReservedExternal: !Deno.args.includes("--strict"),
  log: (msg) => print({ event: "log", msg }),
});
mapper.onChange = (mapping) => print({ event: "change", mapping });

try {
  if (Deno.args.includes("--external-first")) print({ event: "external", address: await mapper.externalAddress() });
  const mapping = await mapper.map(protocol, port);
  print({ event: "mapped", mapping, ms: Date.now() - started });
} catch (error) {
  const e = error as PortMappingError;
  print({
    event: "error",
    name: e.name,
    message: e.message,
    reason: e instanceof PortMappingError ? e.reason : undefined,
    causes: e.cause instanceof AggregateError ? e.cause.errors.map((c) => (c as PortMappingError).reason) : undefined,
    ms: Date.now() - started,
  });
  conn.close();
  await mapper.close();
  Deno.exit(0);
}

for await (const [data, from] of conn) {
  const text = new TextDecoder().decode(data).trim();
  print({ event: "datagram", text, from: (from as Deno.NetAddr).hostname });
  if (text === "close") break;
}
const t = Date.now();
await mapper.close();
print({ event: "closed", ms: Date.now() - t, mappings: mapper.mappings.length });
conn.close();
