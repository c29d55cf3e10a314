import { EventEmitter } from 'node:events';
import { parseAddr as parseHostPort } from '../discovery/client.js';
import { connectDiscovery } from '../discovery/connect.js';
import type { NodeState } from '../discovery/node-state.js';
import type { Discovery, RegistrationConflict, ServiceDesc, ServiceEvent } from '../discovery/types.js';
import { createLogger, type Logger } from '../log/index.js';
import { definedOnly } from '../net/options.js';
import { listenTcp, type TcpListener } from '../net/tcp.js';
import type { MessageType } from '../wire/registry.js';
import { Directory, registerWhenFree } from './directory.js';
import { RpcError, ServiceError } from './errors.js';
import { formatAddr, HARBOR_TYPE, packAddr, parseAddr, serviceId, unpackAddr } from './identity.js';
import { acceptLink, type Link, type LinkIdentity } from './link.js';
import { groupMatcher } from './link-rules.js';
import { L } from './messages.js';
import type { Peer } from './peer.js';
import { Peers } from './peers.js';
import { RpcEngine, type ClientInterceptor, type Init, type MessageHandler, type PeerInfo, type RpcHandler, type ServerInterceptor } from './rpc.js';
import { Selector, type Strategy } from './select.js';
import type { AdminServer } from './admin.js';
import { memoryStatus, startNodeAdmin, type NodeStatus } from './node-admin.js';
import { sendTraceContext } from './trace.js';
import { addRolloutRoutes, Retirement } from './retire.js';
import { READY_META, RETIRING, STATE_META, VERSION_META, versionScope } from '../discovery/admission.js';
import { updateNodeState } from '../discovery/node-state.js';
import { context, tracingOn, type Context } from '../observe/tracing.js';
import { StreamHub, type MeshStream, type OpenStreamOptions, type StreamHandler, type StreamOptions } from './stream/index.js';
import { resolveServiceType } from './type-table.js';
import { visibleInCluster, EXPORT_META } from './cluster-scope.js';
import { RouteTable } from './route.js';
import { ExportsView } from './exports.js';
import { MemoryMonitor } from './memory.js';

/** The configuration a node needs; `loadConfig` produces a superset. */
export interface NodeConfig {
  sdaddr: string;
  svcgroup: string;
  svcindex: number;
  wanip: string;
  cluster: number;
  listen: string;
  token: string | undefined;
  /** Logical-address type; -1 (the default): this service name's number in config/types, assigned on first use. */
  svctype: number;
  /** host:port of the admin HTTP port; '' or undefined = none. */
  admin?: string;
  /** This instance's version (default 1): a live higher version of the same service and group retires it. */
  svcversion?: number;
  /** Seconds a retiring node waits for its clients before kicking them to reconnect (default 600). */
  'drain-max'?: number;
  /** Seconds a graceful stop waits for work in flight (default 8; shutdownTimeoutMs overrides it). */
  'stop-timeout'?: number;
  /** Pub/sub backend for createHub: '' or undefined = the hub service; nats://... = NATS, with its credentials. */
  hub?: string;
  hubtoken?: string;
  hubuser?: string;
  hubpass?: string;
  /** Visible to other clusters (docs/clusters.md). */
  export?: boolean;
  /** Memory limit in bytes (placement by memory); 0 or undefined: the cgroup's, else the machine's RAM. */
  memlimit?: number;
  /** Fraction of the limit above which the node takes no new clients or rooms. Default 0.9. */
  memthreshold?: number;
}

/** How a ServiceNode joins the mesh: its name, config, dependencies and limits. */
export interface ServiceNodeOptions {
  /** Service name, e.g. "game". */
  name: string;
  /** A fixed type number (0..254) when config.svctype is not given; without either, it comes from config/types. */
  type?: number;
  config?: Partial<NodeConfig>;
  /** Use this discovery instead of connecting to config.sdaddr (it is not closed on stop). */
  discovery?: Discovery;
  /** Services to watch and connect to automatically. */
  dependencies?: readonly string[];
  /** Group rule per dependency (`dev|test`, `zone*`, `*`); the default is this node's group. */
  linkRules?: Readonly<Record<string, string>>;
  meta?: Readonly<Record<string, string>>;
  defaultStrategy?: Strategy;
  callTimeoutMs?: number;
  shutdownTimeoutMs?: number;
  maxInflight?: number;
  /** Sends and calls queued for a peer that is still connecting. */
  maxPendingPerPeer?: number;
  maxFrame?: number;
  /** How long start() waits for a crashed predecessor's registration of this id or address to expire. Default 30000. */
  claimWaitMs?: number;
  /** See every cluster's registrations, not only this cluster's and the exported ones (a harbor's center side). */
  allClusters?: boolean;
  /** Windows and limits of byte streams (`openStream`, `onStream`). */
  streams?: StreamOptions;
  logger?: Logger;
}

