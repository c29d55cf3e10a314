import type { Logger } from '../../log/index.js';
import { RpcError } from '../errors.js';
import type { Link } from '../link.js';
import { S } from '../messages.js';
import type { PeerInfo } from '../rpc.js';
import { RecvWindow, SendCredit } from './flow.js';
import { MeshStream, type StreamInfo, type StreamOwner } from './stream.js';

/** Bytes of stream data per frame: the unit of fairness between streams and RPC. */
export const CHUNK_BYTES = 64 * 1024;
/**
 * Stream data is handed to the link's session only while less than this is
 * waiting to be written. A call or response sent meanwhile then waits behind
 * at most this much of our own queue (plus what the kernel holds).
 */
export const LINK_HIGH_WATER = 128 * 1024;
/** If a full session never reports `drain`, look again after this long. */
const DRAIN_FALLBACK_MS = 20;
/** Meta a peer may attach to a stream. */
export const MAX_META_ENTRIES = 64;
export const MAX_META_BYTES = 8 * 1024;

/** What every link's streams share: limits, the handler, and the node's state. */
export interface StreamHost {
  readonly log: Logger;
  readonly window: number;
  readonly linkWindow: number;
  readonly maxStreamsPerLink: number;
  /** This node's id, for error messages. */
  readonly selfId: string;
  /** Accept incoming streams, or the reason not to (code and message). */
  admit(): { code: 'unknown_method' | 'unavailable'; message: string } | undefined;
  /** Hands an accepted stream to the application. */
  deliver(stream: MeshStream, info: StreamInfo): void;
}

