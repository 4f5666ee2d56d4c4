/**
 * Identity export files: a passphrase-sealed round trip, and every kind of
 * damage (wrong passphrase, tampering, a did that does not match the keys,
 * garbage) rejected with WrongKeyError or CorruptFileError.
 */

import { deepStrictEqual as eql, equal, match, ok, rejects } from "node:assert/strict";
import { exportIdentity, IDENTITY_EXPORT_FORMAT, importIdentity } from "../../../kernel/identity/identity_file.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import { AD_IDENTITY_EXPORT, crypto, randomBytes } from "../../../kernel/crypto/mod.ts";
import { concat, fromBase64Url, toBase64Url, utf8 } from "../../../kernel/bytes.ts";
import { encodeValue } from "../../../kernel/storage/value_codec.ts";
import { CorruptFileError, WrongKeyError } from "../../../kernel/errors.ts";
import { FAST_SCRYPT } from "../storage/_helpers.ts";

const PASS = "export passphrase ✓";
const options = { scrypt: FAST_SCRYPT };

interface ExportFile {
  format: string;
  did: string;
  kdf: { name: string; N: number; r: number; p: number; salt: string };
  nonce: string;
  sealed: string;
}

/** Seals any plaintext the way an export does, for a did of our choosing. */
async function craftFile(plaintext: Uint8Array, did: string, passphrase = PASS): Promise<string> {
  const salt = randomBytes(16), nonce = randomBytes(24);
  const kek = await crypto.scrypt(utf8(passphrase.normalize("NFKC")), salt, FAST_SCRYPT);
  const ad = concat(utf8(AD_IDENTITY_EXPORT), Uint8Array.of(0), utf8(did));
  const file: ExportFile = {
    format: IDENTITY_EXPORT_FORMAT,
    did,
    kdf: { name: "scrypt", N: FAST_SCRYPT.N, r: FAST_SCRYPT.r, p: FAST_SCRYPT.p, salt: toBase64Url(salt) },
    nonce: toBase64Url(nonce),
    sealed: toBase64Url(crypto.xchachaSeal(kek, nonce, plaintext, ad)),
  };
  return JSON.stringify(file);
}

function isFileError(error: unknown): boolean {
  return error instanceof WrongKeyError || error instanceof CorruptFileError;
}

Deno.test("exportIdentity() and importIdentity() round-trip an identity", async () => {
  const original = Identity.generate("traveller", 1234);
  try {
    const text = await exportIdentity(original, PASS, options);
    const file = JSON.parse(text) as ExportFile;
    equal(file.format, IDENTITY_EXPORT_FORMAT);
    equal(file.did, original.did);
    eql({ ...file.kdf, salt: "" }, { name: "scrypt", N: 1024, r: 8, p: 1, salt: "" });
    const imported = await importIdentity(text, PASS);
    eql(imported.info(), original.info());
    const message = utf8("same keys");
    eql(imported.sign(message), original.sign(message));
    eql(imported.openSealed(Identity.sealTo(original.agreementKey, message)), message);
    imported.wipe();
  } finally {
    original.wipe();
  }
});

Deno.test("an export holds no secret or name in the clear and differs each time", async () => {
  const id = Identity.generate("name-nobody-should-see");
  try {
    const a = await exportIdentity(id, PASS, options), b = await exportIdentity(id, PASS, options);
    ok(a !== b);
    const record = id.toRecord();
    for (const secret of [record.seed, record.x25519Secret]) {
      ok(!a.includes(toBase64Url(secret).slice(0, 16)));
    }
    ok(!a.includes("name-nobody-should-see"));
  } finally {
    id.wipe();
  }
});

Deno.test("importIdentity() normalises the passphrase (NFKC)", async () => {
  const id = Identity.generate("n");
  try {
    const text = await exportIdentity(id, "caf\u00e9", options);
    const imported = await importIdentity(text, "cafe\u0301");
    equal(imported.nodeId, id.nodeId);
    imported.wipe();
  } finally {
    id.wipe();
  }
});

Deno.test("exportIdentity() rejects an empty passphrase with RangeError", async () => {
  const id = Identity.generate("e");
  await rejects(exportIdentity(id, "", options), RangeError);
  id.wipe();
});

Deno.test("importIdentity() rejects a wrong passphrase with WrongKeyError", async () => {
  const id = Identity.generate("w");
  const text = await exportIdentity(id, PASS, options);
  id.wipe();
  for (const wrong of ["", "export passphrase", PASS + " ", PASS.toUpperCase()]) {
    await rejects(importIdentity(text, wrong), WrongKeyError, JSON.stringify(wrong));
  }
});

Deno.test("importIdentity() rejects a did that does not match the sealed keys with CorruptFileError", async () => {
  const a = Identity.generate("a"), b = Identity.generate("b");
  try {
    const record = a.toRecord();
    const text = await craftFile(encodeValue(record), b.did);
    await rejects(importIdentity(text, PASS), (e: Error) => e instanceof CorruptFileError && /did/.test(e.message));
  } finally {
    a.wipe();
    b.wipe();
  }
});

Deno.test("importIdentity() rejects a did swapped into an intact file with WrongKeyError", async () => {
  const a = Identity.generate("a"), b = Identity.generate("b");
  try {
    const file = JSON.parse(await exportIdentity(a, PASS, options));
    await rejects(importIdentity(JSON.stringify({ ...file, did: b.did }), PASS), WrongKeyError);
  } finally {
    a.wipe();
    b.wipe();
  }
});

