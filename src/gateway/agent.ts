import type { IncomingMessage } from 'node:http';
import type { Logger } from '../log/index.js';
import { logMessage, messageLogOn } from '../log/msglog.js';
import { listenKcp, type KcpListener } from '../net/kcp/listener.js';
import type { Session } from '../net/session.js';
import { SharedFrame } from '../net/shared-frame.js';
import { listenTcp, type TcpListener } from '../net/tcp.js';
import { listenWs, type WsListener } from '../net/ws.js';
import { CloudConfig } from '../service/cloud-config.js';
import { ServiceNode, type ServiceNodeOptions } from '../service/node.js';
import type { PeerInfo } from '../service/rpc.js';
import { Selector, type Strategy } from '../service/select.js';
import { AgentGroups } from './agent-groups.js';
import { isRoomMessage, roomTarget } from './agent-rooms.js';
import { ClientConn } from './client-conn.js';
import { identityConflict } from './identity.js';
import { KickCode } from './kick.js';
import { C, CLIENT_PROTOCOL, G, type BindReq, type BindResp, type KickClients, type ToClients, type UnbindClients } from './messages.js';
import { PomeloPorts } from './pomelo/ports.js';
import { restoreBatches } from './restore.js';
import { HEARTBEAT_KEY, ROUTES_KEY, RouteTable } from './routes.js';
import { tracingOn } from '../observe/tracing.js';
import { RequestSpans } from './agent-trace.js';
import { agents, countClose, countKick } from './metrics.js';

/** What an agent does with clients bound to a backend that left for good: keep them, unbind them, or disconnect them. */
export type BackendGonePolicy = 'keep' | 'unbind' | 'disconnect';

/** How an Agent listens for clients, limits them and routes their messages. */
export interface AgentOptions {
  /** Options of the agent's own service node (config, discovery, logger...). */
  node?: Omit<ServiceNodeOptions, 'name' | 'meta'> & { name?: string };
  /** Interface the client ports bind to. */
  host?: string;
  /** 0 lets the OS pick; null turns the transport off. */
  tcpPort?: number | null;
  wsPort?: number | null;
  /** KCP over UDP: off unless given; 0 lets the OS pick. */
  kcpPort?: number | null;
  wsPath?: string;
  /** The pomelo protocol (docs/pomelo.md), off unless set: 0 lets the OS pick. */
  pomeloWsPort?: number | null;
  pomeloTcpPort?: number | null;
  /** Offer pomelo-protobuf protos to pomelo clients in the handshake. */
  pomeloProtobuf?: boolean;
  maxFrame?: number;
  maxMsgsPerSec?: number;
  maxOutbound?: number;
  maxClients?: number;
  /** Used until (and unless) config/agent/heartbeat_sec says otherwise. */
  heartbeatSec?: number;
  handshakeTimeoutMs?: number;
  /** What to do with a message id that no route names. */
  unknownMessage?: 'kick' | 'drop';
  /** What to do with clients bound to a backend that left discovery for good. */
  backendGone?: BackendGonePolicy;
  /** How "pass" messages pick an instance (then stick to it per client). */
  strategy?: Strategy;
  /** Clients this agent accepts before login stops sending it players. */
  capacity?: number;
  /** A fixed table instead of the one in the KV (tests, single-binary setups). */
  routes?: RouteTable;
}

/** An agent's counters: clients online; messages forwarded, blocked, unknown, unauthenticated, rate-limited, undeliverable. */
export interface AgentStats {
  online: number;
  forwarded: number;
  blocked: number;
  unknown: number;
  unauthenticated: number;
  rateLimited: number;
  undeliverable: number;
}

/**
 * The gateway: the only process clients touch. It holds their TCP,
 * WebSocket and KCP connections, routes their messages to backends by the route
 * table, keeps their bindings and session data, and relays backend replies,
 * pushes and broadcasts back.
 */
export class Agent {
  readonly node: ServiceNode;
  readonly log: Logger;
  readonly stats: AgentStats = { online: 0, forwarded: 0, blocked: 0, unknown: 0, unauthenticated: 0, rateLimited: 0, undeliverable: 0 };
  private readonly opts: AgentOptions;
  private readonly clients = new Map<number, ClientConn>();
  private readonly boundTo = new Map<string, Set<ClientConn>>();
  private readonly groups = new AgentGroups((id) => this.clients.get(id));
  private readonly selector = new Selector();
  private routes: RouteTable;
  private heartbeatSec: number;
  private nextClientId = 1;
  private tcp: TcpListener | undefined;
  private ws: WsListener | undefined;
  private pomelo: PomeloPorts | undefined;
  private kcp: KcpListener | undefined;
  private cloud: CloudConfig | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private reportedOnline = -1;
  private stopping = false;
  private stopPromise: Promise<void> | undefined;
  private readonly spans = new RequestSpans();

