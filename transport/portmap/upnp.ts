/**
 * A UPnP IGD client (UPnP Device Architecture 1.1 and the WANIPConnection
 * v1/v2 services): SSDP discovery (M-SEARCH), the device description, and
 * the SOAP actions AddPortMapping / AddAnyPortMapping (with a lease),
 * DeletePortMapping and GetExternalIPAddress. The codecs here (SSDP
 * responses, descriptions, SOAP envelopes) throw only
 * {@linkcode MalformedPortMapMessageError} on bad input.
 *
 * Why not the UPnP client of `@achingbrain/nat-port-mapper` 4.0.5 (it loads
 * and talks to miniupnpd in Deno 2.9; checked in the lab): it speaks only
 * IGD v2 (`getGateway` refuses an `InternetGatewayDevice:1`, the kind most
 * home routers are, and every action goes to `WANIPConnection:2`); it raises
 * every lease to at least 3600 s (a 10 s lease was granted as 3598 s), so a
 * short lease cannot be asked for; and its `unmap` sends DeletePortMapping
 * with the internal port as the external one and an empty protocol, so a
 * mapping whose external port differs is never deleted (in the lab it
 * reported success and the mapping stayed). Its SSDP search binds port 1900
 * on every interface and cannot be pointed at one gateway. The XML is read
 * with fast-xml-parser.
 *
 * An IGD whose external address is private or reserved (miniupnpc calls it
 * "not connected") is refused unless `allowReservedExternal` is set: a
 * mapping there does not make the host reachable (double NAT). The NAT lab
 * needs the option, its WAN being 203.0.113.0/24.
 *
 * @module
 */

import { XMLParser } from "fast-xml-parser";
import { describe, exchange } from "./_exchange.ts";
import { assertPort, isIPv4, parseIPv4 } from "./_ip.ts";
import { MalformedPortMapMessageError, PortMappingError } from "./errors.ts";

// --- Spec constants ---

/** The SSDP multicast group and port (UDA 1.1 section 1.1.2). */
export const SSDP_ADDRESS = { hostname: "239.255.255.250", port: 1900 } as const;
/** The device type searched for: every IGD v1 and v2 answers v1 (UDA 1.1 section 1.3.2, version compatibility). */
export const IGD_DEVICE_TYPE = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/** The services that map ports, most capable first. */
export const WAN_CONNECTION_SERVICES = [
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1",
] as const;
/** The largest SSDP datagram or XML document read, bytes. */
const MAX_SSDP_SIZE = 8 * 1024, MAX_XML_SIZE = 128 * 1024;
/** WANIPConnection error codes this client acts on (WANIPConnection:2 section 2.5). */
const CONFLICT_IN_MAPPING_ENTRY = 718, ONLY_PERMANENT_LEASES_SUPPORTED = 725;

// --- SSDP codec ---

/** An SSDP search answer (UDA 1.1 section 1.3.3): the headers that matter. */
export interface SsdpResponse {
  /** The description's URL (LOCATION). */
  location: string;
  /** The search target answered (ST). */
  st: string;
  /** The unique service name (USN). */
  usn: string;
  /** Every header, names lower-cased. */
  headers: Record<string, string>;
}

/** Encodes an M-SEARCH request (UDA 1.1 section 1.3.2) for `st`, with MX seconds of answer delay. */
export function encodeSsdpSearch(st: string, mx = 1): Uint8Array {
  if (/[\r\n]/.test(st)) throw new SyntaxError(`st must be one line, got ${JSON.stringify(st)}`);
  return new TextEncoder().encode(
    `M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: ${mx}\r\nST: ${st}\r\n\r\n`,
  );
}

/**
 * Decodes an SSDP search answer: `HTTP/1.1 200 OK`, header lines, an empty
 * line; LOCATION must be an http URL and ST present.
 *
 * @throws {MalformedPortMapMessageError} for anything else.
 *
 * @example
 * ```ts
 * import { decodeSsdpResponse } from "./upnp.ts";
 * const text = "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: http://10.0.1.1:2189/rootDesc.xml\r\n\r\n";
 * const r = decodeSsdpResponse(new TextEncoder().encode(text));
 * if (r.location !== "http://10.0.1.1:2189/rootDesc.xml") throw new Error("location");
 * ```
 */
