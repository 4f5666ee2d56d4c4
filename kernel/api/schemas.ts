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

export const TokenSchema = z.object({
  id: z.string(),
  name: z.string(),
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
}).openapi("CreateToken");

export const StateSchema = z.object({
  version: z.string(),
  pid: z.number().int(),
  startedAt: z.number().int(),
  uptimeMs: z.number().int(),
  identity: IdentitySchema,
  identities: z.number().int(),
  api: z.object({ tcp: z.string().nullable(), socket: z.string().nullable() }),
  permissions: z.record(z.string(), z.string()),
  storage: z.object({
    path: z.string(),
    bytes: z.number().int(),
    keyMode: z.enum(["passphrase", "keyfile"]),
    logEntries: z.number().int(),
  }),
  memory: z.object({ rss: z.number().int(), heapUsed: z.number().int() }),
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
