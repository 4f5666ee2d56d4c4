/**
 * Request and response schemas of the API. Request bodies are strict:
 * unknown fields are refused. The OpenAPI document is generated from these.
 *
 * @module
 */

import { z } from "@hono/zod-openapi";

/** The error body every failed request returns. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "invalid_request" }),
    message: z.string(),
  }),
}).openapi("Error");

export const IdentitySchema = z.object({
  name: z.string(),
  nodeId: z.string().openapi({ description: "Hex SHA-256 of the Ed25519 public key" }),
  did: z.string().openapi({ example: "did:key:z6Mk..." }),
  publicKey: z.string().openapi({ description: "Ed25519 public key, hex" }),
  agreementKey: z.string().openapi({ description: "X25519 public key, hex" }),
  created: z.number().int(),
  active: z.boolean(),
}).openapi("Identity");

const identityName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
  message: 'Use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit',
});

export const CreateIdentitySchema = z.strictObject({
  name: identityName,
  activate: z.boolean().optional(),
}).openapi("CreateIdentity");

export const ExportIdentitySchema = z.strictObject({
  passphrase: z.string().min(8, { message: "The passphrase must have at least 8 characters" }).max(1024),
}).openapi("ExportIdentity");

export const ExportedIdentitySchema = z.object({
  did: z.string(),
  file: z.string().openapi({ description: "The text of the encrypted export file" }),
}).openapi("ExportedIdentity");

export const ImportIdentitySchema = z.strictObject({
  file: z.string().max(16_384),
  passphrase: z.string().max(1024),
  name: identityName.optional(),
  activate: z.boolean().optional(),
}).openapi("ImportIdentity");

const tokenScope = z.enum(["admin", "agent"]).openapi({
  description: "admin: every route; agent: /v1/mcp only (its tool calls pass the policy gate)",
});

export const TokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  scope: tokenScope,
  created: z.number().int(),
  expires: z.number().int().optional(),
  revoked: z.number().int().optional(),
}).openapi("Token");

export const CreatedTokenSchema = TokenSchema.extend({
  token: z.string().openapi({ description: "The bearer token; shown only once" }),
}).openapi("CreatedToken");

export const CreateTokenSchema = z.strictObject({
  name: z.string().min(1).max(64),
  expiresIn: z.number().int().positive().max(10 * 365 * 24 * 3600).optional().openapi({
    description: "Lifetime in seconds; without it the token lasts until revoked",
  }),
  scope: tokenScope.optional().openapi({ description: "admin (the default) or agent: /v1/mcp only" }),
}).openapi("CreateToken");

export const StateSchema = z.object({
  version: z.string(),
  pid: z.number().int(),
  startedAt: z.number().int(),
  uptimeMs: z.number().int(),
  identity: IdentitySchema,
  identities: z.number().int(),
  api: z.object({ tcp: z.string().nullable(), socket: z.string().nullable() }),
  listen: z.array(z.string()).openapi({ description: "Transport addresses the node listens on for other nodes" }),
  sessions: z.number().int().openapi({ description: "Open sessions with other nodes" }),
  permissions: z.record(z.string(), z.string()),
  storage: z.object({
    path: z.string(),
    bytes: z.number().int(),
    keyMode: z.enum(["passphrase", "keyfile"]),
    logEntries: z.number().int(),
  }),
  memory: z.object({ rss: z.number().int(), heapUsed: z.number().int() }),
  reachability: z.object({
    udp: z.string().nullable().openapi({ description: "The node's UDP socket (sessions, STUN, hole punching)" }),
    publicAddresses: z.array(z.string()).openapi({
      description: "Where other nodes may reach this one: STUN-mapped and router-mapped addresses",
      example: ["udp://203.0.113.101:7475"],
    }),
    natType: z.enum([
      "open",
      "full-cone",
      "restricted-cone",
      "port-restricted-cone",
      "symmetric",
      "udp-blocked",
      "unknown",
    ]),
    mapping: z.enum(["endpoint-independent", "address-dependent", "address-and-port-dependent", "unknown"]),
    filtering: z.enum(["endpoint-independent", "address-dependent", "address-and-port-dependent", "unknown"]),
    stun: z.array(z.object({
      server: z.string(),
      mapped: z.string().optional(),
      error: z.string().optional(),
      rttMs: z.number().optional(),
    })),
    portMappings: z.array(z.object({
      protocol: z.enum(["udp", "tcp"]),
      internalPort: z.number().int(),
      externalAddress: z.string(),
      externalPort: z.number().int(),
      method: z.enum(["pcp", "nat-pmp", "upnp"]),
      lifetimeSeconds: z.number().int(),
      expiresAt: z.number(),
    })),
    servingStun: z.boolean(),
    checkedAt: z.number().int().nullable(),
    turn: z.object({
      server: z.string(),
      relayed: z.string().nullable().openapi({ description: "The relayed address peers may reach the node at" }),
      error: z.string().optional(),
    }).nullable().openapi({ description: "The node's TURN allocation (--turn), or null" }),
  }).openapi({ description: "How other nodes can reach this one" }),
}).openapi("State");

export const LogVerifySchema = z.object({
  ok: z.boolean(),
  entries: z.number().int(),
  checkpoints: z.number().int(),
  problems: z.array(z.string()),
}).openapi("LogVerify");

export const RefParam = z.object({
  ref: z.string().min(1).max(200).openapi({
    param: { name: "ref", in: "path" },
    description: "Node ID, did, name or unique node ID prefix",
  }),
});

export const IdParam = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/).openapi({ param: { name: "id", in: "path" } }),
});

/** An open session with a peer. */
export const SessionSchema = z.object({
  method: z.enum(["direct", "relayed"]).optional().openapi({ description: "With `via`: how the peer was reached" }),
  elapsedMs: z.number().optional().openapi({ description: "With `via`: milliseconds to a working session" }),
  punchError: z.string().optional().openapi({ description: "With `via`, when relayed: why hole punching failed" }),
  nodeId: z.string(),
  did: z.string(),
  direction: z.enum(["inbound", "outbound"]),
  address: z.string().openapi({ example: "tcp://192.0.2.7:7475" }),
  version: z.number().int(),
  features: z.array(z.string()),
  openedAt: z.number().int(),
  path: z.object({
    kind: z.enum(["direct", "relayed"]),
    transport: z.string().openapi({ example: "udp" }),
    remoteAddr: z.string(),
    via: z.string().optional().openapi({ description: "The relay: a node ID or a TURN server" }),
    rttMs: z.number().nullable(),
  }).openapi({ description: "The path the session runs on" }),
}).openapi("Session");

