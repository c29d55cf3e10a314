import { logMessage, messageLogOn } from '../log/msglog.js';
import { RpcError } from '../service/errors.js';
import type { ServiceNode } from '../service/node.js';
import type { Init, PeerInfo } from '../service/rpc.js';
import type { MessageType } from '../wire/registry.js';
import { KickCode } from './kick.js';
import { ATTR, endSpan, SpanKind, startSpan, tracingOn, withSpan, type Span } from '../observe/tracing.js';
import { isThenable, Mailboxes } from './mailbox.js';
import { Groups, type Group, type GroupOptions } from './groups.js';
import { C, G, type ClientClosed, type ClientMessage, type RestoreClients } from './messages.js';

/** A client as a backend sees it: which agent holds it, and its id there. */
export interface ClientRef {
  readonly agent: string;
  readonly id: number;
}

/** A client with its session data (user id, name...), as told on close or restore. */
export interface ClientInfo extends ClientRef {
  readonly session: Readonly<Record<string, string>>;
}

/** One client message being handled. */
export interface ClientContext extends ClientInfo {
  /** The client's request sequence number; replies carry it back. */
  readonly seq: number;
  reply<T>(type: MessageType<T>, msg: Init<T>): void;
  /**
   * Binds the client to this backend instance and merges session data. A
   * bind that would change the session's `uid` (SESSION_UID) is refused with
   * RpcError `bad_request`: a connection has one identity.
   */
  bind(session?: Readonly<Record<string, string>>): Promise<void>;
  kick(reason: string): void;
}

/** A handler of one client message type on a GatewayBackend; what it returns is the answer. */
export type ClientHandler<Req, Res> = (req: Req, client: ClientContext) => Init<Res> | void | Promise<Init<Res> | void>;

/** Per-handler options: `concurrent` lets this message run beside the client's others instead of in order. */
export interface ClientHandlerOptions {
  /**
   * Run at once, beside the client's other messages, instead of in its
   * mailbox after them. For read-only handlers: such a handler may see the
   * state from before the client's earlier messages took effect.
   */
  concurrent?: boolean;
}

/** Options of a GatewayBackend: the agent service's name and the limits of queued client messages (per client and in all). */
export interface GatewayBackendOptions {
  /** The agents' service name. Default "agent". */
  agentService?: string;
  /** Messages of one client held at once (running and waiting); more are answered `busy`. Default 128. */
  maxQueuedPerClient?: number;
  /** Messages held over all clients; more are answered `busy`. Default 100,000. */
  maxQueued?: number;
}

interface Entry {
  readonly req: MessageType<unknown>;
  readonly res: MessageType<unknown> | undefined;
  readonly fn: ClientHandler<unknown, unknown>;
  readonly concurrent: boolean;
}

type ClosedHandler = (client: ClientInfo, reason: string) => void;
type RestoredHandler = (client: ClientInfo) => void | Promise<void>;

/**
 * The backend side of the gateway, for any service: handle client messages
 * the agents route here, reply, push to one client, a list, or everyone,
 * bind clients, and hear when they leave or come back after a restart.
 *
 * One client's messages run one at a time, in arrival order, async handlers
 * included (see Mailboxes); different clients run concurrently.
 */
export class GatewayBackend {
  readonly agentService: string;
  private readonly handlers = new Map<number, Entry>();
  private readonly mailboxes: Mailboxes;
  private readonly maxQueued: number;
  private readonly closedHandlers: ClosedHandler[] = [];
  private readonly restoredHandlers: RestoredHandler[] = [];
  /** Clients that sent here (bound or sticky) and have not closed, by agent: what a retiring backend waits for. */
  private readonly known = new Map<string, Set<number>>();
  private knownCount = 0;
  /** This backend's groups (docs/rooms.md). */
  readonly groups: Groups;

