/**
 * `/v1/plugins` (NZ-PLUGIN-01 "API"): install, list, enable, disable,
 * reload and uninstall plugins; trust bundle signers; pack a signed bundle;
 * run a plugin's CLI handler; and `/v1/plugins/{name}/http/*`, forwarded to
 * the plugin's HTTP handler (without the `authorization` and `cookie`
 * headers). Without a plugin manager in the context every route answers 404.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { resolve } from "node:path";
import type { TokenInfo } from "../../node/tokens.ts";
import { packBundle } from "../../runtime/plugin_bundle.ts";
import { PluginCallError } from "../../runtime/plugin_host.ts";
import { HOST_CAPABILITIES, PLUGIN_NAME } from "../../runtime/plugin_manifest.ts";
import type { Actor, PluginManager } from "../../runtime/plugins.ts";
import { writeFileAtomic } from "../../storage/master_key.ts";
import { type ApiApp, type ApiContext, AUTH_RESPONSES, json } from "../context.ts";
import { errorResponse } from "../errors.ts";
import { ErrorSchema } from "../schemas.ts";

const GrantSchema = z.object({
  permissions: z.array(z.string()),
  host: z.array(z.enum(HOST_CAPABILITIES)),
});

/** A plugin as the API shows it. */
export const PluginSchema = z.object({
  name: z.string(),
  version: z.string(),
  description: z.string(),
  enabled: z.boolean(),
  watch: z.boolean(),
  status: z.enum(["running", "stopped", "failed"]),
  reason: z.string().optional().openapi({ description: "Why it failed (a limit, a crash, a refused start)" }),
  granted: GrantSchema,
  requested: GrantSchema,
  signer: z.string().nullable().openapi({ description: "The DID that signed its bundle; null for a folder" }),
  source: z.string().nullable().openapi({ description: "The folder it was installed from; null for a bundle" }),
  installedAt: z.number().int(),
  heapUsed: z.number().int().optional(),
}).openapi("Plugin");

const InstallSchema = z.strictObject({
  path: z.string().min(1).max(4096).openapi({ description: "A plugin folder or a .nzp bundle, on the node's host" }),
  grant: z.union([z.literal("all"), z.array(z.string().max(512)).max(128)]).optional().openapi({
    description: 'What to grant of what the manifest requests ("all", or a list); default nothing',
  }),
}).openapi("PluginInstall");

const NameParam = z.object({
  name: z.string().regex(PLUGIN_NAME).openapi({ param: { name: "name", in: "path" }, example: "hello" }),
});

const ERRORS = {
  400: { description: "Invalid request, malformed manifest or bundle, bad signature", ...json(ErrorSchema) },
  ...AUTH_RESPONSES,
  403: {
    description: "Refused by the policy gate, outside the plugin's grant, or an agent-scoped token",
    ...json(ErrorSchema),
  },
  404: { description: "No such plugin", ...json(ErrorSchema) },
  409: { description: "Installed already, or not running", ...json(ErrorSchema) },
  502: { description: "The plugin failed", ...json(ErrorSchema) },
  504: { description: "The plugin did not answer in time", ...json(ErrorSchema) },
} as const;

const list = createRoute({
  method: "get",
  path: "/v1/plugins",
  tags: ["plugins"],
  summary: "Installed plugins with their state, grants and last failure",
  security: [{ bearer: [] }],
  responses: { 200: { description: "Plugins", ...json(z.array(PluginSchema)) }, ...ERRORS },
});

const install = createRoute({
  method: "post",
  path: "/v1/plugins",
  tags: ["plugins"],
  summary: "Install a plugin from a folder or a signed bundle (disabled until enabled)",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(InstallSchema) } },
  responses: { 201: { description: "The installed plugin", ...json(PluginSchema) }, ...ERRORS },
});