/** Total size of a meta map, as a peer could charge it to us. */
export function metaBytes(meta: Readonly<Record<string, string>>): number {
  let n = 0;
  for (const [k, v] of Object.entries(meta)) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

/**
 * The streams of one link: their ids, the link-wide window shared by all of
 * them, and the send queue. Stream data goes out one chunk per stream in
 * turn, and only while the session's queue is short, so a busy stream
 * neither starves the others nor puts a deep queue in front of RPC frames
 * (which the session sends directly).
 */
export class LinkStreams implements StreamOwner {
  private readonly streams = new Map<number, MeshStream>();
  private readonly peer: PeerInfo;
  /** Our ids are odd on links we dialed, even on links we accepted. */
  private nextId: number;
  private readonly linkCredit = new SendCredit();
  private readonly linkRecv: RecvWindow;
  private greeted = false;
  private readonly ready: MeshStream[] = [];
  private readyHead = 0;
  private pumping = false;
  private waiting = false;
  private fallback: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly link: Link,
    private readonly host: StreamHost,
  ) {
    this.peer = { id: link.peerId, name: link.peerName, addr: link.peerAddr };
    this.nextId = link.dialedByMe ? 1 : 2;
    this.linkRecv = new RecvWindow(host.linkWindow);
    link.session.on('drain', () => this.resume());
  }

  get size(): number {
    return this.streams.size;
  }

  /** Bytes received on this link's streams and not yet consumed (or in flight to us). */
  get buffered(): number {
    return this.linkRecv.outstanding;
  }

  // ---- opening ------------------------------------------------------------

  /** Sends StreamOpen for a stream we open; it stays `opening` until the peer accepts or resets it. */
  open(stream: MeshStream, meta: Readonly<Record<string, string>>): void {
    if (this.closed || this.link.session.closed) return stream.linkLost(new RpcError('unavailable', `the link to ${this.peer.id} is closed`));
    if (this.streams.size >= this.host.maxStreamsPerLink) {
      return void stream.destroy(new RpcError('busy', `${this.host.maxStreamsPerLink} streams are already open on the link to ${this.peer.id}`));
    }
    const id = this.allocId();
    this.streams.set(id, stream);
    stream.attach(this, { id, peer: this.peer, meta, opener: 'local' });
    this.greet();
    this.sendControl(S.StreamOpen.id, id, S.StreamOpen.encode({ window: stream.window, meta: { ...meta } }));
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= 0x7ffffffd ? (this.link.dialedByMe ? 1 : 2) : id + 2;
      if (!this.streams.has(id)) return id;
    }
  }

  /** Our link-wide window, granted once before our first stream frame, so the peer can send as soon as it may. */
  private greet(): void {
    if (this.greeted) return;
    this.greeted = true;
    this.sendControl(S.StreamWindow.id, 0, S.StreamWindow.encode({ delta: this.host.linkWindow }));
  }

  private onOpen(id: number, body: Buffer): void {
    const existing = this.streams.get(id);
    if (existing) return existing.abort(`stream ${id} opened again while it was open`);
    if ((id & 1) === (this.link.dialedByMe ? 1 : 0)) return this.refuse(id, 'bad_request', `stream id ${id} has the parity of ids this side opens`);
    let window: number;
    let meta: Record<string, string>;
    try {
      ({ window, meta } = S.StreamOpen.decode(body));
    } catch (err) {
      return this.refuse(id, 'bad_request', `undecodable StreamOpen: ${(err as Error).message}`);
    }
    meta = { ...meta };
    if (Object.keys(meta).length > MAX_META_ENTRIES || metaBytes(meta) > MAX_META_BYTES) {
      return this.refuse(id, 'bad_request', `stream meta is over ${MAX_META_ENTRIES} entries or ${MAX_META_BYTES} bytes`);
    }
    const refusal = this.host.admit();
    if (refusal) return this.refuse(id, refusal.code, refusal.message);
    if (this.streams.size >= this.host.maxStreamsPerLink) return this.refuse(id, 'busy', `${this.host.selfId} has ${this.host.maxStreamsPerLink} streams open on this link already`);
    const stream = new MeshStream(this.host.window);
    const info: StreamInfo = { id, peer: this.peer, meta, opener: 'remote' };
    this.streams.set(id, stream);
    stream.attach(this, info, window);
    this.greet();
    this.sendControl(S.StreamAccept.id, id, S.StreamAccept.encode({ window: stream.window }));
    this.host.deliver(stream, info);
  }

  private refuse(id: number, code: string, message: string): void {
    this.sendControl(S.StreamReset.id, id, S.StreamReset.encode({ code, message }));
  }

  // ---- frames from the peer ------------------------------------------------

  /** Every stream frame of this link. Returns a reason to close the link when the frame cannot be pinned on one stream. */
  onFrame(msgId: number, seq: number, body: Buffer): string | undefined {
    if (this.closed) return undefined;
    if (seq === 0) {
      if (msgId !== S.StreamWindow.id) return `stream frame ${msgId} without a stream id`;
      const delta = decodeOr(() => S.StreamWindow.decode(body).delta, -1);
      if (!this.linkCredit.grant(delta)) return `link window update of ${delta} bytes is out of range`;
      this.resume();
      return undefined;
    }
    if (msgId === S.StreamData.id) {
      // Link credit first: bytes beyond it break the sum over every stream, not one stream.
      if (!this.greeted || !this.linkRecv.receive(body.length)) return `${body.length} bytes of stream data beyond the link's window`;
      const stream = this.streams.get(seq);
      if (stream) {
        if (!stream.onData(body)) this.released(body.length);
        return undefined;
      }
      this.released(body.length);
      this.refuse(seq, 'cancelled', `stream ${seq} is not open`);
      return undefined;
    }
    if (msgId === S.StreamOpen.id) {
      this.onOpen(seq, body);
      return undefined;
    }
    const stream = this.streams.get(seq);
    switch (msgId) {
      case S.StreamAccept.id: {
        const window = decodeOr(() => S.StreamAccept.decode(body).window, -1);
        if (!stream) this.refuse(seq, 'cancelled', `stream ${seq} is not open`);
        else if (window < 0) stream.abort('undecodable StreamAccept');
        else stream.onAccept(window);
        return undefined;
      }
      case S.StreamWindow.id: {
        // A grant for a stream that just ended is normal; nothing to say.
        if (!stream) return undefined;
        const delta = decodeOr(() => S.StreamWindow.decode(body).delta, -1);
        if (delta < 0) stream.abort('undecodable StreamWindow');
        else stream.onWindow(delta);
        return undefined;
      }
      case S.StreamEnd.id:
        if (stream) stream.onEnd();
        else this.refuse(seq, 'cancelled', `stream ${seq} is not open`);
        return undefined;
      case S.StreamReset.id: {
        if (!stream) return undefined;
        const r = decodeOr(() => S.StreamReset.decode(body), { code: 'bad_request', message: 'undecodable StreamReset' });
        stream.onReset(r.code, r.message);
        return undefined;
      }
      default:
        return `message ${msgId} is not a stream frame`;
    }
  }

  /** The link closed: every stream on it fails with `unavailable`. */
  linkClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.fallback);
    const err = new RpcError('unavailable', `the link to ${this.peer.id} is lost: ${reason}`);
    for (const s of [...this.streams.values()]) s.linkLost(err);
    this.streams.clear();
    this.ready.length = 0;
  }

  // ---- StreamOwner ---------------------------------------------------------

  sendControl(msgId: number, id: number, body: Uint8Array): boolean {
    return this.link.session.send(msgId, id, body);
  }

  sendData(id: number, body: Uint8Array, written: (() => void) | undefined): boolean {
    const session = this.link.session;
    if (written && session.sendShared) return session.sendShared(S.StreamData.id, id, body, written);
    const sent = session.send(S.StreamData.id, id, body);
    written?.();
    return sent;
  }

  released(n: number): void {
    const delta = this.linkRecv.release(n);
    if (delta > 0 && !this.closed) this.sendControl(S.StreamWindow.id, 0, S.StreamWindow.encode({ delta }));
  }

  remove(stream: MeshStream): void {
    const id = stream.info?.id;
    if (id !== undefined && this.streams.get(id) === stream) this.streams.delete(id);
  }

  schedule(stream: MeshStream): void {
    if (!stream.queued && stream.wantsSend()) {
      stream.queued = true;
      this.ready.push(stream);
    }
    if (!this.pumping && !this.waiting) this.pump();
  }

  // ---- the send queue --------------------------------------------------------

  private resume(): void {
    this.waiting = false;
    clearTimeout(this.fallback);
    this.fallback = undefined;
    if (!this.pumping) this.pump();
  }

  /** Round-robin over ready streams, one chunk each, while the link has credit and its session a short queue. */
  private pump(): void {
    if (this.closed) return;
    this.pumping = true;
    const session = this.link.session;
    try {
      while (this.readyHead < this.ready.length && this.linkCredit.available > 0) {
        if (session.outboundBytes >= LINK_HIGH_WATER) return this.waitForRoom();
        const stream = this.ready[this.readyHead++] as MeshStream;
        stream.queued = false;
        const sent = stream.sendChunk(Math.min(CHUNK_BYTES, this.linkCredit.available));
        // Nothing sent with credit on both levels: the session is closed, and linkClosed follows.
        if (sent === 0) return;
        this.linkCredit.take(sent);
        if (!stream.queued && stream.wantsSend()) {
          stream.queued = true;
          this.ready.push(stream);
        }
      }
    } finally {
      this.pumping = false;
      if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
        this.ready.splice(0, this.readyHead);
        this.readyHead = 0;
      } else if (this.readyHead === this.ready.length) {
        this.ready.length = 0;
        this.readyHead = 0;
      }
    }
  }

  /**
   * The session flushes its queue on the next turn of the event loop, and a
   * socket that could not take it all says so with `drain`; look again after
   * the flush, and wait for `drain` if it is still full.
   */
  private waitForRoom(): void {
    if (this.waiting) return;
    this.waiting = true;
    setImmediate(() => {
      if (!this.waiting || this.closed) return;
      if (this.link.session.outboundBytes < LINK_HIGH_WATER) return this.resume();
      this.fallback = setTimeout(() => this.resume(), DRAIN_FALLBACK_MS);
      this.fallback.unref();
    });
  }
}

function decodeOr<T>(decode: () => T, fallback: T): T {
  try {
    return decode();
  } catch {
    return fallback;
  }
}
