import { deepStrictEqual as eql, equal, ok, throws } from "node:assert/strict";
import vectors from "../../../../spec/vectors/nz_dht_01.json" with { type: "json" };
import { fromHex, toHex } from "../../../../kernel/bytes.ts";
import { crypto, sha256 } from "../../../../kernel/crypto/mod.ts";
import { createKeyedHmac } from "../../../../kernel/crypto/keyed_hmac.ts";
import { commonPrefixLength } from "../../../../kernel/discovery/dht/contact.ts";
import {
  decodeMessage,
  type DhtMessage,
  encodeMessage,
  signedMessage,
} from "../../../../kernel/discovery/dht/message.ts";
import { tokenOf } from "../../../../kernel/discovery/dht/rpc.ts";
import { openRecord, recordKeys } from "../../../../kernel/discovery/record.ts";

/** The JSON form of a decoded message: bytes as hex, addresses as {host, port}. */
function json(m: DhtMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) {
    if (v instanceof Uint8Array) out[k] = toHex(v);
    else if (k === "observed") out[k] = { host: v.hostname, port: v.port };
    else if (k === "contacts") {
      out[k] = v.map((c: { id: Uint8Array; addr: { hostname: string; port: number } }) => ({
        id: toHex(c.id),
        host: c.addr.hostname,
        port: c.addr.port,
      }));
    } else if (k === "records") out[k] = v.map((r: Uint8Array) => toHex(r));
    else out[k] = v;
  }
  return out;
}

/** A message from its JSON form. */
function message(j: Record<string, unknown>): DhtMessage {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(j)) {
    if (typeof v === "string" && ["txid", "publicKey", "target", "key", "token", "record"].includes(k)) {
      out[k] = fromHex(v);
    } else if (k === "observed") {
      out[k] = { hostname: (v as { host: string }).host, port: (v as { port: number }).port };
    } else if (k === "contacts") {
      out[k] = (v as { id: string; host: string; port: number }[]).map((c) => ({
        id: fromHex(c.id),
        addr: { hostname: c.host, port: c.port },
      }));
    } else if (k === "records") out[k] = (v as string[]).map(fromHex);
    else out[k] = v;
  }
  return out as unknown as DhtMessage;
}

const responderSeed = fromHex(vectors.responder.seed);

Deno.test("the vectors' keys and node IDs are RFC 8032 keys and their SHA-256", () => {
  for (const party of [vectors.requester, vectors.responder]) {
    eql(toHex(crypto.ed25519PublicKey(fromHex(party.seed))), party.publicKey);
    eql(toHex(sha256(fromHex(party.publicKey))), party.nodeId);
  }
});

Deno.test("every NZ-DHT-01 message vector decodes to its fields and re-encodes byte for byte", () => {
  for (const v of vectors.messages) {
    const bytes = fromHex(v.bytes);
    const decoded = decodeMessage(bytes);
    eql(json(decoded.message), v.message, v.name);
    const encoded = encodeMessage(message(v.message), (m) => crypto.ed25519Sign(responderSeed, m));
    equal(toHex(encoded), v.bytes, v.name);
    if (decoded.signature) {
      ok(crypto.ed25519Verify(decoded.message.publicKey, signedMessage(decoded.signed!), decoded.signature), v.name);
    }
  }
});

Deno.test("the record the vectors carry is one NZ-RECORD-01 accepts, under the key they name", () => {
  const record = openRecord(fromHex(vectors.record.bytes), 1_900_000_000_000 - 3_600_000);
  eql(recordKeys(record).map(toHex), [vectors.record.key]);
});

Deno.test("every malformed vector is refused with a SyntaxError", () => {
  equal(vectors.malformed.length, 17);
  for (const v of vectors.malformed) throws(() => decodeMessage(fromHex(v.bytes)), SyntaxError, v.name);
});

Deno.test("tokens are HMAC-SHA-256(secret, IP bytes || port) cut to 8 bytes", () => {
  const mac = createKeyedHmac(fromHex(vectors.tokenSecret));
  for (const t of vectors.tokens) equal(toHex(tokenOf(mac, { hostname: t.host, port: t.port })), t.token);
});

Deno.test("distances are the XOR of the IDs and buckets the length of their common prefix", () => {
  for (const d of vectors.distances) {
    const a = fromHex(d.a), b = fromHex(d.b);
    equal(toHex(a.map((x, i) => x ^ b[i])), d.xor);
    equal(commonPrefixLength(a, b), d.commonPrefixLength);
  }
});
