/**
 * spec/vectors/nz_lan_01.json (NZ-LAN-01, written by scripts/gen_lan_vectors.ts
 * byte by byte from the RFCs): the node's identity, TXT and instance name; the
 * announcement the responder sends, byte for byte, captured off the loopback
 * interface on a private port; and the TXT records to accept and to refuse.
 */

import { deepEqual, equal } from "node:assert/strict";
import dgram from "node:dgram";
import vectors from "../../../spec/vectors/nz_lan_01.json" with { type: "json" };
import { fromHex, toHex, utf8 } from "../../../kernel/bytes.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { LAN_SERVICE_TYPE, lanInstance, lanTxt, parseLanTxt } from "../../../kernel/discovery/lan.ts";
import { decodeTxt, encodeTxt, MdnsSocket } from "../../../transport/mdns/mod.ts";

const { node } = vectors;
const identity = Identity.fromRecord({
  name: "vector",
  created: 0,
  seed: fromHex(node.seed),
  x25519Secret: new Uint8Array(32).fill(7),
});

Deno.test("NZ-LAN-01 vectors: the node's ID, DID, instance name and TXT", () => {
  equal(identity.nodeId, node.nodeId);
  equal(identity.did, node.did);
  equal(lanInstance(identity.nodeId), node.instance);
  const txt = lanTxt(identity, node.listening);
  deepEqual(encodeTxt(txt).map((s) => new TextDecoder().decode(s)), node.txt);
});

Deno.test("NZ-LAN-01 vectors: the responder's announcement is the vector's packet, byte for byte", async () => {
  const port = 20_000 + Math.floor(Math.random() * 30_000);
  // A plain socket in the group on the loopback interface records the raw bytes.
  const raw = dgram.createSocket({ type: "udp4", reuseAddr: true });
  await new Promise<void>((resolve) => raw.bind(port, "0.0.0.0", resolve));
  raw.addMembership("224.0.0.251", "127.0.0.1");
  const first = Promise.withResolvers<Uint8Array>();
  raw.on("message", (message) => first.resolve(new Uint8Array(message)));
  await using mdns = await MdnsSocket.open({ interface: "127.0.0.1", port });
  try {
    await mdns.announce({
      instance: lanInstance(identity.nodeId),
      host: lanInstance(identity.nodeId),
      type: LAN_SERVICE_TYPE,
      port: node.port,
      txt: lanTxt(identity, node.listening),
      addresses: [node.address],
      probe: false,
    });
    equal(toHex(await first.promise), vectors.announcement);
  } finally {
    await new Promise<void>((resolve) => raw.close(() => resolve()));
  }
});

Deno.test("NZ-LAN-01 vectors: TXT records to accept parse to the vector's record", () => {
  for (const v of vectors.txt.accept) deepEqual(parseLanTxt(decodeTxt(v.strings.map(utf8))), v.parsed, v.name);
});

Deno.test("NZ-LAN-01 vectors: TXT records to refuse are refused", () => {
  for (const v of vectors.txt.refuse) equal(parseLanTxt(decodeTxt(v.strings.map(utf8))), null, v.name);
});
