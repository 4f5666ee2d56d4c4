/**
 * Writes spec/vectors/nz_lan_01.json: the NZ-LAN-01 records of one node
 * (fixed seed; node ID and did:key computed here with noble and @scure/base,
 * not the node's code), its announcement packet built byte by byte from RFC
 * 1035 section 4 and RFC 6762 section 10.2 (not through dns-packet), and TXT
 * records to accept and to refuse. Run it only when the format changes on
 * purpose: `deno run -A scripts/gen_lan_vectors.ts`.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { base58 } from "@scure/base";
import { concat, toHex, utf8 } from "../kernel/bytes.ts";

const SEED = new Uint8Array(32).fill(0x1a);
const OTHER_SEED = new Uint8Array(32).fill(0x2b);
const didOf = (pk: Uint8Array) => "did:key:z" + base58.encode(concat(Uint8Array.of(0xed, 0x01), pk));
const PK = ed25519.getPublicKey(SEED);
const ID = toHex(sha256(PK));
const DID = didOf(PK);
const OTHER_PK = ed25519.getPublicKey(OTHER_SEED);
const OTHER_ID = toHex(sha256(OTHER_PK));
const OTHER_DID = didOf(OTHER_PK);
const INSTANCE = `nzcore-${ID.slice(0, 12)}`;
const ADDRESS = "192.0.2.7";
const UDP = 7475;
const TCP = 7476;
const TXT = ["v=1", `id=${ID}`, `did=${DID}`, `udp=${UDP}`, `tcp=${TCP}`];

const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
/** A name as labels, uncompressed (RFC 1035 section 3.1). */
const name = (text: string) =>
  concat(...text.split(".").map((l) => concat(Uint8Array.of(utf8(l).length), utf8(l))), Uint8Array.of(0));
const TYPE = { A: 1, PTR: 12, TXT: 16, SRV: 33 } as const;
/** A resource record (RFC 1035 section 4.1.3); the cache-flush bit is the top bit of the class (RFC 6762 section 10.2). */
const record = (owner: string, type: keyof typeof TYPE, ttl: number, flush: boolean, rdata: Uint8Array) =>
  concat(name(owner), u16(TYPE[type]), u16(1 | (flush ? 0x8000 : 0)), u32(ttl), u16(rdata.length), rdata);

const typeName = "_nzcore._udp.local";
const fqdn = `${INSTANCE}.${typeName}`;
const host = `${INSTANCE}.local`;
const answers = [
  record(typeName, "PTR", 4500, false, name(fqdn)),
  record("_services._dns-sd._udp.local", "PTR", 4500, false, name(typeName)),
  record(fqdn, "SRV", 120, true, concat(u16(0), u16(0), u16(UDP), name(host))),
  record(fqdn, "TXT", 4500, true, concat(...TXT.map((s) => concat(Uint8Array.of(utf8(s).length), utf8(s))))),
  record(host, "A", 120, true, Uint8Array.from(ADDRESS.split(".").map(Number))),
];
// Header (RFC 1035 section 4.1.1): ID 0 (RFC 6762 section 18.1), QR and AA set, no questions, five answers.
const packet = concat(u16(0), u16(0x8400), u16(0), u16(answers.length), u16(0), u16(0), ...answers);