  constructor(
    readonly node: ServiceNode,
    options: GatewayBackendOptions | string = {},
  ) {
    const opts = typeof options === 'string' ? { agentService: options } : options;
    this.agentService = opts.agentService ?? 'agent';
    this.mailboxes = new Mailboxes(opts.maxQueuedPerClient ?? 128);
    this.maxQueued = opts.maxQueued ?? 100_000;
    this.groups = new Groups(node);
    node.addDependency(this.agentService);
    node.onMessage(G.ClientMessage, (msg, ctx) => this.onClientMessage(msg, ctx.peer));
    node.onMessage(G.ClientClosed, (msg, ctx) => this.onClosedFrame(msg, ctx.peer));
    node.onMessage(G.RestoreClients, (msg, ctx) => this.onRestore(msg, ctx.peer));
    // The agent answers what was in flight with `unavailable`; what waits here would answer nobody.
    node.on('peerDown', (peer) => {
      if (peer.name !== this.agentService) return;
      this.mailboxes.closeAgent(peer.id);
      // Its clients come back (if they do) through RestoreClients on the next link.
      this.knownCount -= this.known.get(peer.id)?.size ?? 0;
      this.known.delete(peer.id);
      // The agent forgot this backend's groups with the link: its members leave them here too.
      this.groups.agentDown(peer.id, `the link to ${peer.id} went down`);
    });
    node.addHold(() => this.knownCount);
    node.on('drainTimeout', () => {
      const ids = [...this.known].flatMap(([agent, set]) => [...set].map((id) => ({ agent, id })));
      for (const [agent, list] of byAgent(ids)) this.node.sendToPeer(agent, G.KickClients, { client_ids: list, code: KickCode.RECONNECT, reason: `${this.node.id} is retiring: reconnect to carry on` });
    });
    node.onDrain(async (timeoutMs) => {
      if (!(await this.mailboxes.whenIdle(timeoutMs))) this.node.log.warn({ held: this.mailboxes.size }, 'shutdown timeout: abandoning client requests in flight');
    });
  }

  /** Clients this backend serves (they sent here and have not closed): a retiring backend exits when none is left. */
  get clients(): number {
    return this.knownCount;
  }

  private remember(agent: string, id: number): void {
    let set = this.known.get(agent);
    if (!set) this.known.set(agent, (set = new Set()));
    if (set.has(id)) return;
    set.add(id);
    this.knownCount++;
  }

  private forgetClient(agent: string, id: number): void {
    const set = this.known.get(agent);
    if (!set?.delete(id)) return;
    this.knownCount--;
    if (set.size === 0) this.known.delete(agent);
  }

  /** Client messages held (running or waiting in a mailbox), over all clients. */
  get queued(): number {
    return this.mailboxes.size;
  }

  /** Handles a client message; a returned value is sent back as `res` with the request's seq. */
  handle<Req, Res>(req: MessageType<Req>, res: MessageType<Res> | undefined, fn: ClientHandler<Req, Res>, options: ClientHandlerOptions = {}): this {
    if (this.handlers.has(req.id)) throw new TypeError(`a client handler for ${req.name} (${req.id}) is already registered`);
    this.handlers.set(req.id, { req, res, fn, concurrent: options.concurrent ?? false } as Entry);
    return this;
  }

  /** A client left (its connection closed). Runs after the client's running message settled; what it still had waiting is dropped. */
  onClientClosed(fn: ClosedHandler): this {
    this.closedHandlers.push(fn);
    return this;
  }

  /**
   * A client bound to this backend is re-announced by its agent, with its
   * session data: after this backend restarted with the same service id, or
   * when a link to the agent came back. Rebuild in-memory state here; it may
   * be called for clients already known. Runs in the client's mailbox,
   * before its later messages. A hook that throws or rejects unbinds the
   * client from this backend: its `auth` messages then get `unauthenticated`
   * until it joins again.
   */
  onClientRestored(fn: RestoredHandler): this {
    this.restoredHandlers.push(fn);
    return this;
  }

  /**
   * The group with this id, made on first use: add/remove clients, and
   * broadcast to its members with one message per agent. Members leave by
   * themselves when they close; an empty group is dropped unless kept.
   */
  group(id: string, options?: GroupOptions): Group {
    return this.groups.get(id, options);
  }

