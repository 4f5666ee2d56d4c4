/**
 * Hostile DHT nodes for tests, written with the NZ-DHT-01 codec and RPC layer:
 * a Sybil swarm (many ground keys on one IP, one socket each, answering every
 * lookup only with its own members) and a junk node (answers PING properly,
 * everything else with bytes that do not decode or contacts that lead nowhere).
 *
 * @module
 */

import { crypto, randomBytes, sha256 } from "../../../../kernel/crypto/mod.ts";
import { commonPrefixLength, compareDistance, type Contact } from "../../../../kernel/discovery/dht/contact.ts";
import {
  decodeMessage,
  encodeMessage,
  FLAG_SIGNED,
  FLAG_WANT_SIGNATURE,
  isDhtDatagram,
  isRequest,
} from "../../../../kernel/discovery/dht/message.ts";
import { Rpc } from "../../../../kernel/discovery/dht/rpc.ts";
import type { RecordSigner } from "../../../../kernel/discovery/record.ts";
import { type UdpAddr, UdpSocket } from "../../../../transport/udp.ts";

/**
 * An RPC endpoint that answers PING as an honest node does (signed when asked,
 * so it is admitted to tables), FIND_NODE and FIND_VALUE with `contactsFor`
 * the target (no records), and acknowledges STOREs it drops.
 */
function liarRpc(
  socket: UdpSocket,
  signer: RecordSigner,
  contactsFor: (target: Uint8Array) => Contact[],
  onLookup: () => void = () => {},
): Rpc {
  return new Rpc({
    socket,
    signer,
    rateLimit: { perIp: 1e6, burst: 1e6, global: 1e6 },
    handler: ({ message, from }) => {
      switch (message.type) {
        case "ping":
          return { type: "pong", observed: from };
        case "find_node":
          onLookup();
          return { type: "nodes", token: new Uint8Array(8), contacts: contactsFor(message.target) };
        case "find_value":
          onLookup();
          return {
            type: "values",
            token: new Uint8Array(8),
            total: 0,
            records: [],
            contacts: contactsFor(message.key),
          };
        case "store":
          return { type: "stored" };
      }
    },
  });
}

/** A signer of a raw Ed25519 seed. */
export function seedSigner(seed: Uint8Array): RecordSigner {
  return { publicKey: crypto.ed25519PublicKey(seed), sign: (m) => crypto.ed25519Sign(seed, m) };
}

/** A signer whose node ID shares at least `bits` leading bits with `target` (about 2^bits key generations). */
export function grindSigner(target: Uint8Array, bits: number): RecordSigner {
  for (;;) {
    const seed = randomBytes(32);
    const publicKey = crypto.ed25519PublicKey(seed);
    if (commonPrefixLength(sha256(publicKey), target) >= bits) return seedSigner(seed);
  }
}

/**
 * `count` Sybils on a few IPs, their IDs ground to share `bits` bits with
 * `victim`: each answers PING as an honest node would (so it is admitted to
 * tables, within the prefix limits), and FIND_NODE or FIND_VALUE of any
 * target only with the swarm's members closest to it, never with an honest
 * node; STORE is acknowledged and dropped.
 */
export class SybilSwarm implements AsyncDisposable {
  readonly members: { socket: UdpSocket; rpc: Rpc; contact: Contact }[] = [];

  /** `count` members on the IPs of `hostnames` in turn. */
  static async start(hostnames: string[], count: number, victim: Uint8Array, bits: number): Promise<SybilSwarm> {
    const swarm = new SybilSwarm();
    for (let i = 0; i < count; i++) {
      const socket = await UdpSocket.bind(`udp://${hostnames[i % hostnames.length]}:0`);
      const signer = grindSigner(victim, bits);
      const rpc = liarRpc(socket, signer, (target) => swarm.closest(target));
      swarm.members.push({ socket, rpc, contact: { id: sha256(signer.publicKey), addr: socket.addr } });
    }
    return swarm;
  }

  /** The members closest to `target`, at most 20. */
  closest(target: Uint8Array): Contact[] {
    return this.members.map((m) => m.contact).sort((a, b) => compareDistance(a.id, b.id, target)).slice(0, 20);
  }

