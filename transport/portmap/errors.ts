/**
 * The two error classes of port mapping: a gateway that refused, did not
 * answer, or could not be found ({@linkcode PortMappingError}), and a message
 * from a gateway that breaks its protocol's format
 * ({@linkcode MalformedPortMapMessageError}, the only error the codecs throw
 * on bad bytes).
 *
 * @module
 */

import { ProtocolError, TransportError } from "../errors.ts";

/** A port-mapping method: PCP (RFC 6887), NAT-PMP (RFC 6886) or UPnP IGD. */
export type MappingMethod = "pcp" | "nat-pmp" | "upnp";

/**
 * A port mapping failed: the gateway refused (`code` is the protocol's result
 * or error code and `reason` its name from the spec, e.g. PCP `NO_RESOURCES`),
 * it did not answer in time (`reason` is `TIMEOUT`), or no gateway speaking
 * the method was found (`reason` is `NO_GATEWAY`). When every method of a
 * {@linkcode PortMapper} fails, `method` is undefined and `cause` is an
 * `AggregateError` of each method's error.
 */
export class PortMappingError extends TransportError {
  /** The method that failed, undefined when all of them did. */
  readonly method: MappingMethod | undefined;
  /** The protocol's numeric result or error code, when the gateway sent one. */
  readonly code: number | undefined;
  /** The spec's name of the failure (`NOT_AUTHORIZED`, `TIMEOUT`, `ConflictInMappingEntry`, ...). */
  readonly reason: string;

  /** Creates the error from a message and what failed. */
  constructor(
    message: string,
    details: { method?: MappingMethod; code?: number; reason: string },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "PortMappingError";
    this.method = details.method;
    this.code = details.code;
    this.reason = details.reason;
  }
}

/**
 * A gateway's message does not follow its protocol's format (truncated, too
 * long, wrong version, a reserved field set where the spec forbids it, a bad
 * option, unparsable XML). The decoders of PCP, NAT-PMP, SSDP and SOAP throw
 * only this error on bad input.
 */
export class MalformedPortMapMessageError extends ProtocolError {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MalformedPortMapMessageError";
  }
}