  /** Sends one message to one client. Returns false if its agent is not linked. */
  send<T>(client: ClientRef, type: MessageType<T>, msg: Init<T>, seq = 0): boolean {
    const body = type.encode(msg);
    if (messageLogOn(this.node.log)) logMessage(this.node.log, 'send', type.name, `${client.agent}/${client.id}`, body.length);
    return this.node.sendToPeer(client.agent, G.ToClients, { client_ids: [client.id], all: false, msg_id: type.id, seq, body });
  }

  /** Sends one message to many clients: encoded once, one frame per agent. */
  sendMany<T>(clients: readonly ClientRef[], type: MessageType<T>, msg: Init<T>): void {
    const body = type.encode(msg);
    if (messageLogOn(this.node.log)) logMessage(this.node.log, 'send', type.name, `${clients.length} clients`, body.length);
    for (const [agent, ids] of byAgent(clients)) this.node.sendToPeer(agent, G.ToClients, { client_ids: ids, all: false, msg_id: type.id, seq: 0, body });
  }

  /** Sends one message to every client of every agent this backend is linked to. */
  broadcast<T>(type: MessageType<T>, msg: Init<T>): number {
    const body = type.encode(msg);
    if (messageLogOn(this.node.log)) logMessage(this.node.log, 'send', type.name, 'all clients', body.length);
    let agents = 0;
    for (const agent of this.node.instances(this.agentService)) {
      if (this.node.sendToPeer(agent.id, G.ToClients, { client_ids: [], all: true, msg_id: type.id, seq: 0, body })) agents++;
    }
    return agents;
  }

  kick(clients: readonly ClientRef[], reason: string): void {
    for (const [agent, ids] of byAgent(clients)) this.node.sendToPeer(agent, G.KickClients, { client_ids: ids, code: KickCode.KICKED, reason });
  }

  /** Drops the clients' binding to this backend (a logout); their session data stays. */
  unbind(clients: readonly ClientRef[], reason: string): void {
    for (const [agent, ids] of byAgent(clients)) this.node.sendToPeer(agent, G.UnbindClients, { client_ids: ids, reason });
  }

  async bind(client: ClientRef, session: Readonly<Record<string, string>> = {}): Promise<void> {
    const res = await this.node.call({ id: client.agent }, G.BindReq, G.BindResp, { client_id: client.id, session: { ...session } });
    if (!res.ok) throw new RpcError(res.code === 'identity_conflict' ? 'bad_request' : 'application', res.error || 'bind failed');
  }

  private onClientMessage(msg: ClientMessage, agent: PeerInfo): void {
    const ref: ClientRef = { agent: agent.id, id: msg.client_id };
    const entry = this.handlers.get(msg.msg_id);
    if (messageLogOn(this.node.log)) logMessage(this.node.log, 'recv', entry?.req.name ?? `#${msg.msg_id}`, `${ref.agent}/${ref.id}`, msg.body.length);
    if (!entry) return this.replyError(ref, msg.seq, 'unknown_method', `no handler for message ${msg.msg_id} on ${this.node.id}`);
    this.remember(ref.agent, ref.id);
    if (this.node.stopping) return this.replyError(ref, msg.seq, 'unavailable', `${this.node.id} is shutting down`);
    if (this.mailboxes.size >= this.maxQueued) return this.replyError(ref, msg.seq, 'busy', `${this.node.id} holds ${this.maxQueued} client messages already`);
    let req: unknown;
    try {
      req = entry.req.decode(msg.body);
    } catch (err) {
      return this.replyError(ref, msg.seq, 'bad_request', `undecodable ${entry.req.name}: ${(err as Error).message}`);
    }
    // Written out, not spread: on Node 20 every property added after a spread costs about half a microsecond.
    const ctx: ClientContext = {
      agent: ref.agent,
      id: ref.id,
      session: msg.session,
      seq: msg.seq,
      reply: (type, m) => void this.send(ref, type, m, msg.seq),
      bind: (session) => this.bind(ref, session),
      kick: (reason) => this.kick([ref], reason),
    };
    // Traced: the handler runs in a span of its own, under the link's span (from the agent's TraceContext).
    const span = tracingOn()
      ? startSpan(entry.req.name, SpanKind.SERVER, { [ATTR.method]: entry.req.name, [ATTR.msg]: entry.req.name, [ATTR.service]: this.node.id, [ATTR.peer]: ref.agent, [ATTR.client]: ref.id })
      : undefined;
    const job = span ? () => withSpan(span, undefined, () => this.run(entry, req, ctx, span)) : () => this.run(entry, req, ctx);
    if (this.mailboxes.submit(ref.agent, ref.id, job, entry.concurrent) === 'full') {
      if (span) endSpan(span, 'busy');
      this.replyError(ref, msg.seq, 'busy', `over ${this.mailboxes.maxPerClient} messages of this client are waiting on ${this.node.id}`);
    }
  }

