import { deepStrictEqual as eql, notDeepStrictEqual, rejects, throws } from "node:assert/strict";
import { concat, utf8 } from "../../../kernel/bytes.ts";
import { checkPassphraseScrypt, DEFAULT_SCRYPT, deriveKey, passphraseKey } from "../../../kernel/crypto/kdf.ts";
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

Deno.test("checkPassphraseScrypt() accepts the default and refuses more than 256 MiB, 1 GiB of work or odd N, r, p", () => {
  checkPassphraseScrypt(DEFAULT_SCRYPT);
  checkPassphraseScrypt({ N: 2 ** 18, r: 8, p: 1 });
  checkPassphraseScrypt({ N: 2 ** 17, r: 8, p: 8 });
  checkPassphraseScrypt({ N: 2, r: 1, p: 1 });
  throws(() => checkPassphraseScrypt({ N: 2 ** 19, r: 8, p: 1 }), {
    name: "RangeError",
    message: "Invalid scrypt cost: N = 524288, r = 8 need 512 MiB, expected at most 256 MiB",
  });
  throws(() => checkPassphraseScrypt({ N: 2 ** 12, r: 32 * 32, p: 1 }), { name: "RangeError", message: /scrypt r/ });
  throws(() => checkPassphraseScrypt({ N: 2 ** 17, r: 8, p: 9 }), {
    name: "RangeError",
    message: "Invalid scrypt cost: N = 131072, r = 8, p = 9 is 1152 MiB of work, expected at most 1024 MiB",
  });
  throws(() => checkPassphraseScrypt({ N: 2 ** 10, r: 8, p: 17 }), { name: "RangeError", message: /scrypt p: 17/ });
  for (const N of [0, 1, 1000, 1024.5, -1024, NaN]) throws(() => checkPassphraseScrypt({ N, r: 8, p: 1 }), RangeError);
  for (const r of [0, 33, 1.5]) throws(() => checkPassphraseScrypt({ N: 1024, r, p: 1 }), RangeError);
  throws(() => checkPassphraseScrypt({ N: "1024" as unknown as number, r: 8, p: 1 }), RangeError);
});

Deno.test("passphraseKey() is scrypt of the NFKC passphrase, and refuses a cost out of bounds", async () => {
  const salt = new Uint8Array(16).fill(3);
  const params = { N: 1024, r: 8, p: 1, dkLen: 32 };
  eql(await passphraseKey("caf\u00e9", salt, params), await nobleProvider.scrypt(utf8("caf\u00e9"), salt, params));
  eql(await passphraseKey("cafe\u0301", salt, params), await passphraseKey("caf\u00e9", salt, params));
  await rejects(passphraseKey("p", salt, { ...params, N: 2 ** 19 }), RangeError);
});

Deno.test("passphraseKey() runs one derivation at a time, in call order", async () => {
  const salt = new Uint8Array(16);
  const done: string[] = [];
  const slow = passphraseKey("slow", salt, { N: 2 ** 16, r: 8, p: 1, dkLen: 32 }).then(() => done.push("slow"));
  const failing = passphraseKey("bad", salt, { N: 2 ** 20, r: 8, p: 1, dkLen: 32 }).catch(() => done.push("bad"));
  const fast = passphraseKey("fast", salt, { N: 2, r: 1, p: 1, dkLen: 32 }).then(() => done.push("fast"));
  await Promise.all([slow, failing, fast]);
  eql(done, ["slow", "bad", "fast"]);
});
