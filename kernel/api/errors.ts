/**
 * Maps errors to JSON responses with a stable `code` and a human `message`:
 * `{ "error": { "code": "...", "message": "..." } }`. A 500 never echoes an
 * internal message.
 *
 * @module
 */

import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  ConflictError,
  CorruptFileError,
  IntegrityError,
  NotFoundError,
  StorageFullError,
  StorageLockedError,
  WrongKeyError,
} from "../errors.ts";
import { ChannelError, HandshakeError, PeerMismatchError } from "../channel/errors.ts";
import { DialError, TransportError } from "../../transport/errors.ts";
import { PunchError } from "../peers/punch.ts";
import { RelayError } from "../peers/relay.ts";

/** The body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** Builds an error response. */
export function errorResponse(c: Context, status: ContentfulStatusCode, code: string, message: string): Response {
  return c.json({ error: { code, message } } satisfies ErrorBody, status);
}

/** The one error handler of the API app. */
export function onError(error: Error, c: Context): Response {
  if (error instanceof HTTPException) {
    const status = error.status as ContentfulStatusCode;
    if (status === 400 && /json/i.test(error.message)) {
      return errorResponse(c, 400, "malformed_json", "The request body is not valid JSON");
    }
    if (status === 415) {
      return errorResponse(
        c,
        415,
        "unsupported_media_type",
        "Send the body as JSON with Content-Type: application/json",
      );
    }
    if (status === 413) return errorResponse(c, 413, "body_too_large", "The request body is too large");
    return errorResponse(c, status, `http_${status}`, error.message || "Request failed");
  }
  if (error instanceof NotFoundError) return errorResponse(c, 404, "not_found", error.message);
  if (error instanceof ConflictError) return errorResponse(c, 409, "conflict", error.message);
  if (error instanceof WrongKeyError) return errorResponse(c, 403, "wrong_key", error.message);
  if (error instanceof CorruptFileError) return errorResponse(c, 400, "corrupt_file", error.message);
  if (error instanceof IntegrityError) {
    // The message names the record that failed (key parts included): it goes to the log, not to the client.
    console.error("nzcore: integrity error while serving", c.req.method, c.req.path, error);
    return errorResponse(c, 500, "integrity", "Stored data failed its integrity check; the node's log has the details");
  }
  if (error instanceof StorageLockedError) return errorResponse(c, 409, "locked", error.message);
  if (error instanceof StorageFullError) return errorResponse(c, 507, "storage_full", error.message);
  if (error instanceof PeerMismatchError) return errorResponse(c, 502, "peer_mismatch", error.message);
  if (error instanceof HandshakeError) return errorResponse(c, 502, "handshake_failed", error.message);
  if (error instanceof DialError) return errorResponse(c, 502, "peer_unreachable", error.message);
  if (error instanceof PunchError || error instanceof RelayError) {
    return errorResponse(c, 502, "peer_unreachable", error.message);
  }
  if (error instanceof TransportError) return errorResponse(c, 502, "transport_failed", error.message);
  if (error instanceof ChannelError) return errorResponse(c, 502, "channel_failed", error.message);
  if (error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return errorResponse(c, 504, "timeout", `The operation did not finish in time: ${error.message}`);
  }
  if (error instanceof RangeError || error instanceof SyntaxError) {
    return errorResponse(c, 400, "invalid_request", error.message);
  }
  console.error("nzcore: internal error while serving", c.req.method, c.req.path, error);
  return errorResponse(c, 500, "internal", "Internal error; the node's log has the details");
}
