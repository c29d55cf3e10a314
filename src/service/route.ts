/**
 * The node's side of harbors (docs/clusters.md): a call or message for a
 * logical address in another cluster travels inside HarborRoute frames over
 * the link to a harbor of this cluster. Each (remote address, harbor link)
 * pair gets a routed Link whose session wraps every frame it is given, so the
 * RPC engine's correlation ids, deadlines, cancels, typed errors and trace
 * contexts work across harbors exactly as on a direct link.
 */
import { EventEmitter } from 'node:events';
import type { Session, SessionEvents } from '../net/session.js';
import type { SharedFrame } from '../net/shared-frame.js';
import { RpcError } from './errors.js';
import { formatAddr, unpackAddr } from './identity.js';
import { Link } from './link.js';
import { H } from './messages.js';
import type { PeerInfo } from './rpc.js';

/** dst, src, src_harbor, dst_harbor (u32 each), msg_id (u16), seq (u32). */
export const ROUTE_HEADER_BYTES = 22;

export interface RouteHeader {
  dst: number;
  src: number;
  srcHarbor: number;
  dstHarbor: number;
  msgId: number;
  seq: number;
}

export function encodeRoute(h: RouteHeader, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ROUTE_HEADER_BYTES + body.length);
  out.writeUInt32BE(h.dst >>> 0, 0);
  out.writeUInt32BE(h.src >>> 0, 4);
  out.writeUInt32BE(h.srcHarbor >>> 0, 8);
  out.writeUInt32BE(h.dstHarbor >>> 0, 12);
  out.writeUInt16BE(h.msgId, 16);
  out.writeUInt32BE(h.seq >>> 0, 18);
  out.set(body, ROUTE_HEADER_BYTES);
  return out;
}

/** The header of a HarborRoute body; undefined when it is too short to hold one. */
export function decodeRoute(body: Buffer): RouteHeader | undefined {
  if (body.length < ROUTE_HEADER_BYTES) return undefined;
  return {
    dst: body.readUInt32BE(0),
    src: body.readUInt32BE(4),
    srcHarbor: body.readUInt32BE(8),
    dstHarbor: body.readUInt32BE(12),
    msgId: body.readUInt16BE(16),
    seq: body.readUInt32BE(18),
  };
}

/** Offsets harbors patch in place, without decoding the rest. */
export const ROUTE_SRC_HARBOR_OFFSET = 8;

/** A Session that sends each frame as a HarborRoute frame on a harbor's link. */
class RoutedSession extends EventEmitter<SessionEvents> implements Session {
  readonly id: number;
  readonly transport = 'tcp' as const;
  readonly remoteAddress: string;
  readonly connectedAt = Date.now();
  closed = false;
  /** The harbor of the remote's cluster that answered last (0: none yet). */
  remoteHarbor = 0;

  constructor(
    readonly harbor: Link,
    readonly local: number,
    readonly remote: number,
  ) {
    super();
    this.id = harbor.session.id;
    this.remoteAddress = `${formatAddr(remote)} via ${formatAddr(harbor.peerAddr)}`;
  }

  get outboundBytes(): number {
    return this.harbor.session.outboundBytes;
  }

  send(msgId: number, seq: number, body: Uint8Array): boolean {
    if (this.closed) return false;
    const h: RouteHeader = { dst: this.remote, src: this.local, srcHarbor: 0, dstHarbor: this.remoteHarbor, msgId, seq };
    return this.harbor.session.send(H.HarborRoute.id, 0, encodeRoute(h, body));
  }

  sendFrame(frame: SharedFrame): boolean {
    return this.send(frame.msgId, frame.seq, frame.body);
  }

  setTimeouts(): void {}

  close(reason: string, error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', reason, error);
  }
}

export interface RouteHost {
  /** This node's logical address. */
  addr(): number;
  /** Connected harbors of this node's cluster, sorted by id. */
  harbors(): ReadonlyArray<{ readonly addr: number; readonly link: Link | undefined }>;
  /** Hands a frame that arrived on a routed link to the RPC engine. */
  dispatch(link: Link, peer: PeerInfo, msgId: number, seq: number, body: Buffer): void;
  /** The routed link is gone: fail its calls, abort its handlers. */
  closed(link: Link, reason: string): void;
  /** Calls or handlers in flight on the link. */
  busy(link: Link): boolean;
}

/** Routes kept at most; past it, idle ones go first (they are made again on the next frame). */
export const MAX_ROUTES = 65_536;

interface Routed {
  readonly link: Link;
  readonly session: RoutedSession;
  readonly info: PeerInfo;
}

export class RouteTable {
  private readonly routes = new Map<string, Routed>();
  private readonly byLink = new WeakMap<Link, Routed>();
  private readonly watchedHarbors = new WeakSet<Link>();
  private readonly known = new Set<number>();
  /** HarborRoute frames that could not be read. */
  dropped = 0;

  constructor(private readonly host: RouteHost) {}

