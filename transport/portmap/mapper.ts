/**
 * {@linkcode PortMapper}: asks the home router to forward a port to this
 * host, trying PCP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD in turn,
 * renews each mapping at half its lifetime, moves it to the next method when
 * renewal keeps failing, re-maps when the gateway's epoch shows it lost its
 * state, and deletes everything on `close()`.
 *
 * @module
 */

import { describe } from "./_exchange.ts";
import { assertPort, inSubnet, isReservedIPv4, parseDefaultGateway, parseIPv4 } from "./_ip.ts";
import { type MappingMethod, PortMappingError } from "./errors.ts";
import { NatPmpClient } from "./natpmp.ts";
import { PcpClient } from "./pcp.ts";
import { UpnpClient } from "./upnp.ts";

export type { MappingMethod } from "./errors.ts";

/** The transport protocol of a mapping. */
export type MappingProtocol = "udp" | "tcp";

/** A port the router forwards to this host. */
export interface PortMapping {
  /** `udp` or `tcp`. */
  protocol: MappingProtocol;
  /** The port on this host. */
  internalPort: number;
  /** The router's public address. */
  externalAddress: string;
  /** The public port that forwards to `internalPort`. */
  externalPort: number;
  /** The method that made it. */
  method: MappingMethod;
  /** The lifetime the router granted, seconds (0: a permanent UPnP mapping, deleted by `close()`). */
  lifetimeSeconds: number;
  /** When the mapping lapses unless renewed, epoch ms (`Infinity` for a permanent one). */
  expiresAt: number;
}

/** Options of a {@linkcode PortMapper}. */
export interface PortMapperOptions {
  /** The router's IPv4 address; default the gateway of the most general route in `/proc/net/route` (and SSDP for UPnP). */
  gateway?: string;
  /** This host's IPv4 address on the router's network; default the local interface address in the gateway's subnet. */
  internalAddress?: string;
  /** The methods to try, in order; default `["pcp", "nat-pmp", "upnp"]`. */
  methods?: MappingMethod[];
  /** The lifetime to ask for, seconds; default 7200 (RFC 6886 section 3.3's recommendation). */
  lifetimeSeconds?: number;
  /** The UPnP mapping description; default `nzcore`. */
  description?: string;
  /**
   * Accept a gateway whose external address is private or reserved (RFC 6890:
   * 10/8, 100.64/10, 192.168/16, 203.0.113/24...). Off by default: such a
   * mapping does not make this host reachable (the router is behind another
   * NAT), which is why miniupnpc calls such an IGD "not connected". The NAT lab's
   * WAN is 203.0.113.0/24, so its tests set it.
   */
  allowReservedExternal?: boolean;
  /** Budget of one exchange with the router (a method's whole attempt, a renewal, a deletion), ms; default 2000. */
  timeoutMs?: number;
  /** Closes the mapper (deleting its mappings) when aborted. */
  signal?: AbortSignal;
  /** Receives one line per event (mapped, renewed, failed, deleted). */
  log?: (msg: string) => void;
}

const DEFAULT_METHODS: readonly MappingMethod[] = ["pcp", "nat-pmp", "upnp"];
/** RFC 6886 section 3.3: "The RECOMMENDED Port Mapping Lifetime is 7200 seconds". */
const DEFAULT_LIFETIME_S = 7200;
const DEFAULT_TIMEOUT_MS = 2_000;
/** First retransmission of PCP during a method's budget (see PcpClientOptions.initialTimeoutMs). */
const PCP_FIRST_RETRANSMIT_MS = 250;
/** Renewal retries: first after 1 s, doubling, at most 60 s apart. */
const RETRY_FIRST_MS = 1_000, RETRY_MAX_MS = 60_000;
/** Failed renewals with the same method before the next methods are tried. */
const RENEW_TRIES_BEFORE_SWITCH = 2;
/** The bound on close()'s deletions, all in parallel. */
const CLOSE_BUDGET_MS = 3_000;

