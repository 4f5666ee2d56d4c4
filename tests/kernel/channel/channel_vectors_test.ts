/**
 * spec/vectors/nz_channel_01.json through the frame codec, both providers,
 * the channel cipher, and a live responder channel that reads the frames.
 */

import { deepStrictEqual as eql } from "node:assert/strict";
import { fromHex as hex, toHex, utf8 } from "../../../kernel/bytes.ts";
import { openChannel } from "../../../kernel/channel/channel.ts";
import { ChannelCipher, rekeyKey } from "../../../kernel/channel/cipher.ts";
import { decodeFrame, encodeFrame, frameTypeName } from "../../../kernel/channel/frame.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import vectors from "../../../spec/vectors/nz_channel_01.json" with { type: "json" };
import { scriptedFrameIO } from "./_frame_pair.ts";

const EMPTY = new Uint8Array(0);

Deno.test("encodeFrame() and decodeFrame() reproduce every plaintext of nz_channel_01.json", () => {
  for (const v of vectors.frames) {
    const records = decodeFrame(hex(v.plaintext));
    eql(
      records.map((r) => ({
        type: frameTypeName(r.type),
        flags: r.flags,
        streamId: r.streamId,
        payload: toHex(r.payload),
      })),
      v.records,
      v.name,
    );
    eql(encodeFrame(records), hex(v.plaintext), v.name);
  }
});

for (const provider of [nativeProvider, nobleProvider]) {
  Deno.test(`${provider.name}: chachaSeal() reproduces every sealed frame and rekeyKey() the rekeyed key`, () => {
    for (const v of vectors.frames) {
      eql(provider.chachaSeal(hex(v.key), hex(v.nonce), hex(v.plaintext), EMPTY), hex(v.sealed), v.name);
    }
    eql(rekeyKey(hex(vectors.initiatorSendKey), provider), hex(vectors.rekeyedKey));
  });

  Deno.test(`${provider.name}: ChannelCipher seals and opens the frames in order, rekeying after REKEY`, () => {
    const sender = new ChannelCipher(hex(vectors.initiatorSendKey), { provider });
    const receiver = new ChannelCipher(hex(vectors.initiatorSendKey), { provider });
    for (const v of vectors.frames) {
      eql(sender.counter, v.counter, v.name);
      const plaintext = hex(v.plaintext);
      // Sealed from pieces, as the channel does: the first byte apart from the rest.
      eql(sender.seal([plaintext.subarray(0, 1), plaintext.subarray(1)], plaintext.length), hex(v.sealed), v.name);
      eql(receiver.open(hex(v.sealed)), plaintext, v.name);
      if (v.records.at(-1)?.type === "REKEY") {
        sender.rekey();
        receiver.rekey();
      }
    }
  });
}

Deno.test("a responder channel reads the vector frames as the description says", async () => {
  const io = scriptedFrameIO(vectors.frames.map((v) => hex(v.sealed)));
  const channel = openChannel(io, {
    initiator: false,
    sendKey: hex(vectors.initiatorRecvKey),
    recvKey: hex(vectors.initiatorSendKey),
    handshakeHash: new Uint8Array(32),
  }, { log: () => {}, keepAliveMs: 0, idleTimeoutMs: 0 });
  const one = (await channel.accept())!;
  const three = (await channel.accept())!;
  eql([one.id, three.id], [1, 3]);
  eql(await one.receive(), utf8("hello"));
  eql(await one.receive(), utf8("bye"));
  eql(await one.receive(), null);
  eql(await three.receive(), utf8("after rekey"));
  eql(await channel.closed, { reason: "done", remote: true });
  eql(channel.stats.rekeys, 1);
  eql(channel.stats.framesReceived, vectors.frames.length);
});