/** Who a call or message goes to: a service by name (with a strategy or key), a node id, or a logical address. */
export type Target = string | { readonly id: string } | { readonly addr: string | number } | { readonly service: string; readonly strategy?: Strategy; readonly key?: string };

/** Per-call options: timeout, cancellation, waiting for an instance. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** When no instance is connected, wait for one until the deadline instead of failing at once. */
  waitForInstance?: boolean;
}

/** What a ServiceNode emits: peers up, linked, down and gone; ready; stopping; a registration conflict. */
export interface ServiceNodeEvents {
  peerUp: [peer: PeerInfo];
  /** A new link to the peer carries what is sent to it from now on: after a connect, and again when a duplicate link replaces the first. */
  linkUp: [peer: PeerInfo];
  peerDown: [peer: PeerInfo, reason: string];
  /** A watched peer left discovery and its link is down: it is gone for good. */
  peerGone: [peer: PeerInfo];
  ready: [];
  stopping: [];
  /** Another process took this node's id or address while it was cut off; without a listener: stop, exit 1. */
  conflict: [err: RegistrationConflict];
  /** It takes no new work from now on (a newer version is live, or it was drained); what it has, it keeps serving. */
  retiring: [reason: string];
  /** --drain-max passed while retiring: kick what is left with KickCode.RECONNECT now; the node exits right after. */
  drainTimeout: [];
  /** Retiring is over (nothing holds it, or drain-max): the process exits with code 0 next. */
  retired: [];
}

const DEFAULT_CONFIG: NodeConfig = { sdaddr: '127.0.0.1:8900', svcgroup: 'dev', svcindex: 0, wanip: '', cluster: 1, listen: '127.0.0.1:0', token: undefined, svctype: -1 };

/**
 * A process in the mesh: it listens on its own port, registers in discovery,
 * connects to the services it depends on, and talks to peers with one-way
 * messages and RPC. `stop()` drains it gracefully.
 */
export class ServiceNode extends EventEmitter<ServiceNodeEvents> {
  /** The first node started in this process: the default for generated stubs. */
  static current: ServiceNode | undefined;
  readonly name: string;
  readonly id: string;
  readonly config: NodeConfig;
  readonly log: Logger;
  private readonly opts: ServiceNodeOptions;
  private readonly rpc: RpcEngine;
  private readonly selector = new Selector();
  private readonly peers: Peers;
  private readonly streams: StreamHub;
  private readonly instanceWaiters = new Map<string, Array<() => void>>();
  private readonly watches: Array<{ stop(): void }> = [];
  /** addr is settled in start(), once the type is known. */
  private readonly identity: Omit<LinkIdentity, 'addr'> & { addr: number };
  private readonly fixedType: number | undefined;
  private disco: Discovery | undefined;
  private directory: Directory | undefined;
  private readonly dependencies: Set<string>;
  private extraMeta: Record<string, string> = {};
  private readonly drainHooks: Array<(timeoutMs: number) => Promise<void>> = [];
  private listener: TcpListener | undefined;
  private load = 0;
  private loadTimer: NodeJS.Timeout | undefined;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private isReady = false;
  private stopPromise: Promise<void> | undefined;
  private adminServer: AdminServer | undefined;
  private readonly statusSources: Array<() => Record<string, unknown>> = [];
  private readonly startedAt = Date.now();
  private readonly retirement: Retirement;
  private readonly holds: Array<() => number> = [];
  private readonly routes: RouteTable;
  private routedHandler: ((link: Link, msgId: number, body: Buffer) => void) | undefined;
  /** This process's memory against its limit, reported in the registration (placement by memory). */
  readonly memory: MemoryMonitor;

