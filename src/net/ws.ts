import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { FrameError } from '../wire/frame.js';
import { BaseSession } from './base-session.js';
import type { Session, SessionOptions } from './session.js';

/** A WebSocket message is `u16 msgId | u32 seq | body`: the frame without its length field. */
export const WS_HEADER_BYTES = 6;

export class WsSession extends BaseSession {
  readonly transport = 'ws' as const;

  constructor(
    readonly ws: WebSocket,
    remoteAddress: string,
    options: SessionOptions = {},
  ) {
    super(remoteAddress, options);
    wireWebSocket(ws, this, (data, isBinary) => this.onMessage(data, isBinary), () => this.touch());
  }

  get outboundBytes(): number {
    return this.ws.bufferedAmount;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!isBinary || buf.length < WS_HEADER_BYTES) {
      const err = new FrameError(isBinary ? `message of ${buf.length} bytes is shorter than the ${WS_HEADER_BYTES}-byte header` : 'text messages are not part of the protocol');
      this.close(`bad frame: ${err.message}`, err);
      return;
    }
    try {
      this.deliver(buf.readUInt16BE(0), buf.readUInt32BE(2), buf.subarray(WS_HEADER_BYTES));
    } catch (err) {
      this.close(`frame handler failed: ${(err as Error).message}`, err as Error);
    }
  }

  protected write(msgId: number, seq: number, body: Uint8Array): void {
    const msg = Buffer.allocUnsafe(WS_HEADER_BYTES + body.length);
    msg.writeUInt16BE(msgId, 0);
    msg.writeUInt32BE(seq >>> 0, 2);
    msg.set(body, WS_HEADER_BYTES);
    this.ws.send(msg, { binary: true });
  }

  protected shutdown(abort: boolean): void {
    endWebSocket(this.ws, abort);
  }
}

/** The events every WebSocket session needs: messages, liveness, errors and the close, into `session`. */
export function wireWebSocket(ws: WebSocket, session: Pick<Session, 'close'>, onMessage: (data: RawData, isBinary: boolean) => void, touch: () => void): void {
  ws.binaryType = 'nodebuffer';
  ws.on('message', onMessage);
  ws.on('ping', touch);
  ws.on('pong', touch);
  ws.on('error', (err) => session.close(`websocket error: ${err.message}`, err));
  ws.on('close', (code, reason) => session.close(`connection closed by peer (${code}${reason.length ? ` ${reason.toString()}` : ''})`));
}

/** Closes a session's WebSocket: at once when `abort`, else with a close frame (2 s at most). */
export function endWebSocket(ws: WebSocket, abort: boolean): void {
  if (abort || ws.readyState !== WebSocket.OPEN) {
    ws.terminate();
    return;
  }
  ws.close(1000);
  setTimeout(() => ws.terminate(), 2000).unref();
}

export interface WsListenOptions extends SessionOptions {
  host?: string;
  port?: number;
  path?: string;
  maxConnections?: number;
}

export interface WsListener<S extends Session = WsSession> {
  readonly host: string;
  readonly port: number;
  readonly sessions: ReadonlySet<S>;
  close(): Promise<void>;
}

/** `create` lets another protocol over WebSocket (the gateway's pomelo port) reuse the listener. */
export function listenWs<S extends Session = WsSession>(
  options: WsListenOptions,
  onSession: (s: NoInfer<S>, req: IncomingMessage) => void,
  create: (ws: WebSocket, remoteAddress: string, options: SessionOptions) => S = (ws, remote, opts) => new WsSession(ws, remote, opts) as unknown as S,
): Promise<WsListener<S>> {
  const sessions = new Set<S>();
  const maxFrame = options.maxFrame ?? 1024 * 1024;
  const wss = new WebSocketServer({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    path: options.path,
    // ws checks the declared payload length before buffering it. A message
    // (msgId | seq | body) is the same bytes a TCP frame's length counts, so
    // the limit is the same on both transports.
    maxPayload: maxFrame,
    perMessageDeflate: false,
    clientTracking: false,
  });
  wss.on('connection', (ws, req) => {
    if (options.maxConnections !== undefined && sessions.size >= options.maxConnections) {
      ws.terminate();
      return;
    }
    const session = create(ws, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`, options);
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    onSession(session, req);
  });
  return new Promise((resolve, reject) => {
    wss.once('error', reject);
    wss.once('listening', () => {
      wss.off('error', reject);
      const addr = wss.address() as AddressInfo;
      resolve({
        host: addr.address,
        port: addr.port,
        sessions,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sessions) s.close('listener closed');
            wss.close(() => done());
          }),
      });
    });
  });
}

export function dialWs(url: string, options: SessionOptions & { connectTimeoutMs?: number } = {}): Promise<WsSession> {
  return new Promise((resolve, reject) => {
    const maxFrame = options.maxFrame ?? 1024 * 1024;
    const ws = new WebSocket(url, { maxPayload: maxFrame, perMessageDeflate: false, handshakeTimeout: options.connectTimeoutMs ?? 5000 });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(new WsSession(ws, url, options));
    });
  });
}
