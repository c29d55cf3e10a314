import { decodeWsFrame, encodeWsFrame, FrameError, type FrameListener } from './frame.js';
import type { Transport } from './transport.js';

/**
 * Handlers typed as methods, not function properties: TypeScript then checks
 * their parameters bivariantly, so the browser's WebSocket and the `ws`
 * package's (whose event types are richer than what we read) both fit.
 */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** The part of the WHATWG WebSocket API this transport uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: the browser's global one, or the `ws` package's in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Options of wsTransport. */
export interface WsTransportOptions {
  /** Defaults to globalThis.WebSocket (browsers, Node 22+); in Node 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
}

const OPEN = 1;
/** Browsers let scripts close with 1000 or 3000-4999 only, so a protocol error is also a 1000, with a reason. */
const CLOSE_NORMAL = 1000;

/** A transport over one WebSocket: one binary message per frame. */
export function wsTransport(url: string, options: WsTransportOptions = {}): Transport {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) throw new TypeError('no WebSocket implementation: pass { WebSocket } (in Node 20, the `ws` package)');
  return new WsTransport(url, Ctor);
}

class WsTransport implements Transport {
  onFrame: FrameListener | undefined;
  onClose: ((reason: string) => void) | undefined;
  private ws: WebSocketLike | undefined;
  private opened = false;
  private ended = false;

  constructor(
    private readonly url: string,
    private readonly Ctor: WebSocketConstructor,
  ) {}

  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  connect(): Promise<void> {
    if (this.ws) return Promise.reject(new Error('a transport connects once'));
    return new Promise((resolve, reject) => {
      const ws = new this.Ctor(this.url);
      this.ws = ws;
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        this.opened = true;
        resolve();
      };
      ws.onerror = () => {
        // Browsers give no detail here; the close event that follows ends the connection.
        if (!this.opened) reject(new Error(`cannot connect to ${this.url}`));
      };
      ws.onclose = (ev) => {
        if (!this.opened) {
          this.ended = true;
          reject(new Error(`cannot connect to ${this.url} (close ${ev.code})`));
          return;
        }
        this.end(`connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`);
      };
      ws.onmessage = (ev) => this.onMessage(ev.data);
    });
  }

  private onMessage(data: unknown): void {
    if (this.ended) return;
    if (!(data instanceof ArrayBuffer)) return this.fail(new FrameError('text messages are not part of the protocol'));
    let frame;
    try {
      frame = decodeWsFrame(new Uint8Array(data));
    } catch (err) {
      return this.fail(err as FrameError);
    }
    this.onFrame?.(frame.msgId, frame.seq, frame.body);
  }

  private fail(err: Error): void {
    this.ws?.close(CLOSE_NORMAL, 'bad frame');
    this.end(`bad frame: ${err.message}`);
  }

  send(msgId: number, seq: number, body: Uint8Array): void {
    if (this.ended || this.ws?.readyState !== OPEN) return;
    this.ws.send(encodeWsFrame(msgId, seq, body));
  }

  close(): void {
    if (!this.ws) {
      this.ended = true;
      return;
    }
    this.ws.close(CLOSE_NORMAL);
    if (this.opened) this.end('closed by the client');
  }

  /** Reports the end once, whichever of close(), a bad frame or the socket's close event comes first. */
  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.onClose?.(reason);
  }
}
