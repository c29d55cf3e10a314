import { Duplex } from 'node:stream';
import { RpcError } from '../errors.js';
import { S } from '../messages.js';
import type { PeerInfo } from '../rpc.js';
import { RecvWindow, SendCredit } from './flow.js';

/** Who opened a stream, and what it said about it. */
export interface StreamInfo {
  /** The stream id on its link (odd when the link's dialer opened it). */
  readonly id: number;
  /** The node at the other end. */
  readonly peer: PeerInfo;
  /** The opener's meta, as given to `openStream`. */
  readonly meta: Readonly<Record<string, string>>;
  /** `local`: this node opened the stream; `remote`: the peer did. */
  readonly opener: 'local' | 'remote';
}

/** What a stream needs from the link it lives on (`LinkStreams`). */
export interface StreamOwner {
  /** The stream has data to send and credit to send it: queue it for the link. */
  schedule(stream: MeshStream): void;
  /** A control frame, sent at once (not paced). False when the link is closed. */
  sendControl(msgId: number, id: number, body: Uint8Array): boolean;
  /** Sends data without copying it; `written` once the link no longer needs `body`. */
  sendData(id: number, body: Uint8Array, written: (() => void) | undefined): boolean;
  /** `n` received bytes were consumed or dropped: they no longer count against the link's window. */
  released(n: number): void;
  remove(stream: MeshStream): void;
}

const EMPTY = new Uint8Array(0);
const WRITE_HIGH_WATER = 64 * 1024;
const noop = (): void => {};

/**
 * A frame body usually shares memory with the socket chunk it came in. A
 * reader that holds a small slice would pin the whole chunk, so small slices
 * are copied: what a slow reader holds is what the window counts.
 */
function own(body: Buffer): Buffer {
  return body.byteLength * 2 < body.buffer.byteLength ? Buffer.from(body) : body;
}

/**
 * One reliable, ordered byte stream over a service link: a Node `Duplex`.
 * Its writes wait for credit from the reader's side (so `write()` returns
 * false and `drain` follows when the peer stops reading) and are not
 * copied: a write's callback comes once the socket has taken the bytes, as
 * with a socket, and the buffer may be reused from then on. Its reads hand
 * credit back as they are consumed, `end()` half-closes, and `destroy(err)`
 * or `reset()` aborts both directions with an error on both sides.
 *
 * Emits `open` once the peer accepted the stream. Errors are `RpcError`s;
 * an 'error' with no listener does not throw (the peer must not be able to
 * crash this process): it is in `stream.errored`, and 'close' follows.
 */
export class MeshStream extends Duplex {
  /** In its link's send queue (LinkStreams). */
  queued = false;
  private owner: StreamOwner | undefined;
  private streamInfo: StreamInfo | undefined;
  private phase: 'resolving' | 'opening' | 'open' = 'resolving';
  private readonly credit = new SendCredit();
  private readonly recv: RecvWindow;
  private out: Buffer | undefined;
  private outOff = 0;
  private outCb: ((err?: Error | null) => void) | undefined;
  private finalCb: ((err?: Error | null) => void) | undefined;
  private pushedBytes = 0;
  private releasedBytes = 0;
  private sentEnd = false;
  private gotEnd = false;
  /** The peer knows the stream is gone (it reset it, or the link is lost): send no reset. */
  private silent = false;
  private openTimer: NodeJS.Timeout | undefined;

  constructor(readonly window: number) {
    // A read buffer of at most half the window: _read (and so a grant) is then
    // called while at least half the window is owed back.
    super({ allowHalfOpen: true, readableHighWaterMark: Math.min(64 * 1024, Math.floor(window / 2)), writableHighWaterMark: WRITE_HIGH_WATER });
    this.recv = new RecvWindow(window);
    this.on('error', noop);
  }

  /** Who opened the stream and its meta; undefined while the target is still being resolved. */
  get info(): StreamInfo | undefined {
    return this.streamInfo;
  }

  /** True once the peer accepted the stream (after `open`). */
  get opened(): boolean {
    return this.phase === 'open';
  }

  /** Aborts the stream both ways; both sides see an RpcError `cancelled` with this message. */
  reset(message = 'the stream was reset'): void {
    this.destroy(new RpcError('cancelled', message));
  }

  // ---- wiring, called by LinkStreams ----------------------------------------

  /** Binds the stream to its link: `opening` for one we opened, `open` for one the peer opened with `credit`. */
  attach(owner: StreamOwner, info: StreamInfo, credit?: number): void {
    this.owner = owner;
    this.streamInfo = info;
    if (credit === undefined) {
      this.phase = 'opening';
      return;
    }
    this.phase = 'open';
    if (credit > 0) this.credit.grant(credit);
  }

