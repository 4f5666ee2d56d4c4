/**
 * Writes spec/vectors/nz_punch_01.json and spec/vectors/nz_relay_01.json:
 * the messages of NZ-PUNCH-01 (introductions with candidates) and NZ-RELAY-01
 * (CONNECT, INCOMING, STATUS), built here byte by byte from the specs'
 * layouts, not through the codecs. Run it only when a format changes on
 * purpose: `deno run -A scripts/gen_peer_vectors.ts`. The vectors test checks
 * that the codecs encode and decode exactly these bytes.
 *
 * @module
 */

import { toHex, utf8 } from "../kernel/bytes.ts";

const A = "a1".repeat(32);
const B = "b2".repeat(32);
const hex = (h: string) => Array.from(h.match(/../g)!, (b) => parseInt(b, 16));
const u16 = (n: number) => [n >> 8, n & 0xff];
const ipv4 = (s: string) => s.split(".").map(Number);
// 2001:db8::7 and fe80::1 as 16 bytes.
const V6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

const KIND = { host: 0, stun: 1, portmap: 2, observed: 3, relay: 4 } as const;
type Kind = keyof typeof KIND;
const candidate = (kind: Kind, family: 4 | 6, address: number[], port: number) => ({
  bytes: [KIND[kind], family, ...address, ...u16(port)],
  json: {
    kind,
    addr: { hostname: family === 4 ? address.join(".") : "2001:db8::7", port },
  },
});

const cands = [
  candidate("host", 4, ipv4("10.0.1.10"), 7475),
  candidate("stun", 4, ipv4("203.0.113.101"), 7475),
  candidate("relay", 4, ipv4("203.0.113.10"), 49152),
  candidate("host", 6, V6, 7475),
];
const list = (cs: typeof cands) => [cs.length, ...cs.flatMap((c) => c.bytes)];

const punch = {
  description:
    "NZ-PUNCH-01 (spec/protocols/NZ-PUNCH-01.md) messages. candidates = count (u8) || kind (u8: 0 host, 1 stun, 2 portmap, 3 observed, 4 relay) || family (u8: 4 or 6) || address (4 or 16 bytes) || port (u16be), each. Node IDs are 32 bytes (64 hex digits). REFUSED = 0x04 || code (u8) || reason (UTF-8).",
  messages: [
    {
      name: "INTRODUCE of B with four candidates (IPv4 host, stun, relay; IPv6 host)",
      message: { type: "introduce", nodeId: B, candidates: cands.map((c) => c.json) },
      bytes: toHex(new Uint8Array([0x01, ...hex(B), ...list(cands)])),
    },
    {
      name: "INTRODUCED of A with its stun candidate and the observed one the rendezvous added",
      message: {
        type: "introduced",
        nodeId: A,
        candidates: [cands[1].json, candidate("observed", 4, ipv4("203.0.113.101"), 40123).json],
      },
      bytes: toHex(
        new Uint8Array([
          0x02,
          ...hex(A),
          2,
          ...cands[1].bytes,
          ...candidate("observed", 4, ipv4("203.0.113.101"), 40123).bytes,
        ]),
      ),
    },
    {
      name: "CANDIDATES with none",
      message: { type: "candidates", candidates: [] },
      bytes: toHex(new Uint8Array([0x03, 0])),
    },
    {
      name: "REFUSED NOT_CONNECTED",
      message: { type: "refused", code: 2, reason: "not connected" },
      bytes: toHex(new Uint8Array([0x04, 2, ...utf8("not connected")])),
    },
  ],
  malformed: [
    { name: "unknown type", bytes: "05" },
    { name: "INTRODUCE cut in the node ID", bytes: toHex(new Uint8Array([0x01, ...hex(B).slice(0, 10)])) },
    { name: "candidate kind 5", bytes: toHex(new Uint8Array([0x03, 1, 5, 4, 10, 0, 0, 1, 0, 80])) },
    { name: "family 5", bytes: toHex(new Uint8Array([0x03, 1, 0, 5, 10, 0, 0, 1, 0, 80])) },
    { name: "port 0", bytes: toHex(new Uint8Array([0x03, 1, 0, 4, 10, 0, 0, 1, 0, 0])) },
    { name: "count 17", bytes: toHex(new Uint8Array([0x03, 17])) },
    { name: "a byte after the last candidate", bytes: toHex(new Uint8Array([0x03, 0, 0])) },
  ],
};

const relay = {
  description:
    "NZ-RELAY-01 (spec/protocols/NZ-RELAY-01.md) messages. CONNECT = 0x01 || target node ID (32); INCOMING = 0x02 || source node ID (32); STATUS = 0x03 || code (u8: 0 OK, 1 DISABLED, 2 NOT_CONNECTED, 3 LIMIT, 4 REFUSED, 5 BAD_REQUEST, 6 UNREACHABLE) || reason (UTF-8, at most 256 bytes).",
  requests: [
    { name: "CONNECT to B", type: 1, nodeId: B, bytes: toHex(new Uint8Array([0x01, ...hex(B)])) },
    { name: "INCOMING from A", type: 2, nodeId: A, bytes: toHex(new Uint8Array([0x02, ...hex(A)])) },
  ],
  statuses: [
    { name: "OK", code: 0, reason: "", bytes: "0300" },
    {
      name: "LIMIT with a reason",
      code: 3,
      reason: "64 relayed sessions (maxSessions)",
      bytes: toHex(new Uint8Array([0x03, 3, ...utf8("64 relayed sessions (maxSessions)")])),
    },
  ],
};

const dir = new URL("../spec/vectors/", import.meta.url);
await Deno.writeTextFile(new URL("nz_punch_01.json", dir), JSON.stringify(punch, null, 2) + "\n");
await Deno.writeTextFile(new URL("nz_relay_01.json", dir), JSON.stringify(relay, null, 2) + "\n");
console.log("wrote spec/vectors/nz_punch_01.json and nz_relay_01.json");
