/**
 * The KCP ARQ state machine: one conversation's send and receive windows,
 * retransmission and acknowledgement, as KCP's protocol.txt describes and the
 * reference ikcp.c behaves (used as the oracle in test/kcp-interop.test.ts).
 * Transport-free: datagrams go out through `output`, come in through
 * `input`; the owner calls `update` on a timer and `flush` when it wants
 * data out now.
 *
 * Differences from ikcp, all on the side of safety: a datagram is checked
 * whole before any of it is applied; the acknowledgement list and the send
 * queue are capped; a receive queue that can never complete a message
 * (fragment counts larger than the window) is reported as `stalled`.
 */
import { NORMAL_MODE, KCP_DEFAULT_MTU, type KcpEngineOptions, type KcpMode } from './mode.js';
import { Packer } from './packer.js';
import { CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS, diff32, KCP_OVERHEAD, parseDatagram } from './segment.js';

export { KCP_DEFAULT_MTU, NORMAL_MODE, TURBO_MODE, type KcpEngineOptions, type KcpMode } from './mode.js';

const RTO_NODELAY_MIN = 30;
const RTO_MIN = 100;
const RTO_DEFAULT = 200;
const RTO_MAX = 60_000;
const ASK_SEND = 1;
const ASK_TELL = 2;
/** The receive window's floor: a message has at most this many fragments minus one (ikcp's IKCP_WND_RCV). */
export const KCP_MAX_FRAGMENTS = 128;
const THRESH_INIT = 2;
const THRESH_MIN = 2;
const PROBE_INIT = 5000;
const PROBE_LIMIT = 120_000;
const FASTACK_LIMIT = 5;


interface SendSeg {
  sn: number;
  frg: number;
  ts: number;
  resendts: number;
  rto: number;
  fastack: number;
  xmit: number;
  data: Buffer;
}

interface RecvSeg {
  sn: number;
  frg: number;
  data: Buffer;
}

const monotonicMs = (): number => Math.floor(performance.now()) >>> 0;

function bounded(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  return value;
}

/** The KCP protocol state machine (as ikcp.c): segments, acks, retransmission and windows, with no I/O of its own. */
export class KcpEngine {
  readonly mtu: number;
  readonly mss: number;
  readonly mode: KcpMode;
  /** Counters for tests and stats. */
  readonly counters = { retransmits: 0, fastRetransmits: 0, droppedAcks: 0, datagramsOut: 0, bytesOut: 0 };
  private dead = false;
  private sndUna = 0;
  private sndNxt = 0;
  private rcvNxt = 0;
  private ssthresh = THRESH_INIT;
  private rxRttval = 0;
  private rxSrtt = 0;
  private rxRto = RTO_DEFAULT;
  private readonly rxMinrto: number;
  private readonly sndWnd: number;
  private readonly rcvWnd: number;
  private rmtWnd = KCP_MAX_FRAGMENTS;
  /** Starts at 1, as after ikcp_setcc(kcp, NULL): ikcp_create's 0 only delays the first data by one flush. */
  private cwnd = 1;
  private incr: number;
  private probe = 0;
  private current = 0;
  private readonly interval: number;
  private tsFlush = 0;
  private updated = false;
  private tsProbe = 0;
  private probeWait = 0;
  private readonly deadLink: number;
  private readonly maxQueue: number;
  private readonly maxAcks: number;
  private readonly clock: () => number;
  private sndQueue: SendSeg[] = [];
  private sndBuf: SendSeg[] = [];
  private rcvBuf: RecvSeg[] = [];
  private rcvQueue: RecvSeg[] = [];
  /** Pairs sn, ts of segments to acknowledge at the next flush. */
  private acks: number[] = [];
  private queued = 0;

