import { deepStrictEqual as eql, notDeepStrictEqual, throws } from "node:assert/strict";
import { concat, utf8 } from "../../../kernel/bytes.ts";
import { DEFAULT_SCRYPT, deriveKey } from "../../../kernel/crypto/kdf.ts";
import { LABEL_BLOB, LABEL_KV_VALUE } from "../../../kernel/crypto/labels.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";

const MASTER = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);

Deno.test("deriveKey() is HKDF-SHA-256 with an empty salt and info = label || 0x00 || context", () => {
  const context = utf8("namespace");
  const info = concat(utf8(LABEL_KV_VALUE), new Uint8Array([0]), context);
  eql(deriveKey(MASTER, LABEL_KV_VALUE, context), nobleProvider.hkdf(MASTER, new Uint8Array(0), info, 32));
  const bare = concat(utf8(LABEL_BLOB), new Uint8Array([0]));
  eql(deriveKey(MASTER, LABEL_BLOB), nobleProvider.hkdf(MASTER, new Uint8Array(0), bare, 32));
  eql(deriveKey(MASTER, LABEL_BLOB, undefined, 64), nobleProvider.hkdf(MASTER, new Uint8Array(0), bare, 64));
});

Deno.test("deriveKey() separates labels and contexts", () => {
  notDeepStrictEqual(deriveKey(MASTER, LABEL_BLOB), deriveKey(MASTER, LABEL_KV_VALUE));
  notDeepStrictEqual(deriveKey(MASTER, LABEL_KV_VALUE, utf8("a")), deriveKey(MASTER, LABEL_KV_VALUE, utf8("b")));
  notDeepStrictEqual(deriveKey(MASTER, LABEL_KV_VALUE), deriveKey(MASTER, LABEL_KV_VALUE, new Uint8Array([0])));
});

Deno.test("deriveKey() rejects a short master, an empty label and a label containing U+0000", () => {
  throws(() => deriveKey(MASTER.subarray(1), LABEL_BLOB), {
    name: "RangeError",
    message: "Invalid master: length is 31, expected >= 32",
  });
  throws(() => deriveKey(MASTER, ""), RangeError);
  throws(() => deriveKey(MASTER, "a\0b"), { name: "RangeError", message: /U\+0000/ });
  throws(() => deriveKey(MASTER, 7 as unknown as string), TypeError);
  throws(() => deriveKey(MASTER, LABEL_BLOB, "ctx" as unknown as Uint8Array), {
    name: "TypeError",
    message: /context/,
  });
  throws(() => deriveKey(MASTER, LABEL_BLOB, undefined, 0), RangeError);
});

Deno.test("DEFAULT_SCRYPT is N = 2^17, r = 8, p = 1, 32 bytes, and frozen", () => {
  eql(DEFAULT_SCRYPT, { N: 131072, r: 8, p: 1, dkLen: 32 });
  eql(Object.isFrozen(DEFAULT_SCRYPT), true);
});
