/**
 * A plain TCP socket to a service's link port that parses the frames it gets
 * back and can do the dialer's side of the link handshake by hand (the HMAC
 * of src/service/link.ts): the hostile or broken peer of the fuzz tests.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { L, LINK_PROTOCOL } from '../../src/service/messages.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { SECRET, type Defer } from './mesh.js';
import { within } from './proc.js';

export interface Frame {
  msgId: number;
  seq: number;
  body: Buffer;
}

export function hmac(secret: string, label: string, nonce: Uint8Array, id: string): Buffer {
  return createHmac('sha256', secret).update(label).update(nonce).update(id).digest();
}

export class RawLink {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private buf = Buffer.alloc(0);
  private notify: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => {}); // a reset is one way of being closed
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 10) {
        const len = this.buf.readUInt32BE(0);
        if (this.buf.length < 4 + len) break;
        this.frames.push({ msgId: this.buf.readUInt16BE(4), seq: this.buf.readUInt32BE(6), body: Buffer.from(this.buf.subarray(10, 4 + len)) });
        this.buf = this.buf.subarray(4 + len);
      }
      this.notify?.();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.notify?.();
        resolve();
      }),
    );
  }

  static async open(defer: Defer, port: number): Promise<RawLink> {
    const socket = net.connect({ host: '127.0.0.1', port });
    const link = new RawLink(socket);
    defer(() => link.destroy());
    await within(new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 2000, 'raw connect');
    return link;
  }

  /** The first frame matching `pred`, or undefined once the connection is closed without one. */
  async next(pred: (f: Frame) => boolean, timeoutMs = 2000): Promise<Frame | undefined> {
    try {
      return await within(
        new Promise<Frame | undefined>((resolve) => {
          const check = () => {
            const f = this.frames.find(pred);
            if (!f && !this.isClosed) return;
            this.notify = undefined;
            resolve(f);
          };
          this.notify = check;
          check();
        }),
        timeoutMs,
        'a frame from the service',
      );
    } finally {
      this.notify = undefined;
    }
  }

  send(msgId: number, seq: number, body: Uint8Array = new Uint8Array(0)): void {
    this.write(encodeFrame(msgId, seq, body));
  }

  write(data: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  async challenge(): Promise<Buffer> {
    const f = await this.next((x) => x.msgId === L.LinkChallenge.id);
    assert.ok(f, 'the service sends a LinkChallenge first');
    assert.equal(f.seq, 0);
    const ch = L.LinkChallenge.decode(f.body);
    assert.equal(ch.protocol, LINK_PROTOCOL);
    assert.equal(ch.nonce.length, 16);
    return Buffer.from(ch.nonce);
  }

  /** Completes the dialer's side of the handshake, checking the service's proof. */
  async handshake(id: string, secret = SECRET, addr = 0): Promise<{ id: string; name: string }> {
    const nonce = await this.challenge();
    const mine = randomBytes(16);
    this.send(L.LinkHello.id, 1, L.LinkHello.encode({ id, name: 'fuzz', addr, nonce: mine, proof: hmac(secret, 'gamemesh-link-dial', nonce, id), protocol: LINK_PROTOCOL, load: 0 }));
    const f = await this.next((x) => x.msgId === L.LinkWelcome.id || x.msgId === L.RpcError.id);
    assert.ok(f && f.msgId === L.LinkWelcome.id, `expected LinkWelcome, got ${f ? JSON.stringify(L.RpcError.decode(f.body)) : 'a close'}`);
    const w = L.LinkWelcome.decode(f.body);
    assert.deepEqual(Buffer.from(w.proof), hmac(secret, 'gamemesh-link-accept', mine, w.id), "the service's proof is valid");
    return { id: w.id, name: w.name };
  }

  /** RpcError frames the service sent, decoded. */
  errors(): Array<{ seq: number; code: string; message: string }> {
    return this.frames.filter((f) => f.msgId === L.RpcError.id).map((f) => ({ seq: f.seq, ...L.RpcError.decode(f.body) }));
  }

  async expectClosed(what: string, timeoutMs = 2000): Promise<void> {
    await within(this.closed, timeoutMs, `the service to close the connection (${what})`);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
