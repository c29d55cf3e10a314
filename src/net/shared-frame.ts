import { HEADER_BYTES, writeHeader } from '../wire/frame.js';

/** A WebSocket message is `u16 msgId | u32 seq | body`: the frame without its length field. */
export const WS_HEADER_BYTES = 6;

/**
 * One message framed once per transport, for fan-out: a broadcast or a
 * group push builds one SharedFrame and hands it to every session
 * (`Session.sendFrame`). Each transport's bytes are built on first use and
 * then the same buffer goes to every socket of that transport, so sending
 * to 1,000 clients costs one encode and at most one framing per transport.
 *
 * The bytes must not change once built: they are queued on many sockets.
 */
export class SharedFrame {
  private tcp: Buffer | undefined;
  private ws: Buffer | undefined;

  constructor(
    readonly msgId: number,
    readonly seq: number,
    readonly body: Uint8Array,
  ) {}

  /** `u32 length | u16 msgId | u32 seq | body` (docs/protocol.md), as TcpSession writes it. */
  tcpFrame(): Buffer {
    if (this.tcp === undefined) {
      const frame = Buffer.allocUnsafe(HEADER_BYTES + this.body.length);
      writeHeader(frame, 0, this.msgId, this.seq, this.body.length);
      frame.set(this.body, HEADER_BYTES);
      this.tcp = frame;
    }
    return this.tcp;
  }

  /** One unmasked binary WebSocket frame (server to client) holding `u16 msgId | u32 seq | body`. */
  wsFrame(): Buffer {
    this.ws ??= wsServerFrame(this.msgId, this.seq, this.body);
    return this.ws;
  }
}

/**
 * An unmasked, final, binary WebSocket frame (RFC 6455 5.2) whose payload is
 * `u16 msgId | u32 seq | body`: what `ws` would write for one `send`, built
 * in one buffer so that several can leave in one socket write.
 */
export function wsServerFrame(msgId: number, seq: number, body: Uint8Array): Buffer {
  const payload = WS_HEADER_BYTES + body.length;
  const lenBytes = payload < 126 ? 0 : payload < 0x10000 ? 2 : 8;
  const head = 2 + lenBytes;
  const frame = Buffer.allocUnsafe(head + payload);
  frame[0] = 0x82; // FIN | opcode 2 (binary)
  if (lenBytes === 0) frame[1] = payload;
  else if (lenBytes === 2) {
    frame[1] = 126;
    frame.writeUInt16BE(payload, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(payload / 0x1_0000_0000), 2);
    frame.writeUInt32BE(payload >>> 0, 6);
  }
  frame.writeUInt16BE(msgId, head);
  frame.writeUInt32BE(seq >>> 0, head + 2);
  frame.set(body, head + WS_HEADER_BYTES);
  return frame;
}
