/**
 * NAT behaviour discovery (RFC 5780 sections 4.3 and 4.4) with a
 * {@linkcode StunClient} and a server that sends OTHER-ADDRESS and honours
 * CHANGE-REQUEST.
 *
 * @module
 */

import type { UdpAddr } from "../udp.ts";
import { canonicalIp } from "../ip.ts";
import type { StunBindingOptions, StunBindingResult, StunClient, StunTimers } from "./client.ts";
import { StunError } from "./errors.ts";

/** How a NAT maps a local endpoint to public ones (RFC 4787 section 4.1). */
export type NatMapping = "endpoint-independent" | "address-dependent" | "address-and-port-dependent" | "unknown";
/** Which inbound packets a NAT lets through to a mapping (RFC 4787 section 5). */
export type NatFiltering = NatMapping;
/** The classic (RFC 3489) name of a mapping and filtering pair. */
export type NatType =
  | "open"
  | "full-cone"
  | "restricted-cone"
  | "port-restricted-cone"
  | "symmetric"
  | "udp-blocked"
  | "unknown";

/** What {@linkcode discoverNatBehavior} found. */
export interface NatBehavior {
  /** Mapping behaviour (RFC 5780 section 4.3). */
  mapping: NatMapping;
  /** Filtering behaviour (RFC 5780 section 4.4). */
  filtering: NatFiltering;
  /** The mapped address the primary server saw, or `null` when it never answered. */
  publicAddr: UdpAddr | null;
  /** Whether the mapped address is the socket's own: no NAT. */
  local: boolean;
  /**
   * `open` when there is no NAT (whatever a firewall filters: see `filtering`),
   * `udp-blocked` when the server never answered, `symmetric` for an
   * address(-and-port)-dependent mapping, else the cone named by the filtering
   * of an endpoint-independent mapping; `unknown` when a test could not run.
   */
  natType: NatType;
}

/** Options of {@linkcode discoverNatBehavior}. */
export interface NatBehaviorOptions {
  /** Cancels the discovery. */
  signal?: AbortSignal;
  /** Timers of the mapping tests (default: RTO 250 ms, 4 transmissions, Rm 8: 3.75 s to give up). */
  mappingTimers?: StunTimers;
  /**
   * Timers of the filtering tests, where a dropped reply is the expected
   * outcome (default: RTO 200 ms, 3 transmissions, Rm 4: 1.4 s).
   */
  filteringTimers?: StunTimers;
}

const MAPPING_TIMERS: StunTimers = { rtoMs: 250, rc: 4, rm: 8 };
const FILTERING_TIMERS: StunTimers = { rtoMs: 200, rc: 3, rm: 4 };

/**
 * Discovers the NAT's mapping and filtering behaviour towards `server`
 * (RFC 5780 sections 4.3, 4.4).
 *
 * Mapping: test I asks the primary address; test II the alternate IP with
 * the primary port; test III the alternate IP and port. Filtering: test II
 * asks the primary to answer from the other IP and port, test III from the
 * other port only. All from the client's one socket, so the filtering tests
 * run right after test I, before anything was sent to the other address
 * (which would open an address-dependent filter to it). A server without
 * OTHER-ADDRESS leaves both `unknown`.
 *
 * @param client A client on the socket whose NAT behaviour is wanted.
 * @param server The server's primary address.
 * @param options Signal and timers.
 * @returns Mapping, filtering, the public address and the classic NAT type.
 */
