/**
 * The few error classes the kernel throws. Everything else uses the built-in
 * TypeError, RangeError and SyntaxError. The API layer maps these to HTTP
 * statuses in one place (`kernel/api/errors.ts`).
 *
 * @module
 */

/** An AEAD tag, signature or MAC did not verify: the data was tampered, truncated, moved or the key is wrong. */
export class IntegrityError extends Error {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "IntegrityError";
  }
}

/** A passphrase or key file could not unseal the master key. */
export class WrongKeyError extends Error {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WrongKeyError";
  }
}

/** The data directory is held by another running node. */
export class StorageLockedError extends Error {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageLockedError";
  }
}

/** A stored file (key file, sealed master key, identity export) is malformed. */
export class CorruptFileError extends Error {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CorruptFileError";
  }
}

/** A named thing (identity, token, value) does not exist. */
export class NotFoundError extends Error {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NotFoundError";
  }
}

/** A request conflicts with existing state (duplicate name, already initialised). */
export class ConflictError extends Error {
  /** Creates the error from a message and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConflictError";
  }
}

/** The disk holding the store is full: the write was not made, and what was stored before is intact. */
export class StorageFullError extends Error {
  /** Creates the error from a message (what could not be written, and where) and optional `options.cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageFullError";
  }
}

/** Whether `error` is the operating system's or SQLite's report of a full disk. */
export function isDiskFull(error: unknown): boolean {
  return error instanceof Error && /disk is full|No space left on device|os error 28/i.test(error.message);
}
