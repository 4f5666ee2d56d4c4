/**
 * A known-answer self-test run once when `mod.ts` loads, before the native
 * provider is trusted. It checks the code paths most likely to break with a
 * runtime upgrade: the native AEAD behind XChaCha20-Poly1305, Ed25519, and
 * X25519, each against a published vector. It takes well under a millisecond.
 *
 * @module
 */

import { fromHex, timingSafeEqual } from "../bytes.ts";
import type { CryptoProvider } from "./provider.ts";

// draft-irtf-cfrg-xchacha-03 appendix A.3.1.
const XCHACHA_KEY = fromHex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
const XCHACHA_NONCE = fromHex("404142434445464748494a4b4c4d4e4f5051525354555657");
const XCHACHA_AD = fromHex("50515253c0c1c2c3c4c5c6c7");
const XCHACHA_PLAINTEXT = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);
const XCHACHA_SEALED = fromHex(
  "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c21" +
    "6cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68" +
    "b13b52ec0875924c1c7987947deafd8780acf49",
);
// RFC 8032 section 7.1 TEST 2.
const ED_SEED = fromHex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
const ED_PUBLIC = fromHex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
const ED_MESSAGE = fromHex("72");
const ED_SIGNATURE = fromHex(
  "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
);
// RFC 7748 section 6.1.
const X_ALICE_SECRET = fromHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const X_ALICE_PUBLIC = fromHex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
const X_BOB_PUBLIC = fromHex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
const X_SHARED = fromHex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

/**
 * Runs the known-answer self-test against `provider`.
 *
 * @param provider The provider to test.
 * @returns true when every answer matches; false on a mismatch or any thrown error.
 *
 * @example Test the native provider
 * ```ts
 * import { nativeProvider } from "./native.ts";
 * import { selfTest } from "./self_test.ts";
 *
 * if (!selfTest(nativeProvider)) throw new Error("Cannot use the native provider: self-test failed");
 * ```
 */
export function selfTest(provider: CryptoProvider): boolean {
  try {
    const sealed = provider.xchachaSeal(XCHACHA_KEY, XCHACHA_NONCE, XCHACHA_PLAINTEXT, XCHACHA_AD);
    if (!timingSafeEqual(sealed, XCHACHA_SEALED)) return false;
    const opened = provider.xchachaOpen(XCHACHA_KEY, XCHACHA_NONCE, sealed, XCHACHA_AD);
    if (!timingSafeEqual(opened, XCHACHA_PLAINTEXT)) return false;

    if (!timingSafeEqual(provider.ed25519PublicKey(ED_SEED), ED_PUBLIC)) return false;
    if (!timingSafeEqual(provider.ed25519Sign(ED_SEED, ED_MESSAGE), ED_SIGNATURE)) return false;
    if (!provider.ed25519Verify(ED_PUBLIC, ED_MESSAGE, ED_SIGNATURE)) return false;
    if (provider.ed25519Verify(ED_PUBLIC, XCHACHA_AD, ED_SIGNATURE)) return false;

    if (!timingSafeEqual(provider.x25519PublicKey(X_ALICE_SECRET), X_ALICE_PUBLIC)) return false;
    return timingSafeEqual(provider.x25519(X_ALICE_SECRET, X_BOB_PUBLIC), X_SHARED);
  } catch {
    return false;
  }
}
