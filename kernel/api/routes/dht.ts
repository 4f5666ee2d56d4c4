/**
 * `/v1/dht`: the node's part in the DHT (NZ-DHT-01). The state and routing
 * table; node lookups; peer records; values the node publishes under its own
 * key (mutable records) and reads of anyone's; services announced with
 * capability tags, and found by tag.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { base64 } from "@scure/base";
import { fromHex, textOrUndefined, toHex, utf8 } from "../../bytes.ts";
import { encodeDidKey } from "../../identity/did.ts";
import { formatUdpAddr } from "../../../transport/udp.ts";
import { NotFoundError } from "../../errors.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { ErrorSchema } from "../schemas.ts";

const TAG = /^[a-z0-9._:/-]{1,64}$/;

const DhtStateSchema = z.object({
  enabled: z.boolean(),
  readOnly: z.boolean(),
  id: z.string().nullable().openapi({ description: "The node's DHT ID (its node ID), when the DHT runs" }),
  bootstrap: z.array(z.string()),
  contacts: z.number().int().openapi({ description: "Contacts in the routing table" }),
  peerRecord: z.object({ addresses: z.array(z.string()), expires: z.number().int() }).nullable(),
  published: z.object({ values: z.array(z.string()), services: z.array(z.string()) }),
  stats: z.record(z.string(), z.unknown()).nullable(),
}).openapi("DhtState");

const ContactSchema = z.object({ nodeId: z.string(), address: z.string() });

const LookupSchema = z.object({
  target: z.string(),
  found: z.boolean().openapi({ description: "Whether the node with the target ID itself answered" }),
  hops: z.number().int(),
  queried: z.number().int(),
  failed: z.number().int(),
  durationMs: z.number(),
  closest: z.array(ContactSchema),
}).openapi("DhtLookup");

const PutSchema = z.object({
  keys: z.array(z.string()).openapi({ description: "The DHT keys written (hex)" }),
  seq: z.number().int().optional(),
  stored: z.number().int().openapi({ description: "STOREs acknowledged by other nodes" }),
  failed: z.number().int(),
}).openapi("DhtPut");

const ValueSchema = z.object({
  did: z.string(),
  name: z.string(),
  seq: z.number().int(),
  expires: z.number().int(),
  text: z.string().optional().openapi({ description: "The value, when it is UTF-8" }),
  base64: z.string(),
}).openapi("DhtValue");

const ServiceFoundSchema = z.object({
  nodeId: z.string(),
  did: z.string(),
  name: z.string(),
  tags: z.array(z.string()),
  protocol: z.string(),
  expires: z.number().int(),
}).openapi("DhtService");

const ttl = z.number().int().min(60).max(86_400).optional().openapi({
  description: "Lifetime of each signed copy in seconds (default 3600); the node re-signs it while it publishes",
});

const PutValueSchema = z.union([
  z.strictObject({ text: z.string().max(900), ttlSeconds: ttl }),
  z.strictObject({ base64: z.string().max(1200), ttlSeconds: ttl }),
]).openapi("DhtPutValue");

const AnnounceSchema = z.strictObject({
  name: z.string().min(1).max(64),
  tags: z.array(z.string().regex(TAG, { message: "Use 1 to 64 characters of a-z 0-9 . _ : / -" })).min(1).max(8),
  protocol: z.string().max(255).optional().openapi({ description: "The stream protocol a client opens to use it" }),
  ttlSeconds: ttl,
}).openapi("DhtAnnounce");

const NameParam = z.object({ name: z.string().openapi({ param: { name: "name", in: "path" }, example: "status" }) });
const dhtRoute = <R extends Parameters<typeof createRoute>[0]>(r: R) =>
  createRoute({ ...r, tags: ["dht"], security: [{ bearer: [] }] });
const NOT_RUNNING = { 409: { description: "The DHT does not run (--no-dht)", ...json(ErrorSchema) } };
const BAD = { 400: { description: "Invalid request", ...json(ErrorSchema) } };

const state = dhtRoute({
  method: "get",
  path: "/v1/dht",
  summary: "The DHT's state: ID, routing table size, own peer record, what the node publishes, counters",
  responses: { 200: { description: "State", ...json(DhtStateSchema) }, ...AUTH_RESPONSES },
});

const findNode = dhtRoute({
  method: "post",
  path: "/v1/dht/find-node",
  summary: "Look up the nodes closest to an ID (a node ID or DID)",
  request: { body: { required: true, ...json(z.strictObject({ target: z.string() }).openapi("DhtFindNode")) } },
  responses: {
    200: { description: "The lookup", ...json(LookupSchema) },
    ...BAD,
    ...NOT_RUNNING,
    ...AUTH_RESPONSES,
  },
});

const findPeer = dhtRoute({
  method: "get",
  path: "/v1/dht/peers/{id}",
  summary: "The newest peer record of a node (its addresses) in the DHT",
  request: { params: z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) }) },
  responses: {
    200: {
      description: "The peer record",
      ...json(z.object({ nodeId: z.string(), did: z.string(), addresses: z.array(z.string()), expires: z.number() })),
    },
    404: { description: "No peer record found", ...json(ErrorSchema) },
    ...BAD,
    ...NOT_RUNNING,
    ...AUTH_RESPONSES,
  },
});

const putValue = dhtRoute({
  method: "put",
  path: "/v1/dht/values/{name}",
  summary: "Publish a value under the node's key and a name (a signed mutable record; newer wins)",
  request: { params: NameParam, body: { required: true, ...json(PutValueSchema) } },
  responses: { 200: { description: "Published", ...json(PutSchema) }, ...BAD, ...NOT_RUNNING, ...AUTH_RESPONSES },
});

const removeValue = dhtRoute({
  method: "delete",
  path: "/v1/dht/values/{name}",
  summary: "Stop publishing a value (copies expire)",
  request: { params: NameParam },
  responses: {
    200: { description: "No longer published", ...json(z.object({ name: z.string() })) },
    404: { description: "The node publishes no such value", ...json(ErrorSchema) },
    ...NOT_RUNNING,
    ...AUTH_RESPONSES,
  },
});

const getValue = dhtRoute({
  method: "get",
  path: "/v1/dht/values/{did}/{name}",
  summary: "Read the newest value a node (its DID) published under a name",
  request: {
    params: z.object({
      did: z.string().openapi({ param: { name: "did", in: "path" } }),
      name: z.string().openapi({ param: { name: "name", in: "path" } }),
    }),
  },
  responses: {
    200: { description: "The value", ...json(ValueSchema) },
    404: { description: "Not found", ...json(ErrorSchema) },
    ...BAD,
    ...NOT_RUNNING,
    ...AUTH_RESPONSES,
  },
});

const announce = dhtRoute({
  method: "post",
  path: "/v1/dht/services",
  summary: "Announce a service with capability tags (kept announced, also after a restart)",
  request: { body: { required: true, ...json(AnnounceSchema) } },
  responses: { 200: { description: "Announced", ...json(PutSchema) }, ...BAD, ...NOT_RUNNING, ...AUTH_RESPONSES },
});

const withdraw = dhtRoute({
  method: "delete",
  path: "/v1/dht/services/{name}",
  summary: "Stop announcing a service",
  request: { params: NameParam },
  responses: {
    200: { description: "No longer announced", ...json(z.object({ name: z.string() })) },
    404: { description: "The node announces no such service", ...json(ErrorSchema) },
    ...NOT_RUNNING,
    ...AUTH_RESPONSES,
  },
});

const findServices = dhtRoute({
  method: "get",
  path: "/v1/dht/services",
  summary: "Find services by capability tag",
  request: {
    query: z.object({
      tag: z.string().regex(TAG, { message: "Use 1 to 64 characters of a-z 0-9 . _ : / -" }).openapi({
        param: { name: "tag", in: "query" },
        example: "camera",
      }),
    }),
  },
  responses: {
    200: { description: "Services, newest first", ...json(z.array(ServiceFoundSchema)) },
    ...BAD,
    ...NOT_RUNNING,
    ...AUTH_RESPONSES,
  },
});

/** Registers the `/v1/dht` routes. */
export function dhtRoutes(app: ApiApp, ctx: ApiContext): void {
  const dht = () => ctx.node.dht;
  app.openapi(state, (c) => c.json(dht().state(), 200));
  app.openapi(findNode, async (c) => {
    const target = ctx.node.peerIdOf(c.req.valid("json").target);
    const result = await dht().findNode(fromHex(target), c.req.raw.signal);
    return c.json({
      target,
      found: result.found,
      hops: result.hops,
      queried: result.queried,
      failed: result.failed,
      durationMs: result.durationMs,
      closest: result.closest.map((contact) => ({
        nodeId: toHex(contact.id),
        address: formatUdpAddr(contact.addr),
      })),
    }, 200);
  });
  app.openapi(findPeer, async (c) => {
    const nodeId = ctx.node.peerIdOf(c.req.valid("param").id);
    const found = await dht().findPeer(nodeId);
    if (!found) throw new NotFoundError(`The DHT holds no peer record of ${nodeId}`);
    return c.json({
      nodeId,
      did: encodeDidKey(found.record.publicKey),
      addresses: found.addresses,
      expires: found.record.expires,
    }, 200);
  });
  app.openapi(putValue, async (c) => {
    const body = c.req.valid("json");
    const value = "text" in body ? utf8(body.text) : base64.decode(body.base64);
    const name = c.req.valid("param").name;
    const { key, seq, result } = await dht().putValue(name, value, (body.ttlSeconds ?? 3600) * 1000);
    return c.json({ keys: [key], seq, stored: result.stored, failed: result.failed }, 200);
  });
  app.openapi(removeValue, async (c) => {
    const { name } = c.req.valid("param");
    await dht().removeValue(name);
    return c.json({ name }, 200);
  });
  app.openapi(getValue, async (c) => {
    const { did, name } = c.req.valid("param");
    const found = await dht().getValue(did, name);
    if (!found) throw new NotFoundError(`No value "${name}" of ${did} in the DHT`);
    const text = textOrUndefined(found.value);
    const { value, ...rest } = found;
    return c.json({ ...rest, ...(text === undefined ? {} : { text }), base64: base64.encode(value) }, 200);
  });
  app.openapi(announce, async (c) => {
    const body = c.req.valid("json");
    const { keys, result } = await dht().announce(
      { name: body.name, tags: body.tags, protocol: body.protocol ?? "" },
      (body.ttlSeconds ?? 3600) * 1000,
    );
    return c.json({ keys, stored: result.stored, failed: result.failed }, 200);
  });
  app.openapi(withdraw, async (c) => {
    const { name } = c.req.valid("param");
    await dht().withdraw(name);
    return c.json({ name }, 200);
  });
  app.openapi(findServices, async (c) => {
    return c.json(await dht().findServices(c.req.valid("query").tag), 200);
  });
}