/** A peer in the address book. */
export const KnownPeerSchema = z.object({
  nodeId: z.string(),
  did: z.string(),
  addresses: z.array(z.string()),
  firstSeen: z.number().int(),
  lastSeen: z.number().int(),
  autoConnect: z.boolean(),
  connected: z.boolean(),
}).openapi("KnownPeer");

/** `GET /v1/peers`. */
export const PeersSchema = z.object({
  policy: z.enum(["any", "tofu", "known"]),
  listening: z.array(z.string()),
  sessions: z.array(SessionSchema),
  known: z.array(KnownPeerSchema),
}).openapi("Peers");

/** `POST /v1/peers`. */
export const ConnectSchema = z.strictObject({
  address: z.string().min(1).max(2048).optional().openapi({
    example: "tcp://192.0.2.7:7475",
    description:
      "The address to dial; leave it out to reach `peer` through `via`, or at the addresses of its peer record in the " +
      "DHT (peer alone)",
  }),
  via: z.string().min(1).max(128).optional().openapi({
    description:
      "A connected node (name, node ID or prefix) that introduces this node to `peer` for hole punching, and relays " +
      "the session when no direct path opens",
  }),
  peer: z.string().min(1).max(128).optional().openapi({
    description: "The node ID or DID expected at the address; the connection is refused if another answers",
  }),
  autoConnect: z.boolean().optional().openapi({
    description: "Dial the peer again after a lost session and at start (default true)",
  }),
}).openapi("Connect");

/** `POST /v1/peers/{id}/messages`: exactly one of `text` and `base64`. */
export const SendMessageSchema = z.union([
  z.strictObject({ text: z.string().max(1_000_000) }),
  z.strictObject({ base64: z.string().max(1_400_000).regex(/^[A-Za-z0-9+/]*={0,2}$/, { message: "Not base64" }) }),
]).openapi("SendMessage");

/** A peer named in a path: DID, node ID, or a unique prefix of either. */
export const PeerParam = z.object({
  id: z.string().min(1).max(128).openapi({ param: { name: "id", in: "path" }, example: "did:key:z6Mk..." }),
});

/** `POST /v1/peers/introduce`. */
export const IntroduceSchema = z.strictObject({
  to: z.string().min(1).max(128).openapi({
    description: "The connected peer the introduction goes to (DID, node ID or a unique prefix)",
  }),
  peer: z.string().min(1).max(128).openapi({
    description: "The peer introduced: a connected or known one (DID, node ID or a unique prefix)",
  }),
}).openapi("Introduce");

/** The answer to `POST /v1/peers/introduce` (NZ-INTRODUCE-01 ANSWER). */
export const IntroductionResultSchema = z.object({
  to: z.string().openapi({ description: "The receiver's node ID" }),
  peer: z.string().openapi({ description: "The introduced node's node ID" }),
  did: z.string().openapi({ description: "The introduced node's DID" }),
  addresses: z.array(z.string()).openapi({ description: "The addresses the introduction gave" }),
  code: z.number().int().openapi({ description: "The ANSWER's status code: below 16 accepted" }),
  status: z.string().openapi({ example: "dialing" }),
  accepted: z.boolean(),
  reason: z.string(),
}).openapi("IntroductionResult");

/** `GET /v1/identity/uri`. */
export const NodeUriSchema = z.object({
  uri: z.string().openapi({
    example: "nz://z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp?addr=udp%3A%2F%2F192.0.2.7%3A7475",
  }),
  did: z.string(),
  nodeId: z.string(),
  addresses: z.array(z.string()).openapi({
    description: "The URI's addresses: public ones first, then listen addresses",
  }),
}).openapi("NodeUri");