export function decodeSsdpResponse(bytes: Uint8Array): SsdpResponse {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes must be a Uint8Array, got ${typeof bytes}`);
  if (bytes.length > MAX_SSDP_SIZE) ssdpMalformed(`length is ${bytes.length}, expected <= ${MAX_SSDP_SIZE}`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    ssdpMalformed("not UTF-8 text");
  }
  const lines = text.split("\r\n");
  if (!/^HTTP\/1\.[01] 200( .*)?$/.test(lines[0])) {
    ssdpMalformed(`status line is ${JSON.stringify(lines[0].slice(0, 40))}`);
  }
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) ssdpMalformed("no empty line ends the headers");
  const headers: Record<string, string> = {};
  for (const line of text.slice(0, end).split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) ssdpMalformed(`header line ${JSON.stringify(line.slice(0, 40))} has no name`);
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const location = headers["location"];
  if (!location) ssdpMalformed("LOCATION is missing");
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    ssdpMalformed(`LOCATION ${JSON.stringify(location.slice(0, 80))} is not a URL`);
  }
  if (url.protocol !== "http:") ssdpMalformed(`LOCATION ${JSON.stringify(location.slice(0, 80))} is not http`);
  if (headers["st"] === undefined) ssdpMalformed("ST is missing");
  return { location, st: headers["st"], usn: headers["usn"] ?? "", headers };
}

function ssdpMalformed(detail: string): never {
  throw new MalformedPortMapMessageError(`Cannot decode SSDP response: ${detail}`);
}

// --- Description and SOAP codecs ---

/** The WAN connection service of an IGD: where to send SOAP actions. */
export interface IgdService {
  /** The service type (one of {@linkcode WAN_CONNECTION_SERVICES}). */
  serviceType: string;
  /** The absolute control URL. */
  controlUrl: string;
}

const parser = new XMLParser({
  removeNSPrefix: true,
  ignoreAttributes: true,
  parseTagValue: false,
  processEntities: true,
  isArray: (name) => name === "device" || name === "service",
});

function parseXml(xml: string, what: string): Record<string, unknown> {
  if (typeof xml !== "string") throw new TypeError(`xml must be a string, got ${typeof xml}`);
  if (xml.length > MAX_XML_SIZE) {
    throw new MalformedPortMapMessageError(
      `Cannot decode ${what}: length is ${xml.length}, expected <= ${MAX_XML_SIZE}`,
    );
  }
  try {
    const doc = parser.parse(xml, true);
    if (doc === null || typeof doc !== "object") throw new Error("no document");
    return doc as Record<string, unknown>;
  } catch (error) {
    throw new MalformedPortMapMessageError(`Cannot decode ${what}: not well-formed XML: ${describe(error)}`, {
      cause: error,
    });
  }
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

function text(value: unknown): string | undefined {
  if (typeof value === "string") return value.trim();
  if (typeof value === "number") return String(value);
  return undefined;
}

/**
 * Finds the WAN connection service in an IGD's device description (UDA 1.1
 * section 2.3): the first WANIPConnection:2, else WANIPConnection:1, else
 * WANPPPConnection:1 anywhere in the device tree; its controlURL resolved
 * against URLBase or the description's own URL.
 *
 * @throws {MalformedPortMapMessageError} for a description that does not parse or has no such service.
 */
export function decodeIgdDescription(xml: string, location: string): IgdService {
  const doc = parseXml(xml, "IGD description");
  const root = record(doc["root"]);
  if (!root) throw new MalformedPortMapMessageError("Cannot decode IGD description: no <root> element");
  const services: Array<Record<string, unknown>> = [];
  const walk = (devices: unknown, depth: number) => {
    if (!Array.isArray(devices) || depth > 8) return;
    for (const device of devices.map(record)) {
      if (!device) continue;
      const list = record(device["serviceList"]);
      for (const service of Array.isArray(list?.["service"]) ? list["service"] : []) {
        const s = record(service);
        if (s) services.push(s);
      }
      walk(record(device["deviceList"])?.["device"], depth + 1);
    }
  };
  walk(root["device"], 0);
  for (const wanted of WAN_CONNECTION_SERVICES) {
    const service = services.find((s) => text(s["serviceType"]) === wanted);
    if (!service) continue;
    const control = text(service["controlURL"]);
    if (!control) throw new MalformedPortMapMessageError(`Cannot decode IGD description: ${wanted} has no controlURL`);
    let controlUrl: URL;
    try {
      controlUrl = new URL(control, text(root["URLBase"]) || location);
    } catch {
      throw new MalformedPortMapMessageError(`Cannot decode IGD description: controlURL ${JSON.stringify(control)}`);
    }
    if (controlUrl.protocol !== "http:") {
      throw new MalformedPortMapMessageError(`Cannot decode IGD description: controlURL ${controlUrl} is not http`);
    }
    return { serviceType: wanted, controlUrl: controlUrl.href };
  }
  throw new MalformedPortMapMessageError(
    "Cannot decode IGD description: no WANIPConnection or WANPPPConnection service",
  );
}

/** XML-escapes text for an element's content. */
function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Encodes a SOAP 1.1 action request (UDA 1.1 section 3.2.1).
 *
 * @param serviceType The service's type URN.
 * @param action The action name (`AddPortMapping`).
 * @param args The arguments in the order the service declares them.
 * @returns The envelope text.
 */
export function encodeSoapRequest(serviceType: string, action: string, args: Array<[string, string | number]>): string {
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(action)) throw new SyntaxError(`action is not a name: ${action}`);
  const body = args.map(([name, value]) => {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) throw new SyntaxError(`argument is not a name: ${name}`);
    return `<${name}>${escapeXml(String(value))}</${name}>`;
  }).join("");
  return `<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ` +
    `s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>` +
    `<u:${action} xmlns:u="${escapeXml(serviceType)}">${body}</u:${action}></s:Body></s:Envelope>\r\n`;
}

/** A decoded SOAP answer: the action's output arguments, or a UPnP error (UDA 1.1 section 3.2.2). */
export type SoapResponse =
  | { ok: true; values: Record<string, string> }
  | { ok: false; errorCode: number; errorDescription: string };

/**
 * Decodes a SOAP answer to `action`: `<actionResponse>`'s children, or a
 * `Fault` with a `UPnPError`.
 *
 * @throws {MalformedPortMapMessageError} for anything else.
 */
export function decodeSoapResponse(xml: string, action: string): SoapResponse {
  const doc = parseXml(xml, `SOAP response to ${action}`);
  const body = record(record(doc["Envelope"])?.["Body"]);
  if (!body) throw new MalformedPortMapMessageError(`Cannot decode SOAP response to ${action}: no Envelope/Body`);
  const fault = record(body["Fault"]);
  if (fault) {
    const error = record(record(fault["detail"])?.["UPnPError"]);
    const code = Number(text(error?.["errorCode"]));
    if (!error || !Number.isInteger(code)) {
      throw new MalformedPortMapMessageError(`Cannot decode SOAP response to ${action}: a Fault without a UPnPError`);
    }
    return { ok: false, errorCode: code, errorDescription: text(error["errorDescription"]) ?? "" };
  }
  const response = body[`${action}Response`];
  if (response === undefined) {
    throw new MalformedPortMapMessageError(`Cannot decode SOAP response to ${action}: no ${action}Response`);
  }
  const values: Record<string, string> = {};
  for (const [name, value] of Object.entries(record(response) ?? {})) {
    const t = text(value);
    if (t !== undefined) values[name] = t;
  }
  return { ok: true, values };
}

// --- Client ---

/** Options of an {@linkcode UpnpClient}. */
export interface UpnpClientOptions {
  /** This host's IPv4 address on the gateway's network: the internal client of every mapping. */
  internalAddress: string;
  /** The gateway's IPv4 address: only an IGD whose description is served from it is used. Default: any that answers. */
  gateway?: string;
  /** The description's URL, skipping SSDP. */
  location?: string;
  /** Budget of discovery and of each HTTP request, ms; default 2000. */
  timeoutMs?: number;
}

/** A mapping an IGD granted. */
export interface UpnpMapResult {
  /** The external port. */
  externalPort: number;
  /** The lease, seconds (0: the IGD only takes permanent mappings, error 725). */
  lifetimeSeconds: number;
}

/**
 * A UPnP IGD client: finds the IGD once (SSDP, then the description) and
 * sends SOAP actions to its WAN connection service.
 *
 * @example
 * ```ts ignore
 * const upnp = new UpnpClient({ internalAddress: "10.0.1.10", gateway: "10.0.1.1" });
 * const { externalPort } = await upnp.map({ protocol: "udp", internalPort: 4000, lifetimeSeconds: 7200 });
 * await upnp.delete({ protocol: "udp", externalPort });
 * ```
 */
export class UpnpClient {
  /** The internal client address. */
  readonly internalAddress: string;
  #gateway: string | undefined;
  #location: string | undefined;
  #timeoutMs: number;
  #service: IgdService | null = null;

  /** Creates a client; throws SyntaxError for addresses that are not IPv4 or a bad location. */
  constructor(options: UpnpClientOptions) {
    parseIPv4(options.internalAddress, "internalAddress");
    if (options.gateway !== undefined) parseIPv4(options.gateway, "gateway");
    if (options.location !== undefined && new URL(options.location).protocol !== "http:") {
      throw new SyntaxError(`location must be an http URL, got ${options.location}`);
    }
    this.internalAddress = options.internalAddress;
    this.#gateway = options.gateway;
    this.#location = options.location;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
  }

  /** The IGD's WAN connection service, found on first use. */
  async service(signal?: AbortSignal): Promise<IgdService> {
    if (this.#service) return this.#service;
    const location = this.#location ?? await this.#discover(signal);
    const xml = await this.#http("GET", location, undefined, undefined, "device description", signal);
    if (xml.status !== 200) {
      throw new PortMappingError(`upnp: ${location} answered HTTP ${xml.status}`, {
        method: "upnp",
        code: xml.status,
        reason: "HTTP_ERROR",
      });
    }
    this.#service = decodeIgdDescription(xml.body, location);
    return this.#service;
  }

  /**
   * GetExternalIPAddress.
   *
   * @throws {PortMappingError} on a UPnP error, no IGD (`NO_GATEWAY`), or `TIMEOUT`.
   */
  async externalAddress(options: { signal?: AbortSignal } = {}): Promise<string> {
    const values = await this.#action("GetExternalIPAddress", [], options.signal);
    const address = values["NewExternalIPAddress"] ?? "";
    if (!isIPv4(address)) {
      throw new PortMappingError(`upnp: the IGD has no external IPv4 address (it said ${JSON.stringify(address)})`, {
        method: "upnp",
        reason: "NOT_CONNECTED",
      });
    }
    return address;
  }

  /**
   * Maps a port: AddAnyPortMapping on an IGD v2 (the IGD picks a free port
   * near the suggested one), AddPortMapping on v1 (another random port on
   * ConflictInMappingEntry, up to 3 tries; a permanent lease on
   * OnlyPermanentLeasesSupported). Mapping the same external port again with
   * `renew` renews its lease.
   *
   * @throws {PortMappingError} with the UPnP error code and description, `NO_GATEWAY`, or `TIMEOUT`.
   */
  async map(request: {
    protocol: "udp" | "tcp";
    internalPort: number;
    suggestedExternalPort?: number;
    lifetimeSeconds: number;
    description?: string;
    renew?: boolean;
    signal?: AbortSignal;
  }): Promise<UpnpMapResult> {
    assertPort(request.internalPort, "internalPort");
    let externalPort = request.suggestedExternalPort ?? request.internalPort;
    assertPort(externalPort, "suggestedExternalPort");
    const service = await this.service(request.signal);
    let lease = request.lifetimeSeconds;
    const useAny = !request.renew && service.serviceType.endsWith(":2");
    for (let attempt = 0;; attempt++) {
      const action = useAny ? "AddAnyPortMapping" : "AddPortMapping";
      try {
        const values = await this.#action(action, [
          ["NewRemoteHost", ""],
          ["NewExternalPort", externalPort],
          ["NewProtocol", request.protocol.toUpperCase()],
          ["NewInternalPort", request.internalPort],
          ["NewInternalClient", this.internalAddress],
          ["NewEnabled", 1],
          ["NewPortMappingDescription", request.description ?? "nzcore"],
          ["NewLeaseDuration", lease],
        ], request.signal);
        if (useAny) {
          const reserved = Number(values["NewReservedPort"]);
          if (!Number.isInteger(reserved) || reserved < 1 || reserved > 65535) {
            throw new MalformedPortMapMessageError(
              `Cannot decode SOAP response to AddAnyPortMapping: NewReservedPort is ${values["NewReservedPort"]}`,
            );
          }
          externalPort = reserved;
        }
        return { externalPort, lifetimeSeconds: lease };
      } catch (error) {
        if (!(error instanceof PortMappingError) || request.renew) throw error;
        if (error.code === CONFLICT_IN_MAPPING_ENTRY && !useAny && attempt < 3) {
          externalPort = 1024 + Math.floor(Math.random() * (65536 - 1024));
          continue;
        }
        if (error.code === ONLY_PERMANENT_LEASES_SUPPORTED && lease !== 0) {
          lease = 0; // a v1 IGD without leases: permanent, deleted by close()
          continue;
        }
        throw error;
      }
    }
  }

  /**
   * DeletePortMapping of an external port.
   *
   * @throws {PortMappingError} with the UPnP error code (714 NoSuchEntryInArray when it is gone), or `TIMEOUT`.
   */
  async delete(mapping: { protocol: "udp" | "tcp"; externalPort: number }, options: { signal?: AbortSignal } = {}) {
    assertPort(mapping.externalPort, "externalPort");
    await this.#action("DeletePortMapping", [
      ["NewRemoteHost", ""],
      ["NewExternalPort", mapping.externalPort],
      ["NewProtocol", mapping.protocol.toUpperCase()],
    ], options.signal);
  }

  async #discover(signal?: AbortSignal): Promise<string> {
    const gateway = this.#gateway;
    // Multicast to the group, and unicast to the gateway when it is known (UDA 1.1 allows unicast M-SEARCH).
    const to = [SSDP_ADDRESS, ...(gateway ? [{ hostname: gateway, port: SSDP_ADDRESS.port }] : [])];
    return await exchange({
      method: "upnp",
      gateway: gateway ?? SSDP_ADDRESS.hostname,
      port: SSDP_ADDRESS.port,
      localAddress: this.internalAddress,
      request: encodeSsdpSearch(IGD_DEVICE_TYPE),
      to,
      from: (from) => gateway === undefined || from.hostname === gateway,
      delays: [250, 500, 1000],
      timeoutMs: this.#timeoutMs,
      signal,
      what: "an SSDP search for an InternetGatewayDevice",
      accept: (data) => {
        const r = decodeSsdpResponse(data);
        if (!/InternetGatewayDevice|WANIPConnection|WANPPPConnection/.test(r.st)) return undefined;
        // Only a description served by the gateway itself: another host on the LAN could answer too.
        if (gateway !== undefined && new URL(r.location).hostname !== gateway) return undefined;
        return r.location;
      },
    }).catch((error) => {
      if (error instanceof PortMappingError && error.reason === "TIMEOUT") {
        throw new PortMappingError(
          `upnp: no InternetGatewayDevice answered SSDP${
            gateway ? ` from ${gateway}` : ""
          } within ${this.#timeoutMs} ms`,
          { method: "upnp", reason: "NO_GATEWAY" },
          { cause: error },
        );
      }
      throw error;
    });
  }

  async #action(action: string, args: Array<[string, string | number]>, signal?: AbortSignal) {
    const service = await this.service(signal);
    const body = encodeSoapRequest(service.serviceType, action, args);
    const answer = await this.#http(
      "POST",
      service.controlUrl,
      body,
      {
        "content-type": 'text/xml; charset="utf-8"',
        "soapaction": `"${service.serviceType}#${action}"`,
      },
      action,
      signal,
      // A router that rebooted may serve its IGD on another port: find it again next time.
      () => this.#service = null,
    );
    if (answer.status !== 200 && answer.status !== 500) {
      throw new PortMappingError(`upnp: ${action} answered HTTP ${answer.status}`, {
        method: "upnp",
        code: answer.status,
        reason: "HTTP_ERROR",
      });
    }
    const decoded = decodeSoapResponse(answer.body, action);
    if (!decoded.ok) {
      throw new PortMappingError(
        `upnp: ${action} failed: ${decoded.errorCode} ${decoded.errorDescription}`,
        {
          method: "upnp",
          code: decoded.errorCode,
          reason: decoded.errorDescription || `UPnPError ${decoded.errorCode}`,
        },
      );
    }
    return decoded.values;
  }

  async #http(
    method: string,
    url: string,
    body: string | undefined,
    headers: Record<string, string> | undefined,
    what: string,
    signal?: AbortSignal,
    onUnreachable?: () => void,
  ): Promise<{ status: number; body: string }> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const all = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      const response = await fetch(url, { method, body, headers, signal: all, redirect: "error" });
      const reader = response.body?.getReader();
      const chunks: Uint8Array[] = [];
      let size = 0;
      while (reader) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (size > MAX_XML_SIZE) {
          await reader.cancel();
          throw new MalformedPortMapMessageError(`Cannot decode ${what}: longer than ${MAX_XML_SIZE} bytes`);
        }
        chunks.push(value);
      }
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) bytes.set(c, (at += c.length) - c.length);
      return { status: response.status, body: new TextDecoder().decode(bytes) };
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (error instanceof MalformedPortMapMessageError) throw error;
      onUnreachable?.();
      const timedOut = timeout.aborted;
      throw new PortMappingError(
        `upnp: ${what} (${method} ${url}) ${timedOut ? `got no answer within ${this.#timeoutMs} ms` : "failed"}: ${
          describe(error)
        }`,
        { method: "upnp", reason: timedOut ? "TIMEOUT" : "HTTP_ERROR" },
        { cause: error },
      );
    }
  }
}
