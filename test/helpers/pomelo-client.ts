/**
 * A pomelo client for tests, built on the peer's own codec: every package
 * and message it sends or reads goes through the npm package
 * `pomelo-protocol` (Package.encode/decode, Message.encode/decode), over raw
 * TCP or a WebSocket. It can also write any bytes, to send what a real
 * client never would.
 */
import net from 'node:net';
import Protocol from 'pomelo-protocol';
import { WebSocket } from 'ws';
import { waitFor } from './proc.js';

const { Package, Message } = Protocol;

export interface HandshakeReply {
  code: number;
  sys?: { heartbeat?: number; dict?: Record<string, number>; dictVersion?: string; useDict?: boolean; useProto?: boolean; protos?: { client: Record<string, object>; server: Record<string, object>; version: number }; routeToCode?: Record<string, number>; codeToRoute?: Record<string, string> };
  user?: unknown;
}

export interface Push {
  route: string | number;
  compressed: boolean;
  body: unknown;
}

export type Json = Record<string, unknown>;

export class PomeloTestClient {
  readonly pushes: Push[] = [];
  readonly kicks: Json[] = [];
  readonly responses = new Map<number, unknown>();
  handshakes: HandshakeReply[] = [];
  heartbeats = 0;
  closedAt: number | undefined;
  readonly closed: Promise<void>;
  private nextId = 1;
  private pending: Buffer = Buffer.alloc(0);
  private readonly writeBytes: (b: Uint8Array) => void;
  private readonly end: () => void;
  dict: Record<string, number> = {};

