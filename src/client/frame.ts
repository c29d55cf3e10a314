// Client frames (docs/protocol.md, "Frames (TCP)" and "Frames (WebSocket)")
// with DataView and Uint8Array only: src/wire/frame.ts uses Buffer, which
// pages do not have.

/** u32 length field of a TCP frame. */
export const LENGTH_BYTES = 4;
/** u16 msgId | u32 seq: a WebSocket message's header, and what `length` counts besides the body. */
export const WS_HEADER_BYTES = 6;
/** A TCP frame's header: length, msgId, seq. */
export const TCP_HEADER_BYTES = LENGTH_BYTES + WS_HEADER_BYTES;
/** Largest inbound frame (the `length` value) a client accepts by default. */
export const DEFAULT_CLIENT_MAX_FRAME = 1024 * 1024;

const EMPTY = new Uint8Array(0);

/** A client frame that cannot be decoded: too large, or cut short. */
export class FrameError extends Error {
  override name = 'FrameError';
}

/** Receives each decoded frame: its message id, its seq (0 for pushes) and its body. */
export type FrameListener = (msgId: number, seq: number, body: Uint8Array) => void;

/** `u32 length | u16 msgId | u32 seq | body`, for a byte stream. */
export function encodeTcpFrame(msgId: number, seq: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(TCP_HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, WS_HEADER_BYTES + body.length);
  view.setUint16(4, msgId);
  view.setUint32(6, seq >>> 0);
  out.set(body, TCP_HEADER_BYTES);
  return out;
}

/** `u16 msgId | u32 seq | body`: one WebSocket message. */
export function encodeWsFrame(msgId: number, seq: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(WS_HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, msgId);
  view.setUint32(2, seq >>> 0);
  out.set(body, WS_HEADER_BYTES);
  return out;
}

/** Splits one WebSocket message; throws FrameError when it is shorter than its header. */
export function decodeWsFrame(data: Uint8Array): { msgId: number; seq: number; body: Uint8Array } {
  if (data.length < WS_HEADER_BYTES) throw new FrameError(`message of ${data.length} bytes is shorter than the ${WS_HEADER_BYTES}-byte header`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { msgId: view.getUint16(0), seq: view.getUint32(2), body: data.subarray(WS_HEADER_BYTES) };
}

/**
 * Incremental decoder for the TCP byte stream: feed it chunks split anywhere,
 * it calls `onFrame` once per complete frame. A frame's `length` is checked
 * against `maxFrame` as soon as its four bytes are in, before any of the body
 * is buffered. Bodies may share memory with the chunk they came in.
 */
export class StreamFrameDecoder {
  private readonly header = new Uint8Array(TCP_HEADER_BYTES);
  private readonly headerView = new DataView(this.header.buffer);
  private headerFill = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private msgId = 0;
  private seq = 0;
  private failed = false;

  constructor(
    private readonly onFrame: FrameListener,
    readonly maxFrame: number = DEFAULT_CLIENT_MAX_FRAME,
  ) {
    if (!Number.isInteger(maxFrame) || maxFrame < WS_HEADER_BYTES) throw new RangeError(`maxFrame must be an integer >= ${WS_HEADER_BYTES}, got ${maxFrame}`);
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.headerFill + this.bodyFill;
  }

  /** Throws FrameError on a bad length; the decoder is unusable afterwards. */
  push(chunk: Uint8Array): void {
    if (this.failed) throw new FrameError('decoder already failed');
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.body !== null) {
        const take = Math.min(this.body.length - this.bodyFill, end - pos);
        this.body.set(chunk.subarray(pos, pos + take), this.bodyFill);
        this.bodyFill += take;
        pos += take;
        if (this.bodyFill === this.body.length) this.finishBody();
        continue;
      }
      if (this.headerFill === 0 && end - pos >= TCP_HEADER_BYTES) {
        // Fast path: the whole header is in this chunk, and often the body too.
        const bodyLength = this.checkLength(view.getUint32(pos));
        const msgId = view.getUint16(pos + 4);
        const seq = view.getUint32(pos + 6);
        pos += TCP_HEADER_BYTES;
        if (end - pos >= bodyLength) {
          this.onFrame(msgId, seq, chunk.subarray(pos, pos + bodyLength));
          pos += bodyLength;
        } else {
          this.startBody(msgId, seq, bodyLength);
        }
        continue;
      }
      const take = Math.min(TCP_HEADER_BYTES - this.headerFill, end - pos);
      this.header.set(chunk.subarray(pos, pos + take), this.headerFill);
      const before = this.headerFill;
      this.headerFill += take;
      pos += take;
      if (before < LENGTH_BYTES && this.headerFill >= LENGTH_BYTES) this.checkLength(this.headerView.getUint32(0));
      if (this.headerFill === TCP_HEADER_BYTES) {
        this.headerFill = 0;
        const bodyLength = this.headerView.getUint32(0) - WS_HEADER_BYTES;
        const msgId = this.headerView.getUint16(4);
        const seq = this.headerView.getUint32(6);
        if (bodyLength === 0) this.onFrame(msgId, seq, EMPTY);
        else this.startBody(msgId, seq, bodyLength);
      }
    }
  }

  private checkLength(length: number): number {
    if (length < WS_HEADER_BYTES) {
      this.failed = true;
      throw new FrameError(`frame length ${length} is below the ${WS_HEADER_BYTES}-byte header`);
    }
    if (length > this.maxFrame) {
      this.failed = true;
      throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxFrame}`);
    }
    return length - WS_HEADER_BYTES;
  }

  private startBody(msgId: number, seq: number, bodyLength: number): void {
    this.msgId = msgId;
    this.seq = seq;
    this.body = new Uint8Array(bodyLength);
    this.bodyFill = 0;
  }

  private finishBody(): void {
    const body = this.body as Uint8Array;
    this.body = null;
    this.bodyFill = 0;
    this.onFrame(this.msgId, this.seq, body);
  }
}
