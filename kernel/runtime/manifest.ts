/**
 * The service manifest: what a service is (name, version, entry), what it
 * needs (dependencies, capabilities), how its health is checked and how it
 * is restarted. {@linkcode parseManifest} validates one strictly: unknown
 * fields are refused and every message names the field at fault.
 *
 * An `entry` of `builtin:ID` names a service implemented inside the node
 * (the API, the transports, the checkpoint timer); any other entry is a Deno
 * module run in a Worker with only the manifest's capabilities
 * (`worker_service.ts`).
 *
 * @example Parse a manifest
 * ```ts
 * import { parseManifest } from "./manifest.ts";
 * import { equal } from "node:assert/strict";
 *
 * const m = parseManifest({ name: "echo", version: "1.0.0", entry: "./echo.ts" });
 * equal(m.restart.policy, "on-failure");
 * equal(m.health, undefined);
 * ```
 *
 * @module
 */

import { z } from "zod";

/** The prefix of an `entry` naming a service built into the node. */
export const BUILTIN_PREFIX = "builtin:";

// semver.org's recommended expression (2.0.0), anchored.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

const NAME = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * The capabilities a service may request: a Deno permission the node's
 * profile grants (`read`, `write`, `net`, `env`, `sys`), alone (all of it) or
 * narrowed after a colon (`net:127.0.0.1:8080`, `read:/srv/data`,
 * `env:NZCORE_FOO`, `sys:uid`). `run`, `ffi` and `import` are never granted:
 * the node's profile holds none of them.
 */
export const CAPABILITY_KINDS = ["read", "write", "net", "env", "sys"] as const;

/** One kind of capability. */
export type CapabilityKind = typeof CAPABILITY_KINDS[number];

const capability = z.string().refine((value) => {
  const kind = value.split(":", 1)[0];
  return (CAPABILITY_KINDS as readonly string[]).includes(kind) && value !== `${kind}:`;
}, {
  message: `Unknown capability: expected one of ${CAPABILITY_KINDS.join(", ")}, alone or as KIND:VALUE`,
});

const ms = (max: number) => z.number().int().min(1).max(max);

const HealthSchema = z.strictObject({
  intervalMs: ms(3_600_000).default(5_000),
  timeoutMs: ms(600_000).default(2_000),
  failureThreshold: z.number().int().min(1).max(100).default(3),
  successThreshold: z.number().int().min(1).max(100).default(1),
});

const BackoffSchema = z.strictObject({
  initialMs: ms(3_600_000).default(100),
  maxMs: ms(3_600_000).default(30_000),
  multiplier: z.number().min(1).max(10).default(2),
}).refine((b) => b.maxMs >= b.initialMs, { message: "maxMs must be >= initialMs", path: ["maxMs"] });

const BudgetSchema = z.strictObject({
  maxRestarts: z.number().int().min(0).max(1000).default(5),
  windowMs: ms(86_400_000).default(60_000),
});

const RestartSchema = z.strictObject({
  policy: z.enum(["always", "on-failure", "never"]).default("on-failure"),
  backoff: BackoffSchema.default({ initialMs: 100, maxMs: 30_000, multiplier: 2 }),
  budget: BudgetSchema.default({ maxRestarts: 5, windowMs: 60_000 }),
});

/** How a service's health is checked. */
export interface HealthOptions {
  /** Milliseconds between checks (the first runs right after the start). */
  intervalMs: number;
  /** A check that takes longer fails. */
  timeoutMs: number;
  /** Failed checks in a row that make the service `unhealthy`. */
  failureThreshold: number;
  /** Passed checks in a row that make an `unhealthy` service `running` again. */
  successThreshold: number;
}

/** When and how a service is restarted. */
export interface RestartOptions {
  /** `on-failure`: after crashes; `always`: after clean exits too; `never`. */
  policy: "always" | "on-failure" | "never";
  /** The wait before restart n (from 0): `initialMs * multiplier^n`, at most `maxMs`, plus up to 10 % jitter. */
  backoff: { initialMs: number; maxMs: number; multiplier: number };
  /** At most `maxRestarts` restarts inside any `windowMs`; then the service is `failed`. */
  budget: { maxRestarts: number; windowMs: number };
}

/** A validated manifest, defaults filled in. */
export interface ServiceManifest {
  /** Unique name: 1 to 63 of `a-z 0-9 -`, starting with a letter. */
  name: string;
  /** Semantic version. */
  version: string;
  /** `builtin:ID`, or the module to run (a path or `file:` URL). */
  entry: string;
  /** Names of the services that must run first. */
  dependencies: string[];
  /** The capabilities requested (`net`, `read:/srv`, ...). */
  capabilities: string[];
  /** The health check, if any. */
  health?: HealthOptions;
  /** The restart policy. */
  restart: RestartOptions;
}

// The schema of a service manifest (zod, strict).
const ManifestSchema = z.strictObject({
  name: z.string().regex(NAME, {
    message: 'Use 1 to 63 lowercase letters, digits or "-", starting with a letter',
  }),
  version: z.string().regex(SEMVER, { message: "Expected a semantic version such as 1.2.3" }),
  entry: z.string().min(1, { message: "Expected a module path or builtin:ID" }).max(4096),
  dependencies: z.array(z.string().regex(NAME, { message: "Expected a service name" })).max(64).default([]),
  capabilities: z.array(capability).max(64).default([]),
  health: HealthSchema.optional(),
  restart: RestartSchema.default({
    policy: "on-failure",
    backoff: { initialMs: 100, maxMs: 30_000, multiplier: 2 },
    budget: { maxRestarts: 5, windowMs: 60_000 },
  }),
}).refine((m) => !m.dependencies.includes(m.name), {
  message: "A service cannot depend on itself",
  path: ["dependencies"],
});

// The schema's output must stay assignable to the declared interface.
const _sameShape = (m: z.output<typeof ManifestSchema>): ServiceManifest => m;

/** A manifest as written: optional fields may be left out (for callers that build one in code). */
export type ServiceManifestInput = z.input<typeof ManifestSchema>;

/**
 * Validates a manifest and fills in its defaults.
 *
 * @param value The parsed JSON (or object) to validate.
 * @param source Where it came from, for the message (a file path, say).
 * @returns The manifest.
 * @throws {SyntaxError} naming every field at fault, e.g.
 *   `Invalid service manifest "x.json": restart.policy: Invalid option: ...`.
 */
export function parseManifest(value: unknown, source?: string): ServiceManifest {
  const result = ManifestSchema.safeParse(value);
  if (result.success) return result.data;
  const named = typeof value === "object" && value !== null && typeof (value as { name?: unknown }).name === "string"
    ? (value as { name: string }).name
    : undefined;
  const what = source ?? named;
  const issues = result.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ` : "") + i.message);
  throw new SyntaxError(`Invalid service manifest${what ? ` "${what}"` : ""}: ${issues.join("; ")}`);
}

/** Whether `manifest` names a service built into the node. */
export function isBuiltin(manifest: Pick<ServiceManifest, "entry">): boolean {
  return manifest.entry.startsWith(BUILTIN_PREFIX);
}