function action(verb: "enable" | "disable" | "reload", summary: string) {
  return createRoute({
    method: "post",
    path: `/v1/plugins/{name}/${verb}`,
    tags: ["plugins"],
    summary,
    security: [{ bearer: [] }],
    request: {
      params: NameParam,
      query: z.object({
        watch: z.enum(["true", "false"]).optional().openapi({
          description: "enable only: reload the plugin when its files change",
        }),
      }),
    },
    responses: { 200: { description: "The plugin after the operation", ...json(PluginSchema) }, ...ERRORS },
  });
}

const uninstall = createRoute({
  method: "delete",
  path: "/v1/plugins/{name}",
  tags: ["plugins"],
  summary: "Stop a plugin and delete its files, storage namespace and grants",
  security: [{ bearer: [] }],
  request: { params: NameParam },
  responses: { 200: { description: "Uninstalled", ...json(z.object({ name: z.string() })) }, ...ERRORS },
});

const CliResultSchema = z.object({ stdout: z.string(), stderr: z.string(), code: z.number().int() }).openapi(
  "PluginCliResult",
);

const cli = createRoute({
  method: "post",
  path: "/v1/plugins/{name}/cli",
  tags: ["plugins"],
  summary: "Run the plugin's CLI handler (nzcore plugin NAME ARGS...)",
  security: [{ bearer: [] }],
  request: {
    params: NameParam,
    body: { required: true, ...json(z.strictObject({ args: z.array(z.string().max(4096)).max(256) })) },
  },
  responses: { 200: { description: "What the plugin printed", ...json(CliResultSchema) }, ...ERRORS },
});

const TrustSchema = z.strictObject({ did: z.string().min(1).max(256).openapi({ example: "did:key:z6Mk..." }) });

const trustList = createRoute({
  method: "get",
  path: "/v1/plugins/trust",
  tags: ["plugins"],
  summary: "The DIDs whose bundles install: the node's identities and those the owner trusts",
  security: [{ bearer: [] }],
  responses: {
    200: {
      description: "Trusted signers",
      ...json(z.object({ identities: z.array(z.string()), trusted: z.array(z.string()) })),
    },
    ...AUTH_RESPONSES,
  },
});

const trust = createRoute({
  method: "post",
  path: "/v1/plugins/trust",
  tags: ["plugins"],
  summary: "Trust bundles signed by a DID",
  security: [{ bearer: [] }],
  request: { body: { required: true, ...json(TrustSchema) } },
  responses: { 200: { description: "Trusted", ...json(z.object({ did: z.string() })) }, ...ERRORS },
});

const pack = createRoute({
  method: "post",
  path: "/v1/plugins/pack",
  tags: ["plugins"],
  summary: "Pack a plugin folder into a bundle signed by the node's active identity",
  security: [{ bearer: [] }],
  request: {
    body: {
      required: true,
      ...json(z.strictObject({ dir: z.string().min(1).max(4096), out: z.string().min(1).max(4096) })),
    },
  },
  responses: {
    200: {
      description: "The bundle written",
      ...json(z.object({ path: z.string(), bytes: z.number().int(), signer: z.string() })),
    },
    ...ERRORS,
  },
});

/** The actor of a request: an admin-scoped token is the owner. */
function actorOf(c: Context): Actor {
  const token = c.get("token" as never) as TokenInfo | undefined;
  return {
    principal: { type: "token", id: token?.id ?? "unknown" },
    owner: token?.scope === "admin",
    source: "api",
  };
}

/** Maps a plugin's error to a response; rethrows what the app's `onError` handles. */
function pluginError(c: Context, error: unknown): Response {
  if (error instanceof PluginCallError) {
    switch (error.code) {
      case "denied":
        return errorResponse(c, 403, "plugin_denied", error.message);
      case "not_capable":
        return errorResponse(c, 403, "not_capable", error.message);
      case "timeout":
        return errorResponse(c, 504, "plugin_timeout", error.message);
      case "stopped":
        return errorResponse(c, 409, "plugin_stopped", error.message);
      case "unsupported":
        return errorResponse(c, 501, "plugin_unsupported", error.message);
      default:
        return errorResponse(c, 502, "plugin_failed", error.message);
    }
  }
  if (error instanceof Deno.errors.NotFound) return errorResponse(c, 400, "invalid_request", error.message);
  throw error;
}

