/**
 * Writes spec/vectors/nz_introduce_01.json: NZ-INTRODUCE-01 introductions
 * (NZ-RECORD-01 kind 4 records, built here byte by byte from the specs'
 * layouts and signed with the noble reference under fixed seeds) with the
 * status a receiver answers; ANSWER messages to accept and to refuse; and
 * `nz://` URIs to accept (with what they name) and to refuse. Run it only
 * when the format changes on purpose: `deno run -A scripts/gen_introduce_vectors.ts`.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { base58 } from "@scure/base";
import { concat, toHex, utf8 } from "../kernel/bytes.ts";
import { addressList, signedRecord, u8 } from "./_record_layout.ts";

/** 2026-01-01T00:00:00Z: every introduction is checked "now" = this time. */
const NOW = 1_767_225_600_000;
const SEEDS = {
  /** The introducer: the receiver's peer on the session the introduction arrives on. */
  I: new Uint8Array(32).fill(0x11),
  /** The receiver. */
  R: new Uint8Array(32).fill(0x22),
  /** The node introduced. */
  T: new Uint8Array(32).fill(0x33),
  /** Someone else. */
  M: new Uint8Array(32).fill(0x44),
};
type Who = keyof typeof SEEDS;
const pk = (who: Who) => ed25519.getPublicKey(SEEDS[who]);

interface Fields {
  kind: number;
  signer: Who;
  seq: number;
  expires: number;
  name: Uint8Array;
  value: Uint8Array;
}

/** NZ-RECORD-01 section 1, signed by the seed of `f.signer`. */
function record(f: Fields): Uint8Array {
  return signedRecord({ ...f, seed: SEEDS[f.signer] }).bytes;
}

const T_ADDRESSES = ["udp://198.51.100.9:40000", "tcp://[2001:db8::9]:7475"];
const base: Fields = {
  kind: 4,
  signer: "I",
  seq: NOW - 1000,
  expires: NOW - 1000 + 600_000,
  name: pk("T"),
  value: addressList(T_ADDRESSES),
};

const good = record(base);
const tampered = good.slice();
tampered[good.length - 64 - 1] ^= 0x01; // the last digit of the last address: 7475 becomes 7474

const eight = Array.from({ length: 8 }, (_, i) => `udp://198.51.100.${i + 1}:7475`);
const introductions: { name: string; bytes: Uint8Array; status: string; code: number; addresses?: string[] }[] = [
  {
    name: "I introduces T at a UDP and an IPv6 TCP address, valid 10 minutes",
    bytes: good,
    status: "dialing",
    code: 0,
    addresses: T_ADDRESSES,
  },
  {
    name: "I introduces T at 8 addresses (the most)",
    bytes: record({ ...base, value: addressList(eight) }),
    status: "dialing",
    code: 0,
    addresses: eight,
  },
  { name: "an address changed after signing", bytes: tampered, status: "forged", code: 17 },
  {
    name: "signed by M, sent by I",
    bytes: record({ ...base, signer: "M" }),
    status: "wrong-signer",
    code: 20,
  },
  {
    name: "signed by T itself, sent by I",
    bytes: record({ ...base, signer: "T" }),
    status: "wrong-signer",
    code: 20,
  },
  {
    name: "expired 1 ms before now",
    bytes: record({ ...base, expires: NOW - 1 }),
    status: "expired",
    code: 18,
  },
  {
    name: "expiring 24 h + 5 min + 1 ms after now",
    bytes: record({ ...base, expires: NOW + 24 * 3600_000 + 300_000 + 1 }),
    status: "too-long-lived",
    code: 19,
  },
  {
    name: "introduces the receiver R itself",
    bytes: record({ ...base, name: pk("R") }),
    status: "invalid-target",
    code: 21,
  },
  {
    name: "introduces the introducer I itself",
    bytes: record({ ...base, name: pk("I") }),
    status: "invalid-target",
    code: 21,
  },
  {
    name: "a peer record (kind 1) of I instead of an introduction",
    bytes: record({ ...base, kind: 1, name: new Uint8Array(0) }),
    status: "malformed",
    code: 16,
  },
  {
    name: "a name of 31 bytes",
    bytes: record({ ...base, name: pk("T").subarray(1) }),
    status: "malformed",
    code: 16,
  },
  {
    name: "no address",
    bytes: record({ ...base, value: u8(0) }),
    status: "malformed",
    code: 16,
  },
  {
    name: "9 addresses",
    bytes: record({ ...base, value: addressList([...eight, "udp://198.51.100.9:7475"]) }),
    status: "malformed",
    code: 16,
  },
  {
    name: "one byte after the signature",
    bytes: concat(good, u8(0)),
    status: "malformed",
    code: 16,
  },
];