const good = { v: "1", id: ID, did: DID };
const accept = [
  {
    name: "the node's own TXT",
    strings: TXT,
    parsed: { id: ID, did: DID, ports: { udp: UDP, tcp: TCP } },
  },
  {
    name: "keys in any case, unknown keys and boolean attributes ignored",
    strings: ["V=1", `ID=${ID}`, `Did=${DID}`, "UDP=9", "future=x", "relay"],
    parsed: { id: ID, did: DID, ports: { udp: 9 } },
  },
  {
    name: "the first of a repeated key counts",
    strings: ["v=1", `id=${ID}`, `id=${OTHER_ID}`, `did=${DID}`, `did=${OTHER_DID}`, "tcp=80", "tcp=81"],
    parsed: { id: ID, did: DID, ports: { tcp: 80 } },
  },
  {
    name: "a WebSocket port with a path, and one without",
    strings: ["v=1", `id=${ID}`, `did=${DID}`, "ws=8080/nz/ws"],
    parsed: { id: ID, did: DID, ports: { ws: { port: 8080, path: "/nz/ws" } } },
  },
  {
    name: "a WebSocket port alone means the path /",
    strings: ["v=1", `id=${ID}`, `did=${DID}`, "ws=443"],
    parsed: { id: ID, did: DID, ports: { ws: { port: 443, path: "/" } } },
  },
];
const kv = (o: Record<string, string>) => Object.entries(o).map(([k, v]) => `${k}=${v}`);
const refuse = [
  { name: "no v", strings: kv({ id: ID, did: DID, udp: "1" }) },
  { name: "v=2", strings: kv({ ...good, v: "2", udp: "1" }) },
  { name: "v as a boolean", strings: ["v", `id=${ID}`, `did=${DID}`, "udp=1"] },
  { name: "no id", strings: kv({ v: "1", did: DID, udp: "1" }) },
  { name: "no did", strings: kv({ v: "1", id: ID, udp: "1" }) },
  { name: "id in uppercase hex", strings: kv({ ...good, id: ID.toUpperCase(), udp: "1" }) },
  { name: "id of 63 digits", strings: kv({ ...good, id: ID.slice(1), udp: "1" }) },
  { name: "id of another node than did", strings: kv({ ...good, id: OTHER_ID, udp: "1" }) },
  { name: "did not base58btc", strings: kv({ ...good, did: "did:key:z0OIl", udp: "1" }) },
  {
    name: "did of an X25519 key (multicodec 0xec01), not Ed25519",
    strings: kv({ ...good, did: "did:key:z" + base58.encode(concat(Uint8Array.of(0xec, 0x01), PK)), udp: "1" }),
  },
  { name: "did:web", strings: kv({ ...good, did: "did:web:example.com", udp: "1" }) },
  { name: "no port at all", strings: kv(good) },
  { name: "udp=0", strings: kv({ ...good, udp: "0" }) },
  { name: "udp=65536", strings: kv({ ...good, udp: "65536" }) },
  { name: "udp=+80", strings: kv({ ...good, udp: "+80" }) },
  { name: "udp=0x50", strings: kv({ ...good, udp: "0x50" }) },
  { name: "udp empty", strings: kv({ ...good, udp: "" }) },
  { name: "udp as a boolean", strings: [...kv(good), "udp"] },
  { name: "a good udp and a bad tcp", strings: kv({ ...good, udp: "1", tcp: "x" }) },
  { name: "ws with a space in the path", strings: kv({ ...good, ws: "80/a b" }) },
  { name: "ws with a path that does not start with /", strings: kv({ ...good, ws: "80nz" }) },
];

const out = {
  description:
    "NZ-LAN-01 (spec/protocols/NZ-LAN-01.md). node: a node's identity (Ed25519 seed; node ID = hex SHA-256 of the public key; did:key = 'did:key:z' + base58btc(0xed 0x01 || public key)), its listen ports and address, and the records it announces. announcement: the mDNS response that announces it (RFC 6762 section 8.3), every name uncompressed, as hex. txt.accept: TXT strings with the record they parse to; txt.refuse: TXT strings a receiver must ignore.",
  node: {
    seed: toHex(SEED),
    publicKey: toHex(PK),
    nodeId: ID,
    did: DID,
    instance: INSTANCE,
    host,
    listening: [`udp://0.0.0.0:${UDP}`, `tcp://0.0.0.0:${TCP}`, "tcp://127.0.0.1:9"],
    address: ADDRESS,
    port: UDP,
    txt: TXT,
  },
  announcement: toHex(packet),
  txt: { accept, refuse },
};
const path = new URL("../spec/vectors/nz_lan_01.json", import.meta.url);
await Deno.writeTextFile(path, JSON.stringify(out, null, 2) + "\n");
console.log(`wrote ${path.pathname}: announcement of ${packet.length} bytes, ${accept.length} + ${refuse.length} TXT`);