export async function discoverNatBehavior(
  client: StunClient,
  server: UdpAddr,
  options: NatBehaviorOptions = {},
): Promise<NatBehavior> {
  const signal = options.signal;
  const mappingTimers = { ...MAPPING_TIMERS, ...options.mappingTimers };
  const filteringTimers = { ...FILTERING_TIMERS, ...options.filteringTimers };
  const ask = async (to: UdpAddr, extra: StunBindingOptions, timers: StunTimers): Promise<StunBindingResult | null> => {
    try {
      return await client.binding(to, { ...timers, ...extra, signal });
    } catch (error) {
      // A timeout (no code) is an outcome; an error response (a code) means the test could not run.
      if (error instanceof StunError && error.code === undefined && !signal?.aborted) return null;
      throw error;
    }
  };
  const attempt = async (to: UdpAddr, extra: StunBindingOptions, timers: StunTimers) => {
    try {
      return { result: await ask(to, extra, timers) };
    } catch (error) {
      if (error instanceof StunError && error.code !== undefined) return { failed: true as const };
      throw error;
    }
  };

  // Mapping test I.
  const first = await attempt(server, {}, mappingTimers);
  if ("failed" in first || first.result === null) {
    return {
      mapping: "unknown",
      filtering: "unknown",
      publicAddr: null,
      local: false,
      natType: "failed" in first ? "unknown" : "udp-blocked",
    };
  }
  const x1 = first.result.mapped;
  const local = isLocal(x1, client.socket.addr);
  const other = first.result.otherAddress;
  const result: NatBehavior = { mapping: "unknown", filtering: "unknown", publicAddr: x1, local, natType: "unknown" };
  if (local) result.mapping = "endpoint-independent";
  if (!other) {
    if (local) result.natType = "open";
    return result;
  }

  // The filtering tests come first: the mapping tests send to the other address, which would open an
  // address-dependent filter to it and make a restricted cone look like a full cone.
  // Filtering test II: answer from the other IP and port.
  const both = await attempt(server, { changeIp: true, changePort: true }, filteringTimers);
  if (!("failed" in both)) {
    if (both.result !== null) {
      result.filtering = honoured(both.result, server, true) ? "endpoint-independent" : "unknown";
    } else {
      // Filtering test III: answer from the other port only.
      const port = await attempt(server, { changePort: true }, filteringTimers);
      if (!("failed" in port)) {
        if (port.result === null) result.filtering = "address-and-port-dependent";
        else if (honoured(port.result, server, false)) result.filtering = "address-dependent";
      }
    }
  }

  if (!local) {
    // Mapping test II: the alternate IP, the primary port.
    const second = await attempt({ hostname: other.hostname, port: server.port }, {}, mappingTimers);
    if (!("failed" in second) && second.result !== null) {
      const x2 = second.result.mapped;
      if (sameAddr(x2, x1)) result.mapping = "endpoint-independent";
      else {
        // Mapping test III: the alternate IP and port.
        const third = await attempt(other, {}, mappingTimers);
        if (!("failed" in third) && third.result !== null) {
          result.mapping = sameAddr(third.result.mapped, x2) ? "address-dependent" : "address-and-port-dependent";
        }
      }
    }
  }

  result.natType = natTypeOf(result);
  return result;
}

/** The classic name of a mapping/filtering pair. */
function natTypeOf(b: NatBehavior): NatType {
  if (b.local) return "open";
  if (b.mapping === "address-dependent" || b.mapping === "address-and-port-dependent") return "symmetric";
  if (b.mapping !== "endpoint-independent") return "unknown";
  switch (b.filtering) {
    case "endpoint-independent":
      return "full-cone";
    case "address-dependent":
      return "restricted-cone";
    case "address-and-port-dependent":
      return "port-restricted-cone";
    default:
      return "unknown";
  }
}

/** Whether the answer came from where CHANGE-REQUEST asked (a server that ignored it would fake an open filter). */
function honoured(result: StunBindingResult, server: UdpAddr, changeIp: boolean): boolean {
  const from = result.responseOrigin ?? result.from;
  const ipChanged = canonicalIp(from.hostname) !== canonicalIp(server.hostname);
  return from.port !== server.port && ipChanged === changeIp;
}

function sameAddr(a: UdpAddr, b: UdpAddr): boolean {
  return a.port === b.port && canonicalIp(a.hostname) === canonicalIp(b.hostname);
}

/** Whether `mapped` is the socket's own address (for a wildcard bind: one of the host's addresses, same port). */
function isLocal(mapped: UdpAddr, socket: UdpAddr): boolean {
  if (mapped.port !== socket.port) return false;
  const host = canonicalIp(socket.hostname);
  if (host !== "0.0.0.0" && host !== "::") return canonicalIp(mapped.hostname) === host;
  try {
    return Deno.networkInterfaces().some((i) => canonicalIp(i.address) === canonicalIp(mapped.hostname));
  } catch {
    return false;
  }
}