  constructor(
    readonly conv: number,
    private readonly output: (datagram: Buffer) => void,
    options: KcpEngineOptions = {},
  ) {
    const mode = options.mode ?? NORMAL_MODE;
    this.mode = mode;
    this.mtu = bounded('mtu', options.mtu ?? KCP_DEFAULT_MTU, 50, 1500);
    this.mss = this.mtu - KCP_OVERHEAD;
    this.sndWnd = bounded('sndWnd', options.sndWnd ?? 128, 1, 4096);
    this.rcvWnd = Math.max(KCP_MAX_FRAGMENTS, bounded('rcvWnd', options.rcvWnd ?? KCP_MAX_FRAGMENTS, 1, 4096));
    this.deadLink = bounded('deadLink', options.deadLink ?? 20, 1, 1000);
    this.maxQueue = bounded('maxQueue', options.maxQueue ?? 8192, 1, 1 << 20);
    this.interval = Math.min(5000, Math.max(10, bounded('interval', mode.interval, 1, 1_000_000)));
    this.rxMinrto = mode.nodelay ? RTO_NODELAY_MIN : RTO_MIN;
    // Acks for more than two windows' worth of pushes between flushes can only be duplicates.
    this.maxAcks = this.rcvWnd * 2;
    this.incr = this.mss;
    this.clock = options.clock ?? monotonicMs;
  }

  /** The largest message send() takes: fewer fragments than the receive window floor. */
  get maxMessage(): number {
    return (KCP_MAX_FRAGMENTS - 1) * this.mss;
  }

  /** Bytes accepted by send() and not yet acknowledged. */
  get pendingBytes(): number {
    return this.queued;
  }

  /** Segments waiting to be sent or acknowledged (ikcp_waitsnd). */
  get waitSnd(): number {
    return this.sndBuf.length + this.sndQueue.length;
  }

  /** A segment went unacknowledged `deadLink` times. */
  get isDead(): boolean {
    return this.dead;
  }

  /** The receive queue is full and its first message can never complete. */
  get stalled(): boolean {
    return this.rcvQueue.length >= this.rcvWnd && this.peekSize() < 0;
  }

  /** Something is in flight or owed: the owner must keep calling update(). */
  get busy(): boolean {
    return this.sndBuf.length > 0 || this.sndQueue.length > 0 || this.acks.length > 0 || this.probe !== 0;
  }

  /** Buffered segments, for memory checks: [send queue, send buffer, receive buffer, receive queue, acks]. */
  get sizes(): readonly [number, number, number, number, number] {
    return [this.sndQueue.length, this.sndBuf.length, this.rcvBuf.length, this.rcvQueue.length, this.acks.length / 2];
  }

  /** Segments this side buffers out of order (what Accept tells a client). */
  get receiveWindow(): number {
    return this.rcvWnd;
  }

  get rto(): number {
    return this.rxRto;
  }

  /**
   * Queues one message (ikcp_send in message mode). The bytes are kept, not
   * copied. False when it would need KCP_MAX_FRAGMENTS fragments or more, or
   * the send queue is full.
   */
  send(data: Buffer): boolean {
    const count = data.length <= this.mss ? 1 : Math.ceil(data.length / this.mss);
    if (count >= KCP_MAX_FRAGMENTS || this.sndQueue.length + count > this.maxQueue) return false;
    for (let i = 0; i < count; i++) {
      const chunk = data.subarray(i * this.mss, Math.min(data.length, (i + 1) * this.mss));
      this.sndQueue.push({ sn: 0, frg: count - i - 1, ts: 0, resendts: 0, rto: 0, fastack: 0, xmit: 0, data: chunk });
    }
    this.queued += data.length;
    return true;
  }

  /** The next whole message, or undefined (ikcp_recv). */
  recv(): Buffer | undefined {
    const size = this.peekSize();
    if (size < 0) return undefined;
    const recover = this.rcvQueue.length >= this.rcvWnd;
    let out: Buffer;
    const first = this.rcvQueue[0] as RecvSeg;
    if (first.frg === 0) {
      this.rcvQueue.shift();
      out = first.data;
    } else {
      out = Buffer.allocUnsafe(size);
      let off = 0;
      for (;;) {
        const seg = this.rcvQueue.shift() as RecvSeg;
        seg.data.copy(out, off);
        off += seg.data.length;
        if (seg.frg === 0) break;
      }
    }
    this.moveReady();
    // The window reopened after it was full: tell the peer without waiting for its probe.
    if (recover && this.rcvQueue.length < this.rcvWnd) this.probe |= ASK_TELL;
    return out;
  }