const DROPPED_HEADERS = new Set(["authorization", "cookie", "proxy-authorization"]);

/** Registers the plugin routes. */
export function pluginRoutes(app: ApiApp, ctx: ApiContext): void {
  const manager = (c: Context): PluginManager | Response =>
    ctx.plugins ?? errorResponse(c, 404, "not_found", "This node runs no plugin manager");
  const guarded = async (c: Context, run: (m: PluginManager) => Promise<Response>): Promise<Response> => {
    const m = manager(c);
    if (m instanceof Response) return m;
    try {
      return await run(m);
    } catch (error) {
      return pluginError(c, error);
    }
  };

  app.openapi(list, (c) => guarded(c, (m) => Promise.resolve(c.json(m.list(), 200))) as never);
  app.openapi(trustList, (c) =>
    guarded(c, async (m) =>
      c.json({
        identities: ctx.node.identities.list().map((i) => i.did),
        trusted: await m.trustedByOwner(),
      }, 200)) as never);
  app.openapi(trust, (c) =>
    guarded(c, async (m) => {
      const { did } = c.req.valid("json");
      await m.trust(did);
      return c.json({ did }, 200);
    }) as never);
  app.openapi(pack, (c) =>
    guarded(c, async () => {
      const { dir, out } = c.req.valid("json");
      const bytes = await packBundle(resolve(dir), ctx.node.identity);
      const path = resolve(out);
      await writeFileAtomic(path, bytes, 0o600);
      return c.json({ path, bytes: bytes.length, signer: ctx.node.identity.did }, 200);
    }) as never);
  app.openapi(install, (c) =>
    guarded(c, async (m) => {
      const body = c.req.valid("json");
      return c.json(await m.install(body.path, { grant: body.grant, actor: actorOf(c) }), 201);
    }) as never);
  for (const verb of ["enable", "disable", "reload"] as const) {
    const route = action(
      verb,
      {
        enable: "Enable a plugin and start it (watch: reload on file change)",
        disable: "Stop a plugin and keep it stopped",
        reload: "Hot reload: stop, read the files again, start",
      }[verb],
    );
    app.openapi(route, (c) =>
      guarded(c, async (m) => {
        const { name } = c.req.valid("param");
        if (verb === "enable") {
          const { watch } = c.req.valid("query");
          return c.json(await m.enable(name, { watch: watch === undefined ? undefined : watch === "true" }), 200);
        }
        return c.json(await m[verb](name), 200);
      }) as never);
  }
  app.openapi(uninstall, (c) =>
    guarded(c, async (m) => {
      const { name } = c.req.valid("param");
      await m.uninstall(name, { actor: actorOf(c) });
      return c.json({ name }, 200);
    }) as never);
  app.openapi(cli, (c) =>
    guarded(c, async (m) => {
      const { name } = c.req.valid("param");
      const { args } = c.req.valid("json");
      return c.json(await m.cli(name, args), 200);
    }) as never);
  app.all("/v1/plugins/:name/http/*", (c) =>
    guarded(c, async (m) => {
      const name = c.req.param("name");
      const prefix = `/v1/plugins/${name}/http`;
      const url = new URL(c.req.url);
      const headers: Record<string, string> = {};
      c.req.raw.headers.forEach((value, key) => {
        if (!DROPPED_HEADERS.has(key)) headers[key] = value;
      });
      const body = c.req.method === "GET" || c.req.method === "HEAD"
        ? new Uint8Array()
        : new Uint8Array(await c.req.arrayBuffer());
      const out = await m.http(name, {
        method: c.req.method,
        path: url.pathname.slice(prefix.length) || "/",
        query: Object.fromEntries(url.searchParams),
        headers,
        body,
      });
      return new Response(out.body as Uint8Array<ArrayBuffer>, { status: out.status, headers: out.headers });
    }));
}
