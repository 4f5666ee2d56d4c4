/**
 * The numbers of NZ-CHANNEL-01 (spec/protocols/NZ-CHANNEL-01.md). The spec
 * block fixes the wire format and the protocol's limits: changing one breaks
 * interoperability. The implementation block holds this implementation's
 * defaults and tuning, which a peer never sees.
 *
 * @module
 */

// ---------------------------------------------------------------------------
// Spec: wire format and limits (NZ-CHANNEL-01)
// ---------------------------------------------------------------------------

/** One millisecond, the unit of every duration here. */
export const MILLISECOND = 1;
/** One second in milliseconds. */
export const SECOND: number = 1000 * MILLISECOND;
/** One minute in milliseconds. */
export const MINUTE: number = 60 * SECOND;
/** One KiB. */
export const KIB = 1024;
/** One MiB. */
export const MIB: number = 1024 * KIB;
/** One GiB. */
export const GIB: number = 1024 * MIB;

/** Poly1305 tag length (RFC 8439 section 2.8). */
export const TAG_LEN = 16;
/** ChaCha20-Poly1305 nonce length: 4 zero bytes || LE64(counter) (section "Sealed frames", Noise section 12.3). */
export const NONCE_LEN = 12;
/**
 * The largest sealed frame, tag included: 128 KiB, so a 64 KiB application message travels in one frame with its
 * record header (above the Noise message limit of 65,535 bytes, which binds only the handshake).
 */
export const MAX_FRAME_LEN = 131_072;
/** The largest plaintext of one sealed frame. */
export const MAX_PLAINTEXT_LEN: number = MAX_FRAME_LEN - TAG_LEN;

/** Length of a record header (section "Records"). */
export const HEADER_LEN = 12;
/** Offset of the record type (u8). */
export const TYPE_OFFSET = 0;
/** Offset of the flags (u8). */
export const FLAGS_OFFSET = 1;
/** Offset of the reserved field (u16be, must be 0). */
export const RESERVED_OFFSET = 2;
/** Offset of the stream ID (u32be; 0 is the channel itself). */
export const STREAM_ID_OFFSET = 4;
/** Offset of the payload length (u32be). */
export const LENGTH_OFFSET = 8;
/** The smallest sealed frame: one record header and the tag. */
export const MIN_FRAME_LEN: number = HEADER_LEN + TAG_LEN;
/** The largest DATA payload that fits a frame alone (with room for a REKEY record after it). */
export const MAX_DATA_PAYLOAD: number = MAX_PLAINTEXT_LEN - 2 * HEADER_LEN;

/** Record types (section "Record types"). */
export const FrameType = {
  /** Bytes of a stream (flags END_OF_MESSAGE, FIN). */
  DATA: 0x00,
  /** Opens a stream; empty payload. */
  OPEN: 0x01,
  /** Grants send credit on a stream: u32be increment. */
  WINDOW_UPDATE: 0x02,
  /** Ends a stream abruptly in both directions: u32be error code. */
  RESET: 0x03,
  /** Asks for a PONG: 8 opaque bytes. */
  PING: 0x04,
  /** Answers a PING with its 8 bytes. */
  PONG: 0x05,
  /** The sender's next frame uses the next key; empty, the last record of its frame. */
  REKEY: 0x06,
  /** The sender closes the channel: u32be error code || UTF-8 reason (0..256 bytes). */
  GOAWAY: 0x07,
} as const;

/** A record type value. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/** DATA flag: this record ends a message. */
export const FLAG_END_OF_MESSAGE = 0x01;
/** DATA flag: this record ends the sender's half of the stream (no DATA follows). */
export const FLAG_FIN = 0x02;
/** Every DATA flag; other bits, and any flag on another type, are a protocol error. */
export const DATA_FLAGS: number = FLAG_END_OF_MESSAGE | FLAG_FIN;

/** Payload length of WINDOW_UPDATE and RESET. */
export const U32_PAYLOAD_LEN = 4;
/** Payload length of PING and PONG. */
export const PING_PAYLOAD_LEN = 8;
/** The longest GOAWAY reason, in UTF-8 bytes. */
export const MAX_REASON_LEN = 256;

/** Both directions of every stream start with this much credit (section "Flow control"). */
export const INITIAL_WINDOW: number = 256 * KIB;
/** A stream's send credit never exceeds this (HTTP/2's limit); a WINDOW_UPDATE beyond it is a flow-control error. */
export const MAX_WINDOW: number = 2 ** 31 - 1;
/** The largest message the protocol carries; a receiver may set a lower limit. */
export const MAX_MESSAGE_SIZE: number = 16 * MIB;
/** The largest stream ID. */
export const MAX_STREAM_ID: number = 2 ** 32 - 1;

/** A sender rekeys after this many frames under one key (section "Rekey"). */
export const REKEY_AFTER_FRAMES: number = 2 ** 20;
/** A sender rekeys after this many sealed bytes under one key. */
export const REKEY_AFTER_BYTES: number = 1 * GIB;
/** A sender rekeys after a key has been in use this long. */
export const REKEY_AFTER_MS: number = 120 * SECOND;

