/** Test helpers: the RFC 5780 socket set on 127.0.0.1/127.0.0.2, and a raw STUN peer. */

import { AddressInUseError, type StunServerSockets, UdpSocket } from "../../../transport/mod.ts";

/** Four sockets: 127.0.0.1:A, 127.0.0.1:B, 127.0.0.2:A, 127.0.0.2:B (A, B free on both addresses). */
export async function bindRfc5780Sockets(
  ipA = "127.0.0.1",
  ipB = "127.0.0.2",
): Promise<StunServerSockets & AsyncDisposable> {
  for (let tries = 0; tries < 20; tries++) {
    const opened: UdpSocket[] = [];
    try {
      const primary = await UdpSocket.bind(`${ipA}:0`);
      opened.push(primary);
      const alternatePort = await UdpSocket.bind(`${ipA}:0`);
      opened.push(alternatePort);
      const alternateIp = await UdpSocket.bind(`${ipB}:${primary.addr.port}`);
      opened.push(alternateIp);
      const alternateBoth = await UdpSocket.bind(`${ipB}:${alternatePort.addr.port}`);
      opened.push(alternateBoth);
      return {
        primary,
        alternatePort,
        alternateIp,
        alternateBoth,
        async [Symbol.asyncDispose]() {
          for (const s of opened) await s.close();
        },
      };
    } catch (error) {
      for (const s of opened) await s.close();
      if (!(error instanceof AddressInUseError)) throw error;
    }
  }
  throw new Error("no port pair free on both addresses");
}

/** Collects what arrives on a socket: `next()` waits for the next datagram, or null after `ms`. */
export function collect(socket: UdpSocket): {
  received: { data: Uint8Array; from: { hostname: string; port: number } }[];
  next(ms?: number): Promise<{ data: Uint8Array; from: { hostname: string; port: number } } | null>;
} {
  const received: { data: Uint8Array; from: { hostname: string; port: number } }[] = [];
  let read = 0;
  let waiter: (() => void) | null = null;
  socket.route(() => true, (data, from) => {
    received.push({ data, from });
    waiter?.();
  });
  return {
    received,
    async next(ms = 1000) {
      const deadline = Date.now() + ms;
      while (read >= received.length) {
        const left = deadline - Date.now();
        if (left <= 0) return null;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiter = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        waiter = null;
      }
      return received[read++];
    },
  };
}
