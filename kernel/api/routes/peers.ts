/**
 * `/v1/peers`: sessions with other nodes and the address book. List,
 * connect (`POST`), disconnect (`DELETE /v1/peers/{id}`) and send a message
 * (`POST /v1/peers/{id}/messages`). A peer is named by its DID, its node ID,
 * or a unique prefix of either. Messages received appear on `/v1/events` as
 * `peer.message`.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { base64 } from "@scure/base";
import { utf8 } from "../../bytes.ts";
import { isNzUri } from "../../discovery/nz_uri.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { dialNzUri } from "./introductions.ts";
import { ConnectSchema, ErrorSchema, PeerParam, PeersSchema, SendMessageSchema, SessionSchema } from "../schemas.ts";

const list = createRoute({
  method: "get",
  path: "/v1/peers",
  tags: ["peers"],
  summary: "Open sessions, known peers and the addresses the node listens on",
  security: [{ bearer: [] }],
  responses: { 200: { description: "Peers", ...json(PeersSchema) }, ...AUTH_RESPONSES },
});

const connect = createRoute({
  method: "post",
  path: "/v1/peers",
  tags: ["peers"],
  summary:
    "Dial an address and authenticate the peer there, reach a peer through a rendezvous (via), or find a peer's addresses in the DHT (peer alone)",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(ConnectSchema) } },
  responses: {
    200: { description: "The session", ...json(SessionSchema) },
    400: { description: "Invalid request or address", ...json(ErrorSchema) },
    502: { description: "The peer could not be reached or authenticated", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

const disconnect = createRoute({
  method: "delete",
  path: "/v1/peers/{id}",
  tags: ["peers"],
  summary: "Close the session with a peer and stop redialing it",
  security: [{ bearer: [] }],
  request: { params: PeerParam },
  responses: {
    200: { description: "The peer's node ID", ...json(z.object({ nodeId: z.string() })) },
    404: { description: "No such peer", ...json(ErrorSchema) },
    409: { description: "The name matches several peers", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

const send = createRoute({
  method: "post",
  path: "/v1/peers/{id}/messages",
  tags: ["peers"],
  summary: "Send a message to a connected peer",
  security: [{ bearer: [] }],
  request: { params: PeerParam, body: { required: true, ...json(SendMessageSchema) } },
  responses: {
    200: { description: "Sent", ...json(z.object({ nodeId: z.string(), bytes: z.number().int() })) },
    404: { description: "No session with such a peer", ...json(ErrorSchema) },
    409: { description: "The name matches several peers", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

/** Registers the peer routes. */
export function peerRoutes(app: ApiApp, ctx: ApiContext): void {
  const peers = () => ctx.node.peers;
  app.openapi(list, (c) => {
    const manager = peers();
    const connected = new Set(manager.sessions().map((s) => s.nodeId));
    return c.json({
      policy: manager.policy,
      listening: manager.listening,
      sessions: manager.sessions().map((s) => s.info()),
      known: ctx.node.book.list().map((p) => ({ ...p, connected: connected.has(p.nodeId) })),
    }, 200);
  });
  app.openapi(connect, async (c) => {
    const body = c.req.valid("json");
    if (body.via !== undefined) {
      if (body.address !== undefined || body.peer === undefined) {
        throw new RangeError("Invalid request: with via, give peer (the node to reach) and no address");
      }
      const result = await ctx.node.traversal.connectVia(ctx.node.peerIdOf(body.peer), body.via);
      const { method, elapsedMs, punchError } = result;
      return c.json({ ...result.session.info(), method, elapsedMs, punchError }, 200);
    }
    if (body.address === undefined) {
      // A peer alone: its addresses come from its peer record in the DHT.
      if (body.peer === undefined) throw new RangeError("Invalid request: give address, peer, or peer and via");
      const session = await ctx.node.dht.connect(ctx.node.peerIdOf(body.peer), {
        autoConnect: body.autoConnect ?? true,
      });
      return c.json(session.info(), 200);
    }
    if (isNzUri(body.address)) {
      // nz://KEY?addr=...: its addresses in order, expecting its node (NZ-INTRODUCE-01 "nz:// URIs").
      const session = await dialNzUri(ctx, body.address, { peer: body.peer, autoConnect: body.autoConnect ?? true });
      return c.json(session.info(), 200);
    }
    const session = await peers().connect(body.address, {
      expectedPeer: body.peer === undefined ? undefined : ctx.node.peerIdOf(body.peer),
      autoConnect: body.autoConnect ?? true,
    });
    return c.json(session.info(), 200);
  });
  app.openapi(disconnect, async (c) => {
    const nodeId = await peers().disconnect(c.req.valid("param").id);
    return c.json({ nodeId }, 200);
  });
  app.openapi(send, async (c) => {
    const body = c.req.valid("json");
    const message = "text" in body ? utf8(body.text) : base64.decode(body.base64);
    const session = await peers().send(c.req.valid("param").id, message);
    return c.json({ nodeId: session.nodeId, bytes: message.length }, 200);
  });
}
