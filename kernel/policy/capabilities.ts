/**
 * The capability registry (NZ-POLICY-01 "Capabilities"): which principal
 * holds which capability, sealed in the store's `["policy"]` namespace. A
 * capability is an action (`storage.write`), every action of an area
 * (`storage.*`), every action (`*`), or a role (`role:admin`), which makes
 * the principal a member of the Cedar entity `Role::"admin"`.
 *
 * @module
 */

import type { Namespace } from "../storage/encrypted_kv.ts";
import type { PrincipalFacts } from "./engine.ts";
import { ACTION_GROUPS, ACTIONS, PRINCIPAL_TYPES, type PrincipalType } from "./request.ts";

/** A principal, as requests name it. */
export interface PrincipalRef {
  /** Its type. */
  type: PrincipalType;
  /** Its ID within the type. */
  id: string;
}

/** One principal's grants. */
export interface GrantRecord {
  /** The principal. */
  principal: PrincipalRef;
  /** Its capabilities, sorted. */
  capabilities: string[];
}

const ACTION_SET = new Set<string>(ACTIONS);
const GROUP_SET = new Set<string>(ACTION_GROUPS);
const ROLE = /^role:[a-z][a-z0-9_-]{0,31}$/;

/**
 * Checks a capability's form.
 *
 * @throws {RangeError} when it is none of the four forms.
 */
export function assertCapability(capability: string): void {
  if (typeof capability !== "string") throw new TypeError("A capability must be a string");
  if (capability === "*" || ACTION_SET.has(capability) || ROLE.test(capability)) return;
  if (capability.endsWith(".*") && GROUP_SET.has(capability.slice(0, -2))) return;
  throw new RangeError(
    `Invalid capability "${capability}": expected an action (e.g. storage.write), an area (storage.*), "*" or role:NAME`,
  );
}

function assertPrincipal(principal: PrincipalRef): void {
  if (!(PRINCIPAL_TYPES as readonly string[]).includes(principal?.type)) {
    throw new RangeError(`Invalid principal type "${principal?.type}": expected one of ${PRINCIPAL_TYPES.join(", ")}`);
  }
  if (typeof principal.id !== "string" || !/^[\x21-\x7e]{1,256}$/.test(principal.id)) {
    throw new RangeError("Invalid principal id: use 1 to 256 printable ASCII characters without spaces");
  }
}

const keyOf = (p: PrincipalRef) => `${p.type}:${p.id}`;

interface Held {
  record: GrantRecord;
  set: Set<string>;
  roles: string[];
}

/** Grants of capabilities to principals, persisted and held in memory. */
export class CapabilityRegistry {
  #ns: Namespace | undefined;
  #held = new Map<string, Held>();
  #generation = 0;
  #onChange: () => void;

  private constructor(ns: Namespace | undefined, onChange: () => void) {
    this.#ns = ns;
    this.#onChange = onChange;
  }

  /**
   * Loads the registry from `ns` (or keeps it in memory only, when `ns` is
   * undefined: tests and benchmarks). `onChange` runs after every change.
   */
  static async open(
    ns: Namespace | undefined,
    options: { onChange?: () => void } = {},
  ): Promise<CapabilityRegistry> {
    const registry = new CapabilityRegistry(ns, options.onChange ?? (() => {}));
    if (ns) {
      const onError = (error: Error) => console.warn(`nzcore: skipping a capability grant: ${error.message}`);
      for await (const { value } of ns.list<GrantRecord>(["grant"], { onError })) registry.#hold(value);
    }
    return registry;
  }

  /** Bumped by every change. */
  get generation(): number {
    return this.#generation;
  }

  #hold(record: GrantRecord): void {
    const key = keyOf(record.principal);
    if (record.capabilities.length === 0) {
      this.#held.delete(key);
      return;
    }
    const roles = record.capabilities.filter((c) => c.startsWith("role:")).map((c) => c.slice(5));
    this.#held.set(key, { record, set: new Set(record.capabilities), roles });
  }

  async #write(principal: PrincipalRef, capabilities: string[]): Promise<GrantRecord> {
    const record: GrantRecord = { principal: { type: principal.type, id: principal.id }, capabilities };
    if (this.#ns) {
      if (capabilities.length === 0) await this.#ns.delete(["grant", keyOf(principal)]);
      else await this.#ns.set(["grant", keyOf(principal)], record);
    }
    this.#hold(record);
    this.#generation++;
    this.#onChange();
    return record;
  }

  /**
   * Grants `capability` to `principal` (no change if it already holds it).
   *
   * @throws {RangeError} for a malformed principal or capability.
   */
  grant(principal: PrincipalRef, capability: string): Promise<GrantRecord> {
    assertPrincipal(principal);
    assertCapability(capability);
    const current = this.capabilitiesOf(principal);
    if (current.includes(capability)) return Promise.resolve({ principal, capabilities: current });
    return this.#write(principal, [...current, capability].sort());
  }

  /** Revokes `capability` from `principal` (no change if it does not hold it). */
  revoke(principal: PrincipalRef, capability: string): Promise<GrantRecord> {
    assertPrincipal(principal);
    const current = this.capabilitiesOf(principal);
    if (!current.includes(capability)) return Promise.resolve({ principal, capabilities: current });
    return this.#write(principal, current.filter((c) => c !== capability));
  }

  /** The capabilities `principal` holds, sorted. */
  capabilitiesOf(principal: PrincipalRef): string[] {
    return [...(this.#held.get(keyOf(principal))?.record.capabilities ?? [])];
  }

  /** Every principal's grants, ordered by principal. */
  list(): GrantRecord[] {
    return [...this.#held.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, h]) => ({
      principal: { ...h.record.principal },
      capabilities: [...h.record.capabilities],
    }));
  }

  /** What the engine knows of `principal` when it asks for `action`. */
  facts(principal: PrincipalRef, action: string): PrincipalFacts {
    const held = this.#held.get(keyOf(principal));
    if (!held) return { capabilities: [], granted: false, roles: [] };
    const area = action.slice(0, action.indexOf("."));
    const granted = held.set.has(action) || held.set.has(`${area}.*`) || held.set.has("*");
    return { capabilities: held.record.capabilities, granted, roles: held.roles };
  }
}
