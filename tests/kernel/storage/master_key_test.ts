/**
 * The master key on disk: key-file and passphrase seals, and every way of
 * failing to open one names the problem with the right error class.
 */

import { deepStrictEqual as eql, equal, match, notDeepStrictEqual, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import {
  createMasterKey,
  hasMasterKey,
  KEY_FILE,
  MASTER_FILE,
  MASTER_FORMAT,
  masterKeyMode,
  openMasterKey,
  writeFileAtomic,
} from "../../../kernel/storage/master_key.ts";
import { ConflictError, CorruptFileError, NotFoundError, WrongKeyError } from "../../../kernel/errors.ts";
import { FAST_SCRYPT, tempDir } from "./_helpers.ts";

const PASS = "correct horse battery staple";

async function readMasterJson(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(join(dir, MASTER_FILE)));
}

async function writeMasterJson(dir: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(join(dir, MASTER_FILE), typeof value === "string" ? value : JSON.stringify(value));
}

Deno.test("keyfile mode creates master.key with mode 0600 and reopens to the same key", async () => {
  await using d = await tempDir();
  equal(await hasMasterKey(d.path), false);
  const master = await createMasterKey(d.path);
  equal(master.length, 32);
  equal(await hasMasterKey(d.path), true);
  equal(await masterKeyMode(d.path), "keyfile");
  const keyInfo = await Deno.stat(join(d.path, KEY_FILE));
  equal(keyInfo.mode! & 0o777, 0o600);
  equal(keyInfo.size, 32);
  equal((await Deno.stat(join(d.path, MASTER_FILE))).mode! & 0o777, 0o600);
  eql(await openMasterKey(d.path), master);
  eql(await openMasterKey(d.path), master);
});

Deno.test("createMasterKey() leaves no temporary files behind", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path);
  const names = [];
  for await (const entry of Deno.readDir(d.path)) names.push(entry.name);
  eql(names.sort(), [MASTER_FILE, KEY_FILE].sort());
});

Deno.test("writeFileAtomic() fsyncs the file before the rename and the directory after it", async () => {
  await using d = await tempDir();
  const path = join(d.path, "file.json");
  const steps: string[] = [];
  const paths = new WeakMap<Deno.FsFile, string>();
  const { open, rename } = Deno;
  const { sync } = Deno.FsFile.prototype;
  Deno.open = async (name, options) => {
    const file = await open(name, options);
    paths.set(file, String(name) === d.path ? "dir" : "file");
    return file;
  };
  Deno.rename = async (from, to) => {
    await rename(from, to);
    steps.push("rename");
  };
  Deno.FsFile.prototype.sync = async function (this: Deno.FsFile) {
    await sync.call(this);
    steps.push(`sync ${paths.get(this)}`);
  };
  try {
    await writeFileAtomic(path, Uint8Array.of(1, 2, 3));
  } finally {
    Object.assign(Deno, { open, rename });
    Deno.FsFile.prototype.sync = sync;
  }
  eql(steps, ["sync file", "rename", "sync dir"]);
  eql(await Deno.readFile(path), Uint8Array.of(1, 2, 3));
});

Deno.test("the master key is random per directory and does not appear in the files", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  const ka = await createMasterKey(a.path), kb = await createMasterKey(b.path);
  notDeepStrictEqual(ka, kb);
  const json = await Deno.readFile(join(a.path, MASTER_FILE));
  const keyFile = await Deno.readFile(join(a.path, KEY_FILE));
  notDeepStrictEqual(keyFile, ka);
  ok(!new TextDecoder().decode(json).includes(btoa(String.fromCharCode(...ka)).slice(0, 20)));
});

Deno.test("passphrase mode reopens with the right passphrase and writes no key file", async () => {
  await using d = await tempDir();
  const master = await createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT });
  equal(await masterKeyMode(d.path), "passphrase");
  await rejects(Deno.stat(join(d.path, KEY_FILE)), Deno.errors.NotFound);
  const file = await readMasterJson(d.path);
  equal(file.format, MASTER_FORMAT);
  eql({ ...(file.kdf as object), salt: undefined }, { name: "scrypt", N: 1024, r: 8, p: 1, salt: undefined });
  eql(await openMasterKey(d.path, { passphrase: PASS }), master);
});

Deno.test("passphrase mode normalises the passphrase (NFKC) before deriving", async () => {
  await using d = await tempDir();
  const master = await createMasterKey(d.path, { passphrase: "caf\u00e9", scrypt: FAST_SCRYPT });
  eql(await openMasterKey(d.path, { passphrase: "cafe\u0301" }), master);
});

Deno.test("openMasterKey() rejects a wrong passphrase with WrongKeyError that says so", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT });
  const error = await openMasterKey(d.path, { passphrase: "wrong horse" }).catch((e) => e);
  ok(error instanceof WrongKeyError);
  equal(error.name, "WrongKeyError");
  match(error.message, /Wrong passphrase/);
  match(error.message, new RegExp(MASTER_FILE));
  ok(!error.message.includes("wrong horse"));
  await rejects(openMasterKey(d.path, { passphrase: "" }), WrongKeyError);
});