const answers = [
  { status: "dialing", code: 0, accepted: true, reason: "", bytes: "00" },
  { status: "connected", code: 1, accepted: true, reason: "", bytes: "01" },
  {
    status: "refused",
    code: 22,
    accepted: false,
    reason: "not known",
    bytes: toHex(concat(u8(22), utf8("not known"))),
  },
  { status: "unknown", code: 7, accepted: true, reason: "", bytes: "07" },
  { status: "unknown", code: 99, accepted: false, reason: "later", bytes: toHex(concat(u8(99), utf8("later"))) },
];
const refusedAnswers = [
  { name: "empty", bytes: "" },
  { name: "a reason of 201 bytes", bytes: toHex(concat(u8(22), new Uint8Array(201).fill(0x61))) },
  { name: "a reason that is not UTF-8", bytes: "16ff" },
];

// --- nz:// URIs ---

/** RFC 3986 section 2.1: every octet but the unreserved characters as %XX, uppercase. */
const pct = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
const keyOf = (publicKey: Uint8Array) => "z" + base58.encode(concat(Uint8Array.of(0xed, 0x01), publicKey));
const T_KEY = keyOf(pk("T"));
// The W3C did:key example (ed25519-x25519.json): the Ed25519 key of the all-zero seed.
const W3C_KEY = "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
const W3C_PK = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
const uriOf = (key: string, addresses: string[]) =>
  `nz://${key}` + addresses.map((a, i) => `${i ? "&" : "?"}addr=${pct(a)}`).join("");

const fromHexString = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
const uris: { name: string; uri: string; canonical: string; publicKey: string; addresses: string[] }[] = [];
function validUri(name: string, uri: string, publicKey: Uint8Array, addresses: string[], key: string): void {
  uris.push({ name, uri, canonical: uriOf(key, addresses), publicKey: toHex(publicKey), addresses });
}
validUri("T alone, no address", uriOf(T_KEY, []), pk("T"), [], T_KEY);
validUri("T at its two addresses", uriOf(T_KEY, T_ADDRESSES), pk("T"), T_ADDRESSES, T_KEY);
validUri(
  "the spec's example: the W3C did:key example key, a UDP and an IPv6 TCP address",
  uriOf(W3C_KEY, ["udp://192.0.2.7:7475", "tcp://[2001:db8::1]:7475"]),
  fromHexString(W3C_PK),
  ["udp://192.0.2.7:7475", "tcp://[2001:db8::1]:7475"],
  W3C_KEY,
);
validUri(
  "a WebSocket address with a path and a non-ASCII host",
  uriOf(T_KEY, ["wss://bücher.example:443/nz/ws"]),
  pk("T"),
  ["wss://bücher.example:443/nz/ws"],
  T_KEY,
);
validUri("8 addresses (the most)", uriOf(T_KEY, eight), pk("T"), eight, T_KEY);
validUri(
  "read, not written: an upper-case scheme, lower-case hex and : / left unencoded",
  `NZ://${T_KEY}?addr=udp%3a%2f%2f198.51.100.9%3a40000&addr=tcp://h.example:1`,
  pk("T"),
  ["udp://198.51.100.9:40000", "tcp://h.example:1"],
  T_KEY,
);
validUri(
  "read, not written: another parameter, ignored",
  `nz://${T_KEY}?name=kitchen&addr=${pct(T_ADDRESSES[0])}`,
  pk("T"),
  [T_ADDRESSES[0]],
  T_KEY,
);

