import net from 'node:net';
import { FrameDecoder, FrameError, HEADER_BYTES, writeHeader } from '../wire/frame.js';
import { BaseSession } from './base-session.js';
import type { Session, SessionOptions } from './session.js';

/** Frames smaller than this are copied into one buffer per flush; larger ones are written as they are. */
const COALESCE_LIMIT = 16 * 1024;

/**
 * A framed TCP connection. Frames sent in one tick are flushed together in a
 * single write, so a burst of small messages costs one syscall.
 */
export class TcpSession extends BaseSession {
  readonly transport = 'tcp' as const;
  private readonly decoder: FrameDecoder;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Callbacks of shared bodies in `pending`, called once the socket has written them. */
  private written: Array<() => void> = [];
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
    return this.pendingBytes + this.socket.writableLength;
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
    this.pending.push(frame);
    this.pendingBytes += frame.length;
    this.scheduleFlush();
  }

  /** Large bodies (stream data) go to the socket as they are, after their own header. */
  sendShared(msgId: number, seq: number, body: Uint8Array, written: () => void): boolean {
    if (!this.admit(body.length)) {
      written();
      return false;
    }
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    writeHeader(header, 0, msgId, seq, body.length);
    this.pending.push(header, Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    this.pendingBytes += HEADER_BYTES + body.length;
    this.written.push(written);
    this.scheduleFlush();
    return true;
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const frames = this.pending;
    if (frames.length === 0) return;
    this.pending = [];
    const total = this.pendingBytes;
    this.pendingBytes = 0;
    const written = this.written;
    this.written = [];
    const done = written.length === 0 ? undefined : () => {
      for (const w of written) w();
    };
    // Not `this.closed`: a graceful close() flushes what was sent before it.
    if (this.socket.destroyed || this.socket.writableEnded) return done?.();
    if (frames.length === 1) {
      this.socket.write(frames[0] as Buffer, done);
    } else if (total <= COALESCE_LIMIT * 4 || frames.every((f) => f.length < COALESCE_LIMIT)) {
      // The copy releases shared bodies at once.
      this.socket.write(Buffer.concat(frames, total));
      done?.();
    } else {
      this.socket.cork();
      const last = frames.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(frames[i] as Buffer);
      this.socket.write(frames[last] as Buffer, done);
      this.socket.uncork();
    }
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

export interface TcpListenOptions extends SessionOptions {
  host?: string;
  port?: number;
  /** Cap on concurrent sessions; extra connections are closed at once. */
  maxConnections?: number;
}

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
    session.once('close', () => sessions.delete(session));
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

export interface TcpDialOptions extends SessionOptions {
  connectTimeoutMs?: number;
}

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
