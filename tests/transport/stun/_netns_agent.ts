/**
 * Test fixture run inside a network namespace (`ip netns exec NS deno run -A _netns_agent.ts ...`):
 *
 * - `client HOST PORT [BIND]`: our StunClient against a server (coturn): Binding over UDP (waiting up to 10 s
 *   for the server to come up), Binding over TCP, then RFC 5780 discovery; prints one JSON line.
 * - `nat HOST PORT`: `discoverNatBehavior` from a socket on 0.0.0.0 against a server; prints one JSON line.
 * - `server IP_A IP_B [--response-port]`: our StunServer on the RFC 5780 socket set (RESPONSE-PORT honoured with
 *   the flag); prints one JSON line with its addresses, serves until stdin closes, then prints its stats as one
 *   JSON line.
 */

import { discoverNatBehavior, StunClient, StunError, StunServer, UdpSocket } from "../../../transport/mod.ts";
import { bindRfc5780Sockets } from "./_sockets.ts";

const [mode, ...args] = Deno.args;

if (mode === "client") {
  const [host, port, bind = "0.0.0.0"] = args;
  const server = { hostname: host, port: Number(port) };
  await using socket = await UdpSocket.bind(`${bind}:0`);
  using client = new StunClient(socket);
  let binding;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      binding = await client.binding(server, { rtoMs: 100, rc: 2, rm: 2 });
      break;
    } catch (error) {
      if (!(error instanceof StunError) || Date.now() > deadline) throw error;
    }
  }
  const tcp = await client.bindingOverTcp(server, { timeoutMs: 5000 });
  const nat = await discoverNatBehavior(client, server);
  console.log(JSON.stringify({ socket: socket.addr, binding, tcp, nat, stats: client.stats }));
} else if (mode === "nat") {
  const [host, port] = args;
  await using socket = await UdpSocket.bind("0.0.0.0:0");
  using client = new StunClient(socket);
  const nat = await discoverNatBehavior(client, { hostname: host, port: Number(port) });
  console.log(JSON.stringify({ socket: socket.addr, nat }));
} else if (mode === "server") {
  const [ipA, ipB, flag] = args;
  await using sockets = await bindRfc5780Sockets(ipA, ipB);
  using server = new StunServer(sockets, { allowResponsePort: flag === "--response-port" });
  console.log(JSON.stringify({
    primary: sockets.primary.addr,
    alternatePort: sockets.alternatePort!.addr,
    alternateIp: sockets.alternateIp!.addr,
    alternateBoth: sockets.alternateBoth!.addr,
  }));
  for await (const _ of Deno.stdin.readable) { /* serve until stdin closes */ }
  console.log(JSON.stringify(server.stats));
} else {
  console.error("usage: _netns_agent.ts client HOST PORT [BIND] | nat HOST PORT | server IP_A IP_B [--response-port]");
  Deno.exit(2);
}
