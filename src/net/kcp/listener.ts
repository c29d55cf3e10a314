/**
 * The KCP listener: one UDP socket, the cookie handshake, and the demux of
 * datagrams to sessions by conv. Nothing is allocated for an address until it
 * has echoed a cookie sent to it; after that, its datagrams are accepted only
 * with the conv the listener gave it and only from that address and port.
 * Everything refused is dropped silently and counted in `stats`.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { SessionOptions } from '../session.js';
import { CHALLENGE_BYTES, CloseCode, ControlType, decodeControl, encodeControl, isControl, ModeByte, type Control } from './control.js';
import { CookieJar } from './cookie.js';
import { KcpDriver } from './driver.js';
import { KCP_DEFAULT_MTU, NORMAL_MODE, TURBO_MODE, type KcpMode } from './engine.js';
import { KcpSession, type KcpLink, type KcpTuning } from './session.js';

/** Options of listenKcp. */
export interface KcpListenOptions extends SessionOptions, KcpTuning {
  host?: string;
  port?: number;
  /** Cap on concurrent sessions; a Connect beyond it gets Close (full). */
  maxConnections?: number;
  /** How long a cookie stays valid (s). */
  cookieTtlSec?: number;
  /** The socket's kernel receive buffer (bytes); 0 keeps the system default. */
  recvBufferSize?: number;
}

/** A KCP listener's counters of datagrams dropped, by cause. */
export interface KcpListenerStats {
  /** Datagrams received, of any kind. */
  datagrams: number;
  /** Hellos answered with a Challenge. */
  challenges: number;
  /** Connects whose cookie was not ours for that address (forged, or sent from another address). */
  badCookies: number;
  /** Connects with a genuine cookie that had expired. */
  staleCookies: number;
  /** Sessions created. */
  accepted: number;
  /** Connects refused because the listener was full. */
  refused: number;
  /** Segments for a conv no session has. */
  unknownConv: number;
  /** Segments for a live conv from an address other than the one it is bound to. */
  wrongAddress: number;
  /** Datagrams that were neither a valid control packet nor valid segments. */
  malformed: number;
  /** Datagrams larger than the MTU. */
  oversized: number;
}

/** A running KCP listener. */
export interface KcpListener {
  readonly host: string;
  readonly port: number;
  readonly sessions: ReadonlySet<KcpSession>;
  readonly stats: Readonly<KcpListenerStats>;
  close(): Promise<void>;
}

/** The mode a Connect asks for; unknown values get normal mode. */
export function modeOf(byte: number): KcpMode {
  return byte === ModeByte.Turbo ? TURBO_MODE : NORMAL_MODE;
}

/** Listens for KCP sessions on a UDP port; each one that completes the cookie handshake goes to onSession. */
export function listenKcp(options: KcpListenOptions, onSession: (s: KcpSession) => void): Promise<KcpListener> {
  const server = new KcpServer(options, onSession);
  return server.start();
}

class KcpServer implements KcpLink, KcpListener {
  readonly driver = new KcpDriver();
  readonly sessions = new Set<KcpSession>();
  readonly stats: KcpListenerStats = { datagrams: 0, challenges: 0, badCookies: 0, staleCookies: 0, accepted: 0, refused: 0, unknownConv: 0, wrongAddress: 0, malformed: 0, oversized: 0 };
  private readonly byConv = new Map<number, KcpSession>();
  /** The session each accepted Connect made, so a resent Connect (its Accept was lost) gets the same conv. */
  private readonly byConnect = new Map<string, KcpSession>();
  private readonly connectKey = new Map<KcpSession, string>();
  private readonly socket: dgram.Socket;
  private readonly cookies: CookieJar;
  private readonly mtu: number;
  private closing: Promise<void> | undefined;
  private socketClosed = false;
  host = '';
  port = 0;

