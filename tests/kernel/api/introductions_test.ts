/**
 * The API of introductions and nz:// URIs, over a real node (the app without sockets) and peers on loopback TCP:
 * `GET /v1/identity/uri`, `POST /v1/peers` with an nz:// URI, and `POST /v1/peers/introduce`.
 */

import { equal, ok } from "node:assert/strict";
import { serveIntroductions } from "../../../kernel/discovery/introduction.ts";
import { formatNzUri, parseNzUri } from "../../../kernel/discovery/nz_uri.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { peer, until } from "../peers/_peer.ts";
import { appUnderTest } from "./_app.ts";

const DEAD = "tcp://127.0.0.1:9"; // discard port: nothing listens there on a test machine

Deno.test("GET /v1/identity/uri gives the node's DID and its listen address as an nz:// URI", async () => {
  await using t = await appUnderTest();
  const [address] = await t.node.peers.listen(["tcp://127.0.0.1:0"]);
  const response = await t.request("/v1/identity/uri");
  equal(response.status, 200);
  const body = await response.json();
  const parsed = parseNzUri(body.uri);
  equal(parsed.did, t.node.identity.did);
  equal(body.nodeId, t.node.identity.nodeId);
  ok(parsed.addresses.includes(address), `${address} in ${body.uri}`);
  equal(body.addresses.length, parsed.addresses.length);
});

Deno.test("POST /v1/peers with an nz:// URI dials its addresses in order and authenticates its node", async () => {
  await using t = await appUnderTest();
  await using c = await peer();
  const [address] = await c.manager.listen(["tcp://127.0.0.1:0"]);
  const uri = formatNzUri({ publicKey: c.identity.publicKey, addresses: [DEAD, address] });
  const response = await t.request("/v1/peers", { method: "POST", json: { address: uri } });
  equal(response.status, 200, await response.clone().text());
  const session = await response.json();
  equal(session.nodeId, c.nodeId);
  equal(session.address, address);
});

Deno.test("POST /v1/peers with an nz:// URI of another key than the node at its address fails peer_mismatch", async () => {
  await using t = await appUnderTest();
  await using c = await peer();
  const [address] = await c.manager.listen(["tcp://127.0.0.1:0"]);
  const uri = formatNzUri({ publicKey: Identity.generate("someone else").publicKey, addresses: [address] });
  const response = await t.request("/v1/peers", { method: "POST", json: { address: uri } });
  equal(response.status, 502);
  equal((await response.json()).error.code, "peer_mismatch");
  equal(t.node.peers.sessions().length, 0);
});

Deno.test("POST /v1/peers refuses a malformed nz:// URI, one without addr, and a peer that is not the URI's", async () => {
  await using t = await appUnderTest();
  const key = Identity.generate("k");
  const cases: [unknown, RegExp][] = [
    [{ address: "nz://z6Mk0bad" }, /nz:\/\/ URI/],
    [{ address: formatNzUri({ publicKey: key.publicKey }) }, /no addr/],
    [{ address: `nz://${key.did.slice(8)}?addr=tcp://[::1]:1` }, /percent-encoded/],
    [
      { address: formatNzUri({ publicKey: key.publicKey, addresses: [DEAD] }), peer: Identity.generate("o").nodeId },
      /not the node of the nz:\/\/ URI/,
    ],
  ];
  for (const [json, message] of cases) {
    const response = await t.request("/v1/peers", { method: "POST", json });
    equal(response.status, 400, JSON.stringify(json));
    const { error } = await response.json();
    equal(error.code, "invalid_request");
    ok(message.test(error.message), error.message);
  }
});

Deno.test("POST /v1/peers/introduce introduces a dialed peer to a connected one, which dials it", async () => {
  await using t = await appUnderTest();
  await using b = await peer(), c = await peer();
  const service = serveIntroductions(b.manager, {
    self: () => b.nodeId,
    known: (nodeId) => b.book.get(nodeId) !== undefined,
  });
  try {
    const [xAddress] = await t.node.peers.listen(["tcp://127.0.0.1:0"]);
    const [cAddress] = await c.manager.listen(["tcp://127.0.0.1:0"]);
    await b.manager.connect(xAddress); // B dialed the node: B knows its introducer
    await t.node.peers.connect(cAddress); // the node dialed C: it knows C's address
    await until(() => t.node.peers.sessions().length === 2);
    const response = await t.request("/v1/peers/introduce", {
      method: "POST",
      json: { to: b.identity.did, peer: c.nodeId.slice(0, 12) },
    });
    equal(response.status, 200, await response.clone().text());
    const body = await response.json();
    equal(body.to, b.nodeId);
    equal(body.peer, c.nodeId);
    equal(body.did, c.identity.did);
    equal(body.status, "dialing");
    equal(body.accepted, true);
    equal(body.addresses[0], cAddress);
    await until(() => b.manager.sessions().some((s) => s.nodeId === c.nodeId), 5_000, "B's session with C");
  } finally {
    await service.close();
  }
});

Deno.test("POST /v1/peers/introduce answers the receiver's refusal, 404 for no session, 409 for no address", async () => {
  await using t = await appUnderTest();
  await using b = await peer(), c = await peer();
  const service = serveIntroductions(b.manager, { policy: "off", self: () => b.nodeId, known: () => true });
  try {
    const [xAddress] = await t.node.peers.listen(["tcp://127.0.0.1:0"]);
    const [cAddress] = await c.manager.listen(["tcp://127.0.0.1:0"]);
    await b.manager.connect(xAddress);
    await t.node.peers.connect(cAddress);
    await until(() => t.node.peers.sessions().length === 2);
    const refused = await t.request("/v1/peers/introduce", { method: "POST", json: { to: b.nodeId, peer: c.nodeId } });
    equal(refused.status, 200);
    const body = await refused.json();
    equal(body.accepted, false);
    equal(body.status, "refused");
    ok(/no introductions/.test(body.reason), body.reason);
    const unknown = Identity.generate("nobody").nodeId;
    const missing = await t.request("/v1/peers/introduce", { method: "POST", json: { to: unknown, peer: c.nodeId } });
    equal(missing.status, 404);
    // B reached the node inbound over TCP: the node knows no address to give for it.
    const noAddress = await t.request("/v1/peers/introduce", {
      method: "POST",
      json: { to: c.nodeId, peer: b.nodeId },
    });
    equal(noAddress.status, 409);
    ok(/No address is known/.test((await noAddress.json()).error.message));
  } finally {
    await service.close();
  }
});

Deno.test("POST /v1/peers/introduce fails channel_failed when the receiver takes no introductions", async () => {
  await using t = await appUnderTest();
  await using b = await peer(), c = await peer();
  const [bAddress] = await b.manager.listen(["tcp://127.0.0.1:0"]);
  const [cAddress] = await c.manager.listen(["tcp://127.0.0.1:0"]);
  await t.node.peers.connect(bAddress);
  await t.node.peers.connect(cAddress);
  const response = await t.request("/v1/peers/introduce", { method: "POST", json: { to: b.nodeId, peer: c.nodeId } });
  equal(response.status, 502);
  equal((await response.json()).error.code, "channel_failed");
});
