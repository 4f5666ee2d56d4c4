/**
 * The wire format of NZ-DGRAM-01 (spec/protocols/NZ-DGRAM-01.md), the secure
 * channel's datagram mode: handshake packets that carry the NZ-HANDSHAKE-01
 * messages, data packets (a clear header with the receiver's session index and
 * the packet counter, then the sealed records), and the records inside them.
 * All integers are big-endian. Decoders throw {@linkcode DatagramError} for
 * anything malformed, and nothing else.
 *
 * @module
 */

/** First bytes of NZ-DGRAM-01 packets; STUN's first byte is below 0x40, the DHT's from 0x90. */
export const PacketType = {
  /** Handshake message 1, initiator to responder: sender index, message. */
  INITIATION: 0x81,
  /** Handshake message 2: sender index, receiver index, message. */
  RESPONSE: 0x82,
  /** Handshake message 3: sender index, receiver index, message. */
  FINISH: 0x83,
  /** A data packet sealed under key phase 0. */
  DATA_PHASE_0: 0x84,
  /** A data packet sealed under key phase 1. */
  DATA_PHASE_1: 0x85,
} as const;

/** Record types inside a data packet's plaintext. */
export const RecordType = {
  /** The rest of the plaintext is padding. */
  PADDING: 0x00,
  /** Asks for an acknowledgement (keep-alive, probe). */
  PING: 0x01,
  /** Acknowledges packet counters: delay, ranges. */
  ACK: 0x02,
  /** Bytes of the reliable stream at an offset. */
  STREAM: 0x03,
  /** The receiver's limit on stream offsets. */
  MAX_DATA: 0x04,
  /** Ends the session: code, reason. */
  CLOSE: 0x05,
} as const;

/** The clear header of a data packet: type, receiver index (4), counter (8). */
export const DATA_HEADER_LEN = 13;
/** The Poly1305 tag. */
export const TAG_LEN = 16;
/** Handshake packets: type and sender index, then (but for INITIATION) the receiver index. */
export const INITIATION_HEADER_LEN = 5;
/** RESPONSE and FINISH headers. */
export const REPLY_HEADER_LEN = 9;
/** The largest ACK record: this many ranges. */
export const MAX_ACK_RANGES = 32;
/** The longest CLOSE reason, in bytes. */
export const MAX_CLOSE_REASON = 256;
/** STREAM record header: type, offset (8), length (2). */
export const STREAM_RECORD_HEADER = 11;

/** A packet or record that does not decode. */
export class DatagramError extends Error {
  /** Creates the error from a message. */
  constructor(message: string) {
    super(message);
    this.name = "DatagramError";
  }
}

/** Whether `data` is an NZ-DGRAM-01 packet, by its first byte. */
export function isDatagramPacket(data: Uint8Array): boolean {
  return data.length >= INITIATION_HEADER_LEN && data[0] >= PacketType.INITIATION &&
    data[0] <= PacketType.DATA_PHASE_1;
}

/** A decoded handshake packet. */
export interface HandshakePacket {
  /** 1, 2 or 3: which NZ-HANDSHAKE-01 message it carries. */
  number: 1 | 2 | 3;
  /** The sender's session index. */
  sender: number;
  /** The receiver's session index (0 in message 1). */
  receiver: number;
  /** The handshake message. */
  message: Uint8Array;
}

/** Encodes a handshake packet. */
export function encodeHandshakePacket(packet: HandshakePacket): Uint8Array {
  const header = packet.number === 1 ? INITIATION_HEADER_LEN : REPLY_HEADER_LEN;
  const out = new Uint8Array(header + packet.message.length);
  const view = new DataView(out.buffer);
  out[0] = PacketType.INITIATION + packet.number - 1;
  view.setUint32(1, packet.sender);
  if (packet.number !== 1) view.setUint32(5, packet.receiver);
  out.set(packet.message, header);
  return out;
}

