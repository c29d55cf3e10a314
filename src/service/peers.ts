import { admission, newestVersions, replacedOnly } from '../discovery/admission.js';
import type { ServiceDesc, ServiceEvent } from '../discovery/types.js';
import type { Logger } from '../log/index.js';
import { dialTcp } from '../net/tcp.js';
import { RpcError } from './errors.js';
import { formatAddr, parseAddr } from './identity.js';
import { dialLink, type Link, type LinkIdentity } from './link.js';
import { H, L } from './messages.js';
import { Peer } from './peer.js';
import type { RpcEngine } from './rpc.js';
import { linkTables, type LinkCounts } from './metrics.js';
import { isStreamFrame, type StreamHub } from './stream/index.js';

/**
 * A duplicate link stays open this long after losing (and then until nothing
 * is in flight on it, up to RETIRE_MAX_MS): long enough for whatever the
 * other side sent on it before it saw the winner to arrive and be answered.
 */
const RETIRE_GRACE_MS = 1000;
const RETIRE_MAX_MS = 10_000;

/** What the peer table needs from its node. */
export interface PeerHost {
  readonly id: string;
  readonly identity: LinkIdentity;
  readonly log: Logger;
  readonly rpc: RpcEngine;
  readonly streams: StreamHub;
  readonly maxFrame: number;
  /** Not stopping or stopped: new links and dials are welcome. */
  active(): boolean;
  /** The operators' flag (`gamemesh sd disable`): an unavailable peer is never picked for new work, but keeps its link. */
  available(id: string): boolean;
  stopped(): boolean;
  /** `replaced`: a duplicate link was resolved; the peer was up already. */
  peerUp(peer: Peer, replaced: boolean): void;
  peerDown(peer: Peer, reason: string): void;
  peerGone(peer: Peer): void;
  /** Whether selection may pick this peer: its cluster's scope (cluster-scope.ts), also for peers that dialed in. */
  selectable(peer: Peer): boolean;
  /** A HarborRoute or HarborDown frame (route.ts), not for the RPC engine. */
  routed(link: Link, msgId: number, body: Buffer): void;
}

/**
 * Every other instance this node knows: found in discovery (and redialed
 * until discovery says they left), dialed lazily, or dialed in by them; one
 * authenticated link each; and, per service name, the connected and
 * non-draining instances that calls may pick from.
 */
export class Peers implements LinkCounts {
  private readonly byId = new Map<string, Peer>();
  private readonly byAddr = new Map<number, Peer>();
  private readonly candidates = new Map<string, Peer[]>();
  /** Losing duplicate links, still delivering what is in flight on them. */
  private readonly retiring = new Map<Link, NodeJS.Timeout>();
  /** Peers that had a link once: another one is a reconnect. */
  private readonly linkedBefore = new WeakSet<Peer>();
  reconnects = 0;
  dialFailures = 0;
  /** Links refused in the handshake (counted by the node, which accepts them). */
  refused = 0;

  constructor(private readonly host: PeerHost) {
    linkTables.add(this);
  }

  /** Connected peers by service name. */
  up(): Map<string, number> {
    const out = new Map<string, number>();
    for (const p of this.byId.values()) if (p.connected) out.set(p.name, (out.get(p.name) ?? 0) + 1);
    return out;
  }

  get(id: string): Peer | undefined {
    return this.byId.get(id);
  }

  /** The peer at the other end of a direct link. */
  ofLink(link: Link): Peer | undefined {
    return this.byId.get(this.key(link.peerId, link.peerAddr));
  }

  /**
   * Ids are unique within a cluster only: a peer of another cluster (an
   * exported node) is known as `id/c<cluster>`.
   */
  private key(id: string, addr: number): string {
    if (addr === 0) return id;
    const cluster = addr >>> 18;
    return cluster === this.host.identity.addr >>> 18 ? id : `${id}/c${cluster}`;
  }

  byAddress(addr: number): Peer | undefined {
    return this.byAddr.get(addr);
  }

  /** Connected, non-draining, available instances of a service, sorted by id. */
  instances(name: string): readonly Peer[] {
    return this.candidates.get(name) ?? [];
  }

  all(): IterableIterator<Peer> {
    return this.byId.values();
  }

  /** A node's state changed: if it is a peer, it may have become (un)available for selection. */
  stateChanged(id: string): void {
    const peer = this.byId.get(id);
    if (peer) this.refreshCandidates(peer.name);
  }

  /** Closes every link, retiring ones included, and fails whatever waits for one. */
  closeAll(reason: string): void {
    for (const p of this.byId.values()) {
      if (p.retryTimer) clearTimeout(p.retryTimer);
      p.failWaiters(new RpcError('unavailable', 'the service is stopped'));
      p.link?.session.close(reason);
    }
    for (const [link, timer] of this.retiring) {
      clearTimeout(timer);
      link.session.close(reason);
    }
    this.retiring.clear();
    linkTables.retire(this);
  }

