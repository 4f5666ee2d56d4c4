/**
 * A node identity: node ID and did derived from the Ed25519 key, signatures,
 * sealed boxes to the agreement key, records, and wiping.
 */

import { deepStrictEqual as eql, equal, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import { Identity, nodeIdOf } from "../../../kernel/identity/identity.ts";
import { decodeDidKey } from "../../../kernel/identity/did.ts";
import { crypto, sha256 } from "../../../kernel/crypto/mod.ts";
import { fromHex, toHex, utf8 } from "../../../kernel/bytes.ts";
import { IntegrityError } from "../../../kernel/errors.ts";

const ZERO_SEED_PUBLIC = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

Deno.test("the node ID is the lowercase hex SHA-256 of the Ed25519 public key", () => {
  const id = Identity.generate("alice");
  try {
    equal(id.nodeId, toHex(sha256(id.publicKey)));
    equal(id.nodeId, nodeIdOf(id.publicKey));
    ok(/^[0-9a-f]{64}$/.test(id.nodeId));
  } finally {
    id.wipe();
  }
});

Deno.test("nodeIdOf() of a known key is the SHA-256 of its bytes", () => {
  // SHA-256 of the all-zero seed's Ed25519 public key
  equal(nodeIdOf(fromHex(ZERO_SEED_PUBLIC)), toHex(sha256(fromHex(ZERO_SEED_PUBLIC))));
  throws(() => nodeIdOf(new Uint8Array(31)), RangeError);
});

Deno.test("fromRecord() derives the public keys, node ID and did of a known seed", () => {
  const id = Identity.fromRecord({
    name: "zero",
    created: 7,
    seed: new Uint8Array(32),
    x25519Secret: new Uint8Array(32).fill(9),
  });
  equal(toHex(id.publicKey), ZERO_SEED_PUBLIC);
  equal(id.did, "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp");
  eql(id.agreementKey, crypto.x25519PublicKey(new Uint8Array(32).fill(9)));
  eql(decodeDidKey(id.did), id.publicKey);
  eql(id.info(), {
    name: "zero",
    nodeId: nodeIdOf(id.publicKey),
    did: id.did,
    publicKey: ZERO_SEED_PUBLIC,
    agreementKey: toHex(id.agreementKey),
    created: 7,
  });
});

Deno.test("generate() makes a fresh identity each time, with its name and creation time", () => {
  const a = Identity.generate("a", 1000), b = Identity.generate("b");
  try {
    equal(a.name, "a");
    equal(a.created, 1000);
    notDeepStrictEqual(a.publicKey, b.publicKey);
    notDeepStrictEqual(a.agreementKey, b.agreementKey);
    ok(a.nodeId !== b.nodeId && a.did !== b.did);
  } finally {
    a.wipe();
    b.wipe();
  }
});

Deno.test("sign() makes signatures that verify() accepts only for the same key and message", () => {
  const a = Identity.generate("a"), b = Identity.generate("b");
  try {
    const message = utf8("hello, network");
    const signature = a.sign(message);
    equal(signature.length, 64);
    ok(Identity.verify(a.publicKey, message, signature));
    ok(!Identity.verify(b.publicKey, message, signature));
    ok(!Identity.verify(a.publicKey, utf8("hello, networK"), signature));
    const bad = signature.slice();
    bad[0] ^= 1;
    ok(!Identity.verify(a.publicKey, message, bad));
    ok(!Identity.verify(a.publicKey, message, signature.subarray(0, 63)));
    // Ed25519 is deterministic (RFC 8032)
    eql(a.sign(message), signature);
  } finally {
    a.wipe();
    b.wipe();
  }
});

Deno.test("a box sealed to the agreement key opens with the identity and no other", () => {
  const a = Identity.generate("a"), b = Identity.generate("b");
  try {
    const plaintext = utf8("for a's eyes only");
    const sealed = Identity.sealTo(a.agreementKey, plaintext);
    ok(sealed.length > plaintext.length);
    eql(a.openSealed(sealed), plaintext);
    throws(() => b.openSealed(sealed), IntegrityError);
    const tampered = sealed.slice();
    tampered[tampered.length - 1] ^= 1;
    throws(() => a.openSealed(tampered), IntegrityError);
    throws(() => a.openSealed(sealed.subarray(0, 47)), IntegrityError);
    eql(a.openSealed(Identity.sealTo(a.agreementKey, new Uint8Array(0))), new Uint8Array(0));
  } finally {
    a.wipe();
    b.wipe();
  }
});

Deno.test("toRecord() returns copies that rebuild the same identity", () => {
  const a = Identity.generate("a", 5);
  try {
    const record = a.toRecord();
    const copy = Identity.fromRecord(record);
    record.seed.fill(1);
    record.x25519Secret.fill(1);
    eql(copy.info(), a.info());
    eql(copy.sign(utf8("m")), a.sign(utf8("m")));
    eql(a.toRecord().seed.length, 32);
    notDeepStrictEqual(a.toRecord().seed, record.seed);
    copy.wipe();
  } finally {
    a.wipe();
  }
});

Deno.test("fromRecord() rejects secrets of the wrong length", () => {
  throws(
    () => Identity.fromRecord({ name: "x", created: 0, seed: new Uint8Array(31), x25519Secret: new Uint8Array(32) }),
    RangeError,
  );
  throws(
    () => Identity.fromRecord({ name: "x", created: 0, seed: new Uint8Array(32), x25519Secret: new Uint8Array(33) }),
    RangeError,
  );
});

Deno.test("wipe() zeroes the secrets: signatures no longer verify and boxes no longer open", () => {
  const a = Identity.generate("a");
  const message = utf8("before and after");
  const sealed = Identity.sealTo(a.agreementKey, message);
  eql(a.openSealed(sealed), message);
  a.wipe();
  const record = a.toRecord();
  eql(record.seed, new Uint8Array(32));
  eql(record.x25519Secret, new Uint8Array(32));
  ok(!Identity.verify(a.publicKey, message, a.sign(message)));
  throws(() => a.openSealed(sealed), IntegrityError);
  // the public facts stay readable
  equal(a.nodeId, nodeIdOf(a.publicKey));
});