  private peekSize(): number {
    const first = this.rcvQueue[0];
    if (!first) return -1;
    if (first.frg === 0) return first.data.length;
    if (this.rcvQueue.length < first.frg + 1) return -1;
    let size = 0;
    for (const seg of this.rcvQueue) {
      size += seg.data.length;
      if (seg.frg === 0) break;
    }
    return size;
  }

  /** Applies one datagram (ikcp_input). Returns why it was refused, or undefined. */
  input(datagram: Buffer): string | undefined {
    const segs = parseDatagram(datagram, this.conv);
    if (typeof segs === 'string') return segs;
    this.current = this.clock();
    const prevUna = this.sndUna;
    let sawAck = false;
    let maxAck = 0;
    let latestTs = 0;
    for (const seg of segs) {
      this.rmtWnd = seg.wnd;
      this.parseUna(seg.una);
      this.shrinkBuf();
      if (seg.cmd === CMD_ACK) {
        const rtt = diff32(this.current, seg.ts);
        if (rtt >= 0) this.updateAck(rtt);
        this.parseAck(seg.sn);
        this.shrinkBuf();
        if (!sawAck) {
          sawAck = true;
          maxAck = seg.sn;
          latestTs = seg.ts;
        } else if (diff32(seg.sn, maxAck) > 0 && diff32(seg.ts, latestTs) > 0) {
          // ikcp's IKCP_FASTACK_CONSERVE: only an ack of a later transmission counts past a segment.
          maxAck = seg.sn;
          latestTs = seg.ts;
        }
      } else if (seg.cmd === CMD_PUSH) {
        if (diff32(seg.sn, (this.rcvNxt + this.rcvWnd) >>> 0) < 0) {
          this.ackPush(seg.sn, seg.ts);
          if (diff32(seg.sn, this.rcvNxt) >= 0) this.parseData({ sn: seg.sn, frg: seg.frg, data: seg.data });
        }
      } else if (seg.cmd === CMD_WASK) {
        this.probe |= ASK_TELL;
      }
      // CMD_WINS: its wnd was taken above.
    }
    if (sawAck) this.parseFastack(maxAck, latestTs);
    if (diff32(this.sndUna, prevUna) > 0) this.growCwnd();
    return undefined;
  }

  private growCwnd(): void {
    if (this.cwnd >= this.rmtWnd) return;
    const mss = this.mss;
    if (this.cwnd < this.ssthresh) {
      this.cwnd++;
      this.incr += mss;
    } else {
      if (this.incr < mss) this.incr = mss;
      this.incr += Math.floor((mss * mss) / this.incr) + Math.floor(mss / 16);
      if ((this.cwnd + 1) * mss <= this.incr) this.cwnd = Math.floor((this.incr + mss - 1) / mss);
    }
    if (this.cwnd > this.rmtWnd) {
      this.cwnd = this.rmtWnd;
      this.incr = this.rmtWnd * mss;
    }
  }

  private updateAck(rtt: number): void {
    if (this.rxSrtt === 0) {
      this.rxSrtt = rtt;
      this.rxRttval = Math.floor(rtt / 2);
    } else {
      const delta = Math.abs(rtt - this.rxSrtt);
      this.rxRttval = Math.floor((3 * this.rxRttval + delta) / 4);
      this.rxSrtt = Math.max(1, Math.floor((7 * this.rxSrtt + rtt) / 8));
    }
    const rto = this.rxSrtt + Math.max(this.interval, 4 * this.rxRttval);
    this.rxRto = Math.min(Math.max(this.rxMinrto, rto), RTO_MAX);
  }