const otherCodec = "z" + base58.encode(concat(Uint8Array.of(0xec, 0x01), pk("T")));
const refusedUris: { name: string; uri: string }[] = [
  { name: "another scheme", uri: `nzc://${T_KEY}` },
  { name: "the whole did:key as the key", uri: `nz://did:key:${T_KEY}` },
  { name: "a key with a character outside base58btc (0)", uri: `nz://${T_KEY.slice(0, 5)}0${T_KEY.slice(6)}` },
  { name: "a key without the z prefix", uri: `nz://${T_KEY.slice(1)}` },
  { name: "a key of the X25519 multicodec (0xec 0x01)", uri: `nz://${otherCodec}` },
  { name: "a key one character short", uri: `nz://${T_KEY.slice(0, -1)}` },
  { name: "a path after the key", uri: `nz://${T_KEY}/` },
  { name: "a fragment", uri: `nz://${T_KEY}#addr` },
  { name: "an empty query", uri: `nz://${T_KEY}?` },
  { name: "a trailing &", uri: `${uriOf(T_KEY, T_ADDRESSES)}&` },
  { name: "a parameter without =", uri: `nz://${T_KEY}?addr` },
  { name: "an upper-case parameter name", uri: `nz://${T_KEY}?Addr=${pct(T_ADDRESSES[0])}` },
  { name: "unencoded brackets", uri: `nz://${T_KEY}?addr=tcp://[2001:db8::9]:7475` },
  { name: "an unencoded space", uri: `nz://${T_KEY}?addr=tcp://h.example :1` },
  { name: "an unencoded +", uri: `nz://${T_KEY}?addr=tcp://h+1.example:1` },
  { name: "unencoded non-ASCII", uri: `nz://${T_KEY}?addr=wss://bücher.example:443/` },
  { name: "a % without two hex digits", uri: `nz://${T_KEY}?addr=udp%3` },
  { name: "an address that is not UTF-8", uri: `nz://${T_KEY}?addr=udp%3A%2F%2F%C3%28%3A1` },
  { name: "an empty address", uri: `nz://${T_KEY}?addr=` },
  { name: "an address without a scheme", uri: `nz://${T_KEY}?addr=${pct("198.51.100.9:40000")}` },
  { name: "an address with a space", uri: `nz://${T_KEY}?addr=${pct("tcp://h .example:1")}` },
  { name: "an address of 201 bytes", uri: `nz://${T_KEY}?addr=${pct("tcp://" + "a".repeat(195))}` },
  { name: "an address given twice", uri: uriOf(T_KEY, [T_ADDRESSES[0], T_ADDRESSES[1], T_ADDRESSES[0]]) },
  { name: "9 addresses", uri: uriOf(T_KEY, [...eight, "udp://198.51.100.9:7475"]) },
  { name: "2049 characters", uri: `nz://${T_KEY}?pad=${"a".repeat(2049 - `nz://${T_KEY}?pad=`.length)}` },
];

const out = {
  description:
    "NZ-INTRODUCE-01 (spec/protocols/NZ-INTRODUCE-01.md). introductions: INTRODUCTION messages (NZ-RECORD-01 records) " +
    "that the receiver R gets from the introducer I on their session, checked at now; status/code is R's ANSWER when " +
    "its policy follows the introduction (steps 2 to 4 of section 3; R has no session with T). answers: ANSWER " +
    "messages (status u8 || UTF-8 reason), and ones an introducer refuses. uris: nz:// URIs with the key and addresses " +
    "they name and the canonical form a writer gives; refusedUris: URIs a reader refuses. Seeds are RFC 8032 private keys.",
  now: NOW,
  nodes: Object.fromEntries(
    (Object.keys(SEEDS) as Who[]).map((who) => [who, {
      seed: toHex(SEEDS[who]),
      publicKey: toHex(pk(who)),
      nodeId: toHex(sha256(pk(who))),
    }]),
  ),
  introductions: introductions.map((v) => ({
    name: v.name,
    bytes: toHex(v.bytes),
    status: v.status,
    code: v.code,
    ...(v.addresses ? { introduced: "T", addresses: v.addresses } : {}),
  })),
  answers,
  refusedAnswers,
  uris,
  refusedUris,
};

const path = new URL("../spec/vectors/nz_introduce_01.json", import.meta.url);
await Deno.writeTextFile(path, JSON.stringify(out, null, 2) + "\n");
console.log(
  `wrote ${path.pathname}: ${out.introductions.length} introductions, ${answers.length + refusedAnswers.length} ` +
    `answers, ${uris.length + refusedUris.length} URIs`,
);
