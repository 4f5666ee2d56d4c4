import { equal, ok, throws } from "node:assert/strict";
import { Identity } from "../../../kernel/identity/identity.ts";
import { AddressBook } from "../../../kernel/peers/address_book.ts";
import { PeerManager } from "../../../kernel/peers/manager.ts";
import { Reachability } from "../../../kernel/node/reachability.ts";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";
import { TcpTransport } from "../../../transport/tcp.ts";
import { UdpSocket } from "../../../transport/udp.ts";

async function manager(): Promise<PeerManager & AsyncDisposable> {
  const store = await EncryptedStore.open(undefined, crypto.getRandomValues(new Uint8Array(32)));
  const book = await AddressBook.open(store);
  const identity = Identity.generate("r");
  const m = new PeerManager({ identity: () => identity, book, transports: [new TcpTransport()] });
  return Object.assign(m, {
    async [Symbol.asyncDispose]() {
      await m.close();
      store.close();
    },
  });
}

Deno.test("reachability: a node serves STUN on its UDP socket, and another learns its address from it", async () => {
  await using a = await manager();
  await using b = await manager();
  const [udpA] = await a.listen(["udp://127.0.0.1:0"]);
  const [udpB] = await b.listen(["udp://127.0.0.1:0"]);
  const ra = new Reachability(a, { stunServers: [udpB.slice("udp://".length)] });
  const rb = new Reachability(b);
  try {
    await rb.start();
    await ra.start();
    const state = await ra.check();
    equal(state.udp, udpA);
    equal(state.stun.length, 1);
    equal(state.stun[0].mapped, udpA, "B saw A's own address");
    equal(state.natType, "open");
    ok(state.publicAddresses.includes(udpA));
    ok(rb.state().servingStun);
    ok(state.checkedAt !== null);
  } finally {
    await ra.close();
    await rb.close();
  }
});

Deno.test("reachability: connected UDP peers are asked; a silent server is reported, not fatal", async () => {
  await using a = await manager();
  await using b = await manager();
  await a.listen(["udp://127.0.0.1:0"]);
  const [udpB] = await b.listen(["udp://127.0.0.1:0"]);
  const silent = await UdpSocket.bind("udp://127.0.0.1:0");
  const rb = new Reachability(b);
  const ra = new Reachability(a, { stunServers: [`127.0.0.1:${silent.addr.port}`] });
  try {
    await rb.start();
    await a.connect(udpB);
    const state = await ra.check();
    equal(state.stun.length, 2);
    const fromPeer = state.stun.find((o) => o.server.startsWith("peer "));
    equal(fromPeer?.mapped, a.udpSocket!.url);
    const dead = state.stun.find((o) => !o.server.startsWith("peer "));
    ok(dead?.error, "the silent server is reported with its error");
  } finally {
    await ra.close();
    await rb.close();
    await silent.close();
  }
});

Deno.test("reachability: a STUN server that is not HOST:PORT is refused at once", async () => {
  await using a = await manager();
  throws(() => new Reachability(a, { stunServers: ["not an address"] }), SyntaxError);
});