  /** A registry change for a watched dependency: dial what appeared (if the link rule matches), stop redialing what left. */
  onServiceEvent(ev: ServiceEvent, matches: (group: string) => boolean): void {
    const { desc } = ev;
    const id = this.key(desc.id, addrOf(desc));
    if (id === this.host.id) return;
    if (ev.type === 'remove') {
      const peer = this.byId.get(id);
      if (!peer) return;
      peer.desc = undefined;
      if (peer.retryTimer) clearTimeout(peer.retryTimer);
      peer.retryTimer = undefined;
      if (!peer.connected) this.forget(peer);
      // Its link may still look up (a partition shows only after the idle timeout): it keeps the work it has but gets no new work.
      else this.refreshCandidates(peer.name);
      return;
    }
    if (!matches(desc.meta['group'] ?? '')) return;
    const peer = this.peerFor(desc.id, desc.name, addrOf(desc));
    peer.desc = desc;
    peer.watched = true;
    // Its meta may say it retires, or carry a version that retires the others.
    this.refreshCandidates(peer.name);
    if (!peer.connected) this.dial(peer);
  }

  /** The peer with this id, created if new; indexed by logical address when it has one. */
  peerFor(rawId: string, name: string, addr: number): Peer {
    const id = this.key(rawId, addr);
    let peer = this.byId.get(id);
    if (!peer) {
      peer = new Peer(id, name, addr);
      this.byId.set(id, peer);
    }
    if (addr) {
      peer.addr = addr;
      this.byAddr.set(addr, peer);
    }
    return peer;
  }

  private forget(peer: Peer): void {
    if (this.byId.get(peer.id) === peer && peer.watched) this.host.peerGone(peer);
    this.byId.delete(peer.id);
    if (this.byAddr.get(peer.addr) === peer) this.byAddr.delete(peer.addr);
    peer.failWaiters(new RpcError('unavailable', `service ${peer.id} is gone`));
  }

  /** Connects and authenticates, unless a link is up or a dial is under way; redials with backoff on failure. */
  dial(peer: Peer): void {
    if (peer.dialing || peer.connected || !peer.desc || !this.host.active()) return;
    peer.dialing = true;
    const { host, port } = peer.desc;
    dialTcp(host, port, { maxFrame: this.host.maxFrame, idleTimeoutMs: 15_000, heartbeatMs: 5000, connectTimeoutMs: 3000 })
      .then((session) => dialLink(session, this.host.identity, 5000))
      .then(
        (link) => {
          peer.dialing = false;
          peer.attempt = 0;
          this.addLink(link);
        },
        (err: Error) => {
          peer.dialing = false;
          this.dialFailures++;
          this.host.log.debug({ peer: peer.id, err: err.message }, 'dial failed');
          // Calls waiting for this peer fail now rather than at their deadline; later ones wait for the redial.
          peer.failWaiters(new RpcError('unavailable', `cannot connect to ${peer.id}: ${err.message}`));
          this.scheduleRedial(peer);
        },
      );
  }

