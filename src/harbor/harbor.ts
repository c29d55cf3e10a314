/**
 * A harbor (clustergo): type 255 of its cluster, it routes frames between
 * clusters. It is two service nodes in one process: one in its cluster's
 * discovery, which this cluster's nodes link to, and one in the harbors'
 * center, which links to every other harbor. A frame goes
 * sender → a harbor of the sender's cluster → a harbor of the target's
 * cluster → target, and the answer comes back the same way. The harbor reads
 * only the 22-byte route header (src/service/route.ts), never the body.
 */
import type { Discovery } from '../discovery/types.js';
import { createLogger, type Logger } from '../log/index.js';
import type { Link } from '../service/link.js';
import { HARBOR_TYPE, formatAddr, unpackAddr } from '../service/identity.js';
import { H, L } from '../service/messages.js';
import { ServiceNode, type NodeConfig } from '../service/node.js';
import { RpcError, ServiceError } from '../service/errors.js';
import { RESPONSE_BIT } from '../service/rpc.js';
import { decodeRoute, encodeRoute, ROUTE_SRC_HARBOR_OFFSET, type RouteHeader } from '../service/route.js';
import { isStreamFrame } from '../service/stream/index.js';
import { ExportsRelay } from './exports-relay.js';
import { harbors } from './metrics.js';

/** How a Harbor joins its own cluster and the harbors' center, and its queue limits. */
export interface HarborOptions {
  /** The harbor's own cluster: sdaddr, cluster, svcindex, token, listen, admin... */
  config: Partial<NodeConfig>;
  /** Discovery address of the harbors' center (host:port or etcd://...). */
  center: string;
  /** Secret of harbor-to-harbor links and of the center; default: the cluster token. */
  centerToken?: string;
  /** host:port other harbors dial; default: the listen host, a free port. */
  centerListen?: string;
  /** Bytes queued toward one next hop before frames for it are refused with `busy`. Default 2 MiB. */
  maxQueueBytes?: number;
  /** Frames held per target while the harbor connects to it (and, over all targets, at most maxQueueBytes of them). Default 1024. */
  maxPendingPerTarget?: number;
  /** Targets looked up and dialed at once; frames for more are refused with `busy`. Default 256. */
  maxConnecting?: number;
  /** How long a delivery waits for a link to its target. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** Use these discovery backends instead of connecting (tests); they are not closed on stop. */
  discovery?: Discovery;
  centerDiscovery?: Discovery;
  logger?: Logger;
}

/** A harbor's counters of frames forwarded, refused and dropped. */
export type HarborCounts = {
  /** Frames sent on toward another harbor or a local target. */
  forwarded: number;
  /** Requests answered `busy` because a next hop's queue was full (messages dropped likewise are counted too). */
  busy: number;
  /** Requests answered `unreachable` (no harbor of the target's cluster). */
  unreachable: number;
  /** Requests answered `unavailable` (the local target could not be reached). */
  unavailable: number;
  /** Frames dropped: unreadable, spoofed, or one-way with nowhere to go. */
  dropped: number;
};

interface Waiting {
  readonly frames: Array<{ h: RouteHeader; body: Buffer; back: Link }>;
}

/** Routes calls and messages between clusters (docs/clusters.md): a node in its own cluster and one at the harbors' center. */
export class Harbor {
  readonly local: ServiceNode;
  readonly center: ServiceNode;
  readonly counts: HarborCounts = { forwarded: 0, busy: 0, unreachable: 0, unavailable: 0, dropped: 0 };
  private readonly log: Logger;
  private readonly maxQueue: number;
  private readonly maxPending: number;
  private readonly maxConnecting: number;
  private readonly connectTimeoutMs: number;
  private readonly cluster: number;
  /** Connected harbors of each other cluster, sorted by id; cleared when the center's links change. */
  private readonly byCluster = new Map<number, Array<{ addr: number }>>();
  private readonly connecting = new Map<number, Waiting>();
  /** Body bytes held in `connecting`, over all targets. */
  private heldBytes = 0;
  private relay: ExportsRelay | undefined;
  /** Who to tell when a node goes away: per remote target, this cluster's nodes that sent to it... */
  private readonly senders = new Map<number, Set<number>>();
  /** ...and per node of this cluster, the other clusters' harbors that delivered to it. */
  private readonly receivers = new Map<number, Set<number>>();