  constructor(options: ServiceNodeOptions) {
    super();
    this.opts = options;
    this.config = { ...DEFAULT_CONFIG, ...definedOnly(options.config ?? {}) };
    this.name = options.name;
    this.id = serviceId(options.name, this.config.svcindex, this.config.svcgroup);
    this.fixedType = this.config.svctype >= 0 ? this.config.svctype : options.type;
    this.log = options.logger ?? createLogger(`service.${options.name}`);
    this.dependencies = new Set(options.dependencies ?? []);
    this.memory = new MemoryMonitor(this.config.memlimit, this.config.memthreshold);
    this.rpc = new RpcEngine({ maxInflight: options.maxInflight ?? 10_000, logger: this.log, selfId: this.id });
    this.streams = new StreamHub({ ...options.streams, selfId: this.id, log: this.log, active: () => this.state !== 'stopping' && this.state !== 'stopped', defaultTimeoutMs: options.callTimeoutMs ?? 5000 });
    const addr = packAddr({ cluster: this.config.cluster, type: this.fixedType ?? 0, index: this.config.svcindex });
    this.identity = { id: this.id, name: this.name, addr, secret: this.config.token || undefined, load: () => this.load };
    this.peers = new Peers({
      id: this.id,
      identity: this.identity,
      log: this.log,
      rpc: this.rpc,
      streams: this.streams,
      maxFrame: options.maxFrame ?? 4 * 1024 * 1024,
      active: () => this.state !== 'stopping' && this.state !== 'stopped',
      available: (id) => this.directory?.available(id) ?? true,
      stopped: () => this.state === 'stopped',
      peerUp: (peer, replaced) => {
        this.emit('linkUp', peer);
        if (!replaced) this.emit('peerUp', peer);
        this.checkReady();
        for (const w of this.instanceWaiters.get(peer.name)?.splice(0) ?? []) w();
      },
      peerDown: (peer, reason) => this.emit('peerDown', peer, reason),
      peerGone: (peer) => this.emit('peerGone', peer),
      // A node of another cluster that dialed in (this node is exported) is not picked unless it is exported too.
      selectable: (peer) => this.opts.allClusters === true || peer.addr === 0 || unpackAddr(peer.addr).cluster === this.config.cluster || peer.desc?.meta[EXPORT_META] === '1',
      routed: (link, msgId, body) => {
        if (this.routedHandler) return this.routedHandler(link, msgId, body);
        // Only a harbor of this cluster routes to this node.
        const from = unpackAddr(link.peerAddr);
        if (from.type === HARBOR_TYPE && from.cluster === this.config.cluster) this.routes.onFrame(link, msgId, body);
      },
    });
    this.retirement = new Retirement({
      id: this.id,
      name: this.name,
      scope: () => versionScope({ id: this.id, name: this.name, meta: { group: this.config.svcgroup, addr: this.logicalAddress } }),
      version: this.config.svcversion ?? 1,
      drainMaxMs: (this.config['drain-max'] ?? 600) * 1000,
      log: this.log,
      discovery: () => this.discovery,
      available: (id) => this.directory?.available(id) ?? true,
      setMeta: (meta) => this.setMeta(meta),
      busy: () => this.rpc.inflight + this.holds.reduce((n, fn) => n + fn(), 0),
      announceDraining: () => {
        for (const p of this.peers.all()) p.link?.session.send(L.Draining.id, 0, L.Draining.encode({}));
      },
      retiring: (reason) => this.emit('retiring', reason),
      drainTimeout: () => this.emit('drainTimeout'),
      retired: () => this.emit('retired'),
      stop: () => this.stop(),
    });
    this.routes = new RouteTable({
      addr: () => this.identity.addr,
      harbors: () => this.peers.instances('harbor').filter((p) => unpackAddr(p.addr).cluster === this.config.cluster),
      dispatch: (link, peer, msgId, seq, body) => this.rpc.dispatch(link, peer, msgId, seq, body),
      closed: (link, reason) => this.rpc.linkClosed(link, reason),
      busy: (link) => this.rpc.busyOn(link),
    });
  }

  /** Whether this node may discover, dial and select a registration: its own cluster's, or an exported one (cluster-scope.ts). */
  canSee(desc: ServiceDesc): boolean {
    return this.opts.allClusters === true || visibleInCluster(this.config.cluster, desc);
  }

