/**
 * did:key for Ed25519 keys, checked against the W3C did:key test vectors
 * (w3c-ccg/did-method-key, test-vectors/ed25519-x25519.json).
 */

import { deepStrictEqual as eql, equal, throws } from "node:assert/strict";
import fc from "fast-check";
import { base58 } from "@scure/base";
import { decodeDidKey, encodeDidKey } from "../../../kernel/identity/did.ts";
import { crypto } from "../../../kernel/crypto/mod.ts";
import { fromHex, toHex } from "../../../kernel/bytes.ts";

// W3C did:key, test-vectors/ed25519-x25519.json: the Ed25519 key of the all-zero seed
// (publicKeyBase58 4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS).
const EXAMPLE = {
  seed: "0000000000000000000000000000000000000000000000000000000000000000",
  publicKey: "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
  publicKeyBase58: "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
  did: "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
};
const VECTORS = [
  EXAMPLE,
  {
    seed: "0000000000000000000000000000000000000000000000000000000000000001",
    publicKeyBase58: "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
    did: "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
  },
  {
    seed: "0000000000000000000000000000000000000000000000000000000000000002",
    publicKeyBase58: "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
    did: "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
  },
];

Deno.test("encodeDidKey() gives the W3C example did for its Ed25519 public key", () => {
  const v = EXAMPLE;
  equal(encodeDidKey(fromHex(v.publicKey)), v.did);
});

Deno.test("decodeDidKey() gives the public key of the W3C example did", () => {
  const v = EXAMPLE;
  equal(toHex(decodeDidKey(v.did)), v.publicKey);
  eql(decodeDidKey(v.did), base58.decode(v.publicKeyBase58));
});

Deno.test("the W3C vectors hold from seed to public key to did and back", () => {
  for (const v of VECTORS) {
    const publicKey = crypto.ed25519PublicKey(fromHex(v.seed));
    eql(publicKey, base58.decode(v.publicKeyBase58));
    equal(encodeDidKey(publicKey), v.did);
    eql(decodeDidKey(v.did), publicKey);
  }
});

Deno.test("a did:key starts with z6Mk, the base58btc form of the ed25519-pub multicodec", () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
    const did = encodeDidKey(key);
    equal(did.slice(0, 12), "did:key:z6Mk");
    eql(decodeDidKey(did), key);
  }));
});

Deno.test("decodeDidKey() rejects a malformed did with SyntaxError", () => {
  const good = EXAMPLE.did;
  const bad = [
    "",
    "did:key:",
    "did:key:z",
    "did:web:example.com",
    "did:key:" + good.slice(9), // no multibase prefix
    good.replace("did:key:z", "did:key:f"), // base16 multibase, not supported
    good.replace("did:key:", "DID:KEY:"),
    good + "0", // 0 is not in the base58 alphabet
    good.slice(0, -1) + "l", // nor is l
    good.slice(0, -2), // too short
    good + "1", // one more base58 digit: too long
    "did:key:z" + base58.encode(Uint8Array.of(0xec, 0x01, ...new Uint8Array(32))), // x25519-pub, not ed25519-pub
    "did:key:z" + base58.encode(Uint8Array.of(0xed, 0x01, ...new Uint8Array(31))),
    "did:key:z" + base58.encode(Uint8Array.of(0xed, 0x01, ...new Uint8Array(33))),
    "did:key:z" + base58.encode(new Uint8Array(34)),
    ` ${good}`,
    `${good}#${good.slice(8)}`,
  ];
  for (const did of bad) throws(() => decodeDidKey(did), SyntaxError, JSON.stringify(did));
});

Deno.test("encodeDidKey() rejects a public key that is not 32 bytes", () => {
  throws(() => encodeDidKey(new Uint8Array(31)), RangeError);
  throws(() => encodeDidKey(new Uint8Array(33)), RangeError);
  throws(() => encodeDidKey("key" as unknown as Uint8Array), TypeError);
});
