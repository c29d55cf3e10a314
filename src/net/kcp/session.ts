import { FrameDecoder, FrameError, HEADER_BYTES, writeHeader } from '../../wire/frame.js';
import { BaseSession } from '../base-session.js';
import type { SessionOptions } from '../session.js';
import { CloseCode, ControlType, encodeControl } from './control.js';
import type { KcpDriver } from './driver.js';
import { KcpEngine, type KcpMode } from './engine.js';

/** What a session needs from whoever owns its UDP socket: the listener, or a dialer's socket. */
export interface KcpLink {
  readonly driver: KcpDriver;
  sendDatagram(datagram: Buffer, address: string, port: number): void;
  /** The session is done with the socket: forget its conv. */
  released(session: KcpSession): void;
}

/** KCP knobs shared by the dialer and the listener: MTU, send and receive windows, and the drain time on close. */
export interface KcpTuning {
  mtu?: number;
  sndWnd?: number;
  rcvWnd?: number;
  /** How long a graceful close waits for the peer to acknowledge what was sent (ms). */
  drainMs?: number;
}

/** Options of a KCP session. */
export interface KcpSessionOptions extends SessionOptions, KcpTuning {
  mode: KcpMode;
}

/**
 * One KCP conversation as a Session. The bytes inside KCP are gamemesh TCP
 * frames (`u32 length | u16 msgId | u32 seq | body`); each frame is sent as
 * one KCP message (split into several only when it exceeds KCP's largest
 * message), and the receiver decodes the concatenation of the messages it
 * gets, so a peer may use KCP's message mode or its stream mode.
 */
export class KcpSession extends BaseSession {
  readonly transport = 'kcp' as const;
  readonly engine: KcpEngine;
  private readonly decoder: FrameDecoder;
  private readonly drainMs: number;
  private drainUntil = 0;
  private releasedFlag = false;
  private peerGone = false;
  private closeCode: CloseCode = CloseCode.Closed;

  constructor(
    private readonly link: KcpLink,
    readonly conv: number,
    readonly address: string,
    readonly port: number,
    options: KcpSessionOptions,
  ) {
    super(`${address}:${port}`, options);
    this.engine = new KcpEngine(conv, (d) => link.sendDatagram(d, address, port), { mode: options.mode, mtu: options.mtu, sndWnd: options.sndWnd, rcvWnd: options.rcvWnd });
    this.decoder = new FrameDecoder((msgId, seq, body) => this.deliver(msgId, seq, body), this.opts.maxFrame);
    this.drainMs = options.drainMs ?? 2000;
  }

  get outboundBytes(): number {
    return this.engine.pendingBytes;
  }

  /** Done: nothing more goes out, and datagrams for its conv are no longer wanted. */
  get released(): boolean {
    return this.releasedFlag;
  }

  /**
   * One datagram of this conv from the bound address (the owner checks
   * both). Returns why it was refused, or undefined.
   */
  input(datagram: Buffer): string | undefined {
    if (this.releasedFlag) return 'session released';
    const err = this.engine.input(datagram);
    if (err !== undefined) return err;
    this.touch();
    for (let msg = this.engine.recv(); msg !== undefined; msg = this.engine.recv()) {
      // Draining after close: keep reading so the window stays open, deliver nothing.
      if (this.closed) continue;
      try {
        this.decoder.push(msg);
      } catch (e) {
        this.closeCode = CloseCode.Protocol;
        if (e instanceof FrameError) this.close(`bad frame: ${e.message}`, e);
        else this.close(`frame handler failed: ${(e as Error).message}`, e as Error);
      }
    }
    if (this.engine.stalled && !this.closed) {
      this.closeCode = CloseCode.Protocol;
      this.close('protocol error: a message has more fragments than the receive window holds', new FrameError('KCP receive window stalled'));
    }
    this.link.driver.dirtied(this);
    return undefined;
  }

  /** The peer said Close: nothing to drain toward it. */
  peerClosed(): void {
    this.peerGone = true;
    this.close('connection closed by peer');
  }

  /** Close with the code the peer is told (listener shutdown, refusal). */
  closeWith(code: CloseCode, reason: string): void {
    this.closeCode = code;
    this.close(reason);
  }

  protected write(msgId: number, seq: number, body: Uint8Array): void {
    const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
    writeHeader(frame, 0, msgId, seq, body.length);
    frame.set(body, HEADER_BYTES);
    const max = this.engine.maxMessage;
    for (let off = 0; off < frame.length; off += max) {
      if (!this.engine.send(frame.subarray(off, off + max))) {
        this.close(`KCP send queue full (${this.engine.waitSnd} segments): peer is not acknowledging`);
        return;
      }
    }
    this.link.driver.dirtied(this);
  }

  protected shutdown(abort: boolean): void {
    if (abort && this.closeCode === CloseCode.Closed) this.closeCode = CloseCode.Protocol;
    if (abort || this.peerGone || this.engine.isDead) return this.finish(false);
    this.drainUntil = Date.now() + this.drainMs;
    // Frames written just before close() leave with the next flush; finish() waits for their acks.
    this.link.driver.dirtied(this);
  }

  pump(): void {
    if (this.releasedFlag) return;
    this.engine.update();
    this.afterOutput();
  }

  flushNow(): void {
    if (this.releasedFlag) return;
    this.engine.flush();
    this.afterOutput();
  }

  get busy(): boolean {
    return !this.releasedFlag && (this.engine.busy || this.closed);
  }

  private afterOutput(): void {
    if (this.engine.isDead) {
      this.closeCode = CloseCode.Unreachable;
      if (!this.closed) this.close(`peer unreachable: a segment went unacknowledged after ${this.engine.counters.retransmits} retransmissions`, new Error('KCP dead link'));
      else this.finish(false);
      return;
    }
    if (this.closed && (this.engine.waitSnd === 0 || Date.now() >= this.drainUntil)) this.finish(true);
  }

  private finish(flush: boolean): void {
    if (this.releasedFlag) return;
    if (flush) this.engine.flush();
    this.releasedFlag = true;
    // Unreliable by nature; a peer that misses it times out instead.
    if (!this.peerGone) this.link.sendDatagram(encodeControl({ type: ControlType.Close, conv: this.conv, code: this.closeCode }), this.address, this.port);
    this.link.driver.forget(this);
    this.link.released(this);
  }
}