  constructor(opts: HarborOptions) {
    this.log = opts.logger ?? createLogger('harbor');
    this.maxQueue = opts.maxQueueBytes ?? 2 * 1024 * 1024;
    this.maxPending = opts.maxPendingPerTarget ?? 1024;
    this.maxConnecting = opts.maxConnecting ?? 256;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
    const config = { ...opts.config, svctype: HARBOR_TYPE };
    this.cluster = config.cluster ?? 1;
    this.local = new ServiceNode({ name: 'harbor', config, discovery: opts.discovery, logger: this.log });
    const listenHost = (config.listen ?? '127.0.0.1:0').replace(/:\d+$/, '');
    this.center = new ServiceNode({
      name: 'harbor',
      // Harbors of every cluster register in one center: the group keeps their ids apart.
      config: { ...config, admin: '', export: false, sdaddr: opts.center, token: opts.centerToken || config.token, svcgroup: `c${this.cluster}`, listen: opts.centerListen || `${listenHost}:0` },
      discovery: opts.centerDiscovery,
      dependencies: ['harbor'],
      linkRules: { harbor: '*' },
      allClusters: true,
      logger: this.log.child({ side: 'center' }),
    });
    this.local.onRouted((link, msgId, body) => this.fromLocal(link, msgId, body));
    this.center.onRouted((link, msgId, body) => this.fromCenter(link, msgId, body));
    const changed = () => this.byCluster.clear();
    this.center.on('linkUp', changed);
    this.center.on('peerDown', (peer) => {
      changed();
      if (unpackAddr(peer.addr).type === HARBOR_TYPE) this.announceDown(peer.addr);
    });
    // A node of this cluster is gone: the harbors that brought it calls tell their senders, who fail them now.
    // (Not when this harbor stops: HarborDown says that. And only if it cannot be dialed again at once:
    // a link that merely dropped is no reason to fail calls.)
    this.local.on('peerDown', (peer) => {
      const via = this.receivers.get(peer.addr);
      if (!via || this.local.stopping) return;
      this.local.linkTo(peer.addr, 1000).then(
        () => undefined,
        () => {
          if (this.local.stopping || this.receivers.get(peer.addr) !== via) return;
          this.receivers.delete(peer.addr);
          const body = H.HarborPeerDown.encode({ addr: peer.addr });
          for (const harbor of via) this.center.linkByAddr(harbor)?.session.send(H.HarborPeerDown.id, 0, body);
        },
      );
    });
    this.local.addStatus(() => ({ harbor: { ...this.counts, center: this.center.logicalAddress, harbors: this.center.instances('harbor').map((p) => formatAddr(p.addr)) } }));
  }

  get addr(): number {
    return this.local.addr;
  }

  /** Harbors of other clusters linked through the center now. */
  linkedHarbors(): number {
    return this.center.instances('harbor').filter((p) => unpackAddr(p.addr).cluster !== this.cluster).length;
  }

  async start(): Promise<this> {
    if (this.center.config.sdaddr === this.local.config.sdaddr) throw new ServiceError(`--center ${this.center.config.sdaddr} is this cluster's own discovery; the center must be another one (or another etcd prefix)`);
    await this.center.start();
    harbors.add(this);
    try {
      await this.local.start();
      this.relay = new ExportsRelay(this.cluster, this.local.discovery, this.center.discovery, this.log);
      await this.relay.start();
    } catch (err) {
      this.relay?.stop();
      harbors.retire(this);
      await this.local.stop();
      await this.center.stop();
      throw err;
    }
    return this;
  }

  async stop(): Promise<void> {
    harbors.retire(this);
    this.relay?.stop();
    await Promise.all([this.local.stop(), this.center.stop()]);
  }

  // ---- routing --------------------------------------------------------------

