/**
 * Reports the Deno permissions this process holds, for `/v1/state`.
 *
 * @module
 */

/** The state of each Deno permission: "granted", "prompt" or "denied". */
export type PermissionReport = Record<string, Deno.PermissionState>;

const NAMES = ["read", "write", "net", "env", "sys", "run", "ffi", "import"] as const;

/**
 * Queries every permission without prompting. A permission granted only for
 * some paths, hosts or names reports "prompt" for the whole kind; `scoped`
 * then lists the probes that are granted.
 */
export async function queryPermissions(probes: Deno.PermissionDescriptor[] = []): Promise<{
  all: PermissionReport;
  scoped: { descriptor: Deno.PermissionDescriptor; state: Deno.PermissionState }[];
}> {
  const all: PermissionReport = {};
  for (const name of NAMES) {
    all[name] = (await Deno.permissions.query({ name } as Deno.PermissionDescriptor)).state;
  }
  const scoped = [];
  for (const descriptor of probes) {
    scoped.push({ descriptor, state: (await Deno.permissions.query(descriptor)).state });
  }
  return { all, scoped };
}
