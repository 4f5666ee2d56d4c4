/**
 * Writes spec/vectors/nz_handshake_01.json: NZ-HANDSHAKE-01 run step by step
 * from the spec (the Noise core, the payload encoders and the noble
 * provider), with fixed identity seeds, static and ephemeral secrets. Run it
 * only when the handshake changes on purpose:
 * `deno run -A scripts/gen_handshake_vectors.ts`.
 * tests/kernel/channel/handshake_vectors_test.ts checks that
 * `performHandshake` reproduces every byte with both providers.
 *
 * @module
 */

import { toHex } from "../kernel/bytes.ts";
import { nobleProvider as noble } from "../kernel/crypto/noble.ts";
import {
  createStaticKey,
  PROLOGUE,
  PROTOCOL_NAME,
  SIGNATURE_PREFIX,
  staticKeyMessage,
} from "../kernel/channel/handshake.ts";
import { encodeAccept, encodeFinish, encodeOffer } from "../kernel/channel/handshake_payload.ts";
import { HandshakeState, PATTERN_XX, suite25519ChaChaPolySha256 } from "../kernel/channel/noise.ts";
import { Identity } from "../kernel/identity/identity.ts";

function range(start: number, length = 32): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
}

interface Side {
  seed: Uint8Array;
  staticSecret: Uint8Array;
  ephemeralSecret: Uint8Array;
  versions: number[];
  features: string[];
}

interface Case {
  name: string;
  initiator: Side;
  responder: Side;
}

const cases: Case[] = [
  {
    name: "one version, no features",
    initiator: {
      seed: range(0x00),
      staticSecret: range(0x40),
      ephemeralSecret: range(0x80),
      versions: [1],
      features: [],
    },
    responder: {
      seed: range(0x20),
      staticSecret: range(0x60),
      ephemeralSecret: range(0xa0),
      versions: [1],
      features: [],
    },
  },
  {
    name: "several versions (the highest common wins) and features",
    initiator: {
      seed: range(0x00),
      staticSecret: range(0x40),
      ephemeralSecret: range(0x81),
      versions: [1, 2, 3],
      features: ["dht/1", "relay"],
    },
    responder: {
      seed: range(0x20),
      staticSecret: range(0x60),
      ephemeralSecret: range(0xa1),
      versions: [1, 2, 7],
      features: ["nat.pmp", "relay", "x-1"],
    },
  },
  {
    name: "no common version: the responder answers with chosen = 0, no message 3",
    initiator: {
      seed: range(0x00),
      staticSecret: range(0x40),
      ephemeralSecret: range(0x82),
      versions: [2],
      features: [],
    },
    responder: {
      seed: range(0x20),
      staticSecret: range(0x60),
      ephemeralSecret: range(0xa2),
      versions: [1],
      features: ["relay"],
    },
  },
];

const suite = suite25519ChaChaPolySha256(noble);

function describeSide(side: Side, identity: Identity) {
  const staticKey = createStaticKey(identity, { secretKey: side.staticSecret, provider: noble });
  return {
    staticKey,
    json: {
      identitySeed: toHex(side.seed),
      identityPublic: toHex(identity.publicKey),
      nodeId: identity.nodeId,
      did: identity.did,
      staticSecret: toHex(side.staticSecret),
      staticPublic: toHex(staticKey.publicKey),
      signedMessage: toHex(staticKeyMessage(staticKey.publicKey)),
      staticSignature: toHex(staticKey.signature),
      ephemeralSecret: toHex(side.ephemeralSecret),
      ephemeralPublic: toHex(noble.x25519PublicKey(side.ephemeralSecret)),
      versions: side.versions,
      features: side.features,
    },
  };
}

function highestCommon(a: number[], b: number[]): number {
  return Math.max(0, ...a.filter((v) => b.includes(v)));
}

