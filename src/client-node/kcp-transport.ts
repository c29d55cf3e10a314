import type { FrameListener } from '../client/frame.js';
import type { Transport } from '../client/transport.js';
import { dialKcp, type KcpModeName } from '../net/kcp/dial.js';
import type { KcpSession } from '../net/kcp/session.js';

/** Options of kcpTransport: the KCP mode and MTU, the largest frame, and the handshake's time limit. */
export interface KcpTransportOptions {
  /** KCP mode for both directions; the agent applies what the client asks for. Default 'turbo'. */
  mode?: KcpModeName;
  /** Largest inbound frame (the `length` value). Default 1 MiB. */
  maxFrame?: number;
  /** Fails connect() after this long. Default 10000 (GameClient has its own timeout too). */
  connectTimeoutMs?: number;
  /** Largest datagram (default 1400); at most the agent's. */
  mtu?: number;
}

/**
 * A client transport over KCP on UDP (Node only: browsers cannot send UDP).
 * It does the agent's cookie handshake, then carries the same frames as
 * TCP. Heartbeats and timeouts stay GameClient's business, as on TCP.
 */
export function kcpTransport(host: string, port: number, options: KcpTransportOptions = {}): Transport {
  return new KcpTransport(host, port, options);
}

class KcpTransport implements Transport {
  onFrame: FrameListener | undefined;
  onClose: ((reason: string) => void) | undefined;
  private session: KcpSession | undefined;
  private started = false;
  private ended = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly opts: KcpTransportOptions,
  ) {}

  get bufferedAmount(): number {
    return this.session?.outboundBytes ?? 0;
  }

  async connect(): Promise<void> {
    if (this.started) throw new Error('a transport connects once');
    this.started = true;
    const session = await dialKcp(this.host, this.port, {
      mode: this.opts.mode ?? 'turbo',
      connectTimeoutMs: this.opts.connectTimeoutMs ?? 10_000,
      mtu: this.opts.mtu,
      maxFrame: this.opts.maxFrame ?? 1024 * 1024,
      // The 64 MiB cap only guards against a runaway; GameClient.bufferedAmount is how callers pace themselves.
      maxOutbound: 64 * 1024 * 1024,
      idleTimeoutMs: 0,
      heartbeatMs: 0,
    });
    if (this.ended) {
      session.close('closed by the client');
      throw new Error('closed by the client');
    }
    this.session = session;
    session.on('frame', (msgId, seq, body) => {
      if (!this.ended) this.onFrame?.(msgId, seq, body);
    });
    session.once('close', (reason) => this.end(reason === 'connection closed by peer' ? 'connection closed by the agent' : reason));
  }

  send(msgId: number, seq: number, body: Uint8Array): void {
    if (!this.ended) this.session?.send(msgId, seq, body);
  }

  close(): void {
    if (!this.session) {
      this.ended = true;
      return;
    }
    this.session.close('closed by the client');
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.onClose?.(reason);
  }
}
