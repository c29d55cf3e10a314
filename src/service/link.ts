import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from '@opentelemetry/api';
import type { Session } from '../net/session.js';
import { RpcError } from './errors.js';
import { L, LINK_PROTOCOL, type LinkHello, type LinkWelcome } from './messages.js';

/** Who this process is, as told to peers. */
export interface LinkIdentity {
  readonly id: string;
  readonly name: string;
  readonly addr: number;
  /** The cluster secret; when set, peers must prove they hold it too. */
  readonly secret: string | undefined;
  load(): number;
}

export type FrameHandler = (msgId: number, seq: number, body: Buffer) => void;

/**
 * An authenticated link to one peer. Frames that arrive between the end of
 * the handshake and `start()` are held, so none is lost to the gap.
 */
export class Link {
  private backlog: Array<[number, number, Buffer]> | undefined = [];
  private handler: FrameHandler | undefined;
  /** The trace context a TraceContext frame left for the next frame (service/trace.ts). */
  trace: Context | undefined;

  constructor(
    readonly session: Session,
    readonly peerId: string,
    readonly peerName: string,
    readonly peerAddr: number,
    /** True when this process dialed the link. */
    readonly dialedByMe: boolean,
    public peerLoad: number,
    listen: (h: FrameHandler) => void,
  ) {
    listen((msgId, seq, body) => {
      if (this.handler) this.handler(msgId, seq, body);
      else this.backlog?.push([msgId, seq, Buffer.from(body)]);
    });
  }

  start(handler: FrameHandler): void {
    this.handler = handler;
    const held = this.backlog ?? [];
    this.backlog = undefined;
    for (const [msgId, seq, body] of held) handler(msgId, seq, body);
  }
}

export class LinkAuthError extends Error {
  override name = 'LinkAuthError';
}

function proof(secret: string | undefined, label: string, nonce: Uint8Array, id: string): Buffer {
  if (!secret) return Buffer.alloc(0);
  return createHmac('sha256', secret).update(label).update(nonce).update(id).digest();
}

function proofOk(expected: Buffer, got: Uint8Array): boolean {
  const g = Buffer.from(got);
  return g.length === expected.length && timingSafeEqual(g, expected);
}

/**
 * Runs the acceptor's side: challenge, check the dialer's proof, answer with
 * ours. The secret itself never crosses the wire; each side proves it by an
 * HMAC over the other side's fresh nonce.
 */
export function acceptLink(session: Session, me: LinkIdentity, timeoutMs: number): Promise<Link> {
  const nonce = randomBytes(16);
  return handshake(session, timeoutMs, (msgId, seq, body, done) => {
    if (msgId !== L.LinkHello.id) throw new LinkAuthError(`expected LinkHello, got message ${msgId}`);
    const hello: LinkHello = L.LinkHello.decode(body);
    if (hello.protocol !== LINK_PROTOCOL) throw new LinkAuthError(`link protocol ${hello.protocol} is not supported (this side speaks ${LINK_PROTOCOL})`);
    if (me.secret && !proofOk(proof(me.secret, 'gamemesh-link-dial', nonce, hello.id), hello.proof)) {
      throw new LinkAuthError(`peer ${hello.id || '?'} does not hold the cluster secret`);
    }
    session.send(L.LinkWelcome.id, seq, L.LinkWelcome.encode({ id: me.id, name: me.name, addr: me.addr, proof: proof(me.secret, 'gamemesh-link-accept', hello.nonce, me.id), load: me.load() }));
    done((listen) => new Link(session, hello.id, hello.name, hello.addr, false, hello.load, listen));
  }, () => session.send(L.LinkChallenge.id, 0, L.LinkChallenge.encode({ nonce, protocol: LINK_PROTOCOL })));
}

export function dialLink(session: Session, me: LinkIdentity, timeoutMs: number): Promise<Link> {
  const nonce = randomBytes(16);
  return handshake(session, timeoutMs, (msgId, _seq, body, done) => {
    if (msgId === L.LinkChallenge.id) {
      const ch = L.LinkChallenge.decode(body);
      if (ch.protocol !== LINK_PROTOCOL) throw new LinkAuthError(`link protocol ${ch.protocol} is not supported (this side speaks ${LINK_PROTOCOL})`);
      session.send(L.LinkHello.id, 1, L.LinkHello.encode({ id: me.id, name: me.name, addr: me.addr, nonce, proof: proof(me.secret, 'gamemesh-link-dial', ch.nonce, me.id), protocol: LINK_PROTOCOL, load: me.load() }));
      return;
    }
    if (msgId === L.RpcError.id) {
      const e = L.RpcError.decode(body);
      throw e.code === 'unauthorized' ? new LinkAuthError(e.message) : RpcError.fromWire(e.code, e.message);
    }
    if (msgId !== L.LinkWelcome.id) throw new LinkAuthError(`expected LinkWelcome, got message ${msgId}`);
    const w: LinkWelcome = L.LinkWelcome.decode(body);
    if (me.secret && !proofOk(proof(me.secret, 'gamemesh-link-accept', nonce, w.id), w.proof)) {
      throw new LinkAuthError(`peer ${w.id || '?'} does not hold the cluster secret`);
    }
    done((listen) => new Link(session, w.id, w.name, w.addr, true, w.load, listen));
  });
}

type Step = (msgId: number, seq: number, body: Buffer, done: (make: (listen: (h: FrameHandler) => void) => Link) => void) => void;

function handshake(session: Session, timeoutMs: number, step: Step, begin?: () => void): Promise<Link> {
  return new Promise((resolve, reject) => {
    let finished = false;
    let after: FrameHandler | undefined;
    const onFrame = (msgId: number, seq: number, body: Buffer) => {
      if (after) return after(msgId, seq, body);
      if (finished) return;
      try {
        step(msgId, seq, body, (make) => {
          finished = true;
          clearTimeout(timer);
          session.off('close', onClose);
          resolve(make((h) => (after = h)));
        });
      } catch (err) {
        fail(err as Error);
      }
    };
    const onClose = (reason: string) => fail(new LinkAuthError(`link closed during handshake: ${reason}`));
    const fail = (err: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      session.off('close', onClose);
      if (err instanceof LinkAuthError) session.send(L.RpcError.id, 0, L.RpcError.encode({ code: 'unauthorized', message: err.message }));
      session.close(`handshake failed: ${err.message}`);
      reject(err);
    };
    const timer = setTimeout(() => fail(new LinkAuthError(`no handshake within ${timeoutMs} ms`)), timeoutMs);
    session.on('frame', onFrame);
    session.once('close', onClose);
    begin?.();
  });
}