const vectors = cases.map(({ name, initiator, responder }) => {
  const iId = Identity.fromRecord({ name: "initiator", created: 0, seed: initiator.seed, x25519Secret: range(0xe0) });
  const rId = Identity.fromRecord({ name: "responder", created: 0, seed: responder.seed, x25519Secret: range(0xf0) });
  const i = describeSide(initiator, iId), r = describeSide(responder, rId);
  const keyPair = (secretKey: Uint8Array) => ({ secretKey, publicKey: noble.x25519PublicKey(secretKey) });
  const I = new HandshakeState({
    pattern: PATTERN_XX,
    initiator: true,
    prologue: PROLOGUE,
    s: i.staticKey,
    e: keyPair(initiator.ephemeralSecret),
    suite,
  });
  const R = new HandshakeState({
    pattern: PATTERN_XX,
    initiator: false,
    prologue: PROLOGUE,
    s: r.staticKey,
    e: keyPair(responder.ephemeralSecret),
    suite,
  });
  // Message 1: -> e, Offer in clear.
  const offer = encodeOffer(initiator.versions);
  const m1 = I.writeMessage(offer);
  R.readMessage(m1);
  // Message 2: <- e, ee, s, es, Accept.
  const chosen = highestCommon(initiator.versions, responder.versions);
  const accept = encodeAccept({
    chosen,
    versions: responder.versions,
    identity: rId.publicKey,
    signature: r.staticKey.signature,
    features: responder.features,
  });
  const m2 = R.writeMessage(accept);
  I.readMessage(m2);
  const payloads: Record<string, string> = { offer: toHex(offer), accept: toHex(accept) };
  const messages = [toHex(m1), toHex(m2)];
  let result: Record<string, unknown> = { error: "no_common_version" };
  if (chosen !== 0) {
    // Message 3: -> s, se, Finish.
    const finish = encodeFinish({
      identity: iId.publicKey,
      signature: i.staticKey.signature,
      features: initiator.features,
    });
    const m3 = I.writeMessage(finish);
    R.readMessage(m3);
    payloads.finish = toHex(finish);
    messages.push(toHex(m3));
    const [k1, k2] = I.splitKeys();
    const [rk1, rk2] = R.splitKeys();
    const h = I.handshakeHash;
    if (toHex(h) !== toHex(R.handshakeHash) || toHex(k1) !== toHex(rk1) || toHex(k2) !== toHex(rk2)) {
      throw new Error(`Cannot generate "${name}": the two sides disagree`);
    }
    result = { version: chosen, handshakeHash: toHex(h), k1: toHex(k1), k2: toHex(k2) };
  }
  return { name, initiator: i.json, responder: r.json, chosenVersion: chosen, payloads, messages, ...result };
});

const file = {
  description: "NZ-HANDSHAKE-01 (spec/protocols/NZ-HANDSHAKE-01.md): Noise_XX_25519_ChaChaPoly_SHA256, prologue " +
    "'NZ-HANDSHAKE-01'. messages are the exact frames in order (initiator, responder, initiator); payloads are the " +
    "Offer, Accept and Finish in clear; k1 is the initiator's sendKey and the responder's recvKey, k2 the reverse; " +
    "handshakeHash is h after message 3. staticSignature = Ed25519(identitySeed, signedMessage), signedMessage = " +
    "ASCII(signaturePrefix) || staticPublic. A case with error stops after message 2 and fails on both sides.",
  source: "NewZoneCore, generated by scripts/gen_handshake_vectors.ts with the noble provider",
  protocolName: PROTOCOL_NAME,
  prologue: toHex(PROLOGUE),
  signaturePrefix: SIGNATURE_PREFIX,
  vectors,
};

const url = new URL("../spec/vectors/nz_handshake_01.json", import.meta.url);
await Deno.writeTextFile(url, JSON.stringify(file, null, 2) + "\n");
console.log(`Wrote ${vectors.length} vectors to ${url.pathname}`);
