/**
 * Peer introductions and `nz://` URIs on the API:
 *
 * - `POST /v1/peers/introduce` `{to, peer}`: introduces a known peer to a
 *   connected one (NZ-INTRODUCE-01): the node signs an introduction of `peer`
 *   with the addresses it knows for it and returns `to`'s answer.
 * - `GET /v1/identity/uri`: the node's `nz://` URI (its DID and the addresses
 *   other nodes may reach it at), for `nzcore identity uri|qr`.
 * - {@linkcode dialNzUri}: `POST /v1/peers` with an `nz://` URI as `address`
 *   dials its addresses in order, expecting the URI's node.
 *
 * @module
 */

import { createRoute } from "@hono/zod-openapi";
import { ConflictError } from "../../errors.ts";
import { DialError } from "../../../transport/errors.ts";
import { decodeDidKey } from "../../identity/did.ts";
import { resolvePeerName } from "../../peers/address_book.ts";
import type { Session } from "../../peers/manager.ts";
import { introduce } from "../../discovery/introduction.ts";
import { formatNzUri, MAX_NZ_URI_ADDRESSES, parseNzUri } from "../../discovery/nz_uri.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { errorResponse } from "../errors.ts";
import { ErrorSchema, IntroduceSchema, IntroductionResultSchema, NodeUriSchema } from "../schemas.ts";

const introduceRoute = createRoute({
  method: "post",
  path: "/v1/peers/introduce",
  tags: ["peers"],
  summary:
    "Introduce a known peer to a connected one: a signed introduction it may follow by dialing (NZ-INTRODUCE-01)",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(IntroduceSchema) } },
  responses: {
    200: {
      description: "The receiver's answer (accepted or refused, with its reason)",
      ...json(IntroductionResultSchema),
    },
    400: { description: "Invalid request", ...json(ErrorSchema) },
    404: { description: "No session with `to`, or `peer` is not known", ...json(ErrorSchema) },
    409: { description: "A name matches several peers, or no address is known for `peer`", ...json(ErrorSchema) },
    502: { description: "The receiver does not serve introductions, or answered nonsense", ...json(ErrorSchema) },
    ...AUTH_RESPONSES,
  },
});

const uriRoute = createRoute({
  method: "get",
  path: "/v1/identity/uri",
  tags: ["identities"],
  summary: "The node's nz:// URI: its DID and the addresses other nodes may reach it at",
  security: [{ bearer: [] }],
  responses: { 200: { description: "The URI", ...json(NodeUriSchema) }, ...AUTH_RESPONSES },
});

/** Registers the introduction and URI routes. */
export function introductionRoutes(app: ApiApp, ctx: ApiContext): void {
  app.openapi(introduceRoute, async (c) => {
    const body = c.req.valid("json");
    const session = ctx.node.peers.session(body.to);
    const peer = introducedPeer(ctx, body.peer);
    if (peer.nodeId === session.nodeId) {
      throw new RangeError("Invalid request: to and peer name the same node; a node is not introduced to itself");
    }
    if (peer.addresses.length === 0) {
      throw new ConflictError(
        `No address is known for ${peer.did}: this node never dialed it, nor saw where it listens`,
      );
    }
    let answer;
    try {
      answer = await introduce(session, ctx.node.identity, peer);
    } catch (error) {
      if (error instanceof SyntaxError) return errorResponse(c, 502, "bad_answer", error.message);
      throw error;
    }
    return c.json({ to: session.nodeId, peer: peer.nodeId, did: peer.did, addresses: peer.addresses, ...answer }, 200);
  });
  app.openapi(uriRoute, (c) => {
    const identity = ctx.node.identity;
    // Public addresses first, then listen addresses with wildcards resolved (the addresses of its peer record).
    const addresses = ctx.node.dht.ownAddresses().slice(0, MAX_NZ_URI_ADDRESSES);
    const uri = formatNzUri({ did: identity.did, addresses });
    return c.json({ uri, did: identity.did, nodeId: identity.nodeId, addresses }, 200);
  });
}

/**
 * The peer named `name` (a session or an address book entry) with the addresses the node knows for it, at most 8:
 * those it dialed it at (newest first), then where its direct session runs when this node dialed it or it runs over
 * UDP (a node's UDP sessions use its one UDP socket, the one it listens on).
 */
function introducedPeer(ctx: ApiContext, name: string) {
  const sessions = ctx.node.peers.sessions();
  const { nodeId, did } = resolvePeerName(name, [...sessions, ...ctx.node.book.list()]);
  const addresses = [...(ctx.node.book.get(nodeId)?.addresses ?? [])];
  const session: Session | undefined = sessions.find((s) => s.nodeId === nodeId);
  if (session && !session.relayed) {
    const path = session.path();
    if (session.direction === "outbound") addresses.push(session.address);
    else if (path.transport === "udp") addresses.push(path.remoteAddr);
  }
  return { nodeId, did, publicKey: decodeDidKey(did), addresses: [...new Set(addresses)].slice(0, 8) };
}

/**
 * Dials the node of an `nz://` URI: each of its addresses in order, with the URI's node ID as the expected peer; the
 * first session wins.
 *
 * @param ctx The API's context.
 * @param uri The URI.
 * @param options `peer` (a node ID or DID the URI must name) and `autoConnect`.
 * @returns The session.
 * @throws {SyntaxError} for a malformed URI; {RangeError} when `peer` names another node or the URI has no address;
 *   the error of its one address, or a {DialError} naming every address and why it failed.
 */
export async function dialNzUri(
  ctx: ApiContext,
  uri: string,
  options: { peer?: string; autoConnect?: boolean } = {},
): Promise<Session> {
  const target = parseNzUri(uri);
  if (options.peer !== undefined && ctx.node.peerIdOf(options.peer) !== target.nodeId) {
    throw new RangeError(`Invalid request: peer ${options.peer} is not the node of the nz:// URI (${target.did})`);
  }
  if (target.addresses.length === 0) {
    throw new RangeError("Invalid address: the nz:// URI holds no addr to dial");
  }
  const failures: { address: string; error: Error }[] = [];
  for (const address of target.addresses) {
    try {
      return await ctx.node.peers.connect(address, { expectedPeer: target.nodeId, autoConnect: options.autoConnect });
    } catch (error) {
      failures.push({ address, error: error as Error });
    }
  }
  // One address: its own error (and status); several: every reason, as the node being unreachable.
  if (failures.length === 1) throw failures[0].error;
  const reasons = failures.map((f) => `${f.address}: ${f.error.message}`).join("; ");
  throw new DialError(`Cannot reach ${target.did} at any of its ${failures.length} addresses: ${reasons}`);
}
