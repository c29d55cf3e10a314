import { EventEmitter } from 'node:events';
import type { SharedFrame } from './shared-frame.js';
import { joinTicks, leaveTicks, type Ticking } from './tick-groups.js';
import { allocSessionId, HEARTBEAT_MSG_ID, SESSION_DEFAULTS, type Session, type SessionEvents, type SessionOptions, type SessionTransport } from './session.js';

const EMPTY = new Uint8Array(0);

/**
 * What TCP, WebSocket and KCP sessions share: the close-once state machine, the
 * outbound cap, and one periodic check (shared with the sessions of the same
 * period) that does both idle detection and heartbeats.
 */
export abstract class BaseSession extends EventEmitter<SessionEvents> implements Session, Ticking {
  readonly id = allocSessionId();
  abstract readonly transport: SessionTransport;
  protected readonly opts: Required<SessionOptions>;
  private closedFlag = false;
  private lastRecv = Date.now();
  protected lastSend = Date.now();
  /** The period of the tick group this session is in (0: none). */
  private tickMs = 0;

  readonly connectedAt: number;

  constructor(
    readonly remoteAddress: string,
    options: SessionOptions,
    connectedAt = Date.now(),
  ) {
    super();
    this.connectedAt = connectedAt;
    // Only the session's own four fields, in one order: listener options (host, port...) are not
    // copied into every session (memory per client is a target), and every session shares one map.
    this.opts = {
      maxFrame: options.maxFrame ?? SESSION_DEFAULTS.maxFrame,
      maxOutbound: options.maxOutbound ?? SESSION_DEFAULTS.maxOutbound,
      idleTimeoutMs: options.idleTimeoutMs ?? SESSION_DEFAULTS.idleTimeoutMs,
      heartbeatMs: options.heartbeatMs ?? SESSION_DEFAULTS.heartbeatMs,
    };
    this.startTimer();
  }

  private startTimer(): void {
    if (this.tickMs > 0) leaveTicks(this, this.tickMs);
    this.tickMs = 0;
    const { idleTimeoutMs, heartbeatMs } = this.opts;
    const tick = Math.min(idleTimeoutMs || Infinity, heartbeatMs || Infinity);
    if (tick !== Infinity) {
      this.tickMs = Math.max(10, Math.floor(tick / 2));
      joinTicks(this, this.tickMs);
    }
  }

  /** Changes the idle timeout and heartbeat of a live session (e.g. from reloaded config). */
  setTimeouts(t: { idleTimeoutMs?: number; heartbeatMs?: number }): void {
    if (this.closedFlag) return;
    if (t.idleTimeoutMs !== undefined) this.opts.idleTimeoutMs = t.idleTimeoutMs;
    if (t.heartbeatMs !== undefined) this.opts.heartbeatMs = t.heartbeatMs;
    this.startTimer();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  abstract get outboundBytes(): number;

  send(msgId: number, seq: number, body: Uint8Array): boolean {
    if (!this.admit(body.length)) return false;
    this.write(msgId, seq, body);
    return true;
  }

  /** Transports that can share bytes override this; the others frame the message as `send` does. */
  sendFrame(frame: SharedFrame): boolean {
    return this.send(frame.msgId, frame.seq, frame.body);
  }

  /** Whether `bytes` more may be queued; closes a session whose peer stopped reading. */
  protected admit(bytes: number): boolean {
    if (this.closedFlag) return false;
    if (this.outboundBytes + bytes > this.opts.maxOutbound) {
      this.close(`outbound queue over ${this.opts.maxOutbound} bytes: peer is not reading`);
      return false;
    }
    this.lastSend = Date.now();
    return true;
  }

  close(reason: string, error?: Error): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    if (this.tickMs > 0) leaveTicks(this, this.tickMs);
    this.tickMs = 0;
    this.shutdown(error !== undefined);
    this.emit('close', reason, error);
  }

  /** Transports call this for every decoded frame. */
  protected deliver(msgId: number, seq: number, body: Buffer): void {
    // A handler may close the session while later frames of the same chunk are still being decoded.
    if (this.closedFlag) return;
    this.lastRecv = Date.now();
    if (msgId === HEARTBEAT_MSG_ID) return;
    this.emit('frame', msgId, seq, body);
  }

  /** Transports call this for any inbound bytes, even a partial frame. */
  protected touch(): void {
    this.lastRecv = Date.now();
  }

  protected abstract write(msgId: number, seq: number, body: Uint8Array): void;
  /** Release the transport; `abort` means drop unsent data. */
  protected abstract shutdown(abort: boolean): void;

  /** Idle detection and heartbeats, every tick of the session's group (tick-groups.ts). */
  tick(now: number): void {
    const { idleTimeoutMs, heartbeatMs } = this.opts;
    if (idleTimeoutMs > 0 && now - this.lastRecv > idleTimeoutMs) {
      this.close(`idle for over ${idleTimeoutMs} ms`);
      return;
    }
    if (heartbeatMs > 0 && now - this.lastSend >= heartbeatMs) this.send(HEARTBEAT_MSG_ID, 0, EMPTY);
  }
}
