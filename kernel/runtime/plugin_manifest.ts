/**
 * The plugin manifest `plugin.json` (NZ-PLUGIN-01 "Manifest"): what a plugin
 * is (name, version, description, entry), which Deno permissions it asks for
 * and which parts of the host API it uses. {@linkcode parsePluginManifest}
 * validates one strictly: unknown fields are refused and every message names
 * the field at fault.
 *
 * @example Parse a manifest
 * ```ts
 * import { parsePluginManifest } from "./plugin_manifest.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const m = parsePluginManifest({
 *   name: "hello", version: "1.0.0", entry: "main.ts",
 *   permissions: ["net:127.0.0.1:8080", "read:cache"], host: ["storage", "http"],
 * });
 * deepEqual(m.host, ["storage", "http"]);
 * ```
 *
 * @module
 */

import { z } from "zod";

/** The parts of the host API a plugin may use (NZ-PLUGIN-01 "Host capabilities"). */
export const HOST_CAPABILITIES = ["storage", "peers", "events", "http", "cli"] as const;
/** One host capability. */
export type HostCapability = typeof HOST_CAPABILITIES[number];

/** The Deno permission kinds a plugin may ask for; `run`, `ffi` and `import` never. */
export const PLUGIN_PERMISSION_KINDS = ["net", "read", "write", "env", "sys"] as const;

/** The `sys:` names Deno knows (`Deno.SysPermissionDescriptor["kind"]`). */
export const SYS_NAMES = [
  "hostname",
  "osRelease",
  "osUptime",
  "loadavg",
  "networkInterfaces",
  "systemMemoryInfo",
  "uid",
  "gid",
  "cpus",
  "homedir",
  "statfs",
  "getPriority",
  "setPriority",
] as const;

const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** A plugin name: 1 to 63 of `a-z 0-9 -`, starting with a letter (it names a folder, a URL segment and a namespace). */
export const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,62}$/;

// A file inside the plugin: relative, `/`-separated, no empty, `.` or `..` segment, portable characters.
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})(?::(?:[1-9]\d{0,4}))?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/**
 * Whether `path` is a safe relative path inside a plugin: `/`-separated
 * segments of `A-Z a-z 0-9 . _ -`, none empty, `.` or `..`, at most 1024
 * characters.
 */
export function isPluginPath(path: string): boolean {
  if (typeof path !== "string" || path.length === 0 || path.length > 1024) return false;
  return path.split("/").every((s) => SEGMENT.test(s) && s !== "." && s !== "..");
}

/**
 * Why `permission` is not a valid plugin permission, or `undefined` when it
 * is: `net`, `net:HOST[:PORT]`, `read:PATH`, `write:PATH` (PATH relative, in
 * the plugin's data folder; `.` for all of it), `env:NAME`, `sys:NAME`.
 */
export function permissionProblem(permission: string): string | undefined {
  if (permission === "net") return undefined;
  const colon = permission.indexOf(":");
  const kind = colon < 0 ? permission : permission.slice(0, colon);
  const value = colon < 0 ? "" : permission.slice(colon + 1);
  switch (kind) {
    case "net":
      return HOST.test(value) ? undefined : `"${permission}": expected net or net:HOST[:PORT]`;
    case "read":
    case "write":
      return value === "." || isPluginPath(value)
        ? undefined
        : `"${permission}": expected ${kind}:PATH, PATH relative to the plugin's data folder ("." for all of it), ` +
          `without ".." or an absolute path`;
    case "env":
      return ENV_NAME.test(value) ? undefined : `"${permission}": expected env:NAME`;
    case "sys":
      return (SYS_NAMES as readonly string[]).includes(value)
        ? undefined
        : `"${permission}": expected sys:NAME, NAME one of ${SYS_NAMES.join(", ")}`;
    default:
      return `"${permission}": unknown permission; expected one of ${PLUGIN_PERMISSION_KINDS.join(", ")} ` +
        `(run, ffi and import are never granted)`;
  }
}

