import { createServer, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { FrameError } from '../wire/frame.js';
import { BaseSession } from './base-session.js';
import type { Session, SessionOptions } from './session.js';
import { WS_HEADER_BYTES, wsServerFrame, type SharedFrame } from './shared-frame.js';
import { scheduleFlush, WriteQueue } from './write-queue.js';

export { WS_HEADER_BYTES } from './shared-frame.js';

/**
 * A WebSocket session. On the server side (given the upgraded socket) it
 * builds its own frames and writes them straight to the socket: what one
 * turn of the event loop sends leaves in one write at its end, as on TCP,
 * where `ws` would write each message on its own; and a SharedFrame's bytes
 * are the same buffer for every client. Control frames (ping, pong, close)
 * stay with `ws`, which writes them whole, between our writes. A dialed
 * (client-side) session must mask its frames, so it sends through `ws`.
 */
export class WsSession extends BaseSession {
  readonly transport = 'ws' as const;
  private readonly out = new WriteQueue();
  private flushScheduled = false;

  constructor(
    readonly ws: WebSocket,
    remoteAddress: string,
    options: SessionOptions = {},
    /** When the TCP connection was accepted, before its upgrade (ms since the epoch). */
    connectedAt?: number,
    /** The upgraded socket of a server-side session: frames are written to it directly. */
    private readonly socket?: Socket,
  ) {
    super(remoteAddress, options, connectedAt);
    wireWebSocket(ws, this, (data, isBinary) => this.onMessage(data, isBinary), () => this.touch());
  }

  get outboundBytes(): number {
    // ws's bufferedAmount walks its sender's queue too; a server session's data goes straight to the socket.
    return this.out.length + (this.socket ? this.socket.writableLength : this.ws.bufferedAmount);
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
    if (this.socket) {
      this.out.push(wsServerFrame(msgId, seq, body));
      this.schedule();
      return;
    }
    const msg = Buffer.allocUnsafe(WS_HEADER_BYTES + body.length);
    msg.writeUInt16BE(msgId, 0);
    msg.writeUInt32BE(seq >>> 0, 2);
    msg.set(body, WS_HEADER_BYTES);
    this.ws.send(msg, { binary: true });
  }

  override sendFrame(frame: SharedFrame): boolean {
    if (!this.socket) return super.sendFrame(frame);
    const bytes = frame.wsFrame();
    if (!this.admit(bytes.length)) return false;
    this.out.push(bytes);
    this.schedule();
    return true;
  }

  private schedule(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      scheduleFlush(this);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    if (!this.socket || this.out.empty) return;
    // Once a close frame has gone either way, no data frame may follow it.
    if (this.ws.readyState !== WebSocket.OPEN) return this.out.clear();
    this.out.flushTo(this.socket);
  }

  protected shutdown(abort: boolean): void {
    // What was sent before a graceful close leaves before the close frame.
    if (!abort) this.flush();
    else this.out.clear();
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

/** Options of listenWs. */
export interface WsListenOptions extends SessionOptions {
  host?: string;
  port?: number;
  path?: string;
  /** Cap on sessions plus connections still upgrading; extra connections are closed at once. */
  maxConnections?: number;
  /** A connection that has not completed its WebSocket upgrade this long after it was accepted is closed (ms). Default 10 s. */
  upgradeTimeoutMs?: number;
}

/** A running WebSocket listener and the sessions it accepted. */
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
  create: (ws: WebSocket, remoteAddress: string, options: SessionOptions, connectedAt: number | undefined, socket: Socket) => S = (ws, remote, opts, at, socket) =>
    new WsSession(ws, remote, opts, at, socket) as unknown as S,
): Promise<WsListener<S>> {
  const sessions = new Set<S>();
  /** Accepted sockets whose upgrade has not completed, with their deadline and accept time. */
  const upgrading = new Map<Socket, { timer: NodeJS.Timeout; at: number; onClose: () => void }>();
  const maxFrame = options.maxFrame ?? 1024 * 1024;
  const upgradeTimeoutMs = options.upgradeTimeoutMs ?? 10_000;
  // Our own HTTP server rather than ws's, so that a connection which never
  // completes its upgrade (a request trickled or left half-sent) is closed
  // at our deadline, and counts toward the connection cap meanwhile; Node's
  // own header timeout would hold it for a minute or more.
  const server = createServer((_req, res) => {
    const body = STATUS_CODES[426] ?? 'Upgrade Required';
    res.writeHead(426, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });
  server.on('connection', (socket: Socket) => {
    if (options.maxConnections !== undefined && sessions.size + upgrading.size >= options.maxConnections) {
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => {
      upgrading.delete(socket);
      socket.destroy();
    }, upgradeTimeoutMs);
    timer.unref();
    const onClose = (): void => {
      clearTimeout(timer);
      upgrading.delete(socket);
    };
    upgrading.set(socket, { timer, at: Date.now(), onClose });
    socket.once('close', onClose);
  });
  const wss = new WebSocketServer({
    server,
    path: options.path,
    // ws checks the declared payload length before buffering it. A message
    // (msgId | seq | body) is the same bytes a TCP frame's length counts, so
    // the limit is the same on both transports.
    maxPayload: maxFrame,
    perMessageDeflate: false,
    clientTracking: false,
  });
  wss.on('connection', (ws, req) => {
    const pending = upgrading.get(req.socket);
    if (pending) {
      clearTimeout(pending.timer);
      upgrading.delete(req.socket);
      // Not kept for the connection's life: it would hold the timer and its closure (memory per client).
      req.socket.off('close', pending.onClose);
    }
    const session = create(ws, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`, options, pending?.at, req.socket);
    sessions.add(session);
    // `on`, not `once`: a session emits close exactly once, and once() costs a bound wrapper per client.
    session.on('close', () => sessions.delete(session));
    onSession(session, req);
  });
  // Errors of the listening socket come through the HTTP server (ws re-emits them).
  wss.on('error', () => {});
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      resolve({
        host: addr.address,
        port: addr.port,
        sessions,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sessions) s.close('listener closed');
            for (const socket of upgrading.keys()) socket.destroy();
            wss.close();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Connects to a WebSocket listener and returns the session. */
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
