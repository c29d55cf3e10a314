/**
 * gamemesh's own control datagrams around KCP (docs/protocol.md, "KCP over
 * UDP"): the cookie handshake that must succeed before the agent keeps any
 * state for an address, and the close notice. They start with four zero
 * bytes, a conv that no session ever has, so one look at a datagram tells
 * a control packet from a KCP segment. Fields after that are big-endian,
 * like the rest of gamemesh (KCP's own segment header is little-endian).
 *
 *   0     4     6   7    8
 *   | 0000 | "gm" | v | type | fields...
 */

export const CONTROL_VERSION = 1;
export const CONTROL_HEADER_BYTES = 8;
export const COOKIE_BYTES = 16;

/** The kinds of KCP control datagrams (the cookie handshake and the close). */
export const enum ControlType {
  Hello = 1,
  Challenge = 2,
  Connect = 3,
  Accept = 4,
  Close = 5,
}

/** Sizes are fixed; Hello is padded to Challenge's size, so the agent's reply to an unproven address is never bigger than what it got. */
export const HELLO_BYTES = 32;
export const CHALLENGE_BYTES = 32;
export const CONNECT_BYTES = 36;
export const ACCEPT_BYTES = 24;
export const CLOSE_BYTES = 16;

/** The mode byte of Connect and Accept. */
export const enum ModeByte {
  Normal = 0,
  Turbo = 1,
}

/** Reason byte of Close. */
export const enum CloseCode {
  Closed = 0,
  /** The agent takes no more sessions. */
  Full = 1,
  /** The agent is stopping. */
  Shutdown = 2,
  /** Retransmissions went unanswered; the sender gave up. */
  Unreachable = 3,
  /** The peer broke the protocol (bad frame, stalled window). */
  Protocol = 4,
}

/** A decoded KCP control datagram. */
export type Control =
  | { type: ControlType.Hello; nonce: number }
  | { type: ControlType.Challenge; nonce: number; timestamp: number; cookie: Buffer }
  | { type: ControlType.Connect; nonce: number; timestamp: number; cookie: Buffer; mode: number }
  | { type: ControlType.Accept; nonce: number; conv: number; mode: number; mtu: number; wnd: number }
  | { type: ControlType.Close; conv: number; code: number };

const MIN_BYTES: Record<ControlType, number> = {
  [ControlType.Hello]: HELLO_BYTES,
  [ControlType.Challenge]: CHALLENGE_BYTES,
  [ControlType.Connect]: CONNECT_BYTES,
  [ControlType.Accept]: ACCEPT_BYTES,
  [ControlType.Close]: CLOSE_BYTES,
};

function header(size: number, type: ControlType): Buffer {
  const buf = Buffer.alloc(size);
  buf[4] = 0x67; // 'g'
  buf[5] = 0x6d; // 'm'
  buf[6] = CONTROL_VERSION;
  buf[7] = type;
  return buf;
}

/** Encodes a KCP control datagram. */
export function encodeControl(c: Control): Buffer {
  switch (c.type) {
    case ControlType.Hello: {
      const buf = header(HELLO_BYTES, c.type);
      buf.writeUInt32BE(c.nonce >>> 0, 8);
      return buf;
    }
    case ControlType.Challenge: {
      const buf = header(CHALLENGE_BYTES, c.type);
      buf.writeUInt32BE(c.nonce >>> 0, 8);
      buf.writeUInt32BE(c.timestamp >>> 0, 12);
      c.cookie.copy(buf, 16, 0, COOKIE_BYTES);
      return buf;
    }
    case ControlType.Connect: {
      const buf = header(CONNECT_BYTES, c.type);
      buf.writeUInt32BE(c.nonce >>> 0, 8);
      buf.writeUInt32BE(c.timestamp >>> 0, 12);
      c.cookie.copy(buf, 16, 0, COOKIE_BYTES);
      buf[32] = c.mode;
      return buf;
    }
    case ControlType.Accept: {
      const buf = header(ACCEPT_BYTES, c.type);
      buf.writeUInt32BE(c.nonce >>> 0, 8);
      buf.writeUInt32BE(c.conv >>> 0, 12);
      buf[16] = c.mode;
      buf.writeUInt16BE(c.mtu, 18);
      buf.writeUInt16BE(c.wnd, 20);
      return buf;
    }
    case ControlType.Close: {
      const buf = header(CLOSE_BYTES, c.type);
      buf.writeUInt32BE(c.conv >>> 0, 8);
      buf[12] = c.code;
      return buf;
    }
  }
}

/** True when the datagram starts like a control packet (conv 0); it may still be malformed. */
export function isControl(buf: Buffer): boolean {
  return buf.length >= 4 && buf.readUInt32LE(0) === 0;
}

/**
 * Decodes a control packet, or says why it is not one. Longer packets than
 * the type's size are accepted (the extra bytes are ignored), shorter ones
 * are not: that is what keeps a reply from outgrowing its request.
 */
export function decodeControl(buf: Buffer): Control | string {
  if (buf.length < CONTROL_HEADER_BYTES) return `control packet of ${buf.length} bytes is shorter than its header`;
  if (buf.readUInt32LE(0) !== 0 || buf[4] !== 0x67 || buf[5] !== 0x6d) return 'not a gamemesh control packet';
  if (buf[6] !== CONTROL_VERSION) return `control version ${buf[6]} is not supported`;
  const type = buf[7] as ControlType;
  const min = MIN_BYTES[type];
  if (min === undefined) return `unknown control type ${type}`;
  if (buf.length < min) return `control type ${type} needs ${min} bytes, got ${buf.length}`;
  switch (type) {
    case ControlType.Hello:
      return { type, nonce: buf.readUInt32BE(8) };
    case ControlType.Challenge:
      return { type, nonce: buf.readUInt32BE(8), timestamp: buf.readUInt32BE(12), cookie: buf.subarray(16, 16 + COOKIE_BYTES) };
    case ControlType.Connect:
      return { type, nonce: buf.readUInt32BE(8), timestamp: buf.readUInt32BE(12), cookie: buf.subarray(16, 16 + COOKIE_BYTES), mode: buf[32] as number };
    case ControlType.Accept:
      return { type, nonce: buf.readUInt32BE(8), conv: buf.readUInt32BE(12), mode: buf[16] as number, mtu: buf.readUInt16BE(18), wnd: buf.readUInt16BE(20) };
    case ControlType.Close:
      return { type, conv: buf.readUInt32BE(8), code: buf[12] as number };
  }
}