interface Entry {
  mapping: PortMapping;
  nonce?: Uint8Array;
  timer?: ReturnType<typeof setTimeout>;
  failures: number;
  busy: boolean;
}

interface Granted {
  mapping: PortMapping;
  nonce?: Uint8Array;
  epochValid: boolean;
}

/**
 * Maps ports on the home router and keeps them mapped.
 *
 * @example
 * ```ts ignore
 * await using mapper = new PortMapper({ lifetimeSeconds: 3600 });
 * const m = await mapper.map("udp", 7475);
 * console.log(`reachable at ${m.externalAddress}:${m.externalPort} via ${m.method}`);
 * mapper.onChange = (m) => console.log("now", m.externalAddress, m.externalPort);
 * ```
 */
export class PortMapper implements AsyncDisposable {
  /** Called when a renewal or re-mapping changed a mapping (address, port, method or lifetime). */
  onChange?: (mapping: PortMapping) => void;
  #options: PortMapperOptions;
  #methods: MappingMethod[];
  #lifetime: number;
  #timeoutMs: number;
  #entries: Entry[] = [];
  #pending = new Map<string, Promise<PortMapping>>();
  #closed = false;
  #closing: Promise<void> | null = null;
  #setup: Promise<{ gateway: string | null; internal: string | null }> | null = null;
  #pcp: PcpClient | null = null;
  #pmp: NatPmpClient | null = null;
  #upnp: UpnpClient | null = null;

