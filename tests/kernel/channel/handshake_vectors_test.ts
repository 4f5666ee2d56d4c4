/**
 * performHandshake against spec/vectors/nz_handshake_01.json: the same fixed
 * seeds, static and ephemeral secrets must give every frame byte for byte,
 * the same handshake hash and keys, with both crypto providers, whether the
 * two sides talk to each other or each side talks to the recorded peer.
 */

import { deepStrictEqual as eql, rejects } from "node:assert/strict";
import { fromHex as hex, toHex } from "../../../kernel/bytes.ts";
import { nativeProvider } from "../../../kernel/crypto/native.ts";
import { nobleProvider } from "../../../kernel/crypto/noble.ts";
import type { CryptoProvider } from "../../../kernel/crypto/provider.ts";
import { VersionMismatchError } from "../../../kernel/channel/errors.ts";
import {
  createStaticKey,
  type HandshakeOptions,
  performHandshake,
  PROLOGUE,
  PROTOCOL_NAME,
  SIGNATURE_PREFIX,
  staticKeyMessage,
} from "../../../kernel/channel/handshake.ts";
import { decodeAccept, decodeFinish, decodeOffer } from "../../../kernel/channel/handshake_payload.ts";
import { Identity } from "../../../kernel/identity/identity.ts";
import file from "../../../spec/vectors/nz_handshake_01.json" with { type: "json" };
import { framePair, scriptedFrameIO } from "./_frame_pair.ts";

type Vector = (typeof file.vectors)[number];
type SideVector = Vector["initiator"];

function identityOf(side: SideVector): Identity {
  return Identity.fromRecord({ name: "v", created: 0, seed: hex(side.identitySeed), x25519Secret: new Uint8Array(32) });
}

function optionsOf(side: SideVector, role: "initiator" | "responder", provider: CryptoProvider): HandshakeOptions {
  const identity = identityOf(side);
  return {
    role,
    identity,
    staticKey: createStaticKey(identity, { secretKey: hex(side.staticSecret), provider }),
    ephemeralSecret: hex(side.ephemeralSecret),
    versions: side.versions,
    features: side.features,
    provider,
    timeoutMs: 5_000,
  };
}

Deno.test("nz_handshake_01.json names the protocol, prologue and signature prefix of the implementation", () => {
  eql(file.protocolName, PROTOCOL_NAME);
  eql(hex(file.prologue), PROLOGUE);
  eql(file.signaturePrefix, SIGNATURE_PREFIX);
});

Deno.test("nz_handshake_01.json: identities, static keys, signatures and payloads agree with the encoders", () => {
  for (const v of file.vectors) {
    for (const side of [v.initiator, v.responder]) {
      const identity = identityOf(side);
      eql(toHex(identity.publicKey), side.identityPublic, v.name);
      eql(identity.nodeId, side.nodeId, v.name);
      eql(identity.did, side.did, v.name);
      const staticKey = createStaticKey(identity, { secretKey: hex(side.staticSecret) });
      eql(toHex(staticKey.publicKey), side.staticPublic, v.name);
      eql(toHex(staticKeyMessage(staticKey.publicKey)), side.signedMessage, v.name);
      eql(toHex(staticKey.signature), side.staticSignature, v.name);
      eql(toHex(nativeProvider.x25519PublicKey(hex(side.ephemeralSecret))), side.ephemeralPublic, v.name);
    }
    eql(decodeOffer(hex(v.payloads.offer)), v.initiator.versions, v.name);
    const accept = decodeAccept(hex(v.payloads.accept));
    eql(accept.chosen, v.chosenVersion, v.name);
    eql(accept.versions, v.responder.versions, v.name);
    eql(accept.features, v.responder.features, v.name);
    eql(toHex(accept.identity), v.responder.identityPublic, v.name);
    if (v.payloads.finish) eql(decodeFinish(hex(v.payloads.finish)).features, v.initiator.features, v.name);
    // Message 1 carries the Offer in clear after the ephemeral key.
    eql(v.messages[0], v.initiator.ephemeralPublic + v.payloads.offer, v.name);
  }
});

for (const provider of [nativeProvider, nobleProvider]) {
  for (const v of file.vectors) {
    const ok = v.chosenVersion !== 0;

    Deno.test(`${provider.name}: "${v.name}": two sides write exactly the vector's frames`, async () => {
      const [a, b] = framePair();
      const initiator = performHandshake(a, optionsOf(v.initiator, "initiator", provider));
      const responder = performHandshake(b, optionsOf(v.responder, "responder", provider));
      if (!ok) {
        await rejects(initiator, VersionMismatchError);
        await rejects(responder, VersionMismatchError);
        eql(a.written.map(toHex), [v.messages[0]]);
        eql(b.written.map(toHex), [v.messages[1]]);
        return;
      }
      const [ri, rr] = await Promise.all([initiator, responder]);
      eql([...a.written, ...b.written].map(toHex), [v.messages[0], v.messages[2], v.messages[1]]);
      eql(ri.version, v.version);
      eql(rr.version, v.version);
      eql(toHex(ri.keys.handshakeHash), v.handshakeHash);
      eql(toHex(rr.keys.handshakeHash), v.handshakeHash);
      eql([toHex(ri.keys.sendKey), toHex(ri.keys.recvKey)], [v.k1, v.k2]);
      eql([toHex(rr.keys.sendKey), toHex(rr.keys.recvKey)], [v.k2, v.k1]);
      eql([ri.keys.initiator, rr.keys.initiator], [true, false]);
      eql(ri.peer.nodeId, v.responder.nodeId);
      eql(ri.peer.did, v.responder.did);
      eql(rr.peer.nodeId, v.initiator.nodeId);
      eql(ri.features, v.responder.features);
      eql(rr.features, v.initiator.features);
      eql(toHex(ri.remoteStaticKey), v.responder.staticPublic);
      eql(toHex(rr.remoteStaticKey), v.initiator.staticPublic);
    });

    Deno.test(`${provider.name}: "${v.name}": each side alone answers the recorded peer with the vector's frames`, async () => {
      const ai = scriptedFrameIO([hex(v.messages[1])]);
      const ar = scriptedFrameIO(ok ? [hex(v.messages[0]), hex(v.messages[2])] : [hex(v.messages[0])]);
      const initiator = performHandshake(ai, optionsOf(v.initiator, "initiator", provider));
      const responder = performHandshake(ar, optionsOf(v.responder, "responder", provider));
      if (!ok) {
        await rejects(initiator, VersionMismatchError);
        await rejects(responder, VersionMismatchError);
        eql(ai.written.map(toHex), [v.messages[0]]);
        eql(ar.written.map(toHex), [v.messages[1]]);
        return;
      }
      const [ri, rr] = await Promise.all([initiator, responder]);
      eql(ai.written.map(toHex), [v.messages[0], v.messages[2]]);
      eql(ar.written.map(toHex), [v.messages[1]]);
      eql(toHex(ri.keys.handshakeHash), v.handshakeHash);
      eql(toHex(rr.keys.sendKey), v.k2);
    });
  }
}