  /** From a node of this cluster: on to the target cluster's harbor (or, for this cluster, to the target). */
  private fromLocal(link: Link, msgId: number, body: Buffer): void {
    const h = msgId === H.HarborRoute.id ? decodeRoute(body) : undefined;
    // A node routes only as itself.
    if (!h || h.src !== link.peerAddr) return void this.counts.dropped++;
    const cluster = unpackAddr(h.dst).cluster;
    if (cluster === this.cluster) return this.deliver(h, body, link);
    if (h.srcHarbor === 0) body.writeUInt32BE(this.addr, ROUTE_SRC_HARBOR_OFFSET);
    remember(this.senders, h.dst, h.src);
    const next = this.harborFor(cluster, h);
    if (!next) return this.bounce(h, link, 'unreachable', `no harbor of cluster ${cluster} is reachable from harbor ${formatAddr(this.addr)}`);
    this.forward(next, h, body, link);
  }

  /** From another cluster's harbor: to the target, in this cluster. */
  private fromCenter(link: Link, msgId: number, body: Buffer): void {
    if (msgId === H.HarborPeerDown.id) return this.peerGone(link, body);
    const h = msgId === H.HarborRoute.id ? decodeRoute(body) : undefined;
    // A harbor routes only for its own cluster's nodes.
    if (!h || unpackAddr(h.src).cluster !== unpackAddr(link.peerAddr).cluster) return void this.counts.dropped++;
    if (unpackAddr(h.dst).cluster !== this.cluster) return this.bounce(h, link, 'unreachable', `harbor ${formatAddr(this.addr)} does not route for cluster ${unpackAddr(h.dst).cluster}`);
    if (h.srcHarbor !== 0) remember(this.receivers, h.dst, h.srcHarbor);
    this.deliver(h, body, link);
  }

  /** Another cluster's harbor says one of its nodes is gone: tell the nodes here that sent to it. */
  private peerGone(link: Link, body: Buffer): void {
    let addr: number;
    try {
      addr = H.HarborPeerDown.decode(body).addr;
    } catch {
      return void this.counts.dropped++;
    }
    // A harbor speaks only for its own cluster's nodes.
    if (unpackAddr(addr).cluster !== unpackAddr(link.peerAddr).cluster) return void this.counts.dropped++;
    const srcs = this.senders.get(addr);
    if (!srcs) return;
    this.senders.delete(addr);
    const msg = H.HarborPeerDown.encode({ addr });
    for (const src of srcs) this.local.linkByAddr(src)?.session.send(H.HarborPeerDown.id, 0, msg);
  }

  private harborFor(cluster: number, h: RouteHeader): Link | undefined {
    let list = this.byCluster.get(cluster);
    if (!list) {
      list = this.center.instances('harbor').filter((p) => unpackAddr(p.addr).cluster === cluster);
      this.byCluster.set(cluster, list);
    }
    if (list.length === 0) return undefined;
    // The harbor the other side answered from, so a cancel follows its call; else the same one per pair.
    const preferred = h.dstHarbor !== 0 ? this.center.linkByAddr(h.dstHarbor) : undefined;
    if (preferred && unpackAddr(h.dstHarbor).cluster === cluster) return preferred;
    for (let i = 0; i < list.length; i++) {
      const pick = list[(pairHash(h.src, h.dst) + i) % list.length] as { addr: number };
      const link = this.center.linkByAddr(pick.addr);
      if (link) return link;
    }
    return undefined;
  }