  /** Every member sends a FIND_NODE to every address, so that honest nodes check (ping) and admit it. */
  async join(addrs: readonly UdpAddr[]): Promise<void> {
    await Promise.all(
      this.members.flatMap((m) =>
        addrs.map((addr) => m.rpc.request(addr, { type: "find_node", target: m.contact.id }))
      ),
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const m of this.members) m.rpc.close();
    await Promise.all(this.members.map((m) => m.socket.close()));
  }
}

/**
 * One node at one address that answers PING properly (so it is admitted) and
 * every FIND_NODE or FIND_VALUE with 20 made-up IDs closer to the target than
 * any real node, all at its own address (it holds no key for them).
 */
export class OneAddressSybil implements AsyncDisposable {
  readonly socket: UdpSocket;
  readonly rpc: Rpc;
  /** FIND_NODE and FIND_VALUE requests it answered. */
  lookups = 0;

  private constructor(socket: UdpSocket, signer: RecordSigner) {
    this.socket = socket;
    const fakes = (target: Uint8Array): Contact[] =>
      Array.from({ length: 20 }, (_, i) => {
        const id = target.slice();
        id[31] ^= i + 1;
        return { id, addr: socket.addr };
      });
    this.rpc = liarRpc(socket, signer, fakes, () => this.lookups++);
  }

  static async start(hostname: string): Promise<OneAddressSybil> {
    return new OneAddressSybil(await UdpSocket.bind(`udp://${hostname}:0`), seedSigner(randomBytes(32)));
  }

  /** Sends a FIND_NODE to every address, so that honest nodes check and admit it. */
  async join(addrs: readonly UdpAddr[]): Promise<void> {
    await Promise.all(addrs.map((addr) => this.rpc.request(addr, { type: "find_node", target: randomBytes(32) })));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.rpc.close();
    await this.socket.close();
  }
}

/**
 * A node that answers PING properly (signed when asked, so it is admitted)
 * and every other request with junk: in turn bytes of the right type and
 * transaction ID that do not decode, and NODES full of random IDs at an
 * address nobody listens on.
 */
export class JunkNode implements AsyncDisposable {
  readonly socket: UdpSocket;
  readonly signer: RecordSigner;
  answered = 0;

  private constructor(socket: UdpSocket, signer: RecordSigner, nowhere: UdpAddr) {
    this.socket = socket;
    this.signer = signer;
    socket.route(isDhtDatagram, (data, from) => {
      let message;
      try {
        message = decodeMessage(data).message;
      } catch {
        return;
      }
      if (!isRequest(message.type)) return;
      const header = {
        txid: message.txid,
        publicKey: signer.publicKey,
        flags: message.flags & FLAG_WANT_SIGNATURE ? FLAG_SIGNED : 0,
      };
      const sign = (m: Uint8Array) => signer.sign(m);
      let out: Uint8Array;
      if (message.type === "ping") {
        out = encodeMessage({ type: "pong", ...header, observed: from }, sign);
      } else if (this.answered++ % 2 === 0) {
        out = randomBytes(60 + (this.answered % 200));
        out[0] = data[0] + 1;
        out.set(message.txid, 2);
      } else {
        const contacts = Array.from(
          { length: 20 },
          (_, i) => ({ id: randomBytes(32), addr: { ...nowhere, port: nowhere.port + i } }),
        );
        out = encodeMessage({ type: "nodes", ...header, token: new Uint8Array(8), contacts }, sign);
      }
      socket.send(out, from).catch(() => {});
    });
  }

  /** A junk node on `hostname`; its bogus contacts point at `nowhere` (ports upwards of it). */
  static async start(hostname: string, nowhere: UdpAddr): Promise<JunkNode> {
    return new JunkNode(await UdpSocket.bind(`udp://${hostname}:0`), seedSigner(randomBytes(32)), nowhere);
  }

  /** Sends a FIND_NODE to every address from the junk node, so that honest nodes check and admit it. */
  async join(addrs: readonly UdpAddr[]): Promise<void> {
    const rpc = new Rpc({ socket: this.socket, signer: this.signer, handler: () => null, timeoutMs: 300 });
    await Promise.all(addrs.map((addr) => rpc.request(addr, { type: "find_node", target: randomBytes(32) })));
    rpc.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.socket.close();
  }
}
