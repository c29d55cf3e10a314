import type { SharedFrame } from './shared-frame.js';
import { EventEmitter } from 'node:events';

/** Message id 0 is the link-level heartbeat: never delivered to handlers. */
export const HEARTBEAT_MSG_ID = 0;

/** Limits every session has: frame size, outbound queue, idle timeout and heartbeat. */
export interface SessionOptions {
  /** Largest accepted inbound frame, checked before buffering (bytes). */
  maxFrame?: number;
  /** Outbound bytes queued (ours plus the socket's) before the peer is cut off. */
  maxOutbound?: number;
  /** Close when nothing arrives for this long (ms); 0 disables. */
  idleTimeoutMs?: number;
  /** Send a heartbeat when nothing was sent for this long (ms); 0 disables. */
  heartbeatMs?: number;
}

/** The session limits used unless told otherwise. */
export const SESSION_DEFAULTS: Required<SessionOptions> = {
  maxFrame: 1024 * 1024,
  maxOutbound: 8 * 1024 * 1024,
  idleTimeoutMs: 30_000,
  heartbeatMs: 10_000,
};

/** How a session reaches its peer. */
export type SessionTransport = 'tcp' | 'ws' | 'kcp';

/** What a session emits: each frame, its close (with the reason), and drain. */
export interface SessionEvents {
  frame: [msgId: number, seq: number, body: Buffer];
  close: [reason: string, error: Error | undefined];
  /** The outbound queue was full and has been written out (TCP only). */
  drain: [];
}

/**
 * One framed connection, whatever the transport. `send` never throws on a
 * closed session: it returns false. `close` is idempotent and emits `close`
 * exactly once, with the first reason given.
 */
export interface Session extends EventEmitter<SessionEvents> {
  readonly id: number;
  readonly transport: SessionTransport;
  readonly remoteAddress: string;
  /** When the connection was accepted or opened (ms since the epoch); for WebSocket, before its upgrade. */
  readonly connectedAt: number;
  readonly closed: boolean;
  /** Bytes waiting to be written. */
  readonly outboundBytes: number;
  send(msgId: number, seq: number, body: Uint8Array): boolean;
  /**
   * Sends a message framed once for many sessions (a broadcast, a group
   * push): TCP and WebSocket sessions queue the frame's shared bytes, with
   * no copy and no re-encoding per session. Same result as `send`.
   */
  sendFrame(frame: SharedFrame): boolean;
  /**
   * Like send, but the body is not copied: it must not change until
   * `written` is called (once the socket has taken it, or the session is gone).
   */
  sendShared?(msgId: number, seq: number, body: Uint8Array, written: () => void): boolean;
  setTimeouts(t: { idleTimeoutMs?: number; heartbeatMs?: number }): void;
  close(reason: string, error?: Error): void;
}

let nextSessionId = 1;
/** A process-unique session id, for logs. */
export function allocSessionId(): number {
  return nextSessionId++;
}