  /** Fails the stream with `timeout` unless the peer accepts it within `ms`. */
  expireOpen(ms: number, what: string): void {
    clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      if (this.phase !== 'open') this.destroy(new RpcError('timeout', `${what} was not accepted within ${ms} ms`));
    }, ms);
    this.openTimer.unref();
  }

  onAccept(window: number): void {
    if (this.phase !== 'opening') return void this.violation('StreamAccept for a stream that is not opening');
    if (window > 0 && !this.credit.grant(window)) return void this.violation(`StreamAccept window ${window} is out of range`);
    clearTimeout(this.openTimer);
    this.phase = 'open';
    this.emit('open');
    if (this.out) this.owner?.schedule(this);
    const final = this.finalCb;
    this.finalCb = undefined;
    if (final) this.sendEnd(final);
  }

  /** False when the bytes were refused (the stream is then reset): the caller gives them back to the link. */
  onData(body: Buffer): boolean {
    if (this.phase !== 'open') return this.violation('data before the stream was accepted');
    if (this.gotEnd) return this.violation('data after StreamEnd');
    if (!this.recv.receive(body.length)) return this.violation(`${body.length} bytes of data with ${this.recv.remaining} bytes of credit`);
    if (body.length === 0) return true;
    this.pushedBytes += body.length;
    this.push(own(body));
    this.releaseConsumed();
    return true;
  }

  onWindow(delta: number): void {
    if (!this.credit.grant(delta)) return void this.violation(`a window update of ${delta} bytes takes the credit out of range`);
    if (this.out && this.phase === 'open') this.owner?.schedule(this);
  }

  onEnd(): void {
    if (this.phase !== 'open') return void this.violation('StreamEnd before the stream was accepted');
    if (this.gotEnd) return void this.violation('a second StreamEnd');
    this.gotEnd = true;
    this.push(null);
  }

  onReset(code: string, message: string): void {
    this.silent = true;
    this.destroy(RpcError.fromWire(code, message || 'the stream was reset by the peer'));
  }

  /** The peer broke the protocol on this stream: reset it, telling the peer why. */
  abort(what: string): void {
    this.violation(what);
  }

  /** The link closed: nothing can be sent, and the peer learns it from its own side of the link. */
  linkLost(err: RpcError): void {
    this.silent = true;
    this.destroy(err);
  }

  /** Has data and credit: LinkStreams may call sendChunk. */
  wantsSend(): boolean {
    return this.phase === 'open' && this.out !== undefined && this.credit.available > 0 && !this.destroyed;
  }

  /** Sends up to `max` bytes of the pending write as one frame; returns the bytes sent. */
  sendChunk(max: number): number {
    const out = this.out;
    const owner = this.owner;
    if (!out || !owner || this.phase !== 'open') return 0;
    const n = Math.min(max, out.length - this.outOff, this.credit.available);
    if (n <= 0) return 0;
    const body = n === out.length ? out : out.subarray(this.outOff, this.outOff + n);
    const last = this.outOff + n === out.length;
    // The writer may reuse its buffer after the callback, so the callback waits until the link has written it.
    const cb = last ? this.outCb : undefined;
    const written = cb ? () => this.written(cb) : undefined;
    // State first: `written` may run inside sendData, and the Writable may then hand over the next chunk.
    this.credit.take(n);
    this.outOff += n;
    if (last) this.out = undefined;
    return owner.sendData((this.streamInfo as StreamInfo).id, body, written) ? n : 0;
  }

  /** The write behind `cb` is on the socket: the Writable may go on (unless destroy already failed it). */
  private written(cb: (err?: Error | null) => void): void {
    if (this.outCb !== cb) return;
    this.outCb = undefined;
    cb();
  }

  // ---- Duplex -----------------------------------------------------------------

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.queueWrite(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    // Many small writes queued behind a big one go out as one frame.
    this.queueWrite(chunks.length === 1 ? (chunks[0] as { chunk: Buffer }).chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  private queueWrite(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (chunk.length === 0) return cb();
    this.out = chunk;
    this.outOff = 0;
    this.outCb = cb;
    if (this.phase === 'open') this.owner?.schedule(this);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.phase !== 'open') {
      this.finalCb = cb;
      return;
    }
    this.sendEnd(cb);
  }

  override _read(): void {
    this.releaseConsumed();
  }

  /** Every read (flowing mode reads through here too) may owe the peer credit. */
  override read(size?: number): ReturnType<Duplex['read']> {
    const chunk: ReturnType<Duplex['read']> = super.read(size);
    this.releaseConsumed();
    return chunk;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.openTimer);
    const owner = this.owner;
    const info = this.streamInfo;
    if (owner && info) {
      if (!this.silent && !(this.sentEnd && this.gotEnd)) {
        const code = err instanceof RpcError ? err.code : err ? 'application' : 'cancelled';
        owner.sendControl(S.StreamReset.id, info.id, S.StreamReset.encode({ code, message: err?.message ?? 'the stream was closed before it ended' }));
      }
      // What will never be read must not keep holding the link's window.
      const unread = this.pushedBytes - this.releasedBytes;
      this.releasedBytes = this.pushedBytes;
      if (unread > 0) owner.released(unread);
      owner.remove(this);
    }
    const closed = err ?? new RpcError('cancelled', 'the stream was destroyed');
    const write = this.outCb;
    const final = this.finalCb;
    this.out = undefined;
    this.outCb = undefined;
    this.finalCb = undefined;
    write?.(closed);
    final?.(closed);
    cb(err);
  }

  // ---- internals ----------------------------------------------------------------

  private sendEnd(cb: (err?: Error | null) => void): void {
    this.sentEnd = true;
    this.owner?.sendControl(S.StreamEnd.id, (this.streamInfo as StreamInfo).id, EMPTY);
    cb();
  }

  private releaseConsumed(): void {
    const owner = this.owner;
    if (!owner) return;
    const consumed = this.pushedBytes - this.readableLength;
    const n = consumed - this.releasedBytes;
    if (n <= 0) return;
    this.releasedBytes = consumed;
    owner.released(n);
    const delta = this.recv.release(n);
    // After the peer's StreamEnd it sends nothing more: no grant needed.
    if (delta > 0 && !this.gotEnd && !this.destroyed) owner.sendControl(S.StreamWindow.id, (this.streamInfo as StreamInfo).id, S.StreamWindow.encode({ delta }));
  }

  private violation(what: string): false {
    this.destroy(new RpcError('bad_request', `stream protocol violation by ${this.streamInfo?.peer.id ?? 'the peer'}: ${what}`));
    return false;
  }
}