  /** Calls the handler and answers; never throws. A thenable result holds the client's mailbox until it settles. */
  private run(entry: Entry, req: unknown, ctx: ClientContext, span?: Span): unknown {
    let result: unknown;
    try {
      result = entry.fn(req, ctx);
    } catch (err) {
      return this.refuse(entry, ctx, err, span);
    }
    if (!isThenable(result)) return this.answer(entry, ctx, result, span);
    return result.then(
      (res) => this.answer(entry, ctx, res, span),
      (err: unknown) => this.refuse(entry, ctx, err, span),
    );
  }

  private answer(entry: Entry, ctx: ClientContext, res: unknown, span?: Span): void {
    try {
      if (res !== undefined && entry.res) this.send(ctx, entry.res, res as Init<unknown>, ctx.seq);
    } catch (err) {
      return this.refuse(entry, ctx, new Error(`cannot encode ${entry.res?.name ?? '?'}: ${(err as Error).message}`), span);
    }
    if (span) endSpan(span, 'ok');
  }

  private refuse(entry: Entry, ctx: ClientContext, err: unknown, span?: Span): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (span) endSpan(span, e instanceof RpcError ? e.code : 'application', e.message);
    const client = { agent: ctx.agent, id: ctx.id };
    // An RpcError is a deliberate answer (a rule said no); anything else is a bug worth a warning.
    if (e instanceof RpcError) this.node.log.debug({ client, msg: entry.req.name, code: e.code, err: e.message }, 'client request refused');
    else this.node.log.warn({ client, msg: entry.req.name, err: e }, 'client handler failed');
    this.replyError(ctx, ctx.seq, e instanceof RpcError ? e.code : 'application', e.message);
  }

  private replyError(client: ClientRef, seq: number, code: string, message: string): void {
    this.send(client, C.Error, { code, message }, seq);
  }

  private onClosedFrame(msg: ClientClosed, agent: PeerInfo): void {
    const client: ClientInfo = { agent: agent.id, id: msg.client_id, session: msg.session };
    this.forgetClient(agent.id, msg.client_id);
    this.groups.clientClosed(client, msg.reason);
    this.mailboxes.close(agent.id, msg.client_id, () => {
      for (const fn of this.closedHandlers) {
        try {
          fn(client, msg.reason);
        } catch (err) {
          this.node.log.warn({ client: { agent: agent.id, id: msg.client_id }, err }, 'a client-closed handler failed');
        }
      }
    });
  }

  private onRestore(msg: RestoreClients, agent: PeerInfo): void {
    for (const c of msg.clients) this.remember(agent.id, c.client_id);
    if (this.restoredHandlers.length === 0 || this.node.stopping) return;
    this.node.log.info({ agent: agent.id, clients: msg.clients.length }, 'restoring clients');
    for (const c of msg.clients) {
      const client: ClientInfo = { agent: agent.id, id: c.client_id, session: c.session };
      this.mailboxes.submit(agent.id, c.client_id, () => this.restore(client), false, false);
    }
  }

  private async restore(client: ClientInfo): Promise<void> {
    try {
      for (const fn of this.restoredHandlers) await fn(client);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.node.log.warn({ client: { agent: client.agent, id: client.id }, err: why }, 'cannot restore a client; unbinding it');
      this.unbind([client], `${this.node.id} could not restore this client: ${why}`);
    }
  }
}

function byAgent(clients: readonly ClientRef[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const c of clients) {
    let ids = out.get(c.agent);
    if (!ids) out.set(c.agent, (ids = []));
    ids.push(c.id);
  }
  return out;
}