  private deliver(h: RouteHeader, body: Buffer, back: Link): void {
    const link = this.local.linkByAddr(h.dst);
    if (link) return this.forward(link, h, body, back);
    // Not linked yet: hold the frames (bounded) while one lookup and dial run, so they keep their order.
    let waiting = this.connecting.get(h.dst);
    if (waiting && waiting.frames.length >= this.maxPending) return this.bounce(h, back, 'busy', `${this.maxPending} frames already wait for ${formatAddr(h.dst)} to connect`);
    if (!waiting && this.connecting.size >= this.maxConnecting) return this.bounce(h, back, 'busy', `harbor ${formatAddr(this.addr)} is already connecting to ${this.maxConnecting} targets`);
    if (this.heldBytes + body.length > this.maxQueue) return this.bounce(h, back, 'busy', `harbor ${formatAddr(this.addr)} already holds ${this.heldBytes} bytes for targets that are connecting`);
    // A copy: the frame may be a slice of a large read buffer, which it would otherwise keep alive.
    const held = { h, body: Buffer.from(body), back };
    this.heldBytes += body.length;
    if (waiting) {
      waiting.frames.push(held);
      return;
    }
    waiting = { frames: [held] };
    this.connecting.set(h.dst, waiting);
    const w = waiting;
    this.local.linkTo(h.dst, this.connectTimeoutMs).then(
      (l) => {
        this.connecting.delete(h.dst);
        this.release(w);
        for (const f of w.frames) this.forward(l, f.h, f.body, f.back);
      },
      (err: Error) => {
        this.connecting.delete(h.dst);
        this.release(w);
        const code = err instanceof RpcError ? err.code : 'unavailable';
        for (const f of w.frames) this.bounce(f.h, f.back, code, `harbor ${formatAddr(this.addr)}: ${err.message}`);
      },
    );
  }

  private release(w: Waiting): void {
    for (const f of w.frames) this.heldBytes -= f.body.length;
  }

  private forward(next: Link, h: RouteHeader, body: Buffer, back: Link): void {
    // A slow next hop gets no new work: requests are answered `busy` and messages dropped, instead of the
    // harbor's memory growing. Answers and cancels still go: they close calls already admitted (so they
    // are bounded by those), and dropping one would leave its caller waiting for its deadline.
    if (next.session.outboundBytes > this.maxQueue && (h.seq === 0 || isRequest(h))) return this.bounce(h, back, 'busy', `harbor ${formatAddr(this.addr)}: the queue toward ${formatAddr(next.peerAddr)} is full`);
    if (next.session.send(H.HarborRoute.id, 0, body)) this.counts.forwarded++;
    else this.bounce(h, back, 'unavailable', `harbor ${formatAddr(this.addr)}: the link to ${formatAddr(next.peerAddr)} is closed`);
  }

  /** Answers a request that cannot go on with a typed error, back the way it came; anything else is dropped. */
  private bounce(h: RouteHeader, back: Link, code: string, message: string): void {
    if (code === 'busy') this.counts.busy++;
    else if (code === 'unreachable') this.counts.unreachable++;
    else if (code === 'unavailable') this.counts.unavailable++;
    if (!isRequest(h)) return void this.counts.dropped++;
    const fromCenter = unpackAddr(back.peerAddr).cluster !== this.cluster;
    const reply: RouteHeader = { dst: h.src, src: h.dst, srcHarbor: fromCenter ? this.addr : 0, dstHarbor: h.srcHarbor, msgId: L.RpcError.id, seq: (h.seq | RESPONSE_BIT) >>> 0 };
    back.session.send(H.HarborRoute.id, 0, encodeRoute(reply, L.RpcError.encode({ code, message })));
  }

  /** Tells this cluster's nodes that calls through a lost harbor will not be answered, so they fail now. */
  private announceDown(harbor: number): void {
    const body = H.HarborDown.encode({ harbor });
    for (const link of this.local.links()) link.session.send(H.HarborDown.id, 0, body);
  }
}

/** Bounded bookkeeping: at most MAX_TRACKED keys of MAX_TRACKED values each (past that, the oldest key goes). */
const MAX_TRACKED = 4096;
function remember(map: Map<number, Set<number>>, key: number, value: number): void {
  let set = map.get(key);
  if (!set) {
    if (map.size >= MAX_TRACKED) map.delete(map.keys().next().value as number);
    map.set(key, (set = new Set()));
  }
  if (set.size < MAX_TRACKED) set.add(value);
}

function isRequest(h: RouteHeader): boolean {
  return h.seq !== 0 && (h.seq & RESPONSE_BIT) === 0 && h.msgId !== L.RpcCancel.id && !isStreamFrame(h.msgId);
}

function pairHash(a: number, b: number): number {
  let x = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
