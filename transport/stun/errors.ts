/**
 * The one error class of the STUN layer.
 *
 * @module
 */

import { TransportError } from "../errors.ts";
import type { DecodedStunMessage } from "./message.ts";

/**
 * A STUN message that does not decode (malformed, truncated, oversized), a
 * transaction that failed (timed out, aborted by the peer), or an error
 * response: then `code` and `reason` hold the ERROR-CODE (RFC 8489 section 14.8).
 */
export class StunError extends TransportError {
  /** The STUN error code of an error response (300-699), when there was one. */
  readonly code?: number;
  /** The reason phrase of an error response, when there was one. */
  readonly reason?: string;
  /** The error response itself, when there was one (a 401 or 438 carries the REALM and NONCE to retry with). */
  readonly response?: DecodedStunMessage;

  /** Creates the error from a message, and `code`/`reason`/`response` for an error response. */
  constructor(
    message: string,
    options?: ErrorOptions & { code?: number; reason?: string; response?: DecodedStunMessage },
  ) {
    super(message, options);
    this.name = "StunError";
    if (options?.code !== undefined) this.code = options.code;
    if (options?.reason !== undefined) this.reason = options.reason;
    if (options?.response !== undefined) this.response = options.response;
  }
}
