/**
 * A node for the peer tests: a peer manager with an in-memory encrypted store
 * and its events recorded.
 */

import { Identity } from "../../../kernel/identity/identity.ts";
import { AddressBook } from "../../../kernel/peers/address_book.ts";
import { PeerManager, type PeerManagerOptions, type Session } from "../../../kernel/peers/manager.ts";
import { EncryptedStore } from "../../../kernel/storage/encrypted_kv.ts";
import { MemoryTransport } from "../../../transport/memory.ts";
import { TcpTransport } from "../../../transport/tcp.ts";

/** A node under test. */
export interface TestPeer extends AsyncDisposable {
  identity: Identity;
  nodeId: string;
  manager: PeerManager;
  book: AddressBook;
  events: { type: string; data: Record<string, unknown> }[];
  /** Resolves with the first event of `type` (already seen or to come) matching `test`. */
  next(type: string, test?: (data: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

let names = 0;

/** Makes a node (policy `any` unless told otherwise); `as` gives it an identity of the test's. */
export async function peer(
  options: { as?: Identity } & Partial<Omit<PeerManagerOptions, "identity">> = {},
): Promise<TestPeer> {
  const store = await EncryptedStore.open(undefined, crypto.getRandomValues(new Uint8Array(32)));
  const book = await AddressBook.open(store);
  const { as, ...managerOptions } = options;
  const identity = as ?? Identity.generate(`node${++names}`);
  const events: TestPeer["events"] = [];
  const waiters: { type: string; test: (d: Record<string, unknown>) => boolean; resolve: (d: never) => void }[] = [];
  const manager = new PeerManager({
    identity: () => identity,
    book,
    transports: [new MemoryTransport(), new TcpTransport()],
    policy: "any",
    ...managerOptions,
    events: (type, data) => {
      events.push({ type, data });
      for (const w of [...waiters]) {
        if (w.type === type && w.test(data)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(data as never);
        }
      }
    },
  });
  return {
    identity,
    nodeId: identity.nodeId,
    manager,
    book,
    events,
    next(type, test = () => true) {
      const seen = events.find((e) => e.type === type && test(e.data));
      if (seen) return Promise.resolve(seen.data);
      return new Promise((resolve) => waiters.push({ type, test, resolve }));
    },
    async [Symbol.asyncDispose]() {
      await manager.close();
      store.close();
    },
  };
}

/** A fresh in-memory address. */
export function memoryAddress(): string {
  return `memory://relay-test-${crypto.randomUUID()}`;
}

/** Connects `a` to `b` over the in-memory transport; returns a's session with b. */
export async function link(a: TestPeer, b: TestPeer): Promise<Session> {
  const [address] = b.manager.listening.filter((l) => l.startsWith("memory://")).length > 0
    ? b.manager.listening.filter((l) => l.startsWith("memory://"))
    : await b.manager.listen([memoryAddress()]);
  const session = await a.manager.connect(address);
  await b.next("peer.connected", (d) => d.nodeId === a.nodeId);
  return session;
}

/** Waits until `test()` holds, checking every 10 ms, for at most `ms`. */
export async function until(test: () => boolean, ms = 5_000, what = "the condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