  private scheduleRedial(peer: Peer): void {
    if (!peer.watched && !peer.connected) {
      this.forget(peer);
      return;
    }
    if (!peer.desc || peer.connected || peer.retryTimer || !this.host.active()) return;
    const base = Math.min(3000, 50 * 2 ** Math.min(peer.attempt++, 8));
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = undefined;
      this.dial(peer);
    }, base / 2 + Math.random() * (base / 2));
    peer.retryTimer.unref();
  }

  /** Takes an authenticated link, dialed or accepted, resolving duplicates deterministically. */
  addLink(link: Link): void {
    const self = link.peerId === this.host.id && (link.peerAddr === this.host.identity.addr || link.peerAddr === 0);
    if (self || this.host.stopped()) {
      link.session.close(self ? 'link to self' : 'service stopped');
      return;
    }
    const peer = this.peerFor(link.peerId, link.peerName, link.peerAddr);
    const existing = peer.link;
    const replacing = existing !== undefined && !existing.session.closed;
    link.session.once('close', (reason) => this.onLinkClose(peer, link, reason));
    if (replacing) {
      // A new link from the same dialer replaces a stale one. Otherwise both
      // sides dialed at once: both keep the link dialed by the smaller id, so
      // exactly one survives without any extra round trip. That loser is
      // retired, not closed: either side may already have sent calls or
      // messages on it, and those must still be delivered and answered.
      // By id and address: two clusters may each have a node with one id.
      const dialerOf = (l: Link) => (l.dialedByMe ? `${this.host.id}|${this.host.identity.addr}` : `${l.peerId}|${l.peerAddr}`);
      const sameDialer = dialerOf(link) === dialerOf(existing);
      if (!sameDialer && dialerOf(link) > dialerOf(existing)) {
        link.start((msgId, seq, body) => this.onLinkFrame(peer, link, msgId, seq, body));
        this.retire(link);
        return;
      }
      if (sameDialer) {
        peer.link = undefined;
        existing.session.close('replaced by a new link');
      } else {
        this.retire(existing);
      }
    }
    peer.link = link;
    peer.load = Number.isFinite(link.peerLoad) ? link.peerLoad : 0;
    peer.draining = false;
    link.start((msgId, seq, body) => this.onLinkFrame(peer, link, msgId, seq, body));
    this.refreshCandidates(peer.name);
    peer.linkUp(link);
    if (replacing) {
      this.host.log.debug({ peer: peer.id, dialed: link.dialedByMe }, 'duplicate link resolved');
    } else {
      if (this.linkedBefore.has(peer)) this.reconnects++;
      this.linkedBefore.add(peer);
      this.host.log.info({ peer: peer.id, addr: formatAddr(peer.addr), dialed: link.dialedByMe }, 'peer up');
    }
    this.host.peerUp(peer, replacing);
  }

  /** Sends no more on a losing duplicate link, and closes it once nothing is in flight on it. */
  private retire(link: Link): void {
    const since = Date.now();
    const check = () => {
      if ((this.host.rpc.busyOn(link) || this.host.streams.busyOn(link)) && Date.now() - since < RETIRE_MAX_MS) {
        this.retiring.set(link, setTimeout(check, 50));
        return;
      }
      this.retiring.delete(link);
      link.session.close('duplicate link');
    };
    this.retiring.set(link, setTimeout(check, RETIRE_GRACE_MS));
  }

  private onLinkFrame(peer: Peer, link: Link, msgId: number, seq: number, body: Buffer): void {
    if (isStreamFrame(msgId)) return this.host.streams.onFrame(link, msgId, seq, body);
    if (seq === 0) {
      if (msgId === H.HarborRoute.id || msgId === H.HarborDown.id || msgId === H.HarborPeerDown.id) return this.host.routed(link, msgId, body);
      if (msgId === L.LoadReport.id) {
        const load = L.LoadReport.decode(body).load;
        // A NaN would make every least-loaded comparison false.
        peer.load = Number.isFinite(load) ? load : 0;
        return;
      }
      if (msgId === L.Draining.id) {
        peer.draining = true;
        this.refreshCandidates(peer.name);
        return;
      }
    }
    this.host.rpc.dispatch(link, peer, msgId, seq, body);
  }

  private onLinkClose(peer: Peer, link: Link, reason: string): void {
    this.host.rpc.linkClosed(link, reason);
    this.host.streams.linkClosed(link, reason);
    const retiring = this.retiring.get(link);
    if (retiring) {
      clearTimeout(retiring);
      this.retiring.delete(link);
    }
    if (peer.link !== link) return;
    peer.link = undefined;
    this.refreshCandidates(peer.name);
    this.host.log.info({ peer: peer.id, reason }, 'peer down');
    this.host.peerDown(peer, reason);
    // Watched peers are redialed until discovery says they are gone; lazily
    // found ones are looked up again on the next send.
    if (peer.desc && peer.watched) this.scheduleRedial(peer);
    else this.forget(peer);
  }

  private refreshCandidates(name: string): void {
    const list: Peer[] = [];
    const same: Peer[] = [];
    for (const p of this.byId.values()) if (p.name === name) same.push(p);
    // Versions count among the connected, registered ones: a newer one that is not linked yet cannot take the work.
    const newest = newestVersions(
      same.flatMap((p) => (p.desc && p.connected ? [p.desc] : [])),
      (id) => this.host.available(id),
    );
    const replaced: Peer[] = [];
    for (const p of same) {
      // A watched peer whose registration left keeps the work it has but gets no new work.
      if (!p.connected || !this.host.selectable(p) || (p.watched && !p.desc)) continue;
      const desc = p.desc ?? { id: p.id, name: p.name, meta: {} };
      const verdict = admission(desc, { state: { available: this.host.available(p.id) }, draining: p.draining, newest: newest(desc) });
      if (verdict.admit) list.push(p);
      else if (replacedOnly(verdict)) replaced.push(p);
    }
    // A retiring node still serves while its successor is not linked here yet (the moment of a handover): better than no one.
    if (list.length === 0) list.push(...replaced);
    list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.candidates.set(name, list);
  }
}

function addrOf(desc: ServiceDesc): number {
  try {
    return desc.meta['addr'] ? parseAddr(desc.meta['addr']) : 0;
  } catch {
    return 0;
  }
}
