/**
 * Writes spec/vectors/nz_record_01.json: NZ-RECORD-01 records of every kind,
 * built here byte by byte from the spec's layout and signed with the noble
 * reference (not the node's signer) under fixed seeds, with their DHT keys;
 * and encodings a receiver must refuse, each with the step that refuses it.
 * Run it only when the format changes on purpose:
 * `deno run -A scripts/gen_record_vectors.ts`.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, toHex, utf8 } from "../kernel/bytes.ts";
import { addressList, type RecordFields, signedRecord, string8, u8 } from "./_record_layout.ts";

const SEED_A = new Uint8Array(32).fill(0xa1);
const SEED_B = new Uint8Array(32).fill(0xb2);
const PK_A = ed25519.getPublicKey(SEED_A);
const PK_B = ed25519.getPublicKey(SEED_B);
/** 2026-01-01T00:00:00Z: every vector is checked "now" = this time. */
const NOW = 1_767_225_600_000;

const KIND_NAMES = ["", "peer", "mutable", "service", "introduction"];
const peerValue = addressList(["udp://203.0.113.7:7475", "tcp://[2001:db8::7]:7475"]);
const serviceValue = concat(u8(2), string8("camera"), string8("video/h264"), string8("acme/camera/1"));

const valid: { name: string; fields: RecordFields; keys: Uint8Array[]; decoded: Record<string, unknown> }[] = [
  {
    name: "peer record of A with an IPv4 UDP and an IPv6 TCP address",
    fields: {
      kind: 1,
      seed: SEED_A,
      seq: NOW - 1000,
      expires: NOW + 3600_000,
      name: new Uint8Array(0),
      value: peerValue,
    },
    keys: [sha256(PK_A)],
    decoded: { addresses: ["udp://203.0.113.7:7475", "tcp://[2001:db8::7]:7475"] },
  },
  {
    name: "mutable record of A named 'status', seq 7",
    fields: { kind: 2, seed: SEED_A, seq: 7, expires: NOW + 600_000, name: utf8("status"), value: utf8("online") },
    keys: [sha256(concat(u8(2), PK_A, utf8("status")))],
    decoded: {},
  },
  {
    name: "service record of B: 'front door' with tags camera and video/h264, protocol acme/camera/1",
    fields: { kind: 3, seed: SEED_B, seq: NOW, expires: NOW + 3600_000, name: utf8("front door"), value: serviceValue },
    keys: [sha256(concat(u8(3), utf8("camera"))), sha256(concat(u8(3), utf8("video/h264")))],
    decoded: { service: { name: "front door", tags: ["camera", "video/h264"], protocol: "acme/camera/1" } },
  },
  {
    name: "introduction by A of B at one UDP address, valid 10 minutes",
    fields: {
      kind: 4,
      seed: SEED_A,
      seq: NOW,
      expires: NOW + 600_000,
      name: PK_B,
      value: addressList(["udp://198.51.100.9:40000"]),
    },
    keys: [],
    decoded: { addresses: ["udp://198.51.100.9:40000"] },
  },
];

const good = signedRecord(valid[0].fields).bytes;
const flipped = good.slice();
flipped[40] ^= 1; // a bit of seq: the signature no longer matches
const refused: { name: string; bytes: Uint8Array; reason: string }[] = [
  {
    name: "truncated: the last byte of the signature missing",
    bytes: good.subarray(0, good.length - 1),
    reason: "malformed",
  },
  { name: "one byte after the signature", bytes: concat(good, u8(0)), reason: "malformed" },
  {
    name: "kind 5",
    bytes: signedRecord({ ...valid[1].fields, kind: 5 }).bytes,
    reason: "malformed",
  },
  {
    name: "a peer record with a name",
    bytes: signedRecord({ ...valid[0].fields, name: utf8("x") }).bytes,
    reason: "malformed",
  },
  {
    name: "a peer record with 0 addresses",
    bytes: signedRecord({ ...valid[0].fields, value: u8(0) }).bytes,
    reason: "malformed",
  },
  {
    name: "a peer record whose address has no scheme",
    bytes: signedRecord({ ...valid[0].fields, value: addressList(["203.0.113.7:7475"]) }).bytes,
    reason: "malformed",
  },
  {
    name: "a service record with an upper-case tag",
    bytes: signedRecord({ ...valid[2].fields, value: concat(u8(1), string8("Camera"), string8("")) }).bytes,
    reason: "malformed",
  },
  {
    name: "a service record with a tag twice",
    bytes: signedRecord({ ...valid[2].fields, value: concat(u8(2), string8("camera"), string8("camera"), string8("")) })
      .bytes,
    reason: "malformed",
  },
  {
    name: "a mutable record with a value of 901 bytes",
    bytes: signedRecord({ ...valid[1].fields, value: new Uint8Array(901) }).bytes,
    reason: "malformed",
  },
  {
    name: "an introduction whose name is 31 bytes",
    bytes: signedRecord({ ...valid[3].fields, name: PK_B.subarray(1) }).bytes,
    reason: "malformed",
  },
  { name: "seq changed after signing", bytes: flipped, reason: "forged" },
  {
    name: "expired one millisecond before now",
    bytes: signedRecord({ ...valid[1].fields, expires: NOW - 1 }).bytes,
    reason: "expired",
  },
  {
    name: "expiring at now exactly",
    bytes: signedRecord({ ...valid[1].fields, expires: NOW }).bytes,
    reason: "expired",
  },
  {
    name: "expiring 24 h + 5 min + 1 ms after now",
    bytes: signedRecord({ ...valid[1].fields, expires: NOW + 24 * 3600_000 + 300_000 + 1 }).bytes,
    reason: "too-long-lived",
  },
];

const out = {
  description:
    "NZ-RECORD-01 (spec/protocols/NZ-RECORD-01.md) records. record = kind (u8) || public key (32) || seq (u64be) || expires (u64be, ms) || name length (u8) || name || value length (u16be) || value || Ed25519 signature over ('nzcore/v1/record' || 0x00 || every byte before it). Seeds are RFC 8032 private keys. Check every vector at now = the given time.",
  now: NOW,
  signers: { A: { seed: toHex(SEED_A), publicKey: toHex(PK_A) }, B: { seed: toHex(SEED_B), publicKey: toHex(PK_B) } },
  records: valid.map((v) => {
    const { message, bytes } = signedRecord(v.fields);
    return {
      name: v.name,
      kind: KIND_NAMES[v.fields.kind],
      signer: v.fields.seed === SEED_A ? "A" : "B",
      seq: v.fields.seq,
      expires: v.fields.expires,
      nameHex: toHex(v.fields.name),
      value: toHex(v.fields.value),
      signedMessage: toHex(message),
      bytes: toHex(bytes),
      keys: v.keys.map(toHex),
      ...v.decoded,
    };
  }),
  refused: refused.map((r) => ({ name: r.name, bytes: toHex(r.bytes), reason: r.reason })),
};

const path = new URL("../spec/vectors/nz_record_01.json", import.meta.url);
await Deno.writeTextFile(path, JSON.stringify(out, null, 2) + "\n");
console.log(`wrote ${path.pathname}: ${out.records.length} records, ${out.refused.length} refused`);
