/**
 * The few error classes the transport layer throws. Everything else uses the
 * built-in TypeError (wrong type), RangeError (value out of range) and
 * SyntaxError (unparsable address). An aborted dial rejects with the signal's
 * `reason`, as `fetch` does.
 *
 * @module
 */

/** A connection failed, broke or was used after it closed. The base class of the others here. */
export class TransportError extends Error {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransportError";
  }
}

/** A dial could not connect (refused, unreachable, name not resolved, handshake refused); `cause` holds the system error. */
export class DialError extends TransportError {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DialError";
  }
}

/** A listen found its address taken, by another process or another listener of this one. */
export class AddressInUseError extends TransportError {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AddressInUseError";
  }
}

/** The peer broke the rules of the stream: a truncated frame, a text WebSocket message, an overflowing buffer. */
export class ProtocolError extends TransportError {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/** A frame's length is above the `maxFrameSize` of the side that reads or writes it. */
export class FrameTooLargeError extends ProtocolError {
  /** The length that was announced or asked for, in bytes. */
  readonly size: number;
  /** The limit it broke, in bytes. */
  readonly maxFrameSize: number;

  /** Creates the error from a message, the offending `size` and the `maxFrameSize` it exceeds. */
  constructor(message: string, size: number, maxFrameSize: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "FrameTooLargeError";
    this.size = size;
    this.maxFrameSize = maxFrameSize;
  }
}
