/**
 * `GET /v1/lan`: the nodes found on the local network by mDNS / DNS-SD
 * (NZ-LAN-01), with the mode in force and the discovery's counters.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import { LAN_MODES } from "../../discovery/lan.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";

/** A node found on the LAN. */
export const LanPeerSchema = z.object({
  nodeId: z.string(),
  did: z.string(),
  instance: z.string().openapi({ description: "The DNS-SD instance name", example: "nzcore-0a1b2c3d4e5f" }),
  addresses: z.array(z.string()).openapi({ description: "Addresses to dial it at, best first" }),
  known: z.boolean().openapi({ description: "Whether it is in the address book" }),
  firstSeen: z.number().int(),
  lastSeen: z.number().int(),
  dial: z.enum(["none", "dialing", "connected", "failed"]),
  error: z.string().optional(),
}).openapi("LanPeer");

/** LAN discovery: on or off, its mode, and the nodes found. */
export const LanSchema = z.object({
  enabled: z.boolean(),
  mode: z.enum(LAN_MODES as [string, ...string[]]).nullable(),
  instance: z.string().nullable().openapi({ description: "The node's own DNS-SD instance, if it announces one" }),
  peers: z.array(LanPeerSchema),
  stats: z.object({
    invalid: z.number().int().openapi({ description: "Instances with a malformed NZ-LAN-01 TXT, ignored" }),
    dials: z.number().int(),
    dialFailures: z.number().int(),
    received: z.number().int().openapi({ description: "mDNS packets received" }),
    malformed: z.number().int(),
    oversized: z.number().int(),
    sendErrors: z.number().int().openapi({ description: "mDNS sends that failed (no route to the group, say)" }),
  }).nullable(),
}).openapi("Lan");

const list = createRoute({
  method: "get",
  path: "/v1/lan",
  tags: ["peers"],
  summary: "Nodes found on the local network (mDNS / DNS-SD)",
  security: [{ bearer: [] }],
  responses: { 200: { description: "LAN discovery", ...json(LanSchema) }, ...AUTH_RESPONSES },
});

/** Registers the LAN route. */
export function lanRoutes(app: ApiApp, ctx: ApiContext): void {
  app.openapi(list, (c) => {
    const lan = ctx.lan?.() ?? null;
    const mdns = lan?.mdnsStats ?? null;
    return c.json({
      enabled: lan !== null,
      mode: lan?.mode ?? null,
      instance: lan?.instance ?? null,
      peers: lan?.list() ?? [],
      stats: lan
        ? {
          invalid: lan.stats.invalid,
          dials: lan.stats.dials,
          dialFailures: lan.stats.dialFailures,
          received: mdns?.received ?? 0,
          malformed: mdns?.malformed ?? 0,
          oversized: mdns?.oversized ?? 0,
          sendErrors: mdns?.sendErrors ?? 0,
        }
        : null,
    }, 200);
  });
}