Deno.test("openMasterKey() without a passphrase for a passphrase seal rejects with WrongKeyError", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT });
  await rejects(openMasterKey(d.path), (e: Error) => e instanceof WrongKeyError && /passphrase/.test(e.message));
});

Deno.test("createMasterKey() rejects an empty passphrase with RangeError and writes nothing", async () => {
  await using d = await tempDir();
  await rejects(createMasterKey(d.path, { passphrase: "", scrypt: FAST_SCRYPT }), RangeError);
  equal(await hasMasterKey(d.path), false);
});

Deno.test("openMasterKey() rejects a missing key file with WrongKeyError naming it", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path);
  await Deno.remove(join(d.path, KEY_FILE));
  await rejects(openMasterKey(d.path), (e: Error) => e instanceof WrongKeyError && e.message.includes(KEY_FILE));
});

Deno.test("openMasterKey() rejects a key file of the wrong length with CorruptFileError", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path);
  const keyPath = join(d.path, KEY_FILE);
  for (const length of [0, 31, 33, 64]) {
    await Deno.writeFile(keyPath, new Uint8Array(length).fill(7), { mode: 0o600 });
    await Deno.chmod(keyPath, 0o600);
    await rejects(openMasterKey(d.path), CorruptFileError, `length ${length}`);
  }
});

Deno.test("openMasterKey() rejects a different key file of the right length with WrongKeyError", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path);
  const keyPath = join(d.path, KEY_FILE);
  const key = await Deno.readFile(keyPath);
  key[0] ^= 1;
  await Deno.writeFile(keyPath, key);
  await rejects(openMasterKey(d.path), WrongKeyError);
});

Deno.test("openMasterKey() rejects a key file readable by others with WrongKeyError mentioning chmod", async () => {
  await using d = await tempDir();
  const master = await createMasterKey(d.path);
  const keyPath = join(d.path, KEY_FILE);
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    await Deno.chmod(keyPath, mode);
    await rejects(
      openMasterKey(d.path),
      (e: Error) => e instanceof WrongKeyError && e.message.includes(`chmod 600 ${keyPath}`),
      mode.toString(8),
    );
  }
  await Deno.chmod(keyPath, 0o400);
  eql(await openMasterKey(d.path), master);
});

Deno.test("openMasterKey() rejects a key file that is a symlink or directory", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path);
  const keyPath = join(d.path, KEY_FILE);
  await Deno.rename(keyPath, join(d.path, "real.key"));
  await Deno.symlink(join(d.path, "real.key"), keyPath);
  await rejects(openMasterKey(d.path), CorruptFileError);
  await Deno.remove(keyPath);
  await Deno.mkdir(keyPath);
  await rejects(openMasterKey(d.path), CorruptFileError);
});

Deno.test("openMasterKey() rejects a master.json that is not JSON with CorruptFileError", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path);
  for (const text of ["", "not json", "{", "\u0000\u0001"]) {
    await writeMasterJson(d.path, text);
    await rejects(openMasterKey(d.path), CorruptFileError, JSON.stringify(text));
  }
});

Deno.test("openMasterKey() rejects a master.json with missing or mistyped fields with CorruptFileError", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT });
  const good = await readMasterJson(d.path);
  const kdf = good.kdf as Record<string, unknown>;
  const bad: unknown[] = [
    null,
    42,
    [],
    {},
    { ...good, format: undefined },
    { ...good, format: "nzcore-master/2" },
    { ...good, mode: "magic" },
    { ...good, nonce: undefined },
    { ...good, sealed: 7 },
    { ...good, kdf: undefined },
    { ...good, kdf: { ...kdf, name: "argon2" } },
    { ...good, kdf: { ...kdf, N: "1024" } },
    { ...good, kdf: { ...kdf, r: 1.5 } },
    { ...good, kdf: { ...kdf, p: undefined } },
    { ...good, kdf: { ...kdf, salt: 12 } },
  ];
  for (const value of bad) {
    await writeMasterJson(d.path, JSON.stringify(value));
    await rejects(openMasterKey(d.path, { passphrase: PASS }), CorruptFileError, JSON.stringify(value));
    await rejects(masterKeyMode(d.path), CorruptFileError, JSON.stringify(value));
  }
});

Deno.test("openMasterKey() rejects unusable kdf parameters or salt with CorruptFileError", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT });
  const good = await readMasterJson(d.path);
  const kdf = good.kdf as Record<string, unknown>;
  for (const change of [{ N: 1000 }, { N: 0 }, { r: 0 }, { p: -1 }, { N: 2 ** 40 }, { salt: "not base64url!" }]) {
    await writeMasterJson(d.path, { ...good, kdf: { ...kdf, ...change } });
    await rejects(openMasterKey(d.path, { passphrase: PASS }), CorruptFileError, JSON.stringify(change));
  }
});