Deno.test("importIdentity() rejects a sealed record that is not an identity with CorruptFileError", async () => {
  const id = Identity.generate("r");
  try {
    const record = id.toRecord();
    for (
      const plaintext of [
        encodeValue({ name: "r" }),
        encodeValue({ ...record, seed: new Uint8Array(31) }),
        encodeValue({ ...record, x25519Secret: "secret" }),
        encodeValue([1, 2, 3]),
        encodeValue(null),
        Uint8Array.of(0xff, 0x00),
        new Uint8Array(0),
      ]
    ) {
      await rejects(importIdentity(await craftFile(plaintext, id.did), PASS), CorruptFileError);
    }
  } finally {
    id.wipe();
  }
});

Deno.test("importIdentity() rejects garbage with CorruptFileError", async () => {
  const garbage = [
    "",
    "garbage",
    "{",
    "null",
    "42",
    '"text"',
    "[]",
    "{}",
    JSON.stringify({ format: "nzcore-identity/2" }),
    "\u0000\u0001\u0002",
  ];
  for (const text of garbage) await rejects(importIdentity(text, PASS), CorruptFileError, JSON.stringify(text));
});

Deno.test("importIdentity() rejects missing, mistyped or out-of-range fields with CorruptFileError", async () => {
  const id = Identity.generate("f");
  const good = JSON.parse(await exportIdentity(id, PASS, options)) as ExportFile;
  id.wipe();
  const bad: unknown[] = [
    { ...good, format: undefined },
    { ...good, did: 7 },
    { ...good, nonce: null },
    { ...good, sealed: undefined },
    { ...good, kdf: "scrypt" },
    { ...good, kdf: { ...good.kdf, name: "pbkdf2" } },
    { ...good, kdf: { ...good.kdf, N: 1024.5 } },
    { ...good, kdf: { ...good.kdf, N: 2 ** 23 } },
    { ...good, kdf: { ...good.kdf, r: 64 } },
    { ...good, kdf: { ...good.kdf, p: 17 } },
    { ...good, kdf: { ...good.kdf, salt: 5 } },
    // well-typed but unusable: scrypt refuses the parameters, or the salt is not base64url
    { ...good, kdf: { ...good.kdf, N: 1000 } },
    { ...good, kdf: { ...good.kdf, N: 0 } },
    { ...good, kdf: { ...good.kdf, r: 0 } },
    { ...good, kdf: { ...good.kdf, p: -1 } },
    { ...good, kdf: { ...good.kdf, salt: "not base64url!" } },
  ];
  for (const file of bad) {
    await rejects(importIdentity(JSON.stringify(file), PASS), CorruptFileError, JSON.stringify(file));
  }
});

Deno.test("importIdentity() refuses a scrypt cost over 256 MiB or 1 GiB of work before deriving", async () => {
  const id = Identity.generate("costly");
  const good = JSON.parse(await exportIdentity(id, PASS, options)) as ExportFile;
  id.wipe();
  const cases: [Partial<ExportFile["kdf"]>, RegExp][] = [
    [{ N: 2 ** 19, r: 8 }, /need 512 MiB, expected at most 256 MiB/],
    [{ N: 2 ** 17, r: 32 }, /need 512 MiB, expected at most 256 MiB/],
    [{ N: 2 ** 17, r: 8, p: 16 }, /2048 MiB of work, expected at most 1024 MiB/],
  ];
  for (const [change, message] of cases) {
    const file = { ...good, kdf: { ...good.kdf, ...change } };
    const error = await importIdentity(JSON.stringify(file), PASS).catch((e) => e);
    ok(error instanceof CorruptFileError, `${JSON.stringify(change)}: ${error}`);
    match(error.message, /^The identity file is refused: Invalid scrypt cost/);
    match(error.message, message);
  }
});

Deno.test("exports and imports run their scrypt one at a time, in call order", async () => {
  const id = Identity.generate("queued");
  const text = await exportIdentity(id, PASS, options);
  const done: string[] = [];
  const slowExport = exportIdentity(id, PASS, { scrypt: { N: 2 ** 16, r: 8, p: 1, dkLen: 32 } })
    .then(() => done.push("export"));
  const fastImports = [1, 2].map((i) =>
    importIdentity(text, PASS).then((imported) => {
      imported.wipe();
      done.push(`import ${i}`);
    })
  );
  await Promise.all([slowExport, ...fastImports]);
  id.wipe();
  eql(done, ["export", "import 1", "import 2"]);
});

/** A different character of the same kind, so the file usually stays valid JSON. */
function alter(c: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  if (/[0-9]/.test(c)) return String((Number(c) + 1) % 10);
  const i = alphabet.indexOf(c);
  if (i >= 0) return alphabet[(i + 1) % alphabet.length];
  return "x";
}

Deno.test("importIdentity() rejects a file with any one character changed", async () => {
  const id = Identity.generate("t");
  const text = await exportIdentity(id, PASS, options);
  id.wipe();
  const original = JSON.parse(text) as ExportFile;
  let accepted = 0;
  for (let i = 0; i < text.length; i++) {
    const tampered = text.slice(0, i) + alter(text[i]) + text.slice(i + 1);
    try {
      const imported = await importIdentity(tampered, PASS);
      // only a change that decodes to the same bytes (spare bits of a base64url tail) may pass
      const file = JSON.parse(tampered) as ExportFile;
      eql(fromBase64Url(file.sealed), fromBase64Url(original.sealed), `accepted change at ${i}`);
      eql(fromBase64Url(file.kdf.salt), fromBase64Url(original.kdf.salt), `accepted change at ${i}`);
      equal(imported.did, original.did);
      imported.wipe();
      accepted++;
    } catch (error) {
      ok(isFileError(error), `change at ${i} (${JSON.stringify(text[i])}) threw ${String(error)}`);
    }
  }
  ok(accepted <= 2);
});
