/**
 * Binary frame layout shared by every gamemesh TCP link (see docs/protocol.md):
 *
 *   u32 BE length   bytes that follow this field (HEADER_AFTER_LENGTH + body)
 *   u16 BE msgId    message id
 *   u32 BE seq      request sequence / correlation id (0 for one-way)
 *   ...    body     protobuf-encoded message
 */
export const LENGTH_BYTES = 4;
/** Header bytes after the length: message id (2) and seq (4). */
export const HEADER_AFTER_LENGTH = 6;
/** The whole frame header: length, message id and seq. */
export const HEADER_BYTES = LENGTH_BYTES + HEADER_AFTER_LENGTH;
/** The largest frame accepted unless told otherwise (1 MiB). */
export const DEFAULT_MAX_FRAME = 1024 * 1024;
/** The largest message id (16 bits). */
export const MAX_MSG_ID = 0xffff;
/** The largest sequence number (32 bits). */
export const MAX_SEQ = 0xffffffff;

/** A frame that cannot be decoded: too large, or cut short. */
export class FrameError extends Error {
  override name = 'FrameError';
}

/** Encodes one frame into a fresh buffer (header and body in one allocation). */
export function encodeFrame(msgId: number, seq: number, body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  writeHeader(frame, 0, msgId, seq, body.length);
  frame.set(body, HEADER_BYTES);
  return frame;
}

/** Writes a frame header at offset: the length, then message id and seq. */
export function writeHeader(target: Buffer, offset: number, msgId: number, seq: number, bodyLength: number): void {
  target.writeUInt32BE(HEADER_AFTER_LENGTH + bodyLength, offset);
  target.writeUInt16BE(msgId, offset + 4);
  target.writeUInt32BE(seq >>> 0, offset + 6);
}

/** Receives each decoded frame: its message id, its seq and its body. */
export type FrameHandler = (msgId: number, seq: number, body: Buffer) => void;

/**
 * Incremental decoder: feed it socket chunks in any split, it calls `onFrame`
 * once per complete frame. A frame's declared size is checked against
 * `maxFrame` from its first four bytes, before any of its body is buffered,
 * and a large body is copied once into a buffer of its exact size.
 * Bodies handed to `onFrame` may share memory with the input chunk.
 */
export class FrameDecoder {
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private msgId = 0;
  private seq = 0;
  private failed = false;

  constructor(
    private readonly onFrame: FrameHandler,
    readonly maxFrame: number = DEFAULT_MAX_FRAME,
  ) {
    if (!Number.isInteger(maxFrame) || maxFrame < HEADER_AFTER_LENGTH) {
      throw new RangeError(`maxFrame must be an integer >= ${HEADER_AFTER_LENGTH}, got ${maxFrame}`);
    }
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.headerFill + this.bodyFill;
  }

  /** Throws FrameError on a bad length; the decoder is then unusable. */
  push(chunk: Buffer): void {
    if (this.failed) throw new FrameError('decoder already failed');
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.body !== null) {
        const want = this.body.length - this.bodyFill;
        const take = Math.min(want, end - pos);
        chunk.copy(this.body, this.bodyFill, pos, pos + take);
        this.bodyFill += take;
        pos += take;
        if (this.bodyFill === this.body.length) this.finishBuffered();
        continue;
      }
      if (this.headerFill === 0 && end - pos >= HEADER_BYTES) {
        // Fast path: the whole header is in this chunk.
        const bodyLength = this.checkLength(chunk.readUInt32BE(pos));
        const msgId = chunk.readUInt16BE(pos + 4);
        const seq = chunk.readUInt32BE(pos + 6);
        pos += HEADER_BYTES;
        if (end - pos >= bodyLength) {
          this.onFrame(msgId, seq, chunk.subarray(pos, pos + bodyLength));
          pos += bodyLength;
        } else {
          this.startBody(msgId, seq, bodyLength);
        }
        continue;
      }
      const take = Math.min(HEADER_BYTES - this.headerFill, end - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + take);
      this.headerFill += take;
      pos += take;
      if (this.headerFill >= LENGTH_BYTES && this.headerFill - take < LENGTH_BYTES) {
        // Check the size as soon as the length field is complete.
        this.checkLength(this.header.readUInt32BE(0));
      }
      if (this.headerFill === HEADER_BYTES) {
        const bodyLength = this.header.readUInt32BE(0) - HEADER_AFTER_LENGTH;
        const msgId = this.header.readUInt16BE(4);
        const seq = this.header.readUInt32BE(6);
        this.headerFill = 0;
        if (bodyLength === 0) this.onFrame(msgId, seq, Buffer.alloc(0));
        else this.startBody(msgId, seq, bodyLength);
      }
    }
  }

  private checkLength(length: number): number {
    if (length < HEADER_AFTER_LENGTH) {
      this.failed = true;
      throw new FrameError(`frame length ${length} is below the ${HEADER_AFTER_LENGTH}-byte header`);
    }
    if (length > this.maxFrame) {
      this.failed = true;
      throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxFrame}`);
    }
    return length - HEADER_AFTER_LENGTH;
  }

  private startBody(msgId: number, seq: number, bodyLength: number): void {
    this.msgId = msgId;
    this.seq = seq;
    this.body = Buffer.allocUnsafe(bodyLength);
    this.bodyFill = 0;
  }

  private finishBuffered(): void {
    const body = this.body as Buffer;
    this.body = null;
    this.bodyFill = 0;
    this.onFrame(this.msgId, this.seq, body);
  }
}
