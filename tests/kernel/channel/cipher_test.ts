/** ChannelCipher: the nonce layout, counters that never reset, Noise Rekey, both providers agreeing. */

import { deepStrictEqual as eql, throws } from "node:assert/strict";
import fc from "fast-check";
import { concat, utf8 } from "../../../kernel/bytes.ts";
import { ChannelCipher, rekeyKey } from "../../../kernel/channel/cipher.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import { IntegrityError } from "../../../kernel/errors.ts";

const key = () => Uint8Array.from({ length: 32 }, (_, i) => i * 3);

Deno.test("seal() uses the nonce 0x00000000 || LE64(counter) and empty associated data", () => {
  const cipher = new ChannelCipher(key(), { counter: 0x1_0000_0002 });
  const nonce = new Uint8Array([0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]);
  eql(cipher.seal([utf8("x")], 1), nobleProvider.chachaSeal(key(), nonce, utf8("x"), new Uint8Array(0)));
  eql(cipher.counter, 0x1_0000_0003);
});

Deno.test("the counter goes on across a rekey, and the new key is Noise Rekey() of the old", () => {
  const a = new ChannelCipher(key()), b = new ChannelCipher(key());
  a.seal([utf8("one")], 3);
  b.open(new ChannelCipher(key()).seal([utf8("one")], 3));
  a.rekey();
  b.rekey();
  const sealed = a.seal([utf8("two")], 3);
  eql(a.counter, 2);
  const nonce1 = new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  eql(sealed, nobleProvider.chachaSeal(rekeyKey(key(), nobleProvider), nonce1, utf8("two")));
  eql(b.open(sealed), utf8("two"));
});

Deno.test("open() of a frame sealed under the wrong counter fails and leaves the counter", () => {
  const sender = new ChannelCipher(key());
  const first = sender.seal([utf8("a")], 1), second = sender.seal([utf8("b")], 1);
  const receiver = new ChannelCipher(key());
  throws(() => receiver.open(second), IntegrityError);
  eql(receiver.counter, 0);
  eql(receiver.open(first), utf8("a"));
  throws(() => receiver.open(first), /Cannot open frame 1: authentication tag does not verify/);
});

Deno.test("wipe() zeroes the key the cipher took over", () => {
  const k = key();
  new ChannelCipher(k).wipe();
  eql(k, new Uint8Array(32));
});

Deno.test("native and noble ciphers seal the same bytes from any split of the plaintext", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 5 }), fc.nat(1000), (parts, counter) => {
      const length = parts.reduce((n, p) => n + p.length, 0);
      const native = new ChannelCipher(key(), { provider: nativeProvider, counter });
      const noble = new ChannelCipher(key(), { provider: nobleProvider, counter });
      const sealed = native.seal(parts, length);
      eql(sealed, noble.seal([concat(...parts)], length));
      const pieces = new ChannelCipher(key(), { provider: nativeProvider, counter }).sealParts(parts, length);
      eql(concat(...pieces), sealed, "sealParts() pieces join into the sealed frame");
      eql(new ChannelCipher(key(), { provider: nobleProvider, counter }).open(sealed), concat(...parts));
    }),
    { numRuns: 200 },
  );
});