  /** Creates a mapper; nothing is sent until `map()`. Throws TypeError/RangeError/SyntaxError for bad options. */
  constructor(options: PortMapperOptions = {}) {
    if (options.gateway !== undefined) parseIPv4(options.gateway, "gateway");
    if (options.internalAddress !== undefined) parseIPv4(options.internalAddress, "internalAddress");
    this.#methods = [...(options.methods ?? DEFAULT_METHODS)];
    if (this.#methods.length === 0) throw new RangeError("methods must name at least one method");
    for (const m of this.#methods) {
      if (!DEFAULT_METHODS.includes(m)) throw new TypeError(`methods: unknown method ${JSON.stringify(m)}`);
    }
    this.#lifetime = options.lifetimeSeconds ?? DEFAULT_LIFETIME_S;
    if (!Number.isInteger(this.#lifetime) || this.#lifetime < 1 || this.#lifetime > 0x7fffffff) {
      throw new RangeError(`lifetimeSeconds must be an integer >= 1, got ${options.lifetimeSeconds}`);
    }
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.#timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${options.timeoutMs}`);
    this.#options = options;
    if (options.signal) {
      if (options.signal.aborted) this.#closed = true;
      else options.signal.addEventListener("abort", () => void this.close(), { once: true });
    }
  }

  /** The live mappings (copies). */
  get mappings(): readonly PortMapping[] {
    return Object.freeze(this.#entries.map((e) => ({ ...e.mapping })));
  }

  /**
   * Maps `internalPort` on the router, trying each method in order, and
   * keeps it renewed. Mapping a port that is already mapped returns that mapping.
   *
   * @param protocol `udp` or `tcp`.
   * @param internalPort The port on this host, 1-65535.
   * @param preferredExternalPort The public port wanted; default the internal port. The router may pick another.
   * @returns The mapping.
   * @throws {PortMappingError} when every method failed (`cause` an AggregateError of each method's error).
   */
  async map(protocol: MappingProtocol, internalPort: number, preferredExternalPort?: number): Promise<PortMapping> {
    if (protocol !== "udp" && protocol !== "tcp") {
      throw new TypeError(`protocol must be "udp" or "tcp", got ${protocol}`);
    }
    assertPort(internalPort, "internalPort");
    const preferred = preferredExternalPort ?? internalPort;
    assertPort(preferred, "preferredExternalPort");
    this.#assertOpen();
    const existing = this.#entries.find((e) =>
      e.mapping.protocol === protocol && e.mapping.internalPort === internalPort
    );
    if (existing) return { ...existing.mapping };
    const key = `${protocol}/${internalPort}`;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#mapNew(protocol, internalPort, preferred).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return { ...await pending };
  }

  async #mapNew(protocol: MappingProtocol, internalPort: number, preferred: number): Promise<PortMapping> {
    const granted = await this.#mapAny(protocol, internalPort, preferred, this.#methods);
    if (this.#closed) {
      await this.#delete(granted.mapping, granted.nonce, AbortSignal.timeout(this.#timeoutMs)).catch(() => {});
      throw new PortMappingError("port mapper closed while mapping", { reason: "CLOSED" });
    }
    const entry: Entry = {
      mapping: granted.mapping,
      nonce: granted.nonce,
      failures: 0,
      busy: false,
    };
    this.#entries.push(entry);
    this.#scheduleRenewal(entry);
    return { ...entry.mapping };
  }

  /**
   * The router's public address: that of a mapping when there is one, else
   * asked by NAT-PMP or UPnP (PCP has no query without a mapping). Null when
   * no method answers, or the address is reserved and `allowReservedExternal` is off.
   */
  async externalAddress(): Promise<string | null> {
    this.#assertOpen();
    if (this.#entries.length > 0) return this.#entries[0].mapping.externalAddress;
    const { gateway, internal } = await this.#resolve();
    for (const method of this.#methods) {
      try {
        const signal = AbortSignal.timeout(this.#timeoutMs);
        let address: string | null = null;
        if (method === "nat-pmp" && gateway) {
          address = await this.#natPmp(gateway, internal).externalAddress({ signal });
        }
        if (method === "upnp" && internal) {
          address = await this.#upnpClient(gateway, internal).externalAddress({ signal });
        }
        if (address !== null && (this.#options.allowReservedExternal || !isReservedIPv4(address))) return address;
      } catch (error) {
        this.#log(`${method}: no external address: ${describe(error)}`);
      }
    }
    return null;
  }

  /**
   * Stops renewals and deletes every mapping this mapper made, in parallel,
   * within about 3 seconds whatever the router does (best effort: a router
   * that does not answer keeps the mapping until its lifetime ends). Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** Same as {@linkcode PortMapper.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    const entries = this.#entries.splice(0);
    for (const e of entries) clearTimeout(e.timer);
    const budget = AbortSignal.timeout(CLOSE_BUDGET_MS);
    await Promise.allSettled(entries.map(async (e) => {
      try {
        await this.#delete(e.mapping, e.nonce, budget);
        this.#log(`${e.mapping.method}: deleted ${describeMapping(e.mapping)}`);
      } catch (error) {
        this.#log(`${e.mapping.method}: could not delete ${describeMapping(e.mapping)}: ${describe(error)}`);
      }
    }));
  }

  async #mapAny(
    protocol: MappingProtocol,
    internalPort: number,
    preferred: number,
    methods: MappingMethod[],
  ): Promise<Granted> {
    const errors: unknown[] = [];
    for (const method of methods) {
      this.#assertOpen();
      try {
        const granted = await this.#mapWith(method, protocol, internalPort, preferred);
        this.#log(`${method}: mapped ${describeMapping(granted.mapping)}`);
        return granted;
      } catch (error) {
        if (this.#options.signal?.aborted) throw this.#options.signal.reason;
        this.#log(`${method}: could not map ${protocol} ${internalPort}: ${describe(error)}`);
        errors.push(error);
      }
    }
    const detail = errors.map((e, i) => `${methods[i]}: ${describe(e)}`).join("; ");
    throw new PortMappingError(
      `could not map ${protocol} port ${internalPort} with ${methods.join(", ")}: ${detail}`,
      { reason: "ALL_METHODS_FAILED" },
      { cause: new AggregateError(errors, `every port-mapping method failed for ${protocol} ${internalPort}`) },
    );
  }

  async #mapWith(
    method: MappingMethod,
    protocol: MappingProtocol,
    internalPort: number,
    externalPort: number,
    renew?: { nonce?: Uint8Array; externalAddress: string },
  ): Promise<Granted> {
    const budget = AbortSignal.timeout(this.#timeoutMs * 2);
    const signal = this.#options.signal ? AbortSignal.any([this.#options.signal, budget]) : budget;
    try {
      return await this.#mapWithin(method, protocol, internalPort, externalPort, signal, renew);
    } catch (error) {
      // The whole attempt's budget ran out between two exchanges: a timeout of the method, not an abort by the caller.
      if (budget.aborted && !this.#options.signal?.aborted && !(error instanceof PortMappingError)) {
        throw new PortMappingError(
          `${method}: no mapping within ${this.#timeoutMs * 2} ms`,
          { method, reason: "TIMEOUT" },
          { cause: error },
        );
      }
      throw error;
    }
  }

  async #mapWithin(
    method: MappingMethod,
    protocol: MappingProtocol,
    internalPort: number,
    externalPort: number,
    signal: AbortSignal,
    renew?: { nonce?: Uint8Array; externalAddress: string },
  ): Promise<Granted> {
    const { gateway, internal } = await this.#resolve();
    const lifetimeSeconds = this.#lifetime;
    if (method === "pcp" || method === "nat-pmp") {
      if (!gateway) throw new PortMappingError(`${method}: no gateway known`, { method, reason: "NO_GATEWAY" });
      if (!internal) {
        throw new PortMappingError(`${method}: no local address in ${gateway}'s network`, {
          method,
          reason: "NO_INTERNAL_ADDRESS",
        });
      }
    }
    if (method === "pcp") {
      const pcp = this.#pcpClient(gateway!, internal!);
      const r = await pcp.map({
        protocol,
        internalPort,
        suggestedExternalPort: externalPort,
        suggestedExternalAddress: renew?.externalAddress,
        lifetimeSeconds,
        nonce: renew?.nonce,
        signal,
      });
      const mapping = this.#mapping(
        "pcp",
        protocol,
        internalPort,
        r.externalAddress,
        r.externalPort,
        r.lifetimeSeconds,
      );
      assertGranted("pcp", r.lifetimeSeconds);
      if (!renew) await this.#refuseReserved(mapping, r.nonce);
      return { mapping, nonce: r.nonce, epochValid: r.epochValid };
    }
    if (method === "nat-pmp") {
      const pmp = this.#natPmp(gateway!, internal);
      // Asked on renewal too: the router's public address may have changed (RFC 6886 section 3.2.1).
      const address = await pmp.externalAddress({ signal });
      this.#assertNotReserved("nat-pmp", address);
      const r = await pmp.map({ protocol, internalPort, suggestedExternalPort: externalPort, lifetimeSeconds, signal });
      assertGranted("nat-pmp", r.lifetimeSeconds);
      const mapping = this.#mapping("nat-pmp", protocol, internalPort, address, r.externalPort, r.lifetimeSeconds);
      return { mapping, epochValid: r.epochValid };
    }
    if (!internal) {
      throw new PortMappingError("upnp: no local address to map to", { method, reason: "NO_INTERNAL_ADDRESS" });
    }
    const upnp = this.#upnpClient(gateway, internal);
    const address = await upnp.externalAddress({ signal });
    this.#assertNotReserved("upnp", address);
    const r = await upnp.map({
      protocol,
      internalPort,
      suggestedExternalPort: externalPort,
      lifetimeSeconds,
      description: this.#options.description,
      renew: renew !== undefined,
      signal,
    });
    return {
      mapping: this.#mapping("upnp", protocol, internalPort, address, r.externalPort, r.lifetimeSeconds),
      epochValid: true,
    };
  }

  #mapping(
    method: MappingMethod,
    protocol: MappingProtocol,
    internalPort: number,
    externalAddress: string,
    externalPort: number,
    lifetimeSeconds: number,
  ): PortMapping {
    const expiresAt = lifetimeSeconds === 0 ? Infinity : Date.now() + lifetimeSeconds * 1000;
    return { protocol, internalPort, externalAddress, externalPort, method, lifetimeSeconds, expiresAt };
  }

  #assertNotReserved(method: MappingMethod, address: string): void {
    if (this.#options.allowReservedExternal || !isReservedIPv4(address)) return;
    throw new PortMappingError(
      `${method}: the gateway's external address ${address} is private or reserved (the router is behind ` +
        `another NAT, or an IGD "not connected"); set allowReservedExternal to use it anyway`,
      { method, reason: "RESERVED_EXTERNAL_ADDRESS" },
    );
  }

  async #refuseReserved(mapping: PortMapping, nonce?: Uint8Array): Promise<void> {
    try {
      this.#assertNotReserved(mapping.method, mapping.externalAddress);
    } catch (error) {
      await this.#delete(mapping, nonce, AbortSignal.timeout(this.#timeoutMs)).catch(() => {});
      throw error;
    }
  }

  async #delete(mapping: PortMapping, nonce: Uint8Array | undefined, signal: AbortSignal): Promise<void> {
    const { gateway, internal } = await this.#resolve();
    if (mapping.method === "pcp") {
      await this.#pcpClient(gateway!, internal!).delete({ ...mapping, nonce: nonce! }, { signal });
    } else if (mapping.method === "nat-pmp") {
      await this.#natPmp(gateway!, internal).delete(mapping, { signal });
    } else {
      await this.#upnpClient(gateway, internal!).delete(mapping, { signal });
    }
  }

  // --- renewal ---

  #scheduleRenewal(entry: Entry, delayMs?: number): void {
    clearTimeout(entry.timer);
    if (this.#closed || entry.mapping.lifetimeSeconds === 0) return;
    // Half the lifetime (RFC 6886 section 3.3 and RFC 6887 section 11.2.1 both renew well before expiry).
    const delay = delayMs ?? entry.mapping.lifetimeSeconds * 500;
    const timer = setTimeout(() => void this.#renew(entry), delay);
    Deno.unrefTimer(timer);
    entry.timer = timer;
  }

  async #renew(entry: Entry): Promise<void> {
    if (this.#closed || entry.busy || !this.#entries.includes(entry)) return;
    entry.busy = true;
    const before = { ...entry.mapping };
    try {
      const renewSame = () =>
        this.#mapWith(before.method, before.protocol, before.internalPort, before.externalPort, {
          nonce: entry.nonce,
          externalAddress: before.externalAddress,
        });
      const others = this.#methods.filter((m) => m !== before.method);
      let granted: Granted;
      if (entry.failures < RENEW_TRIES_BEFORE_SWITCH || others.length === 0) {
        granted = await renewSame();
      } else {
        // The method keeps failing: the other methods, in order, for the same public port; then this one again.
        try {
          granted = await this.#mapAny(before.protocol, before.internalPort, before.externalPort, others);
          this.#log(`moved ${describeMapping(before)} from ${before.method} to ${granted.mapping.method}`);
          // Best effort: the old mapping should not come back with the gateway that lost it.
          this.#delete(before, entry.nonce, AbortSignal.timeout(this.#timeoutMs)).catch(() => {});
        } catch {
          granted = await renewSame();
        }
      }
      if (this.#closed || !this.#entries.includes(entry)) {
        await this.#delete(granted.mapping, granted.nonce, AbortSignal.timeout(this.#timeoutMs)).catch(() => {});
        return;
      }
      entry.mapping = granted.mapping;
      entry.nonce = granted.nonce ?? entry.nonce;
      entry.failures = 0;
      this.#log(`${granted.mapping.method}: renewed ${describeMapping(granted.mapping)}`);
      this.#scheduleRenewal(entry);
      const m = granted.mapping;
      if (
        m.method !== before.method || m.externalPort !== before.externalPort ||
        m.externalAddress !== before.externalAddress || m.lifetimeSeconds !== before.lifetimeSeconds
      ) this.#notify(m);
      if (!granted.epochValid) this.#remapSameMethod(entry);
    } catch (error) {
      if (this.#closed) return;
      entry.failures++;
      const delay = Math.min(RETRY_FIRST_MS * 2 ** (entry.failures - 1), RETRY_MAX_MS);
      this.#log(
        `${before.method}: renewal ${entry.failures} of ${describeMapping(before)} failed, next try in ${delay} ms: ${
          describe(error)
        }`,
      );
      this.#scheduleRenewal(entry, delay);
    } finally {
      entry.busy = false;
    }
  }

  /** The gateway lost its state (its epoch went back): every other mapping of that method is renewed now. */
  #remapSameMethod(except: Entry): void {
    this.#log(`${except.mapping.method}: the gateway's epoch shows it lost its mappings; mapping the others again`);
    for (const e of this.#entries) {
      if (e !== except && e.mapping.method === except.mapping.method) this.#scheduleRenewal(e, 0);
    }
  }

  #notify(mapping: PortMapping): void {
    try {
      this.onChange?.({ ...mapping });
    } catch (error) {
      this.#log(`onChange threw: ${describe(error)}`);
    }
  }

  // --- set-up ---

  #resolve(): Promise<{ gateway: string | null; internal: string | null }> {
    this.#setup ??= (async () => {
      let gateway = this.#options.gateway ?? null;
      if (gateway === null) {
        try {
          gateway = parseDefaultGateway(await Deno.readTextFile("/proc/net/route"));
        } catch (error) {
          this.#log(`cannot read /proc/net/route: ${describe(error)}`);
        }
      }
      const internal = this.#options.internalAddress ?? localAddressFor(gateway, (m) => this.#log(m));
      this.#log(`gateway ${gateway ?? "unknown"}, internal address ${internal ?? "unknown"}`);
      return { gateway, internal };
    })();
    return this.#setup;
  }

