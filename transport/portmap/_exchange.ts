/**
 * One request/response exchange with a gateway over UDP, shared by the PCP
 * and NAT-PMP clients: a fresh socket bound to the internal address (so no
 * socket outlives the exchange and none keeps the process alive), the
 * request retransmitted on a schedule, answers accepted only from the
 * gateway's address and port, everything bounded by a deadline and a signal.
 *
 * @module
 */

import { MalformedPortMapMessageError, type MappingMethod, PortMappingError } from "./errors.ts";

/** What {@linkcode exchange} needs. */
export interface ExchangeOptions<T> {
  /** The method, for error messages and `PortMappingError.method`. */
  method: MappingMethod;
  /** The gateway's IPv4 address. */
  gateway: string;
  /** The gateway's port (5351 for PCP and NAT-PMP). */
  port: number;
  /** The local address to send from (the PCP client address), or `0.0.0.0`. */
  localAddress: string;
  /** The request bytes. */
  request: Uint8Array;
  /** Where to send the request; default the gateway's address and port. */
  to?: Array<{ hostname: string; port: number }>;
  /** Which senders to hear; default only the gateway's address and port. */
  from?: (addr: { hostname: string; port: number }) => boolean;
  /**
   * Decides on one datagram from the gateway: a value ends the exchange,
   * undefined ignores the datagram (not ours), a throw of
   * {@linkcode MalformedPortMapMessageError} ignores it too (and is named in the
   * timeout error), any other throw ends the exchange with that error.
   */
  accept: (data: Uint8Array) => T | undefined;
  /** Waits before each retransmission, in ms (the first send is immediate). */
  delays: Iterable<number>;
  /** The whole exchange's budget, in ms. */
  timeoutMs: number;
  /** Cancels the exchange; it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** What the request is, for messages ("MAP udp 40000"). */
  what: string;
}

/** Sends `request` to the gateway and returns the first datagram `accept` takes; throws {@linkcode PortMappingError} `TIMEOUT`. */
export async function exchange<T>(options: ExchangeOptions<T>): Promise<T> {
  const { method, gateway, port, signal } = options;
  signal?.throwIfAborted();
  let conn: Deno.DatagramConn;
  try {
    conn = Deno.listenDatagram({ transport: "udp", hostname: options.localAddress, port: 0 });
  } catch (error) {
    throw new PortMappingError(
      `${method}: cannot open a UDP socket on ${options.localAddress}: ${describe(error)}`,
      { method, reason: "NO_SOCKET" },
      { cause: error },
    );
  }
  const done = new AbortController();
  const stop = AbortSignal.any([done.signal, AbortSignal.timeout(options.timeoutMs), ...(signal ? [signal] : [])]);
  let lastMalformed: MalformedPortMapMessageError | null = null;
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => {
      if (signal?.aborted) reject(signal.reason);
      else {
        const malformed = lastMalformed ? `; ignored a malformed answer: ${lastMalformed.message}` : "";
        reject(
          new PortMappingError(
            `${method}: no answer from ${gateway}:${port} to ${options.what} within ${options.timeoutMs} ms${malformed}`,
            { method, reason: "TIMEOUT" },
            lastMalformed ? { cause: lastMalformed } : undefined,
          ),
        );
      }
    };
    if (stop.aborted) fail();
    else stop.addEventListener("abort", fail, { once: true });
  });
  aborted.catch(() => {});

  const sender = (async () => {
    const targets = (options.to ?? [{ hostname: gateway, port }]).map((t): Deno.NetAddr => ({
      transport: "udp",
      ...t,
    }));
    const delays = options.delays[Symbol.iterator]();
    while (!stop.aborted) {
      try {
        for (const to of targets) await conn.send(options.request, to);
      } catch (error) {
        if (stop.aborted) return;
        // No route to the gateway, or the network refused: no point retrying.
        throw new PortMappingError(
          `${method}: cannot send to ${gateway}:${port}: ${describe(error)}`,
          { method, reason: "UNREACHABLE" },
          { cause: error },
        );
      }
      const next = delays.next();
      if (next.done) return;
      await sleep(next.value, stop);
    }
  })();

  const receiver = (async (): Promise<T> => {
    while (true) {
      let data: Uint8Array, from: Deno.NetAddr;
      try {
        const [d, addr] = await conn.receive();
        data = d;
        from = addr as Deno.NetAddr;
      } catch (error) {
        if (stop.aborted) return await aborted;
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) return await aborted;
        // An ICMP error (port unreachable) on the socket: keep waiting for a real answer.
        continue;
      }
      // RFC 6886 3.1 and RFC 6887 8.3: only answers from the server the request went to count.
      if (options.from ? !options.from(from) : from.hostname !== gateway || from.port !== port) continue;
      try {
        const value = options.accept(data);
        if (value !== undefined) return value;
      } catch (error) {
        if (error instanceof MalformedPortMapMessageError) {
          lastMalformed = error;
          continue;
        }
        throw error;
      }
    }
  })();

  try {
    return await Promise.race([receiver, aborted, sender.then(() => aborted)]);
  } finally {
    done.abort();
    try {
      conn.close();
    } catch { /* closed */ }
    await Promise.allSettled([sender, receiver]);
  }
}

/**
 * The retransmission timeouts of RFC 6887 section 8.1.1: RT = (1 + RAND) *
 * IRT, then RT = (1 + RAND) * MIN(2 * RTprev, MRT), RAND uniform in
 * [-0.1, +0.1]; `maxCount` transmissions in all (MRC, 0 = no limit). With
 * `jitter` 0 this is RFC 6886 section 3.1's doubling from 250 ms.
 */
export function* retransmitDelays(
  irtMs: number,
  mrtMs: number,
  maxCount = 0,
  jitter = 0.1,
  random: () => number = Math.random,
): Generator<number> {
  let rt = 0;
  for (let sent = 1; maxCount === 0 || sent < maxCount; sent++) {
    const rand = (random() * 2 - 1) * jitter;
    rt = sent === 1 ? (1 + rand) * irtMs : (1 + rand) * Math.min(2 * rt, mrtMs);
    yield rt;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const id = setTimeout(done, ms);
    Deno.unrefTimer(id);
    function done() {
      clearTimeout(id);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** An error's message, or the value as text. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
