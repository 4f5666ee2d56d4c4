/**
 * A DHT of real node processes on loopback: the first node is the bootstrap
 * node, the others join through it (a few at a time, so that 20 processes on
 * 2 cores start in seconds). Used by `dht_process_test.ts` and
 * `scripts/bench_dht_loopback.ts`.
 *
 * @module
 */

import { type NodeProcess, startNode } from "./_node_process.ts";

/** How many processes the issue asks for. */
export const DHT_NODES = 20;

/** One node of the net. */
export interface DhtNetNode extends NodeProcess {
  /** Its node ID. */
  nodeId: string;
  /** Its DID. */
  did: string;
  /** Its UDP address, `udp://127.0.0.1:PORT`. */
  udp: string;
}

/** A running net; `close()` stops every node and removes the data directories. */
export interface DhtNet {
  /** The nodes, the bootstrap node first. */
  nodes: DhtNetNode[];
  /** Stops every node; resolves with their exit codes. */
  close(): Promise<number[]>;
}

/** Starts `count` nodes; resolves once each has at least `minContacts` contacts (default 5) or throws after 60 s. */
export async function startDhtNet(count: number, options: { minContacts?: number } = {}): Promise<DhtNet> {
  const nodes: DhtNetNode[] = [];
  const dirs: string[] = [];
  const close = async () => {
    const statuses = await Promise.all(nodes.map((n) => n.stop("SIGTERM").then((s) => s.code)));
    await Promise.all(dirs.map((d) => Deno.remove(d, { recursive: true }).catch(() => {})));
    return statuses;
  };
  const start = async (bootstrap?: string) => {
    const dir = await Deno.makeTempDir({ prefix: "nzcore-dht-" });
    dirs.push(dir);
    const args = [
      "--api",
      "127.0.0.1:0",
      "--listen",
      "udp://127.0.0.1:0",
      ...(bootstrap ? ["--bootstrap", bootstrap] : []),
    ];
    const node = await startNode(dir, { args, timeoutMs: 60_000 });
    const text = node.output();
    const udp = /listen:\s+(udp:\/\/\S+)/.exec(text)?.[1];
    const nodeId = /node id:\s+([0-9a-f]{64})/.exec(text)?.[1];
    const did = /identity:\s+(did:key:\S+)/.exec(text)?.[1];
    if (!udp || !nodeId || !did) throw new Error(`Cannot read the node's addresses from its output:\n${text}`);
    const member = Object.assign(node, { udp, nodeId, did });
    nodes.push(member);
    return member;
  };
  try {
    const first = await start();
    for (let i = 1; i < count; i += 5) {
      await Promise.all(Array.from({ length: Math.min(5, count - i) }, () => start(first.udp)));
    }
    const deadline = Date.now() + 60_000;
    for (const node of nodes) {
      while (true) {
        const response = await node.api("/v1/dht");
        const state = await response.json() as { contacts: number };
        if (state.contacts >= Math.min(options.minContacts ?? 5, count - 1)) break;
        if (Date.now() > deadline) throw new Error(`${node.did} has only ${state.contacts} contacts after 60 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return { nodes, close };
  } catch (error) {
    await close();
    throw error;
  }
}