/**
 * Frames carry counters below 2^64 - 1, which Noise reserves for Rekey()
 * (Noise section 11.3). This implementation keeps counters in a double and
 * stops far earlier, at {@linkcode DEFAULT_COUNTER_LIMIT}.
 */
export const COUNTER_LIMIT: bigint = 2n ** 64n - 1n;

/** Wire error codes of RESET and GOAWAY (section "Error codes"). */
export const ErrorCode = {
  /** Graceful close. */
  NO_ERROR: 0,
  /** The peer broke a rule of the protocol. */
  PROTOCOL_ERROR: 1,
  /** The sender failed on its own. */
  INTERNAL_ERROR: 2,
  /** The peer sent more than its credit, or granted credit beyond MAX_WINDOW. */
  FLOW_CONTROL_ERROR: 3,
  /** A frame or record has an impossible length. */
  FRAME_SIZE_ERROR: 4,
  /** The stream was not accepted (too many streams, or the channel is closing). */
  REFUSED_STREAM: 5,
  /** The application gave up on the stream. */
  CANCEL: 6,
  /** A message exceeds the receiver's maximum message size. */
  MESSAGE_TOO_LARGE: 7,
  /** Nothing arrived for the idle timeout. */
  IDLE_TIMEOUT: 8,
  /** The sender's frame counter reached its limit. */
  COUNTER_EXHAUSTED: 9,
} as const;

/** A wire error code value. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

// ---------------------------------------------------------------------------
// Implementation: defaults and tuning (a peer never sees these)
// ---------------------------------------------------------------------------

/** Send a PING after this long without receiving anything. */
export const DEFAULT_KEEP_ALIVE_MS: number = 10 * SECOND;
/** Close the channel after this long without receiving anything (three missed keep-alives). */
export const DEFAULT_IDLE_TIMEOUT_MS: number = 30 * SECOND;
/** A graceful close gives sends already started this long to finish, then aborts. */
export const DEFAULT_CLOSE_TIMEOUT_MS: number = 5 * SECOND;
/** Streams open at once per channel, both directions together. */
export const DEFAULT_MAX_STREAMS = 128;
/**
 * The receive window granted per stream. Larger than INITIAL_WINDOW so one
 * stream keeps a loopback link busy; the excess is granted by a WINDOW_UPDATE
 * when the stream opens.
 */
export const DEFAULT_RECEIVE_WINDOW: number = 1 * MIB;
/**
 * Receive-window auto-tuning (a local policy; section "Flow control"): a
 * stream whose application reads half its window within about two round
 * trips doubles its window, up to this. Past about 16 MiB per stream a
 * single stream gains nothing on loopback.
 */
export const AUTO_WINDOW_MAX: number = 16 * MIB;
/**
 * What all of a channel's streams may add to their windows together: the
 * most auto-tuning adds to what a peer can make a channel buffer.
 */
export const AUTO_WINDOW_BUDGET: number = 32 * MIB;
/**
 * The round-trip time auto-tuning assumes at least: a loopback ping measures
 * a fraction of a millisecond when idle, while a WINDOW_UPDATE of a busy
 * stream takes longer to reach the sender and take effect.
 */
export const AUTO_WINDOW_MIN_RTT_MS: number = 5 * MILLISECOND;
/**
 * The highest counter this implementation uses: counters are doubles, exact
 * up to 2^53. At a million frames a second it lasts 285 years.
 */
export const DEFAULT_COUNTER_LIMIT: number = Number.MAX_SAFE_INTEGER;
/**
 * Bytes of incomplete messages a channel credits ahead of the window (so a
 * message larger than the window can complete); at least one maximum
 * message, and it bounds what a peer can make us buffer beyond the windows.
 */
export const REASSEMBLY_BUDGET_FACTOR = 2;
/** The keep-alive, idle and close clocks are checked this often (shared by all channels). */
export const TICK_MS: number = 1 * SECOND;
/** Unsealed DATA bytes queued per channel before `send()` waits for the writer. */
export const SEND_QUEUE_HIGH_WATER: number = 512 * KIB;
/** `send()` hands the writer a message in pieces of at most this many bytes. */
export const SEND_PIECE: number = 256 * KIB;
/**
 * Sealed bytes the writer hands the transport in one write at most: what is
 * queued is sealed up to this and written at once (fewer syscalls, one copy
 * into the transport's buffer).
 */
export const WRITE_BATCH_BYTES: number = 256 * KIB;
/** DATA records below this are copied into the frame; larger ones are sealed from the caller's bytes. */
export const COPY_THRESHOLD: number = 2 * KIB;
/** After a fatal error, the final GOAWAY gets this long to leave before the connection is aborted. */
export const FAIL_FLUSH_MS: number = 1 * SECOND;
