/**
 * The one error class of the TURN client.
 *
 * @module
 */

import { StunError } from "../stun/errors.ts";

/**
 * A TURN request that failed: an error response (then `code` and `reason`
 * hold its ERROR-CODE, 401 for credentials the server refused, 437 for an
 * allocation it no longer knows), a transaction that timed out, a response
 * that lacks what it must carry, or an allocation used after it closed.
 */
export class TurnError extends StunError {
  /** Creates the error from a message, and `code`/`reason` for an error response. */
  constructor(message: string, options?: ErrorOptions & { code?: number; reason?: string }) {
    super(message, options);
    this.name = "TurnError";
  }
}