  #pcpClient(gateway: string, internal: string): PcpClient {
    return this.#pcp ??= new PcpClient({
      gateway,
      internalAddress: internal,
      timeoutMs: this.#timeoutMs,
      initialTimeoutMs: PCP_FIRST_RETRANSMIT_MS,
    });
  }

  #natPmp(gateway: string, internal: string | null): NatPmpClient {
    return this.#pmp ??= new NatPmpClient({ gateway, localAddress: internal ?? "0.0.0.0", timeoutMs: this.#timeoutMs });
  }

  #upnpClient(gateway: string | null, internal: string): UpnpClient {
    return this.#upnp ??= new UpnpClient({
      internalAddress: internal,
      gateway: gateway ?? undefined,
      timeoutMs: this.#timeoutMs,
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new PortMappingError("port mapper is closed", { reason: "CLOSED" });
  }

  #log(msg: string): void {
    try {
      this.#options.log?.(`portmap: ${msg}`);
    } catch { /* a logger's failure is not ours */ }
  }
}

/** A success with lifetime 0 grants nothing (PCP and NAT-PMP delete with lifetime 0): not a mapping to keep. */
function assertGranted(method: MappingMethod, lifetimeSeconds: number): void {
  if (lifetimeSeconds > 0) return;
  throw new PortMappingError(`${method}: the gateway answered success with lifetime 0 (no mapping)`, {
    method,
    reason: "ZERO_LIFETIME",
  });
}

function describeMapping(m: PortMapping): string {
  return `${m.protocol} ${m.internalPort} -> ${m.externalAddress}:${m.externalPort} for ${m.lifetimeSeconds} s`;
}

/** This host's IPv4 address in the gateway's subnet (or the first non-loopback IPv4 one when the gateway is unknown). */
function localAddressFor(gateway: string | null, log: (msg: string) => void): string | null {
  let interfaces: Deno.NetworkInterfaceInfo[];
  try {
    interfaces = Deno.networkInterfaces(); // needs --allow-sys=networkInterfaces
  } catch (error) {
    log(`cannot list the network interfaces (pass internalAddress instead): ${describe(error)}`);
    return null;
  }
  const v4 = interfaces.filter((i) => i.family === "IPv4" && !i.address.startsWith("127."));
  if (gateway) {
    const match = v4.find((i) => {
      const prefix = Number(i.cidr.split("/")[1]);
      return Number.isInteger(prefix) && inSubnet(gateway, i.address, prefix);
    });
    return match?.address ?? null;
  }
  return v4[0]?.address ?? null;
}