  constructor(options: AgentOptions = {}) {
    this.opts = options;
    this.routes = options.routes ?? new RouteTable();
    this.heartbeatSec = options.heartbeatSec ?? 20;
    this.node = new ServiceNode({ ...options.node, name: options.node?.name ?? 'agent' });
    this.log = this.node.log;
    this.node.onMessage(G.ToClients, (msg) => this.onToClients(msg));
    this.node.onMessage(G.KickClients, (msg) => this.onKickClients(msg));
    this.node.onMessage(G.UnbindClients, (msg, ctx) => this.onUnbindClients(msg, ctx.peer));
    this.node.onMessage(G.GroupAdd, (msg, ctx) => this.groups.add(ctx.peer.id, msg));
    this.node.onMessage(G.GroupRemove, (msg, ctx) => this.groups.remove(ctx.peer.id, msg));
    this.node.onMessage(G.GroupSend, (msg, ctx) => void this.groups.send(ctx.peer.id, msg));
    this.node.handle(G.BindReq, G.BindResp, (req, ctx) => this.onBind(req, ctx.peer));
    this.node.on('linkUp', (peer) => this.restoreClients(peer));
    this.node.on('peerUp', (peer) => this.onBackendStatus(peer, true));
    this.node.on('peerDown', (peer) => this.onBackendStatus(peer, false));
    this.node.on('peerGone', (peer) => this.onBackendGone(peer));
    this.node.addStatus(() => ({ clients: Object.fromEntries(this.onlineByTransport()), online: this.clients.size }));
    // Retiring (a newer agent is live, or a drain): login sends no one here, new connections are refused, the players here play on.
    this.node.addHold(() => this.clients.size);
    this.node.on('retiring', () => this.log.info({ online: this.clients.size }, 'agent retiring: refusing new clients; exiting when the last one leaves'));
    this.node.on('drainTimeout', () => {
      for (const c of [...this.clients.values()]) c.kick(KickCode.RECONNECT, 'this gateway is retiring: reconnect through login');
    });
    agents.add(this);
  }

