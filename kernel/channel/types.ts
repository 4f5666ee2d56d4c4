/**
 * Types shared by the handshake (NZ-HANDSHAKE-01), the channel
 * (NZ-CHANNEL-01) and the channel manager.
 *
 * @module
 */

/**
 * Whole frames in and out, over any transport. `transport/framing.ts` gives
 * one over a byte stream (a 4-byte big-endian length, then the frame), and
 * tests build in-memory pairs.
 */
export interface FrameIO {
  /**
   * The next frame, or `null` when the peer closed cleanly. Rejects when the connection broke or a frame is too long.
   * The frame is valid until the next `read()` call (it may be a view into a reused read buffer); copy what you keep.
   */
  read(): Promise<Uint8Array | null>;
  /** Sends one frame; resolves once the transport took it (backpressure). */
  write(frame: Uint8Array): Promise<void>;
  /**
   * Optional: sends several frames at once, each the concatenation of its
   * parts; the parts may be reused once it resolves. The channel uses it when
   * present, else writes joined frames one by one.
   */
  writeFrames?(frames: readonly (readonly Uint8Array[])[]): Promise<void>;
  /** Flushes and closes. */
  close(): Promise<void>;
  /** Closes at once. */
  abort(reason?: unknown): void;
  /** The largest frame this side accepts and sends, in bytes. */
  readonly maxFrameSize: number;
}

/** The authenticated peer of a finished handshake. */
export interface PeerIdentity {
  /** The peer's Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** Lowercase hex SHA-256 of `publicKey` (as `nodeIdOf` in `kernel/identity/identity.ts`). */
  nodeId: string;
  /** The peer's `did:key`. */
  did: string;
}

/** What a finished handshake hands to the channel. */
export interface SessionKeys {
  /** Whether this side started the handshake. */
  initiator: boolean;
  /** ChaCha20-Poly1305 key for frames this side sends (32 bytes; the channel wipes it on close). */
  sendKey: Uint8Array;
  /** ChaCha20-Poly1305 key for frames this side receives (32 bytes). */
  recvKey: Uint8Array;
  /** The Noise handshake hash `h` (32 bytes): binds the channel to this handshake. */
  handshakeHash: Uint8Array;
}