  private constructor(kind: 'tcp' | 'ws', conn: net.Socket | WebSocket) {
    let onClose!: () => void;
    this.closed = new Promise((resolve) => (onClose = resolve));
    const closed = (): void => {
      this.closedAt ??= performance.now();
      onClose();
    };
    if (kind === 'tcp') {
      const socket = conn as net.Socket;
      socket.on('data', (chunk: Buffer) => this.onStream(chunk));
      socket.on('error', () => {});
      socket.on('close', closed);
      this.writeBytes = (b) => void socket.write(b);
      this.end = () => socket.destroy();
    } else {
      const ws = conn as WebSocket;
      ws.binaryType = 'nodebuffer';
      ws.on('message', (data: Buffer) => this.onPackages(data));
      ws.on('error', () => {});
      ws.on('close', closed);
      this.writeBytes = (b) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(b);
      };
      this.end = () => ws.terminate();
    }
  }

  static tcp(host: string, port: number): Promise<PomeloTestClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new PomeloTestClient('tcp', socket));
      });
    });
  }

  static ws(url: string): Promise<PomeloTestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(new PomeloTestClient('ws', ws));
      });
    });
  }

  /** Connects to an agent's `pomelo_tcp` host:port or `pomelo_ws` URL. */
  static connect(address: string): Promise<PomeloTestClient> {
    if (address.startsWith('ws://')) return PomeloTestClient.ws(address);
    const i = address.lastIndexOf(':');
    return PomeloTestClient.tcp(address.slice(0, i), Number(address.slice(i + 1)));
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined;
  }

  /** TCP: cut the stream into packages by their 3-byte length, then decode each with pomelo-protocol. */
  private onStream(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 4) {
      const len = this.pending.readUIntBE(1, 3);
      if (this.pending.length < 4 + len) return;
      this.onPackages(this.pending.subarray(0, 4 + len));
      this.pending = this.pending.subarray(4 + len);
    }
  }

  private onPackages(bytes: Buffer): void {
    const decoded = Package.decode(bytes);
    for (const pkg of Array.isArray(decoded) ? decoded : [decoded]) {
      const body = pkg.body ?? Buffer.alloc(0);
      switch (pkg.type) {
        case Package.TYPE_HANDSHAKE:
          this.handshakes.push(JSON.parse(Protocol.strdecode(body)) as HandshakeReply);
          break;
        case Package.TYPE_HEARTBEAT:
          this.heartbeats++;
          break;
        case Package.TYPE_KICK:
          this.kicks.push(JSON.parse(Protocol.strdecode(body)) as Json);
          break;
        case Package.TYPE_DATA: {
          const msg = Message.decode(body);
          const text = Protocol.strdecode(msg.body);
          const value: unknown = text.length > 0 ? JSON.parse(text) : undefined;
          if (msg.type === Message.TYPE_RESPONSE) this.responses.set(msg.id, value);
          else this.pushes.push({ route: msg.route ?? '', compressed: msg.compressRoute === 1, body: value });
          break;
        }
        default:
          throw new Error(`unexpected package type ${pkg.type}`);
      }
    }
  }

  sendPackage(type: number, body?: Uint8Array | null): void {
    this.writeBytes(Package.encode(type, body ?? null));
  }

  write(bytes: Uint8Array): void {
    this.writeBytes(bytes);
  }

  /** The pomelo handshake: {sys, user}, the server's answer, then the handshake ack (unless `ack` is false). */
  async handshake(user: Json = {}, sys: Json = {}, opts: { ack?: boolean; timeoutMs?: number } = {}): Promise<HandshakeReply> {
    const n = this.handshakes.length;
    this.sendPackage(Package.TYPE_HANDSHAKE, Protocol.strencode(JSON.stringify({ sys: { type: 'gamemesh-test', version: '0.0.1', ...sys }, user })));
    await waitFor(() => this.handshakes.length > n, opts.timeoutMs ?? 3000, 'pomelo handshake answer');
    const reply = this.handshakes[n] as HandshakeReply;
    if (reply.sys?.dict) this.dict = reply.sys.dict;
    if (reply.code === 200 && opts.ack !== false) this.sendPackage(Package.TYPE_HANDSHAKE_ACK);
    return reply;
  }

  heartbeat(): void {
    this.sendPackage(Package.TYPE_HEARTBEAT);
  }

  /** Message bytes of a request (id > 0) or notify (id 0); a JSON-able body is sent as JSON, bytes as they are. */
  encode(id: number, route: string, body: unknown, compress = false): Buffer {
    const bytes = body instanceof Uint8Array ? body : Protocol.strencode(JSON.stringify(body));
    const code = compress ? this.dict[route] : undefined;
    if (compress && code === undefined) throw new Error(`route ${route} is not in the dictionary`);
    return Message.encode(id, id > 0 ? Message.TYPE_REQUEST : Message.TYPE_NOTIFY, code !== undefined, code ?? route, bytes);
  }

  /** Sends a request and returns its id at once. */
  send(route: string, body: unknown = {}, compress = false): number {
    const id = this.nextId++;
    this.sendPackage(Package.TYPE_DATA, this.encode(id, route, body, compress));
    return id;
  }

  async request(route: string, body: unknown = {}, opts: { compress?: boolean; timeoutMs?: number } = {}): Promise<Json> {
    const id = this.send(route, body, opts.compress);
    return this.response(id, opts.timeoutMs);
  }

  async response(id: number, timeoutMs = 3000): Promise<Json> {
    await waitFor(() => this.responses.has(id) || this.isClosed, timeoutMs, `response to request ${id}`);
    if (!this.responses.has(id)) throw new Error(`the connection closed before request ${id} was answered`);
    return this.responses.get(id) as Json;
  }

  notify(route: string, body: unknown = {}): void {
    this.sendPackage(Package.TYPE_DATA, this.encode(0, route, body));
  }

  /** The first push so far (or later) on that route (a dictionary code counts as its route) that matches. */
  async waitPush(route: string, match: (body: Json) => boolean = () => true, timeoutMs = 3000): Promise<Json> {
    const code = this.dict[route];
    const hit = (p: Push) => (p.route === route || (p.compressed && p.route === code)) && match(p.body as Json);
    await waitFor(() => this.pushes.some(hit), timeoutMs, `push on ${route}`);
    return this.pushes.find(hit)?.body as Json;
  }

  destroy(): void {
    this.end();
  }
}
