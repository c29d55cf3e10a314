import type net from 'node:net';
import { WebSocket, type RawData } from 'ws';
import type { SessionOptions } from '../../net/session.js';
import { endSocket } from '../../net/tcp.js';
import { endWebSocket, wireWebSocket } from '../../net/ws.js';
import { PomeloProtocolError } from './package.js';
import { PomeloSession, type PomeloPortState } from './session.js';

/** The pomelo "hybrid" connector's raw TCP: packages back to back on the stream. */
export class PomeloTcpSession extends PomeloSession {
  readonly transport = 'tcp' as const;
  private corked = false;

  constructor(
    readonly socket: net.Socket,
    options: SessionOptions,
    port: PomeloPortState,
  ) {
    super(`${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, options, port);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`, err));
    socket.on('close', () => this.close('connection closed by peer'));
    socket.on('end', () => socket.end());
  }

  get outboundBytes(): number {
    return this.socket.writableLength;
  }

  protected writeRaw(bytes: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    // Everything written in one turn of the event loop leaves in one write.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(bytes);
  }

  protected shutdown(abort: boolean): void {
    endSocket(this.socket, abort);
  }
}

/** pomelo over WebSocket: each binary message holds one or more whole packages. */
export class PomeloWsSession extends PomeloSession {
  readonly transport = 'ws' as const;

  constructor(
    readonly ws: WebSocket,
    remoteAddress: string,
    options: SessionOptions,
    port: PomeloPortState,
  ) {
    super(remoteAddress, options, port);
    wireWebSocket(ws, this, (data, isBinary) => this.onMessage(data, isBinary), () => this.touch());
  }

  get outboundBytes(): number {
    return this.ws.bufferedAmount;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    if (!isBinary) {
      const err = new PomeloProtocolError('text messages are not part of the pomelo protocol');
      return this.close(`bad frame: ${err.message}`, err);
    }
    this.onBytes(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
    if (!this.closed && !this.decoder.atBoundary) {
      const err = new PomeloProtocolError('a WebSocket message ended inside a package');
      this.close(`bad frame: ${err.message}`, err);
    }
  }

  protected writeRaw(bytes: Buffer): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes, { binary: true });
  }

  protected shutdown(abort: boolean): void {
    endWebSocket(this.ws, abort);
  }
}