  get address(): { host: string; port: number } {
    if (!this.listener) throw new ServiceError('the node is not started');
    return { host: this.listener.host, port: this.listener.port };
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** The logical address, packed; its type is known once start() has resolved it. */
  get addr(): number {
    return this.identity.addr;
  }

  get logicalAddress(): string {
    return formatAddr(this.addr);
  }

  // ---- registration of handlers and middleware ---------------------------

  /** Serve an RPC: requests of type `req` are answered with `res`. */
  handle<Req, Res>(req: MessageType<Req>, res: MessageType<Res>, fn: RpcHandler<Req, Res>): this {
    this.rpc.handleRpc(req, res, fn);
    return this;
  }

  /** Handle a one-way message. */
  onMessage<T>(type: MessageType<T>, fn: MessageHandler<T>): this {
    this.rpc.handleMessage(type, fn);
    return this;
  }

  /** Accept byte streams that peers open with `openStream` (one handler per node). */
  onStream(handler: StreamHandler): this {
    this.streams.onStream(handler);
    return this;
  }

  use(interceptors: { client?: ClientInterceptor; server?: ServerInterceptor }): this {
    if (interceptors.client) this.rpc.clientInterceptors.push(interceptors.client);
    if (interceptors.server) this.rpc.serverInterceptors.push(interceptors.server);
    return this;
  }

  // ---- lifecycle ----------------------------------------------------------

  async start(): Promise<this> {
    if (this.state !== 'new') throw new ServiceError(`cannot start a node that is ${this.state}`);
    this.state = 'starting';
    try {
      await this.open();
    } catch (err) {
      // Release what was opened, or the port keeps the process alive after a failed start.
      for (const w of this.watches.splice(0)) w.stop();
      this.directory?.close();
      await this.listener?.close();
      await this.adminServer?.close();
      if (!this.opts.discovery) await this.disco?.close().catch(() => {});
      this.state = 'stopped';
      throw err;
    }
    this.state = 'running';
    ServiceNode.current ??= this;
    this.log.info({ id: this.id, addr: this.logicalAddress, port: this.address.port }, 'service started');
    this.checkReady();
    return this;
  }

  private async open(): Promise<void> {
    const { host, port } = parseHostPort(this.config.listen);
    this.disco = this.opts.discovery ?? (await connectDiscovery(this.config.sdaddr, { token: this.config.token, name: this.id, connectTimeoutMs: 10_000 }));
    // The type first: links announce the logical address from their first frame.
    const type = await resolveServiceType(this.disco, this.name, this.fixedType);
    this.identity.addr = packAddr({ cluster: this.config.cluster, type, index: this.config.svcindex });
    this.directory = new Directory(
      this.disco,
      (id) => {
        this.peers.stateChanged(id);
        if (id === this.id && this.directory) this.retirement.ownState(this.directory.state(id).drain);
      },
      (d) => this.canSee(d),
    );
    const exports = this.opts.allClusters ? undefined : new ExportsView(this.config.cluster);
    await Promise.all([this.directory.open(), exports?.open(this.disco)]);
    this.directory.exports = exports;
    // A drain asked of an earlier run of this id is not a request to this one.
    if (this.directory.state(this.id).drain) await updateNodeState(this.disco, this.id, { drain: false });
    this.listener = await listenTcp({ host, port, maxFrame: this.opts.maxFrame ?? 4 * 1024 * 1024, idleTimeoutMs: 15_000, heartbeatMs: 5000 }, (session) => {
      acceptLink(session, this.identity, 5000).then(
        (link) => {
          // The partition holds both ways: only an exported node takes links from other clusters.
          const from = link.peerAddr === 0 ? this.config.cluster : unpackAddr(link.peerAddr).cluster;
          if (from !== this.config.cluster && !this.config.export && !this.opts.allClusters) {
            this.peers.refused++;
            session.send(L.RpcError.id, 0, L.RpcError.encode({ code: 'unreachable', message: `${this.logicalAddress} is not exported: reach it from cluster ${from} through harbors` }));
            return session.close(`a link from cluster ${from} to a node that is not exported`);
          }
          this.peers.addLink(link);
        },
        (err: Error) => {
          this.peers.refused++;
          this.log.warn({ remote: session.remoteAddress, err: err.message }, 'refused a link');
        },
      );
    });
    if (this.config.admin) {
      this.adminServer = await startNodeAdmin(this);
      addRolloutRoutes(this.adminServer, this, this.log);
    }
    // Links to this cluster's harbors carry what is sent to other clusters; they do not gate readiness.
    // (Watched first: dependencies' links then come up no earlier in start() than before harbors existed.)
    if (this.name !== 'harbor' && !this.dependencies.has('harbor')) await this.watchDependency('harbor', '*');
    for (const dep of this.dependencies) await this.watchDependency(dep);
    this.directory.onConflict(this.id, (err) => this.onConflict(err));
    this.extraMeta = { ...this.extraMeta, ...this.memory.meta() };
    await registerWhenFree(this.disco, this.descriptor(), this.log, this.opts.claimWaitMs ?? 30_000);
    await this.retirement.open();
    this.memory.start((meta) => this.setMeta(meta));
  }

  private onConflict(err: RegistrationConflict): void {
    if (this.stopping) return;
    this.log.fatal({ err: err.message }, 'another process took this node\'s registration');
    if (this.listenerCount('conflict') > 0) return void this.emit('conflict', err);
    void this.stop().finally(() => process.exit(1));
  }

  /** Logical addresses (`cluster.type.index`) of the live, available nodes of a type (clustergo's GetAddrByType). */
  addrsByType(type: number): Promise<string[]> {
    return this.cluster.addrsByType(type);
  }

  /** One of addrsByType(type): at random, or the same one for the same key; undefined when there is none. */
  pickAddr(type: number, key?: string): Promise<string | undefined> {
    return this.cluster.pickAddr(type, key);
  }

  /** A node's operator-set state (`gamemesh sd disable/enable`), by service id. */
  nodeState(id: string): NodeState {
    return this.cluster.state(id);
  }

  private get cluster(): Directory {
    return this.directory ?? notStarted();
  }

  private async watchDependency(dep: string, rule?: string): Promise<void> {
    const matches = groupMatcher(this.opts.linkRules?.[dep] ?? rule ?? this.config.svcgroup);
    const onEvent = (ev: ServiceEvent) => {
      if (ev.type === 'remove' || this.canSee(ev.desc)) this.peers.onServiceEvent(ev, matches);
    };
    const watch = await this.discovery.watchServices(dep, { onEvent });
    this.watches.push(watch);
    for (const desc of watch.list()) onEvent({ type: 'add', desc });
    // Other clusters' exported instances, as their harbors copied them here.
    const exports = this.directory?.exports;
    if (!exports || dep === 'harbor') return;
    const unsubscribe = exports.onEvent((ev) => ev.desc.name === dep && onEvent(ev));
    this.watches.push({ stop: unsubscribe });
    for (const desc of exports.list(dep)) onEvent({ type: 'add', desc });
  }

  /**
   * Adds a service to watch and connect to, before or after start (the
   * gateway adds the services its route table names).
   */
  addDependency(name: string): void {
    if (this.dependencies.has(name)) return;
    this.dependencies.add(name);
    if (this.state === 'running') {
      this.watchDependency(name).catch((err: Error) => this.log.error({ dependency: name, err: err.message }, 'cannot watch a dependency'));
    }
  }

  /**
   * Adds work that a graceful stop waits for, after RPCs have drained and
   * within the same timeout (resolve by then, or be abandoned).
   */
  onDrain(hook: (timeoutMs: number) => Promise<void>): void {
    this.drainHooks.push(hook);
  }

  /** True from the start of a stop: new work should be refused. */
  get stopping(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
  }

  /** Merges registration meta (e.g. an online count) and registers again if running. */
  setMeta(meta: Readonly<Record<string, string>>): void {
    this.extraMeta = { ...this.extraMeta, ...meta };
    if (this.state !== 'running') return;
    this.disco?.register(this.descriptor()).catch((err: Error) => this.log.warn({ err: err.message }, 'updating the registration failed'));
  }

  /** The discovery backend this node uses. */
  get discovery(): Discovery {
    if (!this.disco) throw new ServiceError('the node is not started');
    return this.disco;
  }

  private descriptor(): ServiceDesc {
    const listener = this.listener as TcpListener;
    return {
      name: this.name,
      id: this.id,
      host: listener.host,
      port: listener.port,
      meta: {
        // Before the service's own meta, which may override them (setMeta).
        [VERSION_META]: String(this.config.svcversion ?? 1),
        [READY_META]: this.isReady ? '1' : '0',
        ...(this.retirement.retiring ? { [STATE_META]: RETIRING } : {}),
        ...this.opts.meta,
        ...this.extraMeta,
        addr: this.logicalAddress,
        group: this.config.svcgroup,
        index: String(this.config.svcindex),
        ...(this.config.wanip ? { wan: this.config.wanip } : {}),
        ...(this.adminServer ? { admin: this.adminServer.address } : {}),
        ...(this.config.export ? { [EXPORT_META]: '1' } : {}),
      },
    };
  }

  /** The admin HTTP server (`--admin`), once started: add routes to it. */
  get admin(): AdminServer | undefined {
    return this.adminServer;
  }

  /**
   * Starts retiring now (as a newer version's arrival would): no new work,
   * exit once nothing holds the node. False if it was retiring already.
   */
  retire(reason = 'asked to retire'): boolean {
    if (this.state !== 'running') return false;
    return this.retirement.start(reason);
  }

  get retiring(): boolean {
    return this.retirement.retiring;
  }

  /** Something that keeps a retiring node alive while it counts above 0 (the agent's clients, a backend's bound clients, rooms). */
  addHold(count: () => number): void {
    this.holds.push(count);
  }

  /** Adds fields to GET /status on the admin port (e.g. the agent's client counts). */
  addStatus(fn: () => Record<string, unknown>): void {
    this.statusSources.push(fn);
  }

  /** What GET /status on the admin port answers. */
  status(): NodeStatus {
    const links = [];
    for (const p of this.peers.all()) {
      if (p.connected) links.push({ id: p.id, name: p.name, addr: formatAddr(p.addr), load: p.load, draining: p.draining, dialed: p.link?.dialedByMe ?? false });
    }
    const extra: Record<string, unknown> = {};
    for (const fn of this.statusSources) Object.assign(extra, fn());
    return {
      ...extra,
      id: this.id,
      name: this.name,
      addr: this.logicalAddress,
      address: this.listener ? `${this.listener.host}:${this.listener.port}` : '',
      group: this.config.svcgroup,
      version: this.config.svcversion ?? 1,
      state: this.state === 'running' && this.retirement.retiring ? 'retiring' : this.state,
      retiring: this.retirement.status(),
      holding: this.holds.reduce((n, fn) => n + fn(), 0),
      ready: this.isReady,
      load: this.load,
      links,
      memory: memoryStatus(),
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      pid: process.pid,
    };
  }

  /** Resolves when every dependency has at least one connected instance. */
  whenReady(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.once('ready', resolve));
  }

