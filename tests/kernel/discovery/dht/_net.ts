/**
 * Test helpers: DHT nodes on real UDP sockets on loopback, one 127.0.x.y
 * address per node, closed together.
 *
 * @module
 */

import { Identity } from "../../../../kernel/identity/identity.ts";
import { Dht, type DhtOptions } from "../../../../kernel/discovery/dht/dht.ts";
import type { RecordSigner } from "../../../../kernel/discovery/record.ts";
import { UdpSocket } from "../../../../transport/udp.ts";

/** A running node: its socket, identity and DHT; disposing closes both. */
export interface TestNode extends AsyncDisposable {
  socket: UdpSocket;
  identity: RecordSigner;
  dht: Dht;
}

/** The loopback address of node `i`: 127.0.x.y, distinct for i < 64,000. */
export function loopback(i: number, base = 0): string {
  return `127.${base}.${(i >> 8) & 0xff}.${(i & 0xff) + 1}`;
}

/** Options every test node gets unless overridden: short timeouts, slow maintenance. */
export const TEST_OPTIONS: Partial<DhtOptions> = { rpcTimeoutMs: 400 };

/** Starts a node bound to `hostname` (port 0), signing as `options.signer` or a new identity. */
export async function startNode(hostname: string, options: Partial<DhtOptions> = {}): Promise<TestNode> {
  const socket = await UdpSocket.bind(`udp://${hostname}:0`);
  const identity = options.signer ?? Identity.generate("dht-test");
  const dht = await Dht.start({ ...TEST_OPTIONS, ...options, socket, signer: identity });
  return {
    socket,
    identity,
    dht,
    async [Symbol.asyncDispose]() {
      await dht.close();
      await socket.close();
    },
  };
}

/** A network of `n` nodes: node 0 first, every other node bootstraps from it, `concurrency` at a time. */
export class TestNet implements AsyncDisposable {
  readonly nodes: TestNode[] = [];

  static async start(n: number, options: Partial<DhtOptions> = {}, concurrency = 8, base = 0): Promise<TestNet> {
    const net = new TestNet();
    try {
      net.nodes.push(await startNode(loopback(0, base), options));
      const seed = [net.nodes[0].socket.addr];
      for (let i = 1; i < n; i += concurrency) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(concurrency, n - i) }, (_, j) => startNode(loopback(i + j, base), options)),
        );
        net.nodes.push(...batch);
        await Promise.all(batch.map((node) => node.dht.bootstrap(seed)));
      }
    } catch (error) {
      await net.close();
      throw error;
    }
    return net;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.dht.close()));
    await Promise.all(this.nodes.map((n) => n.socket.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