  private shrinkBuf(): void {
    this.sndUna = this.sndBuf[0]?.sn ?? this.sndNxt;
  }

  private dropSent(index: number): void {
    const [seg] = this.sndBuf.splice(index, 1);
    if (seg) this.queued -= seg.data.length;
  }

  private parseAck(sn: number): void {
    if (diff32(sn, this.sndUna) < 0 || diff32(sn, this.sndNxt) >= 0) return;
    for (let i = 0; i < this.sndBuf.length; i++) {
      const seg = this.sndBuf[i] as SendSeg;
      if (seg.sn === sn) return this.dropSent(i);
      if (diff32(sn, seg.sn) < 0) return;
    }
  }

  private parseUna(una: number): void {
    let n = 0;
    while (n < this.sndBuf.length && diff32(una, (this.sndBuf[n] as SendSeg).sn) > 0) {
      this.queued -= (this.sndBuf[n] as SendSeg).data.length;
      n++;
    }
    if (n > 0) this.sndBuf.splice(0, n);
  }

  private parseFastack(sn: number, ts: number): void {
    if (diff32(sn, this.sndUna) < 0 || diff32(sn, this.sndNxt) >= 0) return;
    for (const seg of this.sndBuf) {
      if (diff32(sn, seg.sn) < 0) break;
      if (sn !== seg.sn && diff32(ts, seg.ts) >= 0) seg.fastack++;
    }
  }

  private ackPush(sn: number, ts: number): void {
    if (this.acks.length >= this.maxAcks * 2) {
      this.counters.droppedAcks++;
      return;
    }
    this.acks.push(sn, ts);
  }

  private parseData(seg: RecvSeg): void {
    const sn = seg.sn;
    if (diff32(sn, (this.rcvNxt + this.rcvWnd) >>> 0) >= 0 || diff32(sn, this.rcvNxt) < 0) return;
    let i = this.rcvBuf.length - 1;
    for (; i >= 0; i--) {
      const other = this.rcvBuf[i] as RecvSeg;
      if (other.sn === sn) return;
      if (diff32(sn, other.sn) > 0) break;
    }
    this.rcvBuf.splice(i + 1, 0, seg);
    this.moveReady();
  }

  /** In-order segments from the receive buffer to the receive queue, while the window has room. */
  private moveReady(): void {
    let n = 0;
    while (n < this.rcvBuf.length && this.rcvQueue.length < this.rcvWnd) {
      const seg = this.rcvBuf[n] as RecvSeg;
      if (seg.sn !== this.rcvNxt) break;
      this.rcvQueue.push(seg);
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      n++;
    }
    if (n > 0) this.rcvBuf.splice(0, n);
  }

  private wndUnused(): number {
    return this.rcvQueue.length < this.rcvWnd ? this.rcvWnd - this.rcvQueue.length : 0;
  }

  /** Call every few ms (ikcp_update): flushes when `interval` has passed since the last timed flush. */
  update(): void {
    this.current = this.clock();
    if (!this.updated) {
      this.updated = true;
      this.tsFlush = this.current;
    }
    let slap = diff32(this.current, this.tsFlush);
    if (slap >= 10_000 || slap < -10_000) {
      this.tsFlush = this.current;
      slap = 0;
    }
    if (slap >= 0) {
      this.tsFlush = (this.tsFlush + this.interval) >>> 0;
      if (diff32(this.current, this.tsFlush) >= 0) this.tsFlush = (this.current + this.interval) >>> 0;
      this.flushAt(this.current);
    }
  }

  /** Sends acks, probes, new data and due retransmissions now (ikcp_flush). */
  flush(): void {
    this.flushAt((this.current = this.clock()));
  }