  /**
   * Graceful stop: deregister, refuse new calls with "unavailable", let
   * in-flight calls finish (up to shutdownTimeoutMs), then close.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'new' || this.state === 'stopped') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    this.retirement.close();
    this.emit('stopping');
    this.log.info('stopping');
    try {
      // Without a discovery link the registration expires with the session;
      // waiting out a request timeout would only delay the shutdown.
      if (this.disco?.connected) await withTimeout(this.disco.deregister(this.name, this.id), 2000, 'deregister timed out');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'deregister failed; the registration expires with the session');
    }
    for (const p of this.peers.all()) p.link?.session.send(L.Draining.id, 0, L.Draining.encode({}));
    const timeoutMs = this.opts.shutdownTimeoutMs ?? (this.config['stop-timeout'] ?? 8) * 1000;
    const deadline = Date.now() + timeoutMs;
    const drained = await this.rpc.drain(timeoutMs);
    if (!drained) this.log.warn({ inflight: this.rpc.inflight }, 'shutdown timeout: abandoning calls still in flight');
    // Work that is not an RPC (client requests through a gateway) finishes in the same window.
    await Promise.all(this.drainHooks.map((hook) => hook(Math.max(0, deadline - Date.now())).catch((err: Error) => this.log.warn({ err: err.message }, 'a drain hook failed'))));
    if (this.loadTimer) clearTimeout(this.loadTimer);
    this.memory.stop();
    for (const w of this.watches) w.stop();
    this.directory?.close();
    this.peers.closeAll('service stopped');
    this.routes.closeAll('service stopped');
    this.rpc.close();
    await this.listener?.close();
    if (!this.opts.discovery) await this.disco?.close();
    await this.adminServer?.close();
    this.state = 'stopped';
    if (ServiceNode.current === this) ServiceNode.current = undefined;
    this.log.info('stopped');
  }

  /** Stops on SIGTERM or SIGINT, then exits the process. */
  stopOnSignals(exit: (code: number) => void = (code) => process.exit(code)): void {
    const onSignal = (signal: string) => {
      this.log.info({ signal }, 'signal received');
      this.stop().then(
        () => exit(0),
        (err: Error) => {
          this.log.error({ err }, 'stop failed');
          exit(1);
        },
      );
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  }

  // ---- load ---------------------------------------------------------------

  /** This instance's load figure for least-loaded selection; sent to peers when it changes. */
  setLoad(load: number): void {
    if (load === this.load) return;
    this.load = load;
    this.loadTimer ??= setTimeout(() => {
      this.loadTimer = undefined;
      const body = L.LoadReport.encode({ load: this.load });
      for (const p of this.peers.all()) p.link?.session.send(L.LoadReport.id, 0, body);
    }, 50);
  }

  private checkReady(): void {
    if (this.isReady || this.state !== 'running') return;
    const deps = [...this.dependencies];
    if (deps.every((d) => this.peers.instances(d).length > 0)) {
      this.isReady = true;
      this.setMeta({ [READY_META]: '1' });
      this.log.info('ready');
      this.emit('ready');
    }
  }

  /** Connected, non-draining instances of a service, sorted by id. */
  instances(name: string): ReadonlyArray<PeerInfo & { readonly load: number }> {
    return this.peers.instances(name);
  }

  isConnected(id: string): boolean {
    return this.peers.get(id)?.connected ?? false;
  }

  /**
   * Hot-path one-way send to a linked peer; false (nothing queued) if it is
   * not linked. With `trace`, the span in that context travels with the message.
   */
  sendToPeer<T>(id: string, type: MessageType<T>, msg: Init<T>, trace?: Context): boolean {
    const link = this.peers.get(id)?.link;
    if (link === undefined) return false;
    if (trace !== undefined) sendTraceContext(link.session, trace);
    return this.rpc.sendMessage(link, type, msg);
  }

  // ---- sending ------------------------------------------------------------

  /** One-way message. Resolves once it is handed to the link (queued if the peer is connecting). */
  async send<T>(target: Target, type: MessageType<T>, msg: Init<T>, options: CallOptions = {}): Promise<void> {
    const link = await this.resolve(target, options);
    if (tracingOn()) sendTraceContext(link.session, context.active());
    if (!this.rpc.sendMessage(link, type, msg)) throw new RpcError('unavailable', `link to ${link.peerId} is closed`);
  }

  /**
   * Opens a byte stream (a Node Duplex) to a target, over the link the node
   * already has with it. Returned at once; it emits `open` when accepted, and
   * is destroyed with an RpcError if the target cannot be reached or refuses.
   */
  openStream(target: Target, options: OpenStreamOptions = {}): MeshStream {
    return this.streams.open(async (timeoutMs) => {
      const link = await this.resolve(target, { ...options, timeoutMs });
      if (this.routes.peerOf(link)) throw new RpcError('bad_request', 'byte streams do not cross harbors: open them within a cluster, or to an exported node');
      return link;
    }, options);
  }

  /** Request/response call. Fails with an RpcError carrying a typed code. */
  call<Req, Res>(target: Target, req: MessageType<Req>, res: MessageType<Res>, request: Init<Req>, options: CallOptions = {}): Promise<Res> {
    const timeoutMs = options.timeoutMs ?? this.opts.callTimeoutMs ?? 5000;
    // Hot path: a service name with a connected instance needs no awaiting
    // before the send (about a fifth of a call's CPU on the caller).
    const strategy = this.opts.defaultStrategy ?? 'round-robin';
    // (hash needs a key, and must fail as a rejection, so it takes the slow path.)
    if (typeof target === 'string' && this.state === 'running' && strategy !== 'hash') {
      const peer = this.selector.pick(target, this.peers.instances(target), strategy);
      if (peer?.link) return this.rpc.call(peer.link, peer, req, res, request, timeoutMs, options.signal);
    }
    return this.callResolved(target, req, res, request, options, timeoutMs);
  }

  private async callResolved<Req, Res>(target: Target, req: MessageType<Req>, res: MessageType<Res>, request: Init<Req>, options: CallOptions, timeoutMs: number): Promise<Res> {
    const deadline = Date.now() + timeoutMs;
    const link = await this.resolve(target, { ...options, timeoutMs });
    const peer = this.routes.peerOf(link) ?? (this.peers.ofLink(link) as Peer);
    return this.rpc.call(link, peer, req, res, request, Math.max(1, deadline - Date.now()), options.signal);
  }

  private async resolve(target: Target, options: CallOptions): Promise<Link> {
    // A starting node may already call the dependencies it is connected to (a hub subscription on peerUp, say).
    if (this.state !== 'running' && this.state !== 'starting') throw new RpcError('unavailable', `the node is ${this.state}`);
    const timeoutMs = options.timeoutMs ?? this.opts.callTimeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    if (typeof target === 'string') return this.pickLink(target, this.opts.defaultStrategy ?? 'round-robin', undefined, options, deadline);
    if ('service' in target) return this.pickLink(target.service, target.strategy ?? this.opts.defaultStrategy ?? 'round-robin', target.key, options, deadline);
    if ('id' in target) {
      const peer = this.peers.get(target.id);
      if (!peer) throw new RpcError('unavailable', `service ${target.id} is not known here (not a dependency and never connected)`);
      return this.linkOf(peer, deadline);
    }
    const addr = typeof target.addr === 'number' ? target.addr : parseAddr(target.addr);
    const known = this.peers.byAddress(addr);
    if (known) return this.linkOf(known, deadline);
    // Another cluster's address goes through a harbor, unless it is exported here.
    if (unpackAddr(addr).cluster !== this.config.cluster && !this.opts.allClusters) {
      if (this.routes.knows(addr)) return this.routes.linkTo(addr);
      const found = await this.cluster.find(addr);
      if (!found) return this.routes.linkTo(addr);
    }
    return this.linkOf(await this.lookupAddr(addr), deadline);
  }

  // ---- for harbors (src/harbor) ---------------------------------------------

  /** Takes every HarborRoute and HarborDown frame this node receives, instead of routing them to its own calls. */
  onRouted(handler: (link: Link, msgId: number, body: Buffer) => void): void {
    this.routedHandler = handler;
  }

  /** The live link to a logical address, if there is one now. */
  linkByAddr(addr: number): Link | undefined {
    const link = this.peers.byAddress(addr)?.link;
    return link && !link.session.closed ? link : undefined;
  }

  /** The link to a logical address of this node's view, connecting (bounded) if needed. */
  linkTo(addr: number, timeoutMs: number): Promise<Link> {
    return this.resolve({ addr }, { timeoutMs });
  }

  /** Every live link, to a peer of any kind. */
  *links(): IterableIterator<Link> {
    for (const p of this.peers.all()) if (p.link && !p.link.session.closed) yield p.link;
  }

  private async pickLink(name: string, strategy: Strategy, key: string | undefined, options: CallOptions, deadline: number): Promise<Link> {
    for (;;) {
      const peer = this.selector.pick(name, this.peers.instances(name), strategy, key);
      if (peer?.link) return peer.link;
      if (!options.waitForInstance) throw new RpcError('unavailable', `no instance of service "${name}" is connected`);
      await this.waitForInstance(name, deadline);
    }
  }

  private waitForInstance(name: string, deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const list = this.instanceWaiters.get(name) ?? [];
        const i = list.indexOf(done);
        if (i >= 0) list.splice(i, 1);
        reject(new RpcError('timeout', `no instance of service "${name}" appeared before the deadline`));
      }, Math.max(0, deadline - Date.now()));
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const list = this.instanceWaiters.get(name) ?? [];
      list.push(done);
      this.instanceWaiters.set(name, list);
    });
  }

  /** The peer's link, waiting (bounded) while it connects. */
  private linkOf(peer: Peer, deadline: number): Promise<Link> {
    if (peer.link && !peer.link.session.closed) return Promise.resolve(peer.link);
    if (!peer.desc) return Promise.reject(new RpcError('unavailable', `service ${peer.id} is not reachable`));
    const max = this.opts.maxPendingPerPeer ?? 1024;
    if (peer.waiters.length >= max) return Promise.reject(new RpcError('busy', `${max} sends are already waiting for ${peer.id} to connect`));
    return new Promise<Link>((resolve, reject) => {
      peer.waiters.push({ resolve, reject, deadline });
      const timer = setTimeout(() => peer.failWaiters(new RpcError('timeout', `could not connect to ${peer.id} before the deadline`), Date.now()), Math.max(0, deadline - Date.now()) + 1);
      timer.unref();
      this.peers.dial(peer);
    });
  }

  /** Lazy connect (clustergo): find the instance that owns a logical address. */
  private async lookupAddr(addr: number): Promise<Peer> {
    const found = await this.cluster.lookup(addr);
    const peer = this.peers.peerFor(found.id, found.name, addr);
    peer.desc ??= found;
    return peer;
  }
}

function notStarted(): never {
  throw new ServiceError('the node is not started');
}



function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