  /** Open client connections by transport (tcp, ws, kcp). */
  onlineByTransport(): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of this.clients.values()) out.set(c.conn.transport, (out.get(c.conn.transport) ?? 0) + 1);
    return out;
  }

  get tcpAddress(): string | undefined {
    return this.tcp ? `${this.tcp.host}:${this.tcp.port}` : undefined;
  }

  get wsUrl(): string | undefined {
    return this.ws ? `ws://${this.ws.host}:${this.ws.port}${this.opts.wsPath ?? '/'}` : undefined;
  }

  get pomeloWsUrl(): string | undefined {
    return this.pomelo?.wsAddress;
  }

  get pomeloTcpAddress(): string | undefined {
    return this.pomelo?.tcpAddress;
  }

  get kcpAddress(): string | undefined {
    return this.kcp ? `${this.kcp.host}:${this.kcp.port}` : undefined;
  }

  /** The KCP listener's counters (dropped datagrams by cause), when KCP is on. */
  get kcpStats(): KcpListener['stats'] | undefined {
    return this.kcp?.stats;
  }

  get online(): number {
    return this.clients.size;
  }

  get routeTable(): RouteTable {
    return this.routes;
  }

  async start(): Promise<this> {
    const host = this.opts.host ?? '127.0.0.1';
    const sessionOpts = {
      maxFrame: this.opts.maxFrame ?? 64 * 1024,
      maxOutbound: this.opts.maxOutbound ?? 1024 * 1024,
      idleTimeoutMs: this.opts.handshakeTimeoutMs ?? 10_000,
      heartbeatMs: 0,
    };
    if (this.opts.tcpPort !== null) this.tcp = await listenTcp({ ...sessionOpts, host, port: this.opts.tcpPort ?? 0 }, (s) => this.accept(s));
    if (this.opts.wsPort !== null) {
      // The handshake deadline runs from the TCP accept: an upgrade that never completes is closed by it too.
      const ws = { ...sessionOpts, host, port: this.opts.wsPort ?? 0, path: this.opts.wsPath, upgradeTimeoutMs: sessionOpts.idleTimeoutMs, maxConnections: this.opts.maxClients ?? 100_000 };
      this.ws = await listenWs(ws, (s, req) => this.accept(s, req));
    }
    if (this.opts.kcpPort != null) this.kcp = await listenKcp({ ...sessionOpts, host, port: this.opts.kcpPort }, (s) => this.accept(s));
    try {
      const pomelo = { host, wsPort: this.opts.pomeloWsPort, tcpPort: this.opts.pomeloTcpPort, protobuf: this.opts.pomeloProtobuf, session: sessionOpts };
      this.pomelo = await PomeloPorts.start(pomelo, this.routes, (s, req) => this.accept(s, req));
    } catch (err) {
      await Promise.all([this.tcp?.close(), this.ws?.close(), this.kcp?.close()]);
      throw err;
    }
    const wan = this.node.config.wanip;
    this.node.setMeta({
      ...this.pomelo?.meta(wan),
      ...(this.tcp ? { tcp: `${wan || this.tcp.host}:${this.tcp.port}` } : {}),
      ...(this.ws ? { ws: `ws://${wan || this.ws.host}:${this.ws.port}${this.opts.wsPath ?? '/'}` } : {}),
      ...(this.kcp ? { kcp: `${wan || this.kcp.host}:${this.kcp.port}` } : {}),
      capacity: String(this.opts.capacity ?? 10_000),
      online: '0',
    });
    try {
      await this.node.start();
      if (!this.opts.routes) await this.watchConfig();
      else this.applyRoutes(this.opts.routes);
    } catch (err) {
      // Close the client ports too, or they keep the process alive after a failed start.
      await Promise.all([this.tcp?.close(), this.ws?.close(), this.kcp?.close(), this.pomelo?.close()]);
      await this.node.stop();
      throw err;
    }
    this.reportTimer = setInterval(() => this.reportOnline(), 1000);
    this.reportTimer.unref();
    this.log.info({ tcp: this.tcpAddress, ws: this.wsUrl, kcp: this.kcpAddress, pomeloWs: this.pomeloWsUrl, pomeloTcp: this.pomeloTcpAddress, routes: this.routes.size }, 'agent listening');
    return this;
  }

  private async watchConfig(): Promise<void> {
    this.cloud = await CloudConfig.open(this.node.discovery, { logger: this.log });
    this.cloud.watchInt(HEARTBEAT_KEY, this.heartbeatSec, (sec) => this.setHeartbeat(sec));
    const apply = (text: string | undefined) => {
      if (text === undefined) return;
      try {
        this.applyRoutes(RouteTable.parse(text));
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'ignoring a bad route table; keeping the current one');
      }
    };
    this.cloud.onChange(ROUTES_KEY, apply);
    apply(this.cloud.raw(ROUTES_KEY));
  }

  private applyRoutes(table: RouteTable): void {
    this.routes = table;
    this.pomelo?.setRoutes(table);
    for (const service of table.services()) this.node.addDependency(service);
    this.log.info({ routes: table.size, services: table.services() }, 'route table applied');
  }

  private setHeartbeat(sec: number): void {
    if (!(sec > 0) || sec === this.heartbeatSec) return;
    const old = this.heartbeatSec;
    this.heartbeatSec = sec;
    // Clients that follow the old period are not cut off: each keeps the
    // longer of the two windows, and is told the new period.
    const idle = this.idleMs(Math.max(old, sec));
    const ack = new SharedFrame(C.HandshakeAck.id, 0, C.HandshakeAck.encode({ version: CLIENT_PROTOCOL, heartbeat_sec: sec, session_id: '', server_time_ms: Date.now() }));
    for (const c of this.clients.values()) {
      if (!c.handshaken) continue;
      c.conn.setTimeouts({ idleTimeoutMs: idle });
      c.conn.sendFrame(ack);
    }
    this.log.info({ heartbeatSec: sec }, 'heartbeat period changed');
  }

  private idleMs(sec: number): number {
    return sec * 2000 + 1000;
  }

  // ---- clients ------------------------------------------------------------

  private accept(conn: Session, req?: IncomingMessage): void {
    // Placement by memory: above its threshold the agent takes no new clients (login stops sending them too).
    const memory = this.stopping ? undefined : this.node.memory.refusal(this.node.id);
    if (this.stopping || this.node.retiring || memory !== undefined || this.clients.size >= (this.opts.maxClients ?? 100_000)) {
      countKick(KickCode.SHUTDOWN);
      const reason = this.stopping ? 'the agent is shutting down' : this.node.retiring ? 'the agent is retiring: log in again for another one' : memory !== undefined ? `the agent is full: ${memory}` : 'the agent is full';
      conn.send(C.Kick.id, 0, C.Kick.encode({ code: KickCode.SHUTDOWN, reason }));
      conn.close('refused');
      return;
    }
    const client = new ClientConn(this.nextClientId++, conn, this.opts.maxMsgsPerSec ?? 100);
    this.clients.set(client.id, client);
    // A deadline, not just idleness: a client trickling bytes must still finish the handshake in time.
    const handshakeMs = this.opts.handshakeTimeoutMs ?? 10_000;
    client.handshakeTimer = setTimeout(() => {
      if (!client.handshaken) client.kick(KickCode.BAD_HANDSHAKE, `no handshake within ${handshakeMs} ms`);
    }, Math.max(0, handshakeMs - (Date.now() - conn.connectedAt)));
    client.handshakeTimer.unref();
    this.stats.online = this.clients.size;
    conn.on('frame', (msgId, seq, body) => this.onClientFrame(client, msgId, seq, body));
    // One listener, and `on`: a session emits close exactly once (memory per client is a target).
    conn.on('close', (reason) => this.onClientClose(client, reason));
    this.log.debug({ client: client.id, remote: conn.remoteAddress, transport: conn.transport, path: req?.url }, 'client connected');
  }

  private onClientFrame(client: ClientConn, msgId: number, seq: number, body: Buffer): void {
    if (!client.take(Date.now())) {
      this.stats.rateLimited++;
      return client.kick(KickCode.RATE_LIMIT, `over ${this.opts.maxMsgsPerSec ?? 100} messages per second`);
    }
    if (!client.handshaken) return this.onHandshake(client, msgId, seq, body);
    if (msgId === C.Ping.id) return void client.conn.send(C.Pong.id, seq, C.Pong.encode({ server_time_ms: Date.now() }));
    if (isRoomMessage(msgId)) return this.onRoomFrame(client, msgId, seq, body);
    const route = this.routes.get(msgId);
    if (messageLogOn(this.log)) logMessage(this.log, 'recv', route?.name ?? `#${msgId}`, `client ${client.id}`, body.length);
    if (!route) {
      this.stats.unknown++;
      if ((this.opts.unknownMessage ?? 'kick') === 'kick') return client.kick(KickCode.UNKNOWN_MESSAGE, `message id ${msgId} is not routed`);
      return;
    }
    if (route.rule === 'blocked') {
      this.stats.blocked++;
      return;
    }
    let backend: string | undefined;
    if (route.rule === 'auth') {
      backend = client.bound?.get(route.service);
      if (!backend) {
        this.stats.unauthenticated++;
        return client.error(seq, 'unauthenticated', `${route.name} needs a session bound by ${route.service}`);
      }
    } else {
      backend = client.bound?.get(route.service) ?? this.stickyBackend(client, route.service);
      if (!backend) {
        this.stats.undeliverable++;
        return client.error(seq, 'unavailable', `no instance of ${route.service} is available`);
      }
    }
    const traced = tracingOn() ? this.spans.start(this.node.id, client, msgId, route.name, seq, backend) : undefined;
    const sent = this.node.sendToPeer(backend, G.ClientMessage, { client_id: client.id, msg_id: msgId, seq, body, session: client.session }, traced?.ctx);
    if (traced) this.spans.sent(client, seq, traced.span, backend, sent);
    if (sent) {
      this.stats.forwarded++;
      if (seq !== 0) client.forwarded(seq, backend);
    }
    else {
      this.stats.undeliverable++;
      client.error(seq, 'unavailable', `${route.service} (${backend}) is not reachable right now`);
    }
  }

  /** Rooms' messages (310-314) name their service; agent-rooms.ts says which instance gets them. */
  private onRoomFrame(client: ClientConn, msgId: number, seq: number, body: Buffer): void {
    const target = roomTarget(
      client,
      msgId,
      body,
      (service) => this.routes.services().includes(service),
      (service, key) => this.selector.pick(service, this.node.instances(service), 'hash', key)?.id,
    );
    if (!target) return;
    if ('code' in target) return client.error(seq, target.code, target.message);
    if (!this.node.sendToPeer(target.backend, G.ClientMessage, { client_id: client.id, msg_id: msgId, seq, body, session: client.session })) {
      this.stats.undeliverable++;
      return client.error(seq, 'unavailable', `${target.backend} is not reachable right now`);
    }
    this.stats.forwarded++;
    if (seq !== 0) client.forwarded(seq, target.backend);
    // The matchmaker counts this client as one it serves until it hears of its close.
    (client.roomPeers ??= new Set()).add(target.backend);
  }

  private stickyBackend(client: ClientConn, service: string): string | undefined {
    const current = client.sticky?.get(service);
    if (current && this.node.isConnected(current)) return current;
    const pick = this.selector.pick(service, this.node.instances(service), this.opts.strategy ?? 'least-loaded');
    if (pick) (client.sticky ??= new Map()).set(service, pick.id);
    return pick?.id;
  }

  private onHandshake(client: ClientConn, msgId: number, seq: number, body: Buffer): void {
    if (msgId !== C.Handshake.id) return client.kick(KickCode.BAD_HANDSHAKE, `expected Handshake (${C.Handshake.id}), got message ${msgId}`);
    let hs;
    try {
      hs = C.Handshake.decode(body);
    } catch {
      return client.kick(KickCode.BAD_HANDSHAKE, 'undecodable Handshake');
    }
    if (hs.version !== CLIENT_PROTOCOL) return client.kick(KickCode.BAD_HANDSHAKE, `client protocol ${hs.version} is not supported (agent speaks ${CLIENT_PROTOCOL})`);
    client.handshaken = true;
    clearTimeout(client.handshakeTimer);
    client.handshakeTimer = undefined;
    if (hs.token) client.session = { token: hs.token.slice(0, 4096) };
    client.conn.setTimeouts({ idleTimeoutMs: this.idleMs(this.heartbeatSec) });
    client.conn.send(C.HandshakeAck.id, seq, C.HandshakeAck.encode({ version: CLIENT_PROTOCOL, heartbeat_sec: this.heartbeatSec, session_id: `${this.node.id}/${client.id}`, server_time_ms: Date.now() }));
  }

  private onClientClose(client: ClientConn, reason: string): void {
    clearTimeout(client.handshakeTimer);
    this.clients.delete(client.id);
    countClose(reason);
    if (this.spans.active) this.spans.clientClosed(client, reason);
    this.stats.online = this.clients.size;
    const backends = client.backends();
    this.groups.clientClosed(client);
    for (const backend of backends) {
      this.boundTo.get(backend)?.delete(client);
      this.node.sendToPeer(backend, G.ClientClosed, { client_id: client.id, reason, session: client.session });
    }
    this.log.debug({ client: client.id, reason }, 'client closed');
  }

  // ---- backends -----------------------------------------------------------

  private onToClients(msg: ToClients): void {
    if (messageLogOn(this.log)) logMessage(this.log, 'send', this.routes.get(msg.msg_id)?.name ?? `#${msg.msg_id}`, msg.all ? 'all clients' : msg.client_ids.length === 1 ? `client ${msg.client_ids[0]}` : `${msg.client_ids.length} clients`, msg.body.length);
    if (msg.all) {
      // Framed once per transport: every socket gets the same bytes.
      const frame = new SharedFrame(msg.msg_id, msg.seq, msg.body);
      for (const c of this.clients.values()) if (c.handshaken) c.conn.sendFrame(frame);
      return;
    }
    if (msg.client_ids.length > 1 && msg.seq === 0) {
      const frame = new SharedFrame(msg.msg_id, 0, msg.body);
      for (const id of msg.client_ids) {
        const c = this.clients.get(id);
        if (c?.handshaken) c.conn.sendFrame(frame);
      }
      return;
    }
    for (const id of msg.client_ids) {
      const c = this.clients.get(id);
      if (!c?.handshaken) continue;
      if (msg.seq !== 0) {
        c.answered(msg.seq);
        if (this.spans.active) this.spans.answered(c, msg.seq, msg.msg_id, msg.body);
      }
      c.conn.send(msg.msg_id, msg.seq, msg.body);
    }
  }

  private onKickClients(msg: KickClients): void {
    // A retiring backend's "reconnect" is passed on as such; any other code is a plain kick.
    const code = msg.code === KickCode.RECONNECT ? KickCode.RECONNECT : KickCode.KICKED;
    for (const id of msg.client_ids) this.clients.get(id)?.kick(code, msg.reason || 'kicked by the server');
  }

  private onBind(req: BindReq, peer: PeerInfo): BindResp {
    const client = this.clients.get(req.client_id);
    if (!client) return { ok: false, code: 'not_connected', error: `client ${req.client_id} is not connected to ${this.node.id}` };
    const conflict = identityConflict(client.session, req.session, `client ${client.id} of ${this.node.id}`);
    if (conflict) {
      this.log.warn({ client: client.id, backend: peer.id, err: conflict }, 'refused a bind that would change the identity');
      return { ok: false, code: 'identity_conflict', error: conflict };
    }
    const previous = client.bound?.get(peer.name);
    if (previous && previous !== peer.id) this.boundTo.get(previous)?.delete(client);
    client.bind(peer.name, peer.id, req.session);
    let set = this.boundTo.get(peer.id);
    if (!set) this.boundTo.set(peer.id, (set = new Set()));
    set.add(client);
    return { ok: true, error: '', code: '' };
  }

  /** A backend dropped bindings to itself (it could not restore them, or logged them out). */
  private onUnbindClients(msg: UnbindClients, peer: PeerInfo): void {
    const set = this.boundTo.get(peer.id);
    for (const id of msg.client_ids) {
      const client = this.clients.get(id);
      if (!client || client.bound?.get(peer.name) !== peer.id) continue;
      client.bound.delete(peer.name);
      set?.delete(client);
      this.log.info({ client: id, backend: peer.id, reason: msg.reason }, 'client unbound');
    }
  }

  /**
   * A new link to a backend: it is told its bound clients and their
   * sessions before anything else is sent on the link, so a backend that
   * restarted (same id) can rebuild what it kept in memory.
   */
  private restoreClients(peer: PeerInfo): void {
    const clients = this.boundTo.get(peer.id);
    if (!clients || clients.size === 0) return;
    for (const batch of restoreBatches(clients)) this.node.sendToPeer(peer.id, G.RestoreClients, { clients: batch });
    this.log.info({ backend: peer.id, clients: clients.size }, 'bound clients re-announced');
  }

  private onBackendStatus(peer: PeerInfo, up: boolean): void {
    // Requests the backend will now never answer fail at once instead of at the client's timeout.
    if (!up) for (const c of this.clients.values()) c.failInflight(peer.id, `${peer.name} (${peer.id}) went down before answering`);
    if (!up && this.spans.active) this.spans.backendDown(peer.id);
    if (!up) this.groups.backendDown(peer.id);
    const clients = this.boundTo.get(peer.id);
    if (!clients || clients.size === 0) return;
    const frame = new SharedFrame(C.BackendStatus.id, 0, C.BackendStatus.encode({ service: peer.name, id: peer.id, up }));
    for (const c of clients) c.conn.sendFrame(frame);
  }

  private onBackendGone(peer: PeerInfo): void {
    const clients = this.boundTo.get(peer.id);
    if (!clients || clients.size === 0) return;
    const policy = this.opts.backendGone ?? 'keep';
    if (policy === 'keep') return;
    this.boundTo.delete(peer.id);
    for (const c of clients) {
      if (policy === 'disconnect') c.kick(KickCode.BACKEND_GONE, `${peer.name} (${peer.id}) is gone`);
      else c.bound?.delete(peer.name);
    }
  }

  private reportOnline(): void {
    const online = this.clients.size;
    if (online === this.reportedOnline) return;
    this.reportedOnline = online;
    this.node.setLoad(online);
    this.node.setMeta({ online: String(online) });
  }

  /** Kicks every client (backends are told), then stops the node. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    if (this.reportTimer) clearInterval(this.reportTimer);
    for (const c of [...this.clients.values()]) c.kick(KickCode.SHUTDOWN, 'the agent is shutting down');
    await Promise.all([this.tcp?.close(), this.ws?.close(), this.kcp?.close(), this.pomelo?.close()]);
    this.cloud?.close();
    await this.node.stop();
    agents.retire(this);
  }
}