  private flushAt(current: number): void {
    const out = new Packer(this.mtu, (d) => {
      this.counters.datagramsOut++;
      this.counters.bytesOut += d.length;
      this.output(d);
    });
    const wnd = this.wndUnused();
    const una = this.rcvNxt;
    const acks = this.acks;
    for (let i = 0; i < acks.length; i += 2) out.header(this.conv, CMD_ACK, 0, wnd, acks[i + 1] as number, acks[i] as number, una, 0);
    this.acks = [];

    if (this.rmtWnd === 0) {
      if (this.probeWait === 0) {
        this.probeWait = PROBE_INIT;
        this.tsProbe = (current + this.probeWait) >>> 0;
      } else if (diff32(current, this.tsProbe) >= 0) {
        if (this.probeWait < PROBE_INIT) this.probeWait = PROBE_INIT;
        this.probeWait = Math.min(PROBE_LIMIT, this.probeWait + Math.floor(this.probeWait / 2));
        this.tsProbe = (current + this.probeWait) >>> 0;
        this.probe |= ASK_SEND;
      }
    } else {
      this.tsProbe = 0;
      this.probeWait = 0;
    }
    if (this.probe & ASK_SEND) out.header(this.conv, CMD_WASK, 0, wnd, 0, 0, una, 0);
    if (this.probe & ASK_TELL) out.header(this.conv, CMD_WINS, 0, wnd, 0, 0, una, 0);
    this.probe = 0;

    const priorCwnd = this.cwnd;
    let cwnd = Math.min(this.sndWnd, this.rmtWnd);
    if (!this.mode.nc) cwnd = Math.min(this.cwnd, cwnd);
    while (diff32(this.sndNxt, (this.sndUna + cwnd) >>> 0) < 0 && this.sndQueue.length > 0) {
      const seg = this.sndQueue.shift() as SendSeg;
      seg.ts = current;
      seg.sn = this.sndNxt;
      this.sndNxt = (this.sndNxt + 1) >>> 0;
      seg.resendts = current;
      seg.rto = this.rxRto;
      this.sndBuf.push(seg);
    }

    const resent = this.mode.resend > 0 ? this.mode.resend : Infinity;
    const rtomin = this.mode.nodelay === 0 ? this.rxRto >> 3 : 0;
    let change = 0;
    let lost = false;
    for (const seg of this.sndBuf) {
      let needsend = false;
      if (seg.xmit === 0) {
        needsend = true;
        seg.xmit++;
        seg.rto = this.rxRto;
        seg.resendts = (current + seg.rto + rtomin) >>> 0;
      } else if (diff32(current, seg.resendts) >= 0) {
        needsend = true;
        seg.xmit++;
        this.counters.retransmits++;
        if (this.mode.nodelay === 0) seg.rto += Math.max(seg.rto, this.rxRto);
        else seg.rto += Math.floor((this.mode.nodelay < 2 ? seg.rto : this.rxRto) / 2);
        seg.resendts = (current + seg.rto) >>> 0;
        lost = true;
      } else if (seg.fastack >= resent && seg.xmit <= FASTACK_LIMIT) {
        needsend = true;
        seg.xmit++;
        seg.fastack = 0;
        seg.resendts = (current + seg.rto) >>> 0;
        this.counters.fastRetransmits++;
        change++;
      }
      if (!needsend) continue;
      seg.ts = current;
      out.header(this.conv, CMD_PUSH, seg.frg, wnd, current, seg.sn, una, seg.data.length, seg.data);
      if (seg.xmit >= this.deadLink) this.dead = true;
    }
    out.end();

    if (change > 0) {
      const inflight = (this.sndNxt - this.sndUna) >>> 0;
      this.ssthresh = Math.max(THRESH_MIN, Math.floor(inflight / 2));
      this.cwnd = this.ssthresh + this.mode.resend;
      this.incr = this.cwnd * this.mss;
    }
    if (lost) {
      this.ssthresh = Math.max(THRESH_MIN, Math.floor(priorCwnd / 2));
      this.cwnd = 1;
      this.incr = this.mss;
    }
    if (this.cwnd < 1) {
      this.cwnd = 1;
      this.incr = this.mss;
    }
  }
}