/** Decodes a handshake packet (`data[0]` is INITIATION, RESPONSE or FINISH); the message is a view into `data`. */
export function decodeHandshakePacket(data: Uint8Array): HandshakePacket {
  const type = data[0];
  if (type < PacketType.INITIATION || type > PacketType.FINISH) {
    throw new DatagramError(`Cannot decode handshake packet: type 0x${type?.toString(16)} is not a handshake type`);
  }
  const number = (type - PacketType.INITIATION + 1) as 1 | 2 | 3;
  const header = number === 1 ? INITIATION_HEADER_LEN : REPLY_HEADER_LEN;
  if (data.length <= header) {
    throw new DatagramError(`Cannot decode handshake packet: length is ${data.length}, expected > ${header}`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  const sender = view.getUint32(1);
  const receiver = number === 1 ? 0 : view.getUint32(5);
  if (sender === 0 || (number !== 1 && receiver === 0)) {
    throw new DatagramError("Cannot decode handshake packet: session index 0 is reserved");
  }
  return { number, sender, receiver, message: data.subarray(header) };
}

/** The clear header of a data packet. */
export interface DataHeader {
  /** The key phase, 0 or 1. */
  phase: 0 | 1;
  /** The receiver's session index. */
  receiver: number;
  /** The packet counter: the AEAD nonce and the packet number acknowledged. */
  counter: number;
}

/** Writes a data header into `out` at 0. Counters above 2^53 - 1 are not used by this implementation. */
export function writeDataHeader(out: Uint8Array, header: DataHeader): void {
  const view = new DataView(out.buffer, out.byteOffset, DATA_HEADER_LEN);
  out[0] = header.phase === 0 ? PacketType.DATA_PHASE_0 : PacketType.DATA_PHASE_1;
  view.setUint32(1, header.receiver);
  view.setUint32(5, Math.floor(header.counter / 0x1_0000_0000));
  view.setUint32(9, header.counter >>> 0);
}

/** Reads a data packet's header; throws when the packet is too short to hold a header and a tag. */
export function readDataHeader(data: Uint8Array): DataHeader {
  if (data.length < DATA_HEADER_LEN + TAG_LEN) {
    throw new DatagramError(`Cannot decode data packet: length is ${data.length}, expected >= 29`);
  }
  const type = data[0];
  if (type !== PacketType.DATA_PHASE_0 && type !== PacketType.DATA_PHASE_1) {
    throw new DatagramError(`Cannot decode data packet: type 0x${type.toString(16)} is not a data type`);
  }
  const view = new DataView(data.buffer, data.byteOffset, DATA_HEADER_LEN);
  const high = view.getUint32(5);
  if (high >= 0x20_0000) throw new DatagramError("Cannot decode data packet: counter above 2^53 - 1");
  return {
    phase: type === PacketType.DATA_PHASE_0 ? 0 : 1,
    receiver: view.getUint32(1),
    counter: high * 0x1_0000_0000 + view.getUint32(9),
  };
}

/** A record of a data packet's plaintext. */
export type DataRecord =
  | { type: "ping" }
  | { type: "ack"; delayMs: number; ranges: [largest: number, smallest: number][] }
  | { type: "stream"; offset: number; data: Uint8Array }
  | { type: "max_data"; max: number }
  | { type: "close"; code: number; reason: string };

function u64(view: DataView, at: number, what: string): number {
  const high = view.getUint32(at);
  if (high >= 0x20_0000) throw new DatagramError(`Cannot decode ${what}: value above 2^53 - 1`);
  return high * 0x1_0000_0000 + view.getUint32(at + 4);
}

function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / 0x1_0000_0000));
  view.setUint32(at + 4, value >>> 0);
}

/**
 * Decodes the records of a plaintext; views into `plaintext` are returned for
 * STREAM data. Throws for an unknown record type, a truncated record, ACK
 * ranges out of order, or a CLOSE reason that is not UTF-8.
 */
