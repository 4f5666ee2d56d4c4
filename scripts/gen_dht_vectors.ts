/**
 * Writes spec/vectors/nz_dht_01.json: NZ-DHT-01 messages of every type built
 * byte by byte from the spec's layouts (section 3), not through the codec,
 * with responses signed by a fixed seed through the noble provider; a token
 * under a fixed secret (section 6); node IDs, distances and bucket indices
 * (section 2); and malformed datagrams a receiver must refuse, each with the
 * rule that refuses it. Run it only when the format changes on purpose:
 * `deno run -A scripts/gen_dht_vectors.ts`. The vectors test checks that the
 * codec decodes and re-encodes every message byte for byte.
 *
 * @module
 */

import { concat, toHex, utf8 } from "../kernel/bytes.ts";
import { nobleProvider as noble } from "../kernel/crypto/noble.ts";

const DOMAIN = concat(utf8("nzcore/v1/dht"), Uint8Array.of(0));

const requesterSeed = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const responderSeed = Uint8Array.from({ length: 32 }, (_, i) => 0x21 + i);
const authorSeed = Uint8Array.from({ length: 32 }, (_, i) => 0x41 + i);
const requester = noble.ed25519PublicKey(requesterSeed);
const responder = noble.ed25519PublicKey(responderSeed);
const author = noble.ed25519PublicKey(authorSeed);
const txid = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
const token = Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04);
const target = noble.sha256(utf8("target"));

function u16(n: number): number[] {
  return [n >> 8, n & 0xff];
}

function u64(n: number): number[] {
  const hi = Math.floor(n / 2 ** 32), lo = n >>> 0;
  return [
    hi >>> 24,
    (hi >>> 16) & 0xff,
    (hi >>> 8) & 0xff,
    hi & 0xff,
    lo >>> 24,
    (lo >>> 16) & 0xff,
    (lo >>> 8) & 0xff,
    lo & 0xff,
  ];
}

/** `family || address || port` with the address typed out byte by byte. */
function addr(family: 4 | 6, ip: number[], port: number): number[] {
  return [family, ...ip, ...u16(port)];
}

const V4_A = [192, 0, 2, 7], V4_B = [198, 51, 100, 20];
const V6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07];

const contacts = [
  { id: noble.sha256(utf8("node a")), host: "192.0.2.7", port: 7475, bytes: addr(4, V4_A, 7475) },
  { id: noble.sha256(utf8("node b")), host: "198.51.100.20", port: 40000, bytes: addr(4, V4_B, 40000) },
  { id: noble.sha256(utf8("node c")), host: "2001:db8::7", port: 65535, bytes: addr(6, V6, 65535) },
];
const contactBytes = (list: typeof contacts) => [list.length, ...list.flatMap((c) => [...c.id, ...c.bytes])];
const contactJson = (list: typeof contacts) => list.map((c) => ({ id: toHex(c.id), host: c.host, port: c.port }));

// A mutable record of NZ-RECORD-01 (section 1): kind 2, the author's key, seq 1, expires 1,900,000,000,000,
// name "profile", value "hello", signed over "nzcore/v1/record" || 0x00 || every byte before the signature.
const recordBody = new Uint8Array([
  2,
  ...author,
  ...u64(1),
  ...u64(1_900_000_000_000),
  7,
  ...utf8("profile"),
  ...u16(5),
  ...utf8("hello"),
]);
const record = concat(
  recordBody,
  noble.ed25519Sign(authorSeed, concat(utf8("nzcore/v1/record"), Uint8Array.of(0), recordBody)),
);
const recordKey = noble.sha256(concat(Uint8Array.of(2), author, utf8("profile")));

interface Vector {
  name: string;
  message: Record<string, unknown>;
  bytes: number[];
  signed: boolean;
}

function header(type: number, flags: number, publicKey: Uint8Array): number[] {
  return [0x90 | type, flags, ...txid, ...publicKey];
}

function vector(name: string, message: Record<string, unknown>, bytes: number[], signed = false): Vector {
  return { name, message, bytes, signed };
}

const common = (type: string, flags: number, publicKey: Uint8Array) => ({
  type,
  flags,
  txid: toHex(txid),
  publicKey: toHex(publicKey),
});

