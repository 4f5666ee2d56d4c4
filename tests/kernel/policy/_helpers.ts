/** Shared pieces of the policy tests: requests, a gate on a temporary store, a fake clock. */

import { Identity } from "../../../kernel/identity/identity.ts";
import { PolicyGate, type PolicyGateOptions } from "../../../kernel/policy/gate.ts";
import type { PolicyRequestInput } from "../../../kernel/policy/request.ts";
import { tempStore } from "../storage/_helpers.ts";

/** A request of `type:id` for `action` on `resource` (`TYPE:ID`). */
export function req(
  principal: string,
  action: string,
  resource = "peer:p1",
  context: Record<string, unknown> = {},
): PolicyRequestInput {
  const [ptype, pid] = principal.split(":");
  const [rtype, rid] = resource.split(":");
  return {
    principal: { type: ptype, id: pid },
    action,
    resource: { type: rtype, id: rid },
    context,
  } as PolicyRequestInput;
}

/** A clock whose timers run only when advanced. */
export class FakeClock {
  time = 1_700_000_000_000;
  #timers: { at: number; fn: () => void; live: boolean }[] = [];
  now = (): number => this.time;
  schedule = (fn: () => void, ms: number): () => void => {
    const timer = { at: this.time + ms, fn, live: true };
    this.#timers.push(timer);
    return () => (timer.live = false);
  };
  advance(ms: number): void {
    this.time += ms;
    for (const t of this.#timers.filter((t) => t.live && t.at <= this.time)) {
      t.live = false;
      t.fn();
    }
  }
}

/** A gate on a temporary store, closed with the store. */
export async function tempGate(
  options: Partial<PolicyGateOptions> = {},
): Promise<{ gate: PolicyGate; identity: Identity } & AsyncDisposable> {
  const temp = await tempStore();
  const identity = Identity.generate("test");
  const gate = await PolicyGate.open(temp.store, { signer: identity, ...options });
  return {
    gate,
    identity,
    async [Symbol.asyncDispose]() {
      await gate.close();
      await temp[Symbol.asyncDispose]();
    },
  };
}
