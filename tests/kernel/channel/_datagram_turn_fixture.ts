/**
 * Inside coturn's network namespace (see `datagram_turn_test.ts`): endpoint A
 * on a TURN allocation, endpoint B on a plain UDP socket; a handshake and
 * 100 KB each way through the relay. Prints what it saw as one line of JSON.
 * Argument: JSON `{ port, transport }`.
 *
 * @module
 */

import { DatagramEndpoint } from "../../../kernel/channel/datagram_endpoint.ts";
import type { DatagramSession } from "../../../kernel/channel/datagram_session.ts";
import { performHandshake } from "../../../kernel/channel/handshake.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { TurnClient } from "../../../transport/turn/mod.ts";
import { UdpSocket } from "../../../transport/udp.ts";
import { pattern, readAll } from "./_datagram.ts";

const args = JSON.parse(Deno.args[0]) as { port: number; transport: "udp" | "tcp" };
const alice = Identity.generate("alice");
const bob = Identity.generate("bob");

const allocation = await TurnClient.allocate({
  server: { hostname: "127.0.0.1", port: args.port },
  transport: args.transport,
  username: "test",
  password: "test123",
});
const socketB = await UdpSocket.bind("udp://127.0.0.1:0");
const accepted = Promise.withResolvers<DatagramSession>();
const endpointB = new DatagramEndpoint(socketB, {
  onHandshake: (hs) => {
    performHandshake(hs, { role: "responder", identity: bob }).then(
      (result) => accepted.resolve(hs.establish(result.keys)),
      accepted.reject,
    );
  },
});
const endpointA = new DatagramEndpoint(allocation, { onHandshake: (hs) => hs.abort() });
const hs = endpointA.dial(socketB.addr);
const result = await performHandshake(hs, { role: "initiator", identity: alice, expectedPeer: bob.nodeId });
const a = hs.establish(result.keys);
const b = await accepted.promise;

const there = pattern(100_000, 3), back = pattern(100_000, 5);
await Promise.all([a.write(there), b.write(back)]);
const [gotThere, gotBack] = await Promise.all([readAll(b, there.length), readAll(a, back.length)]);

const output = {
  localAddrA: endpointA.localAddr,
  relayed: allocation.url,
  bSawA: b.remoteAddr,
  aSawB: a.remoteAddr,
  b: socketB.url,
  thereIntact: gotThere.every((v, i) => v === there[i]) && gotThere.length === there.length,
  backIntact: gotBack.every((v, i) => v === back[i]) && gotBack.length === back.length,
  stats: { ...allocation.stats },
};
a.abort();
b.abort();
endpointA.close();
endpointB.close();
await allocation.close();
await socketB.close();
console.log(JSON.stringify(output));