const messages: Vector[] = [
  vector("PING asking for a signed answer", common("ping", 0x01, requester), header(0x0, 0x01, requester)),
  vector("PING from a read-only requester", common("ping", 0x02, requester), header(0x0, 0x02, requester)),
  vector(
    "PONG, signed, naming the requester's address as seen (IPv6)",
    { ...common("pong", 0x04, responder), observed: { host: "2001:db8::7", port: 65535 } },
    [...header(0x1, 0x04, responder), ...addr(6, V6, 65535)],
    true,
  ),
  vector(
    "FIND_NODE of SHA-256('target')",
    { ...common("find_node", 0x00, requester), target: toHex(target) },
    [...header(0x2, 0x00, requester), ...target],
  ),
  vector(
    "NODES with a token and three contacts (two IPv4, one IPv6), unsigned",
    { ...common("nodes", 0x00, responder), token: toHex(token), contacts: contactJson(contacts) },
    [...header(0x3, 0x00, responder), ...token, ...contactBytes(contacts)],
  ),
  vector(
    "NODES, signed, with no contacts",
    { ...common("nodes", 0x04, responder), token: toHex(token), contacts: [] },
    [...header(0x3, 0x04, responder), ...token, 0],
    true,
  ),
  vector(
    "FIND_VALUE of the record's key from offset 0, asking for a signature",
    { ...common("find_value", 0x01, requester), key: toHex(recordKey), offset: 0 },
    [...header(0x4, 0x01, requester), ...recordKey, ...u16(0)],
  ),
  vector(
    "FIND_VALUE from offset 513",
    { ...common("find_value", 0x00, requester), key: toHex(recordKey), offset: 513 },
    [...header(0x4, 0x00, requester), ...recordKey, ...u16(513)],
  ),
  vector(
    "VALUES, signed: one record of one held, and one contact",
    {
      ...common("values", 0x04, responder),
      token: toHex(token),
      total: 1,
      records: [toHex(record)],
      contacts: contactJson(contacts.slice(0, 1)),
    },
    [
      ...header(0x5, 0x04, responder),
      ...token,
      ...u16(1),
      1,
      ...u16(record.length),
      ...record,
      ...contactBytes(contacts.slice(0, 1)),
    ],
    true,
  ),
  vector(
    "VALUES with no records and the closer contacts",
    {
      ...common("values", 0x00, responder),
      token: toHex(token),
      total: 0,
      records: [],
      contacts: contactJson(contacts),
    },
    [...header(0x5, 0x00, responder), ...token, ...u16(0), 0, ...contactBytes(contacts)],
  ),
  vector(
    "STORE of the record under its key, with the token",
    { ...common("store", 0x00, requester), token: toHex(token), key: toHex(recordKey), record: toHex(record) },
    [...header(0x6, 0x00, requester), ...token, ...recordKey, ...u16(record.length), ...record],
  ),
  vector("STORED, signed", common("stored", 0x04, responder), header(0x7, 0x04, responder), true),
  vector(
    "ERROR 4 (stale)",
    { ...common("error", 0x00, responder), code: 4, reason: "stale record: seq 1, the kept one has seq 2" },
    [...header(0xf, 0x00, responder), 4, 43, ...utf8("stale record: seq 1, the kept one has seq 2")],
  ),
].map((v) => {
  if (v.signed) {
    const signature = noble.ed25519Sign(responderSeed, concat(DOMAIN, new Uint8Array(v.bytes)));
    v.bytes = [...v.bytes, ...signature];
  }
  return v;
});

