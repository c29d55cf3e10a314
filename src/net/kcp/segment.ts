/**
 * The KCP segment (../shared/vendor/kcp/protocol.txt): a 24-byte header,
 * little-endian as KCP defines it, then `len` bytes of data. One UDP
 * datagram carries one or more segments back to back, all of one `conv`.
 *
 *   0      4   5   6    8      12     16     20     24
 *   | conv |cmd|frg| wnd |  ts  |  sn  | una  | len  | data...
 */

export const KCP_OVERHEAD = 24;

/** Data; acknowledged, retransmitted, delivered in `sn` order. */
export const CMD_PUSH = 81;
/** Acknowledges the PUSH `sn`, echoing its `ts` (the sender's clock) for the RTT. */
export const CMD_ACK = 82;
/** Window probe: "tell me your window", sent while the peer's window is 0. */
export const CMD_WASK = 83;
/** Window tell: the answer to WASK (every segment's `wnd` carries the window too). */
export const CMD_WINS = 84;

export interface Segment {
  cmd: number;
  frg: number;
  wnd: number;
  ts: number;
  sn: number;
  una: number;
  /** Shares memory with the datagram it came in. */
  data: Buffer;
}

export function writeSegmentHeader(buf: Buffer, off: number, conv: number, cmd: number, frg: number, wnd: number, ts: number, sn: number, una: number, len: number): number {
  buf.writeUInt32LE(conv >>> 0, off);
  buf[off + 4] = cmd;
  buf[off + 5] = frg;
  buf.writeUInt16LE(wnd & 0xffff, off + 6);
  buf.writeUInt32LE(ts >>> 0, off + 8);
  buf.writeUInt32LE(sn >>> 0, off + 12);
  buf.writeUInt32LE(una >>> 0, off + 16);
  buf.writeUInt32LE(len >>> 0, off + 20);
  return off + KCP_OVERHEAD;
}

/** The conv of a datagram (its first four bytes), or undefined when it is too short to hold a segment. */
export function datagramConv(buf: Buffer): number | undefined {
  return buf.length >= 4 ? buf.readUInt32LE(0) : undefined;
}

/**
 * Splits a datagram into its segments. The whole datagram is checked before
 * any segment is handed out, so a malformed one changes no state: every
 * segment must have the expected conv, a known cmd, and data that fits.
 * Returns the segments, or a string saying what was wrong.
 */
export function parseDatagram(buf: Buffer, conv: number): Segment[] | string {
  if (buf.length < KCP_OVERHEAD) return `datagram of ${buf.length} bytes is shorter than a segment header`;
  const out: Segment[] = [];
  let off = 0;
  while (buf.length - off >= KCP_OVERHEAD) {
    if (buf.readUInt32LE(off) !== conv >>> 0) return 'segment of another conv';
    const cmd = buf[off + 4] as number;
    if (cmd < CMD_PUSH || cmd > CMD_WINS) return `unknown cmd ${cmd}`;
    const len = buf.readUInt32LE(off + 20);
    const start = off + KCP_OVERHEAD;
    if (len > buf.length - start) return `segment data of ${len} bytes overruns the datagram`;
    out.push({
      cmd,
      frg: buf[off + 5] as number,
      wnd: buf.readUInt16LE(off + 6),
      ts: buf.readUInt32LE(off + 8),
      sn: buf.readUInt32LE(off + 12),
      una: buf.readUInt32LE(off + 16),
      data: buf.subarray(start, start + len),
    });
    off = start + len;
  }
  // ikcp ignores a tail shorter than a header; so do we (it cannot be a segment).
  return out;
}

/** Signed distance a - b between two 32-bit wrapping counters (sn, ts). */
export function diff32(a: number, b: number): number {
  return (a - b) | 0;
}
