/**
 * The kernel's cryptography (NZ-CRYPTO-01, spec/crypto.md): one
 * {@linkcode CryptoProvider} interface with a native (node:crypto) and a noble
 * (pure JavaScript) implementation, the default provider `crypto` chosen by a
 * self-test at load, key derivation by label, random bytes, and sealed boxes.
 *
 * ```ts
 * import { crypto, deriveKey, LABEL_BLOB, randomBytes } from "./mod.ts";
 *
 * const master = randomBytes(32);
 * const key = deriveKey(master, LABEL_BLOB);
 * const nonce = randomBytes(24);
 * const ad = new TextEncoder().encode("chunk 0");
 * const sealed = crypto.xchachaSeal(key, nonce, new TextEncoder().encode("hello"), ad);
 * const opened = crypto.xchachaOpen(key, nonce, sealed, ad);
 * if (new TextDecoder().decode(opened) !== "hello") throw new Error("Cannot round-trip");
 * ```
 *
 * @module
 */

export type { CryptoProvider, ScryptParams } from "./provider.ts";
export * from "./default.ts";
export * from "./kdf.ts";
export * from "./keyed_hmac.ts";
export * from "./labels.ts";
export * from "./native.ts";
// The noble provider is imported from "./noble.ts" directly: loading it costs memory the native path does not need.
export * from "./random.ts";
export * from "./sealed_box.ts";
export * from "./self_test.ts";
