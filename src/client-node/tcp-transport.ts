import net from 'node:net';
import { encodeTcpFrame, FrameError, StreamFrameDecoder, type FrameListener } from '../client/frame.js';
import type { Transport } from '../client/transport.js';

/** Options of tcpTransport. */
export interface TcpTransportOptions {
  /** Largest inbound frame (the `length` value). Default 1 MiB. */
  maxFrame?: number;
  /** Fails connect() after this long. Default 10000 (GameClient has its own timeout too). */
  connectTimeoutMs?: number;
}

/** A client transport over TCP (Node only): `u32 length | u16 msgId | u32 seq | body` frames. */
export function tcpTransport(host: string, port: number, options: TcpTransportOptions = {}): Transport {
  return new TcpTransport(host, port, options);
}

class TcpTransport implements Transport {
  onFrame: FrameListener | undefined;
  onClose: ((reason: string) => void) | undefined;
  private socket: net.Socket | undefined;
  private opened = false;
  private ended = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly opts: TcpTransportOptions,
  ) {}

  get bufferedAmount(): number {
    return this.socket?.writableLength ?? 0;
  }

  connect(): Promise<void> {
    if (this.socket) return Promise.reject(new Error('a transport connects once'));
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      this.socket = socket;
      const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
      const timer = setTimeout(() => socket.destroy(new Error(`connect to ${this.host}:${this.port} timed out after ${timeoutMs} ms`)), timeoutMs);
      const decoder = new StreamFrameDecoder((msgId, seq, body) => {
        if (!this.ended) this.onFrame?.(msgId, seq, body);
      }, this.opts.maxFrame);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        this.opened = true;
        resolve();
      });
      socket.on('data', (chunk: Uint8Array) => {
        if (this.ended) return;
        try {
          decoder.push(chunk);
        } catch (err) {
          // The stream cannot be resynchronised after a bad length.
          socket.destroy();
          this.end(err instanceof FrameError ? `bad frame: ${err.message}` : `frame handler failed: ${(err as Error).message}`);
        }
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        if (!this.opened) {
          this.ended = true;
          reject(err);
        } else this.end(`socket error: ${err.message}`);
      });
      socket.on('close', () => {
        clearTimeout(timer);
        if (!this.opened) {
          this.ended = true;
          reject(new Error(`connection to ${this.host}:${this.port} closed before it opened`));
        } else this.end('connection closed by the agent');
      });
      // The agent half-closed: we have nothing more to say on a dead session either.
      socket.on('end', () => socket.end());
    });
  }

  send(msgId: number, seq: number, body: Uint8Array): void {
    const socket = this.socket;
    if (this.ended || !this.opened || !socket || socket.destroyed) return;
    socket.write(encodeTcpFrame(msgId, seq, body));
  }

  close(): void {
    const socket = this.socket;
    if (!socket) {
      this.ended = true;
      return;
    }
    if (!this.opened) {
      socket.destroy(new Error('closed by the client'));
      return;
    }
    // end() flushes what was sent before close(); destroy() if the agent never finishes the close.
    socket.end();
    setTimeout(() => socket.destroy(), 2000).unref();
    this.end('closed by the client');
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.onClose?.(reason);
  }
}
