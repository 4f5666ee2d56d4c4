import { deepStrictEqual as eql, equal, throws } from "node:assert/strict";
import { ConflictError, NotFoundError } from "../../../kernel/errors.ts";
import { AddressBook, resolvePeerName } from "../../../kernel/peers/address_book.ts";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";

const A = { nodeId: "aa".repeat(32), did: "did:key:z6MkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };
const B = { nodeId: "ab".repeat(32), did: "did:key:z6MkBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB" };

Deno.test("the address book keeps peers, their addresses newest first, and pins across a reload", async () => {
  using store = await EncryptedStore.open(undefined, new Uint8Array(32).fill(3));
  const book = await AddressBook.open(store);
  await book.seen(A, { dialed: "tcp://192.0.2.1:7475" });
  await book.seen(A, { address: "tcp://192.0.2.2:40000" });
  await book.seen(B, { address: "ws://192.0.2.3:80/nz" });
  await book.setAutoConnect(A.nodeId, true);
  const again = await AddressBook.open(store);
  eql(again.get(A.nodeId)?.addresses, ["tcp://192.0.2.2:40000", "tcp://192.0.2.1:7475"]);
  equal(again.get(A.nodeId)?.autoConnect, true);
  equal(again.get(B.nodeId)?.autoConnect, false);
  equal(again.pinned("tcp://192.0.2.1:7475"), A.nodeId);
  equal(again.pinned("tcp://192.0.2.2:40000"), undefined, "inbound addresses are not pinned");
  await again.forget(A.nodeId);
  const third = await AddressBook.open(store);
  equal(third.get(A.nodeId), undefined);
  equal(third.pinned("tcp://192.0.2.1:7475"), undefined);
  equal(third.list().length, 1);
});

Deno.test("resolvePeerName() takes a node ID, a DID, or a unique prefix of either", () => {
  const peers = [A, B];
  equal(resolvePeerName(A.nodeId, peers), A);
  equal(resolvePeerName(B.did, peers), B);
  equal(resolvePeerName("aaaa", peers), A);
  equal(resolvePeerName("did:key:z6MkB", peers), B);
  throws(() => resolvePeerName("a", peers), ConflictError);
  throws(() => resolvePeerName("did:key:z", peers), NotFoundError, "a bare did:key:z prefix names nobody");
  throws(() => resolvePeerName("ff", peers), NotFoundError);
  throws(() => resolvePeerName("", peers), NotFoundError);
});
