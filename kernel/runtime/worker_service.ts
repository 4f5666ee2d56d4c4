/**
 * External services: a Deno module run in a Worker whose permissions are
 * exactly the manifest's capabilities (nothing else: no `run`, `ffi` or
 * `import`, no read of the disk), and never more than the node holds. The
 * node's permission profile has `run: false`, so a subprocess is not an
 * option; a Worker is isolated in its own V8 isolate all the same.
 *
 * The module speaks a small protocol with `postMessage`:
 *
 * - it posts `{ type: "ready" }` once it runs (within `startTimeoutMs`, else
 *   the start fails);
 * - the node posts `{ type: "health", id }` when the manifest has a health
 *   check; the module answers `{ type: "health", id, ok: boolean }`;
 * - it may post `{ type: "exit", error?: string }` to end on its own;
 * - an uncaught error in the module is a crash.
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ServiceManifest } from "./manifest.ts";
import type { Service, ServiceContext } from "./supervisor.ts";

/** Options of {@linkcode workerService}. */
export interface WorkerServiceOptions {
  /** Relative entries and paths of `read:`/`write:` capabilities are resolved against it. */
  baseDir: string;
  /** How long the module has to post `ready` (default 10 s). */
  startTimeoutMs?: number;
}

type Kind = "read" | "write" | "net" | "env" | "sys";

/**
 * The Worker permissions that grant exactly `capabilities`: everything else
 * is `false`.
 *
 * @param capabilities The manifest's capabilities (`net`, `read:/srv`, ...).
 * @param baseDir Relative paths are resolved against it.
 * @returns The `deno.permissions` option of a Worker.
 */
export function permissionsFor(capabilities: readonly string[], baseDir: string): Deno.PermissionOptionsObject {
  const granted: Record<Kind, true | string[] | undefined> = {
    read: undefined,
    write: undefined,
    net: undefined,
    env: undefined,
    sys: undefined,
  };
  for (const capability of capabilities) {
    const colon = capability.indexOf(":");
    const kind = (colon < 0 ? capability : capability.slice(0, colon)) as Kind;
    if (!(kind in granted)) throw new RangeError(`Unknown capability "${capability}"`);
    if (colon < 0) {
      granted[kind] = true;
      continue;
    }
    let value = capability.slice(colon + 1);
    if ((kind === "read" || kind === "write") && !isAbsolute(value)) value = resolve(baseDir, value);
    const current = granted[kind];
    if (current !== true) granted[kind] = [...(current ?? []), value];
  }
  const as = (v: true | string[] | undefined) => v ?? false;
  return {
    read: as(granted.read),
    write: as(granted.write),
    net: as(granted.net),
    env: as(granted.env),
    sys: as(granted.sys) as Deno.PermissionOptionsObject["sys"],
    run: false,
    ffi: false,
    import: false,
  };
}

/**
 * Fails when the node itself does not hold one of `capabilities`: a service
 * never gets more than the node's permission profile.
 *
 * @throws {Deno.errors.PermissionDenied} naming the capability.
 */
export function assertWithinProfile(name: string, capabilities: readonly string[], baseDir: string): void {
  for (const capability of capabilities) {
    const colon = capability.indexOf(":");
    const kind = colon < 0 ? capability : capability.slice(0, colon);
    const value = colon < 0 ? undefined : capability.slice(colon + 1);
    let descriptor: Deno.PermissionDescriptor;
    switch (kind) {
      case "read":
      case "write":
        descriptor = { name: kind, path: value === undefined ? undefined : resolve(baseDir, value) };
        break;
      case "net":
        descriptor = { name: "net", host: value };
        break;
      case "env":
        descriptor = { name: "env", variable: value };
        break;
      case "sys":
        descriptor = { name: "sys", kind: value as Deno.SysPermissionDescriptor["kind"] };
        break;
      default:
        throw new RangeError(`Unknown capability "${capability}"`);
    }
    if (Deno.permissions.querySync(descriptor).state !== "granted") {
      throw new Deno.errors.PermissionDenied(
        `Service "${name}" requests the capability "${capability}", which the node's permission profile does not grant`,
      );
    }
  }
}

/** The URL of a manifest's module entry. */
export function entryUrl(entry: string, baseDir: string): URL {
  if (/^file:/.test(entry)) return new URL(entry);
  if (/^[a-z][a-z0-9+.-]*:/i.test(entry)) {
    throw new RangeError(`Cannot run "${entry}": a service entry is a local module path or a file: URL`);
  }
  return pathToFileURL(isAbsolute(entry) ? entry : resolve(baseDir, entry));
}

/** A service run in a Worker. */
export interface WorkerService extends Service {
  /** Posts a message to the running module (dropped when it is not running). */
  post(message: unknown): void;
}

/** A {@linkcode Service} that runs the manifest's module in a Worker. */
export function workerService(manifest: ServiceManifest, options: WorkerServiceOptions): WorkerService {
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  let worker: Worker | undefined;
  let nextId = 1;
  const pending = new Map<number, (ok: boolean) => void>();

  const end = () => {
    worker?.terminate();
    worker = undefined;
    for (const answer of pending.values()) answer(false);
    pending.clear();
  };

  return {
    post(message: unknown): void {
      worker?.postMessage(message);
    },
    start(ctx: ServiceContext): Promise<void> {
      const url = entryUrl(manifest.entry, options.baseDir);
      assertWithinProfile(manifest.name, manifest.capabilities, options.baseDir);
      const w = new Worker(url, {
        type: "module",
        name: manifest.name,
        deno: { permissions: permissionsFor(manifest.capabilities, options.baseDir) },
      });
      worker = w;
      return new Promise<void>((resolveStart, rejectStart) => {
        let ready = false;
        const fail = (error: Error) => {
          if (!ready) {
            clearTimeout(timer);
            if (worker === w) end();
            rejectStart(error);
          } else if (worker === w) {
            end();
            ctx.exit(error);
          }
        };
        const timer = setTimeout(
          () => fail(new Error(`The module did not post "ready" within ${startTimeoutMs} ms`)),
          startTimeoutMs,
        );
        w.onerror = (event) => {
          // Handled here: an error in a service never reaches (and never kills) the node.
          event.preventDefault();
          fail(new Error(event.message || "The worker failed"));
        };
        w.onmessageerror = () => fail(new Error("The worker sent a message that cannot be read"));
        w.onmessage = (event: MessageEvent) => {
          const data = event.data as { type?: unknown; id?: unknown; ok?: unknown; error?: unknown } | null;
          if (data?.type === "ready" && !ready) {
            ready = true;
            clearTimeout(timer);
            resolveStart();
          } else if (data?.type === "health" && typeof data.id === "number") {
            pending.get(data.id)?.(data.ok === true);
            pending.delete(data.id);
          } else if (data?.type === "exit") {
            const error = data.error === undefined ? undefined : new Error(String(data.error));
            if (!ready) fail(error ?? new Error("The module exited before it was ready"));
            else if (worker === w) {
              end();
              ctx.exit(error);
            }
          }
        };
      });
    },
    stop(): void {
      end();
    },
    health({ signal }): Promise<boolean> {
      const w = worker;
      if (!w) return Promise.resolve(false);
      const id = nextId++;
      return new Promise<boolean>((answer) => {
        const onAbort = () => {
          pending.delete(id);
          answer(false);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        pending.set(id, (ok) => {
          signal.removeEventListener("abort", onAbort);
          answer(ok);
        });
        w.postMessage({ type: "health", id });
      });
    },
  };
}