export function decodeRecords(plaintext: Uint8Array): DataRecord[] {
  const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.length);
  const records: DataRecord[] = [];
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > plaintext.length) {
      throw new DatagramError(`Cannot decode ${what} record: truncated at byte ${at} of ${plaintext.length}`);
    }
  };
  while (at < plaintext.length) {
    const type = plaintext[at];
    switch (type) {
      case RecordType.PADDING:
        return records;
      case RecordType.PING:
        records.push({ type: "ping" });
        at += 1;
        break;
      case RecordType.ACK: {
        need(4, "ACK");
        const delayMs = view.getUint16(at + 1);
        const count = plaintext[at + 3];
        if (count === 0 || count > MAX_ACK_RANGES) {
          throw new DatagramError(`Cannot decode ACK record: ${count} ranges, expected 1 to ${MAX_ACK_RANGES}`);
        }
        need(4 + 16 * count, "ACK");
        const ranges: [number, number][] = [];
        let floor = Infinity;
        for (let i = 0; i < count; i++) {
          const largest = u64(view, at + 4 + 16 * i, "ACK");
          const smallest = u64(view, at + 12 + 16 * i, "ACK");
          if (smallest > largest || largest >= floor) {
            throw new DatagramError("Cannot decode ACK record: ranges must be descending and disjoint");
          }
          floor = smallest;
          ranges.push([largest, smallest]);
        }
        records.push({ type: "ack", delayMs, ranges });
        at += 4 + 16 * count;
        break;
      }
      case RecordType.STREAM: {
        need(STREAM_RECORD_HEADER, "STREAM");
        const offset = u64(view, at + 1, "STREAM");
        const length = view.getUint16(at + 9);
        need(STREAM_RECORD_HEADER + length, "STREAM");
        if (length === 0) throw new DatagramError("Cannot decode STREAM record: length 0");
        records.push({ type: "stream", offset, data: plaintext.subarray(at + 11, at + 11 + length) });
        at += STREAM_RECORD_HEADER + length;
        break;
      }
      case RecordType.MAX_DATA:
        need(9, "MAX_DATA");
        records.push({ type: "max_data", max: u64(view, at + 1, "MAX_DATA") });
        at += 9;
        break;
      case RecordType.CLOSE: {
        need(4, "CLOSE");
        const code = plaintext[at + 1];
        const length = view.getUint16(at + 2);
        if (length > MAX_CLOSE_REASON) throw new DatagramError(`Cannot decode CLOSE record: reason of ${length} bytes`);
        need(4 + length, "CLOSE");
        let reason: string;
        try {
          reason = new TextDecoder("utf-8", { fatal: true }).decode(plaintext.subarray(at + 4, at + 4 + length));
        } catch {
          throw new DatagramError("Cannot decode CLOSE record: the reason is not UTF-8");
        }
        records.push({ type: "close", code, reason });
        at += 4 + length;
        break;
      }
      default:
        throw new DatagramError(`Cannot decode record: unknown type 0x${type.toString(16)} at byte ${at}`);
    }
  }
  return records;
}

/** Appends records to a plaintext buffer; `length` is how much is written. */
export class RecordWriter {
  readonly buffer: Uint8Array;
  #view: DataView;
  length = 0;

  /** A writer over a fresh buffer of `capacity` bytes. */
  constructor(capacity: number) {
    this.buffer = new Uint8Array(capacity);
    this.#view = new DataView(this.buffer.buffer);
  }

  /** Bytes still free. */
  get free(): number {
    return this.buffer.length - this.length;
  }

  /** Empties the writer. */
  reset(): void {
    this.length = 0;
  }

  /** Writes a PING record. */
  ping(): void {
    this.buffer[this.length++] = RecordType.PING;
  }

  /** The size of an ACK record of `count` ranges. */
  static ackSize(count: number): number {
    return 4 + 16 * count;
  }

  /** Writes an ACK record; `ranges` descending and disjoint, 1 to 32 of them. */
  ack(delayMs: number, ranges: readonly (readonly [number, number])[]): void {
    const at = this.length;
    this.buffer[at] = RecordType.ACK;
    this.#view.setUint16(at + 1, Math.min(0xffff, Math.max(0, Math.round(delayMs))));
    this.buffer[at + 3] = ranges.length;
    for (let i = 0; i < ranges.length; i++) {
      setU64(this.#view, at + 4 + 16 * i, ranges[i][0]);
      setU64(this.#view, at + 12 + 16 * i, ranges[i][1]);
    }
    this.length = at + 4 + 16 * ranges.length;
  }

  /** Writes a STREAM record of `data` (1 to 65535 bytes) at `offset`. */
  stream(offset: number, data: Uint8Array): void {
    const at = this.length;
    this.buffer[at] = RecordType.STREAM;
    setU64(this.#view, at + 1, offset);
    this.#view.setUint16(at + 9, data.length);
    this.buffer.set(data, at + STREAM_RECORD_HEADER);
    this.length = at + STREAM_RECORD_HEADER + data.length;
  }

  /** Writes a MAX_DATA record. */
  maxData(max: number): void {
    const at = this.length;
    this.buffer[at] = RecordType.MAX_DATA;
    setU64(this.#view, at + 1, max);
    this.length = at + 9;
  }

  /** Writes a CLOSE record; the reason is cut to 256 bytes (at a character boundary). */
  close(code: number, reason: string): void {
    let bytes = new TextEncoder().encode(reason);
    if (bytes.length > MAX_CLOSE_REASON) {
      let end = MAX_CLOSE_REASON;
      while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
      bytes = bytes.subarray(0, end);
    }
    const at = this.length;
    this.buffer[at] = RecordType.CLOSE;
    this.buffer[at + 1] = code & 0xff;
    this.#view.setUint16(at + 2, bytes.length);
    this.buffer.set(bytes, at + 4);
    this.length = at + 4 + bytes.length;
  }
}
