import net from 'node:net';
import { FrameDecoder, FrameError, HEADER_BYTES, writeHeader } from '../wire/frame.js';
import { BaseSession } from './base-session.js';
import type { Session, SessionOptions } from './session.js';
import type { SharedFrame } from './shared-frame.js';
import { scheduleFlush, WriteQueue } from './write-queue.js';

/**
 * A framed TCP connection. Frames sent in one turn of the event loop are
 * flushed together in a single write at its end, so a burst of small
 * messages costs one syscall.
 */
export class TcpSession extends BaseSession {
  readonly transport = 'tcp' as const;
  private readonly decoder: FrameDecoder;
  private readonly out = new WriteQueue();
  private flushScheduled = false;

  constructor(
    readonly socket: net.Socket,
    options: SessionOptions = {},
  ) {
    super(`${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, options);
    socket.setNoDelay(true);
    this.decoder = new FrameDecoder((msgId, seq, body) => this.deliver(msgId, seq, body), this.opts.maxFrame);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close(`socket error: ${err.message}`, err));
    socket.on('close', () => this.close('connection closed by peer'));
    socket.on('end', () => socket.end());
    // Senders that pace themselves on outboundBytes (streams) resume here.
    socket.on('drain', () => this.emit('drain'));
  }

  get outboundBytes(): number {
    return this.out.length + this.socket.writableLength;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.touch();
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof FrameError) this.close(`bad frame: ${err.message}`, err);
      else this.close(`frame handler failed: ${(err as Error).message}`, err as Error);
    }
  }

  protected write(msgId: number, seq: number, body: Uint8Array): void {
    const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
    writeHeader(frame, 0, msgId, seq, body.length);
    frame.set(body, HEADER_BYTES);
    this.out.push(frame);
    this.schedule();
  }

  /** The frame's TCP bytes, shared with every other session it goes to. */
  override sendFrame(frame: SharedFrame): boolean {
    const bytes = frame.tcpFrame();
    if (!this.admit(bytes.length)) return false;
    this.out.push(bytes);
    this.schedule();
    return true;
  }

  /** Large bodies (stream data) go to the socket as they are, after their own header. */
  sendShared(msgId: number, seq: number, body: Uint8Array, written: () => void): boolean {
    if (!this.admit(body.length)) {
      written();
      return false;
    }
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(header, 0, msgId, seq, body.length);
    this.out.pushShared(header, Buffer.from(body.buffer, body.byteOffset, body.byteLength), written);
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
    // Not `this.closed`: a graceful close() flushes what was sent before it.
    this.out.flushTo(this.socket);
  }

  protected shutdown(abort: boolean): void {
    if (!abort) this.flush();
    endSocket(this.socket, abort);
  }
}

/** Ends a session's socket: at once when `abort`, else after what is queued (2 s at most). */
export function endSocket(socket: net.Socket, abort: boolean): void {
  if (abort || socket.destroyed) {
    socket.destroy();
    return;
  }
  socket.end();
  // A peer that never reads would hold the socket open forever.
  setTimeout(() => socket.destroy(), 2000).unref();
}

/** Options of listenTcp. */
export interface TcpListenOptions extends SessionOptions {
  host?: string;
  port?: number;
  /** Cap on concurrent sessions; extra connections are closed at once. */
  maxConnections?: number;
}

/** A running TCP listener and the sessions it accepted. */
export interface TcpListener<S extends Session = TcpSession> {
  readonly host: string;
  readonly port: number;
  readonly sessions: ReadonlySet<S>;
  close(): Promise<void>;
}

/** `create` lets another protocol over TCP (the gateway's pomelo port) reuse the listener. */
export function listenTcp<S extends Session = TcpSession>(
  options: TcpListenOptions,
  onSession: (s: NoInfer<S>) => void,
  create: (socket: net.Socket, options: SessionOptions) => S = (socket, opts) => new TcpSession(socket, opts) as unknown as S,
): Promise<TcpListener<S>> {
  const sessions = new Set<S>();
  const server = net.createServer((socket) => {
    if (options.maxConnections !== undefined && sessions.size >= options.maxConnections) {
      socket.destroy();
      return;
    }
    const session = create(socket, options);
    sessions.add(session);
    // `on`, not `once`: a session emits close exactly once, and once() costs a bound wrapper per client.
    session.on('close', () => sessions.delete(session));
    onSession(session);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const addr = server.address() as net.AddressInfo;
      resolve({
        host: addr.address,
        port: addr.port,
        sessions,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const s of sessions) s.close('listener closed');
          }),
      });
    });
  });
}

/** Options of dialTcp. */
export interface TcpDialOptions extends SessionOptions {
  connectTimeoutMs?: number;
}

/** Connects to a TCP listener and returns the session. */
export function dialTcp(host: string, port: number, options: TcpDialOptions = {}): Promise<TcpSession> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timeoutMs = options.connectTimeoutMs ?? 5000;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new TcpSession(socket, options));
    });
  });
}