  constructor(
    private readonly opts: KcpListenOptions,
    private readonly onSession: (s: KcpSession) => void,
  ) {
    const host = opts.host ?? '127.0.0.1';
    this.socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ...(opts.recvBufferSize ? { recvBufferSize: opts.recvBufferSize } : {}) });
    this.cookies = new CookieJar(opts.cookieTtlSec ?? 10);
    this.mtu = opts.mtu ?? KCP_DEFAULT_MTU;
  }

  start(): Promise<this> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        this.socket.off('error', reject);
        // Send errors (an ICMP unreachable reported on a later send) are no reason to stop serving.
        this.socket.on('error', () => {});
        this.socket.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo.address, rinfo.port));
        const addr = this.socket.address();
        this.host = addr.address;
        this.port = addr.port;
        resolve(this);
      });
    });
  }

  sendDatagram(datagram: Buffer, address: string, port: number): void {
    if (this.socketClosed) return;
    this.socket.send(datagram, port, address, () => {});
  }

  released(session: KcpSession): void {
    this.byConv.delete(session.conv);
    this.sessions.delete(session);
    const key = this.connectKey.get(session);
    if (key !== undefined) this.byConnect.delete(key);
    this.connectKey.delete(session);
  }

  private onDatagram(msg: Buffer, address: string, port: number): void {
    this.stats.datagrams++;
    if (msg.length > this.mtu) {
      this.stats.oversized++;
      return;
    }
    if (msg.length < 4) {
      this.stats.malformed++;
      return;
    }
    if (isControl(msg)) return this.onControl(msg, address, port);
    const session = this.byConv.get(msg.readUInt32LE(0));
    if (!session) {
      this.stats.unknownConv++;
      return;
    }
    if (session.address !== address || session.port !== port) {
      this.stats.wrongAddress++;
      return;
    }
    if (session.input(msg) !== undefined) this.stats.malformed++;
  }

  private onControl(msg: Buffer, address: string, port: number): void {
    const c = decodeControl(msg);
    if (typeof c === 'string') {
      this.stats.malformed++;
      return;
    }
    switch (c.type) {
      case ControlType.Hello:
        return this.onHello(c.nonce, msg.length, address, port);
      case ControlType.Connect:
        return this.onConnect(c, address, port);
      case ControlType.Close: {
        const session = this.byConv.get(c.conv);
        if (!session) this.stats.unknownConv++;
        else if (session.address !== address || session.port !== port) this.stats.wrongAddress++;
        else session.peerClosed();
        return;
      }
      default:
        // Challenge and Accept only ever travel from the agent.
        this.stats.malformed++;
    }
  }

  private onHello(nonce: number, size: number, address: string, port: number): void {
    // The reflection bound: never answer an unproven address with more bytes than it sent.
    if (this.closing || size < CHALLENGE_BYTES) return;
    const timestamp = this.cookies.now();
    const cookie = this.cookies.make(address, port, timestamp, nonce);
    this.stats.challenges++;
    this.sendDatagram(encodeControl({ type: ControlType.Challenge, nonce, timestamp, cookie }), address, port);
  }

  private onConnect(c: Extract<Control, { type: ControlType.Connect }>, address: string, port: number): void {
    const verdict = this.cookies.check(address, port, c.timestamp, c.nonce, c.cookie);
    if (verdict === 'bad') {
      this.stats.badCookies++;
      return;
    }
    if (verdict === 'stale') {
      this.stats.staleCookies++;
      return;
    }
    // From here on the address is proven: it received our cookie.
    const key = `${address}|${port}|${c.nonce}|${c.timestamp}`;
    const existing = this.byConnect.get(key);
    if (existing) return this.sendAccept(existing, c.nonce, address, port);
    if (this.closing || (this.opts.maxConnections !== undefined && this.sessions.size >= this.opts.maxConnections)) {
      this.stats.refused++;
      this.sendDatagram(encodeControl({ type: ControlType.Close, conv: 0, code: this.closing ? CloseCode.Shutdown : CloseCode.Full }), address, port);
      return;
    }
    const session = new KcpSession(this, this.newConv(), address, port, { ...this.opts, mode: modeOf(c.mode) });
    this.byConv.set(session.conv, session);
    this.byConnect.set(key, session);
    this.connectKey.set(session, key);
    this.sessions.add(session);
    this.stats.accepted++;
    this.sendAccept(session, c.nonce, address, port);
    this.onSession(session);
  }

  private sendAccept(session: KcpSession, nonce: number, address: string, port: number): void {
    const mode = session.engine.mode === TURBO_MODE ? ModeByte.Turbo : ModeByte.Normal;
    this.sendDatagram(encodeControl({ type: ControlType.Accept, nonce, conv: session.conv, mode, mtu: session.engine.mtu, wnd: session.engine.receiveWindow }), address, port);
  }

  /** Random, so a conv cannot be guessed from another; never 0 (control packets) and never one in use. */
  private newConv(): number {
    for (;;) {
      const conv = randomBytes(4).readUInt32LE(0);
      if (conv !== 0 && !this.byConv.has(conv)) return conv;
    }
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    for (const s of [...this.sessions]) s.closeWith(CloseCode.Shutdown, 'listener closed');
    // Graceful closes drain (bounded by drainMs); wait for them before the socket goes.
    const deadline = Date.now() + (this.opts.drainMs ?? 2000) + 500;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.driver.stop();
    this.socketClosed = true;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
