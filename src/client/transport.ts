import type { FrameListener } from './frame.js';

export type { FrameListener } from './frame.js';

/**
 * One connection to an agent that carries frames as `msgId, seq, body`; how
 * they look on the wire is the transport's business (a 6-byte header per
 * WebSocket message, a 10-byte length-prefixed header on a TCP stream).
 *
 * A transport is used once: GameClient asks its factory for a new one on
 * every (re)connect, so implementations need no reconnect logic.
 */
export interface Transport {
  /** Resolves when frames can be sent; rejects if the connection cannot be made. */
  connect(): Promise<void>;
  /** Queues one frame. Frames sent after the connection ended are dropped silently. */
  send(msgId: number, seq: number, body: Uint8Array): void;
  /** Ends the connection; idempotent. */
  close(): void;
  /** Set by the client before connect(): called for each inbound frame. */
  onFrame: FrameListener | undefined;
  /**
   * Set by the client before connect(): called once when a connection that
   * opened has ended, for any reason (including close()). Not called when
   * connect() rejects.
   */
  onClose: ((reason: string) => void) | undefined;
  /** Bytes accepted by send() and not yet handed to the network, when the transport knows. */
  readonly bufferedAmount?: number;
}

/** Makes a fresh transport for each connection attempt. */
export type TransportFactory = () => Transport;