const permission = z.string().max(512).superRefine((value, ctx) => {
  const problem = permissionProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

const LimitsSchema = z.strictObject({
  callTimeoutMs: z.number().int().min(10).max(60_000).default(5_000),
  maxHeapMb: z.number().int().min(16).max(1024).default(128),
});

const PluginManifestSchema = z.strictObject({
  name: z.string().regex(PLUGIN_NAME, {
    message: 'Use 1 to 63 lowercase letters, digits or "-", starting with a letter',
  }),
  version: z.string().regex(SEMVER, { message: "Expected a semantic version such as 1.2.3" }),
  description: z.string().max(1024).default(""),
  entry: z.string().refine(isPluginPath, {
    message: "Expected a relative path to a module inside the plugin, such as main.ts",
  }),
  permissions: z.array(permission).max(64).default([]),
  host: z.array(z.enum(HOST_CAPABILITIES)).max(HOST_CAPABILITIES.length).default([]),
  limits: LimitsSchema.default({ callTimeoutMs: 5_000, maxHeapMb: 128 }),
}).refine((m) => new Set(m.host).size === m.host.length, { message: "Duplicate host capability", path: ["host"] });

/** Limits a plugin runs within (NZ-PLUGIN-01 "Limits"). */
export interface PluginLimits {
  /** A call in either direction that takes longer fails (default 5 s); also the health ping's deadline. */
  callTimeoutMs: number;
  /** The Worker's V8 heap, in MiB, past which the plugin is stopped (default 128). */
  maxHeapMb: number;
}

/** A validated `plugin.json`, defaults filled in. */
export interface PluginManifest {
  /** The plugin's name. */
  name: string;
  /** Semantic version. */
  version: string;
  /** One line for people. */
  description: string;
  /** The module the Worker runs, relative to the plugin's folder. */
  entry: string;
  /** Deno permissions requested. */
  permissions: string[];
  /** Host API capabilities requested. */
  host: HostCapability[];
  /** Its limits. */
  limits: PluginLimits;
}

// The schema's output must stay assignable to the declared interface.
const _sameShape = (m: z.output<typeof PluginManifestSchema>): PluginManifest => m;

/** Largest `plugin.json`, in bytes. */
export const MAX_MANIFEST_BYTES = 64 * 1024;

/**
 * Validates a plugin manifest and fills in its defaults.
 *
 * @param value The parsed JSON to validate.
 * @param source Where it came from, for the message.
 * @returns The manifest.
 * @throws {SyntaxError} naming every field at fault, e.g.
 *   `Invalid plugin manifest "x/plugin.json": permissions.0: "run": unknown permission; ...`.
 */
export function parsePluginManifest(value: unknown, source?: string): PluginManifest {
  const result = PluginManifestSchema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ` : "") + i.message);
  throw new SyntaxError(`Invalid plugin manifest${source ? ` "${source}"` : ""}: ${issues.join("; ")}`);
}

/**
 * Parses the bytes of a `plugin.json`.
 *
 * @throws {SyntaxError} when it is too large, not JSON or not a valid manifest.
 */
export function decodePluginManifest(bytes: Uint8Array, source?: string): PluginManifest {
  const where = source ? ` "${source}"` : "";
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new SyntaxError(
      `Invalid plugin manifest${where}: ${bytes.length} bytes, expected at most ${MAX_MANIFEST_BYTES}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new SyntaxError(`Invalid plugin manifest${where}: not JSON (${(error as Error).message})`);
  }
  return parsePluginManifest(value, source);
}

/** Whether `capability` is a host capability rather than a Deno permission. */
export function isHostCapability(capability: string): capability is HostCapability {
  return (HOST_CAPABILITIES as readonly string[]).includes(capability);
}

/**
 * What the owner's `grant` leaves of what `manifest` requests: the requested
 * permissions and host capabilities that the grant names (`"all"` grants all
 * of them).
 *
 * @throws {RangeError} naming a granted item the manifest does not request.
 */
export function grantedOf(
  manifest: PluginManifest,
  grant: readonly string[] | "all",
): { permissions: string[]; host: HostCapability[] } {
  if (grant === "all") return { permissions: [...manifest.permissions], host: [...manifest.host] };
  for (const item of grant) {
    if (!manifest.permissions.includes(item) && !(manifest.host as string[]).includes(item)) {
      throw new RangeError(
        `Cannot grant "${item}" to plugin "${manifest.name}": its manifest does not request it ` +
          `(it requests ${[...manifest.permissions, ...manifest.host].join(", ") || "nothing"})`,
      );
    }
  }
  return {
    permissions: manifest.permissions.filter((p) => grant.includes(p)),
    host: manifest.host.filter((h) => grant.includes(h)),
  };
}
