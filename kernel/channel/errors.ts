/**
 * The errors of secure channels between nodes. Every way a handshake
 * (NZ-HANDSHAKE-01, spec/protocols/NZ-HANDSHAKE-01.md) can fail is a
 * {@linkcode HandshakeError} with a machine-readable `reason`; the two that
 * callers act on differently are subclasses, so `catch (e) { if (e instanceof
 * HandshakeError) ... }` sees them all. Everything that ends a channel
 * (NZ-CHANNEL-01, spec/protocols/NZ-CHANNEL-01.md) or one of its streams is a
 * {@linkcode ChannelError} with a machine-readable `code`.
 *
 * @module
 */

/**
 * Why a handshake failed (NZ-HANDSHAKE-01 section "Errors").
 *
 * - `timeout`: the handshake did not finish within its time limit.
 * - `aborted`: the caller's signal aborted it.
 * - `closed`: the peer closed the connection before the handshake finished.
 * - `io`: reading or writing a frame failed (the connection broke, a frame was too long).
 * - `oversized`: a handshake message is longer than the protocol allows.
 * - `malformed`: a message or its payload does not decode (wrong length, bad field, non-canonical encoding).
 * - `decrypt`: a message does not authenticate (tampered, replayed, out of order, or another protocol).
 * - `low_order_key`: a peer's X25519 key gives an all-zero shared secret.
 * - `bad_signature`: the peer's identity signature over its static key does not verify.
 * - `bad_version`: the responder chose a version that is not the highest one in common.
 * - `no_common_version`: the two sides share no protocol version ({@linkcode VersionMismatchError}).
 * - `peer_mismatch`: the peer is not the one expected ({@linkcode PeerMismatchError}).
 */
export type HandshakeFailure =
  | "timeout"
  | "aborted"
  | "closed"
  | "io"
  | "oversized"
  | "malformed"
  | "decrypt"
  | "low_order_key"
  | "bad_signature"
  | "bad_version"
  | "no_common_version"
  | "peer_mismatch";

/** A handshake failed; `reason` says why in one word, the message in a sentence. */
export class HandshakeError extends Error {
  /** Why the handshake failed. */
  readonly reason: HandshakeFailure;

  /** Creates the error from a reason code, a message and optional `options.cause`. */
  constructor(reason: HandshakeFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeError";
    this.reason = reason;
  }
}

/** The peer authenticated, but as another identity than the one expected. */
export class PeerMismatchError extends HandshakeError {
  /** The identity that answered: its node ID. */
  readonly actual: string;

  /** Creates the error from a message, the node ID that answered and optional `options.cause`. */
  constructor(message: string, actual: string, options?: ErrorOptions) {
    super("peer_mismatch", message, options);
    this.name = "PeerMismatchError";
    this.actual = actual;
  }
}

/** The two sides support no protocol version in common. */
export class VersionMismatchError extends HandshakeError {
  /** The versions this side supports, ascending. */
  readonly local: readonly number[];
  /** The versions the peer supports, ascending. */
  readonly remote: readonly number[];

  /** Creates the error from a message, both sides' versions and optional `options.cause`. */
  constructor(message: string, local: readonly number[], remote: readonly number[], options?: ErrorOptions) {
    super("no_common_version", message, options);
    this.name = "VersionMismatchError";
    this.local = local;
    this.remote = remote;
  }
}

/**
 * Why a channel or a stream ended (NZ-CHANNEL-01 section "Error codes"). The
 * first nine travel on the wire in RESET and GOAWAY; the last five are local.
 *
 * - `protocol_error`: a record breaks a rule of the protocol (unknown type, bad flags, unopened stream, ...).
 * - `internal_error`: the sender failed on its own.
 * - `flow_control_error`: the peer sent beyond its credit, or granted credit beyond the maximum window.
 * - `frame_size_error`: a frame or record has an impossible length (truncated, oversized).
 * - `refused_stream`: the stream was not accepted (too many streams, or the channel is closing).
 * - `cancel`: the application reset the stream.
 * - `message_too_large`: a message exceeds the receiver's maximum message size.
 * - `idle_timeout`: nothing arrived for the idle timeout.
 * - `counter_exhausted`: a frame counter reached its limit; the channel must be replaced.
 * - `auth_failed`: a frame does not authenticate (tampered, truncated, replayed, reordered, or another key).
 * - `connection_lost`: the connection broke, or ended without a GOAWAY.
 * - `closed`: the channel or stream was closed gracefully; nothing more can be sent or opened.
 * - `aborted`: this side aborted the channel.
 * - `timeout`: a graceful close did not finish in time.
 */
export type ChannelFailure =
  | "protocol_error"
  | "internal_error"
  | "flow_control_error"
  | "frame_size_error"
  | "refused_stream"
  | "cancel"
  | "message_too_large"
  | "idle_timeout"
  | "counter_exhausted"
  | "auth_failed"
  | "connection_lost"
  | "closed"
  | "aborted"
  | "timeout";

/** Options of {@linkcode ChannelError}: the standard `cause`, plus where the error came from. */
export interface ChannelErrorOptions extends ErrorOptions {
  /** Whether the peer reported it (a RESET or GOAWAY) rather than this side detecting it. */
  remote?: boolean;
  /** The stream it concerns; absent for the whole channel. */
  streamId?: number;
}

/** A channel or one of its streams ended; `code` says why in one word, the message in a sentence. */
export class ChannelError extends Error {
  /** Why it ended. */
  readonly code: ChannelFailure;
  /** Whether the peer reported it (in a RESET or GOAWAY). */
  readonly remote: boolean;
  /** The stream concerned, or undefined for the whole channel. */
  readonly streamId: number | undefined;

  /** Creates the error from a code, a message and options (`cause`, `remote`, `streamId`). */
  constructor(code: ChannelFailure, message: string, options: ChannelErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ChannelError";
    this.code = code;
    this.remote = options.remote ?? false;
    this.streamId = options.streamId;
  }
}