const ping = header(0x0, 0x00, requester);
const nodes = messages[4].bytes;
const malformed = [
  { name: "shorter than the 42-byte header", bytes: ping.slice(0, 41), rule: "length" },
  { name: "first byte 0x98: an unassigned type", bytes: [0x98, ...ping.slice(1)], rule: "type" },
  { name: "a request with the SIGNED flag", bytes: [0x90, 0x04, ...ping.slice(2)], rule: "flags" },
  { name: "a response with the WANT_SIGNATURE flag", bytes: [0x97, 0x01, ...ping.slice(2)], rule: "flags" },
  { name: "an undefined flag bit (0x08)", bytes: [0x90, 0x08, ...ping.slice(2)], rule: "flags" },
  { name: "PING with one byte after the header", bytes: [...ping, 0], rule: "trailing" },
  {
    name: "FIND_NODE with a 31-byte target",
    bytes: header(0x2, 0, requester).concat(Array(31).fill(1)),
    rule: "truncated",
  },
  { name: "NODES cut in its last contact", bytes: nodes.slice(0, nodes.length - 1), rule: "truncated" },
  {
    name: "NODES whose contact has address family 5",
    bytes: [...header(0x3, 0, responder), ...token, 1, ...contacts[0].id, 5, ...V4_A, ...u16(7475)],
    rule: "family",
  },
  {
    name: "NODES whose contact has port 0",
    bytes: [...header(0x3, 0, responder), ...token, 1, ...contacts[0].id, ...addr(4, V4_A, 0)],
    rule: "port",
  },
  {
    name: "NODES with 33 contacts",
    bytes: [
      ...header(0x3, 0, responder),
      ...token,
      33,
      ...Array(33).fill([...contacts[0].id, ...contacts[0].bytes]).flat(),
    ],
    rule: "count",
  },
  {
    name: "VALUES with a record of 1081 bytes",
    bytes: [...header(0x5, 0, responder), ...token, ...u16(1), 1, ...u16(1081), ...Array(1081).fill(0), 0].slice(
      0,
      1200,
    ),
    rule: "record length",
  },
  {
    name: "STORE with a record length of 0",
    bytes: [...header(0x6, 0, requester), ...token, ...recordKey, ...u16(0)],
    rule: "record length",
  },
  {
    name: "ERROR whose reason is not UTF-8",
    bytes: [...header(0xf, 0, responder), 1, 2, 0xc3, 0x28],
    rule: "utf-8",
  },
  {
    name: "ERROR with a 201-byte reason",
    bytes: [...header(0xf, 0, responder), 1, 201, ...Array(201).fill(0x61)],
    rule: "reason length",
  },
  {
    name: "a signed response too short for its signature",
    bytes: [...header(0x7, 0x04, responder), ...Array(63).fill(0)],
    rule: "truncated",
  },
  { name: "1201 bytes", bytes: [...header(0x6, 0, requester), ...Array(1201 - 42).fill(0)], rule: "size" },
];

const secret = Uint8Array.from({ length: 32 }, (_, i) => 0x55 ^ i);
const tokens = [
  { host: "192.0.2.1", port: 7475, input: [192, 0, 2, 1, ...u16(7475)] },
  { host: "2001:db8::1", port: 7475, input: [...V6.slice(0, 15), 1, ...u16(7475)] },
].map((t) => ({
  host: t.host,
  port: t.port,
  input: toHex(new Uint8Array(t.input)),
  token: toHex(noble.hmacSha256(secret, new Uint8Array(t.input)).subarray(0, 8)),
}));

const idA = noble.sha256(requester), idB = noble.sha256(responder);
const xor = idA.map((b, i) => b ^ idB[i]);
let cpl = 0;
while (cpl < 256 && (xor[cpl >> 3] & (0x80 >> (cpl & 7))) === 0) cpl++;

const out = {
  description:
    "NZ-DHT-01 (spec/protocols/NZ-DHT-01.md). Every datagram: 0x90|type || flags || transaction ID (8) || sender Ed25519 public key (32) || body [|| Ed25519 signature (64) over 'nzcore/v1/dht' || 0x00 || every byte before it, when flags has 0x04]. Seeds are RFC 8032 seeds; signatures are made with noble. `messages` must decode to `message` and re-encode to `bytes`; `malformed` must be refused; `tokens` are HMAC-SHA-256(secret, IP bytes || port u16be) cut to 8 bytes.",
  requester: { seed: toHex(requesterSeed), publicKey: toHex(requester), nodeId: toHex(idA) },
  responder: { seed: toHex(responderSeed), publicKey: toHex(responder), nodeId: toHex(idB) },
  distances: [
    { a: toHex(idA), b: toHex(idB), xor: toHex(xor), commonPrefixLength: cpl },
    {
      a: toHex(target),
      b: toHex(target.map((x, i) => i === 1 ? x ^ 0x04 : x)),
      xor: toHex(new Uint8Array(32).map((_, i) => i === 1 ? 0x04 : 0)),
      commonPrefixLength: 13,
    },
  ],
  record: { authorSeed: toHex(authorSeed), bytes: toHex(record), key: toHex(recordKey) },
  messages: messages.map((v) => ({ name: v.name, message: v.message, bytes: toHex(new Uint8Array(v.bytes)) })),
  malformed: malformed.map((m) => ({ name: m.name, rule: m.rule, bytes: toHex(new Uint8Array(m.bytes)) })),
  tokenSecret: toHex(secret),
  tokens,
};
await Deno.writeTextFile(
  new URL("../spec/vectors/nz_dht_01.json", import.meta.url),
  JSON.stringify(out, null, 2) + "\n",
);
console.log(`wrote ${messages.length} messages, ${malformed.length} malformed, ${tokens.length} tokens`);