  /** The peer behind a routed link, or undefined for a direct one. */
  peerOf(link: Link): PeerInfo | undefined {
    return this.byLink.get(link)?.info;
  }

  get size(): number {
    return this.routes.size;
  }

  /** True once an address was routed (sent to, or heard from through a harbor): later sends skip the lookup. */
  knows(addr: number): boolean {
    return this.known.has(addr);
  }

  /**
   * A link to a logical address in another cluster, through a harbor of
   * this one. The harbor is the same for the same address while the set of
   * harbors stays the same, so a call and its cancel take one path.
   */
  linkTo(addr: number): Link {
    const harbors = this.host.harbors().filter((h) => h.link !== undefined && !h.link.session.closed);
    if (harbors.length === 0) {
      const own = unpackAddr(this.host.addr()).cluster;
      throw new RpcError('unreachable', `cluster ${unpackAddr(addr).cluster} (${formatAddr(addr)}) is another cluster, and no harbor of cluster ${own} is connected`);
    }
    const harbor = (harbors[harborIndexFor(addr, harbors.length)] as { link: Link }).link;
    return this.routed(addr, harbor).link;
  }

  /** A HarborRoute, HarborDown or HarborPeerDown frame from a harbor of this cluster. */
  onFrame(harbor: Link, msgId: number, body: Buffer): void {
    if (msgId === H.HarborPeerDown.id) {
      let gone: number;
      try {
        gone = H.HarborPeerDown.decode(body).addr;
      } catch {
        this.dropped++;
        return;
      }
      for (const r of [...this.routes.values()]) if (r.info.addr === gone) this.drop(r, `${formatAddr(gone)} is gone from its cluster`);
      return;
    }
    if (msgId === H.HarborDown.id) {
      let down: number;
      try {
        down = H.HarborDown.decode(body).harbor;
      } catch {
        this.dropped++;
        return;
      }
      return this.remoteHarborDown(down);
    }
    const h = decodeRoute(body);
    if (!h || h.dst !== this.host.addr()) {
      this.dropped++;
      return;
    }
    const r = this.routed(h.src, harbor);
    if (h.srcHarbor !== 0) r.session.remoteHarbor = h.srcHarbor;
    this.host.dispatch(r.link, r.info, h.msgId, h.seq, body.subarray(ROUTE_HEADER_BYTES));
  }

  /**
   * A harbor of another cluster is gone: whatever went through it is lost.
   * Routes that never heard from a harbor of that cluster may have gone
   * through it too (the sending harbor picked one), so they fail as well.
   */
  private remoteHarborDown(harbor: number): void {
    const cluster = unpackAddr(harbor).cluster;
    for (const r of [...this.routes.values()]) {
      const via = r.session.remoteHarbor;
      if (via === harbor || (via === 0 && unpackAddr(r.info.addr).cluster === cluster)) this.drop(r, `harbor ${formatAddr(harbor)} is down`);
    }
  }

  private routed(remote: number, harbor: Link): Routed {
    const key = `${remote}/${harbor.session.id}`;
    let r = this.routes.get(key);
    if (r && !r.session.closed) return r;
    this.known.add(remote);
    const session = new RoutedSession(harbor, this.host.addr(), remote);
    const text = formatAddr(remote);
    const link = new Link(session, text, '', remote, true, 0, () => {});
    r = { link, session, info: { id: text, name: '', addr: remote } };
    if (this.routes.size >= MAX_ROUTES) this.evictIdle();
    this.routes.set(key, r);
    this.byLink.set(link, r);
    if (!this.watchedHarbors.has(harbor)) {
      this.watchedHarbors.add(harbor);
      harbor.session.once('close', (reason) => {
        for (const x of [...this.routes.values()]) if (x.session.harbor === harbor) this.drop(x, `harbor ${formatAddr(harbor.peerAddr)} lost: ${reason}`);
      });
    }
    return r;
  }

  /** Forgets the oldest routes with nothing in flight, down to three quarters of the cap. */
  private evictIdle(): void {
    for (const r of [...this.routes.values()]) {
      if (this.routes.size < (MAX_ROUTES * 3) / 4) break;
      if (!this.host.busy(r.link)) this.drop(r, 'idle route evicted');
    }
    if (this.known.size >= MAX_ROUTES) this.known.clear();
  }

  private drop(r: Routed, reason: string): void {
    const key = `${r.info.addr}/${r.session.harbor.session.id}`;
    if (this.routes.get(key) === r) this.routes.delete(key);
    r.session.close(reason);
    this.host.closed(r.link, reason);
  }

  closeAll(reason: string): void {
    for (const r of [...this.routes.values()]) this.drop(r, reason);
  }
}

/** Which of `count` connected harbors (sorted by id) a node sends to `addr` through. */
export function harborIndexFor(addr: number, count: number): number {
  return mix(addr) % count;
}

/** A cheap integer hash, so addresses spread over harbors. */
function mix(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return (h ^ (h >>> 16)) >>> 0;
}
