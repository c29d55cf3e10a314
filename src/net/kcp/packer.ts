import { KCP_OVERHEAD, writeSegmentHeader } from './segment.js';

/** Packs segments into datagrams of at most `mtu` bytes, as ikcp_flush does. */
export class Packer {
  private buf: Buffer | undefined;
  private off = 0;

  constructor(
    private readonly mtu: number,
    private readonly emit: (datagram: Buffer) => void,
  ) {}

  header(conv: number, cmd: number, frg: number, wnd: number, ts: number, sn: number, una: number, len: number, data?: Buffer): void {
    if (this.buf && this.off + KCP_OVERHEAD + len > this.mtu) this.end();
    const buf = (this.buf ??= Buffer.allocUnsafe(this.mtu));
    this.off = writeSegmentHeader(buf, this.off, conv, cmd, frg, wnd, ts, sn, una, len);
    if (data && len > 0) {
      data.copy(buf, this.off);
      this.off += len;
    }
  }

  end(): void {
    if (this.buf && this.off > 0) this.emit(this.buf.subarray(0, this.off));
    this.buf = undefined;
    this.off = 0;
  }
}