Deno.test("openMasterKey() rejects a tampered sealed key, nonce or mode with WrongKeyError", async () => {
  await using d = await tempDir();
  const master = await createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT });
  const good = await readMasterJson(d.path);
  const flip = (s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1);
  for (
    const value of [
      { ...good, sealed: flip(good.sealed as string) },
      { ...good, nonce: flip(good.nonce as string) },
      { ...good, kdf: { ...(good.kdf as object), salt: flip((good.kdf as { salt: string }).salt) } },
      { ...good, kdf: { ...(good.kdf as object), N: 2048 } },
    ]
  ) {
    await writeMasterJson(d.path, value);
    await rejects(openMasterKey(d.path, { passphrase: PASS }), WrongKeyError, JSON.stringify(value));
  }
  await writeMasterJson(d.path, good);
  eql(await openMasterKey(d.path, { passphrase: PASS }), master);
});

Deno.test("openMasterKey() rejects a malformed nonce, sealed key or kdf with CorruptFileError naming the field", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT });
  const good = await readMasterJson(d.path);
  const nonce = good.nonce as string, sealed = good.sealed as string;
  const kdf = good.kdf as Record<string, unknown>;
  const cases: [unknown, RegExp][] = [
    [{ ...good, nonce: nonce.slice(0, 8) }, /nonce is 6 bytes long, expected 24/],
    [{ ...good, nonce: nonce + "AAAA" }, /nonce is 27 bytes long, expected 24/],
    [{ ...good, nonce: nonce.slice(0, -1) + "!" }, /nonce is not base64url/],
    [{ ...good, nonce: nonce.slice(0, -3) }, /nonce is not base64url/],
    [{ ...good, nonce: [1, 2] }, /nonce is an array, expected a base64url string/],
    [{ ...good, sealed: sealed.slice(0, -4) }, /sealed is 45 bytes long, expected 48/],
    [{ ...good, sealed: "" }, /sealed is 0 bytes long, expected 48/],
    [{ ...good, sealed: sealed + "A" }, /sealed is not base64url/],
    [{ ...good, sealed: { bytes: sealed } }, /sealed is an object/],
    [{ ...good, kdf: null }, /kdf is null, expected an object/],
    [{ ...good, kdf: [kdf] }, /kdf is an array, expected an object/],
    [{ ...good, kdf: { ...kdf, dkLen: 64 } }, /kdf has an unknown parameter "dkLen"/],
    [{ ...good, kdf: { ...kdf, maxmem: 2 ** 40 } }, /kdf has an unknown parameter "maxmem"/],
    [{ ...good, kdf: { ...kdf, N: 1e300 } }, /kdf\.N is 1e\+300, expected a positive integer/],
    [{ ...good, kdf: { ...kdf, salt: "AAAAA" } }, /kdf\.salt is not base64url/],
    [{ ...good, kdf: { ...kdf, N: 2 ** 19 } }, /Invalid scrypt cost: N = 524288, r = 8 need 512 MiB/],
    [{ ...good, kdf: { ...kdf, r: 64 } }, /Invalid scrypt r: 64/],
    [{ ...good, format: { v: 1 } }, /format is an object, expected "nzcore-master\/1"/],
    [{ ...good, mode: "x".repeat(100) }, /mode is a long string/],
  ];
  for (const [value, message] of cases) {
    await writeMasterJson(d.path, value);
    const error = await openMasterKey(d.path, { passphrase: PASS }).catch((e) => e);
    ok(error instanceof CorruptFileError, `${JSON.stringify(value)}: ${error}`);
    match(error.message, message);
    ok(error.message.startsWith(`${join(d.path, MASTER_FILE)} is corrupt: `), error.message);
    await rejects(masterKeyMode(d.path), CorruptFileError, JSON.stringify(value));
  }
});

Deno.test("a key-file seal relabelled as a passphrase seal does not open", async () => {
  await using d = await tempDir();
  await createMasterKey(d.path);
  const file = await readMasterJson(d.path);
  await writeMasterJson(d.path, {
    ...file,
    mode: "passphrase",
    kdf: { name: "scrypt", N: 1024, r: 8, p: 1, salt: "AAAA" },
  });
  await rejects(openMasterKey(d.path, { passphrase: PASS }), WrongKeyError);
});

Deno.test("createMasterKey() twice rejects with ConflictError and keeps the first key", async () => {
  await using d = await tempDir();
  const master = await createMasterKey(d.path);
  await rejects(createMasterKey(d.path), ConflictError);
  await rejects(createMasterKey(d.path, { passphrase: PASS, scrypt: FAST_SCRYPT }), ConflictError);
  eql(await openMasterKey(d.path), master);
});

Deno.test("openMasterKey() in a directory without a master key rejects with NotFoundError", async () => {
  await using d = await tempDir();
  await rejects(openMasterKey(d.path), NotFoundError);
  await rejects(openMasterKey(join(d.path, "does-not-exist")), NotFoundError);
});
