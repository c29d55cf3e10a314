import { createHmac, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { dialTcp, type TcpSession } from '../net/tcp.js';
import { asBytes, type MessageType } from '../wire/registry.js';
import { DISCOVERY_PROTOCOL, EVENT_DELETE, M, REGISTRY_NOTICE, type PbKeyValue, type WatchEvent } from './messages.js';
import { validateServiceDesc } from './service-desc.js';
import { listServicesOn, watchServicesOn } from './service-watch.js';
import {
  CLAIM_PREFIX,
  DiscoveryError,
  RegistrationConflict,
  SERVICE_PREFIX,
  serviceKey,
  type Compare,
  type Discovery,
  type DiscoveryErrorCode,
  type KeyValue,
  type KvEvent,
  type ServiceDesc,
  type ServiceEvent,
  type ServiceWatch,
  type TxnOp,
  type TxnResult,
  type Watch,
  type WatchOptions,
} from './types.js';
import { WatchState } from './watch-state.js';

/** How a DiscoveryClient connects to the built-in discovery server, authenticates and retries. */
export interface DiscoveryClientOptions {
  /** `host:port` of the discovery server. */
  addr: string;
  token?: string;
  /** Shown in the server's logs. */
  name?: string;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Requests held while disconnected; past it new requests fail at once. */
  maxQueued?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  maxFrame?: number;
  /** Reject `connect` on the first failed dial instead of retrying until connectTimeoutMs (CLI use). */
  failFast?: boolean;
}

/** What a DiscoveryClient emits: connected (again), disconnected, errors, and registration conflicts. */
export interface DiscoveryClientEvents {
  connected: [info: { serverId: string; revision: number; reconnect: boolean }];
  disconnected: [reason: string];
  error: [err: Error];
  /**
   * A registration this client held could not be put back (after a
   * reconnect, a lost lease, or a delete by someone else) because another
   * process holds its id or address now. This client no longer registers it.
   */
  conflict: [err: RegistrationConflict, desc: ServiceDesc];
}

interface Pending {
  readonly expect: number;
  readonly resolve: (msgs: unknown[]) => void;
  readonly reject: (err: Error) => void;
  readonly parts: unknown[];
  readonly deadline: number;
}

interface Queued {
  readonly msgId: number;
  readonly body: Uint8Array;
  readonly pending: Pending;
}

/** Splits host:port (IPv6 in brackets); throws on anything else. */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new DiscoveryError('bad_request', `bad address ${JSON.stringify(addr)}: expected host:port`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/**
 * Client of the built-in discovery server. It reconnects by itself; on every
 * reconnect it re-registers its services and re-snapshots its watches, so
 * callers see one continuous, gap-free view.
 */
export class DiscoveryClient extends EventEmitter<DiscoveryClientEvents> implements Discovery {
  private readonly opts: Required<Omit<DiscoveryClientOptions, 'token'>> & { token: string | undefined };
  private readonly host: string;
  private readonly port: number;
  private session: TcpSession | undefined;
  private ready = false;
  private closed = false;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private queue: Queued[] = [];
  private readonly watches = new Map<number, WatchState>();
  private nextWatchId = 1;
  private readonly services = new Map<string, ServiceDesc>();
  /** Sent in every Hello: the server recognizes this client's registrations across reconnects by it. */
  private readonly instance = randomBytes(8).toString('hex');
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** One sweep for all request deadlines: a timer per request costs more than the request. */
  private readonly sweepTimer: NodeJS.Timeout;
  private attempt = 0;
  private everConnected = false;
  private firstConnect: { resolve: () => void; reject: (e: Error) => void } | undefined;
  serverId = '';

  private constructor(options: DiscoveryClientOptions) {
    super();
    const { host, port } = parseAddr(options.addr);
    this.host = host;
    this.port = port;
    this.opts = {
      addr: options.addr,
      token: options.token,
      name: options.name ?? `pid${process.pid}`,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      maxQueued: options.maxQueued ?? 10_000,
      reconnectMinMs: options.reconnectMinMs ?? 50,
      reconnectMaxMs: options.reconnectMaxMs ?? 2000,
      maxFrame: options.maxFrame ?? 16 * 1024 * 1024,
      failFast: options.failFast ?? false,
    };
    // An 'error' with no listener would throw; errors are also surfaced per request.
    this.on('error', () => {});
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(10, Math.min(250, this.opts.requestTimeoutMs / 4)));
    this.sweepTimer.unref();
  }

  /** Connects, authenticates, and resolves once the client is usable. */
  static connect(options: DiscoveryClientOptions): Promise<DiscoveryClient> {
    const client = new DiscoveryClient(options);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.firstConnect = undefined;
        void client.close();
        reject(new DiscoveryError('unavailable', `cannot reach discovery at ${options.addr} within ${client.opts.connectTimeoutMs} ms`));
      }, client.opts.connectTimeoutMs);
      client.firstConnect = {
        resolve: () => {
          clearTimeout(timer);
          resolve(client);
        },
        reject: (err) => {
          clearTimeout(timer);
          void client.close();
          reject(err);
        },
      };
      client.dial();
    });
  }

  get connected(): boolean {
    return this.ready;
  }

  // ---- connection -------------------------------------------------------

  private dial(): void {
    if (this.closed) return;
    dialTcp(this.host, this.port, { maxFrame: this.opts.maxFrame, connectTimeoutMs: this.opts.connectTimeoutMs, idleTimeoutMs: 30_000, heartbeatMs: 10_000 }).then(
      (session) => this.onSession(session),
      (err: Error) => {
        if (this.opts.failFast && this.firstConnect) {
          const fc = this.firstConnect;
          this.firstConnect = undefined;
          fc.reject(new DiscoveryError('unavailable', `cannot reach discovery at ${this.opts.addr}: ${err.message}`));
          return;
        }
        this.scheduleReconnect(`connect failed: ${err.message}`);
      },
    );
  }

  private onSession(session: TcpSession): void {
    if (this.closed) {
      session.close('client closed');
      return;
    }
    this.session = session;
    session.on('frame', (msgId, seq, body) => {
      try {
        this.onFrame(session, msgId, seq, body);
      } catch (err) {
        session.close(`bad frame from server: ${(err as Error).message}`, err as Error);
      }
    });
    session.once('close', (reason) => this.onClose(session, reason));
  }

  private onClose(session: TcpSession, reason: string): void {
    if (this.session !== session) return;
    this.session = undefined;
    const wasReady = this.ready;
    this.ready = false;
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq);
      p.reject(new DiscoveryError('unavailable', `connection to discovery lost (${reason}); the request may or may not have been applied`));
    }
    if (wasReady) this.emit('disconnected', reason);
    this.scheduleReconnect(reason);
  }

  private scheduleReconnect(reason: string): void {
    if (this.closed) return;
    const base = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectMinMs * 2 ** Math.min(this.attempt, 10));
    this.attempt++;
    const delay = base / 2 + Math.random() * (base / 2);
    if (this.attempt === 1 || this.attempt % 20 === 0) this.emit('error', new DiscoveryError('unavailable', `discovery ${this.opts.addr}: ${reason}; retrying`));
    this.reconnectTimer = setTimeout(() => this.dial(), delay);
    this.reconnectTimer.unref();
  }

  private onFrame(session: TcpSession, msgId: number, seq: number, body: Buffer): void {
    if (msgId === M.Challenge.id) {
      const { nonce, protocol } = M.Challenge.decode(body);
      if (protocol !== DISCOVERY_PROTOCOL) {
        return this.fatal(session, new DiscoveryError('bad_request', `server speaks discovery protocol ${protocol}, client ${DISCOVERY_PROTOCOL}`));
      }
      const proof = this.opts.token ? createHmac('sha256', this.opts.token).update(nonce).digest() : new Uint8Array(0);
      this.request(M.Hello, { name: this.opts.name, proof, protocol: DISCOVERY_PROTOCOL, instance: this.instance }, M.HelloAck, { direct: session }).then(
        (ack) => this.onReady(session, ack.server_id, ack.revision),
        (err: Error) => {
          if (err instanceof DiscoveryError && err.code === 'unauthorized') this.fatal(session, err);
        },
      );
      return;
    }
    if (msgId === M.WatchEvent.id) return this.onWatchEvent(M.WatchEvent.decode(body));
    const p = this.pending.get(seq);
    if (msgId === M.Error.id) {
      const e = M.Error.decode(body);
      const err = e.code === 'conflict' ? new RegistrationConflict(e.message, e.retry_ms || undefined) : new DiscoveryError(toCode(e.code), e.message);
      if (p) {
        this.pending.delete(seq);
        p.reject(err);
      } else {
        this.emit('error', err);
      }
      return;
    }
    if (!p) return;
    if (msgId !== p.expect) {
      this.pending.delete(seq);
      p.reject(new DiscoveryError('internal', `expected message ${p.expect}, got ${msgId}`));
      return;
    }
    const type = msgId === M.ListResp.id ? M.ListResp : msgId === M.WatchResp.id ? M.WatchResp : undefined;
    const msg = (type ?? typeOf(msgId)).decode(body);
    p.parts.push(msg);
    if (type && (msg as { more: boolean }).more) return;
    this.pending.delete(seq);
    p.resolve(p.parts);
  }

  private sweep(): void {
    const now = Date.now();
    const timeout = () => new DiscoveryError('timeout', `discovery request timed out after ${this.opts.requestTimeoutMs} ms`);
    for (const [seq, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(seq);
      p.reject(timeout());
    }
    if (this.queue.some((q) => q.pending.deadline <= now)) {
      this.queue = this.queue.filter((q) => {
        if (q.pending.deadline > now) return true;
        q.pending.reject(timeout());
        return false;
      });
    }
  }

  /** An unrecoverable refusal (bad token, wrong protocol): stop retrying. */
  private fatal(session: TcpSession, err: DiscoveryError): void {
    if (this.firstConnect) {
      const fc = this.firstConnect;
      this.firstConnect = undefined;
      fc.reject(err);
    } else {
      this.emit('error', err);
      void this.close();
    }
    session.close(err.message);
  }

  private async onReady(session: TcpSession, serverId: string, revision: number): Promise<void> {
    const reconnect = this.everConnected;
    try {
      // Services and watches first, so queued requests run against the restored state.
      await Promise.all(
        [...this.services.values()].map((d) =>
          this.request(M.RegisterReq, { desc: d }, M.OkResp, { direct: session }).catch((err: unknown) => {
            // Taken by another process while we were away: give it up, say so, and restore the rest.
            if (!(err instanceof RegistrationConflict)) throw err;
            this.onRegisterError(err, d);
          }),
        ),
      );
      await Promise.all([...this.watches].map(([id, w]) => this.subscribe(id, w, session, false)));
    } catch (err) {
      session.close(`restoring session state failed: ${(err as Error).message}`);
      return;
    }
    if (this.session !== session) return;
    this.serverId = serverId;
    this.ready = true;
    this.everConnected = true;
    this.attempt = 0;
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) this.transmit(session, q.msgId, q.body, q.pending);
    this.emit('connected', { serverId, revision, reconnect });
    if (this.firstConnect) {
      const fc = this.firstConnect;
      this.firstConnect = undefined;
      fc.resolve();
    }
  }

  // ---- requests ---------------------------------------------------------

  private request<Req, Res>(type: MessageType<Req>, msg: Req, expect: MessageType<Res>, opts: { direct?: TcpSession } = {}): Promise<Res> {
    return this.requestParts(type, msg, expect, opts).then((parts) => parts[0] as Res);
  }

  private requestParts<Req, Res>(type: MessageType<Req>, msg: Req, expect: MessageType<Res>, opts: { direct?: TcpSession } = {}): Promise<Res[]> {
    if (this.closed) return Promise.reject(new DiscoveryError('closed', 'discovery client is closed'));
    return new Promise<unknown[]>((resolve, reject) => {
      const pending: Pending = { expect: expect.id, resolve, reject, parts: [], deadline: Date.now() + this.opts.requestTimeoutMs };
      const body = type.encode(msg);
      const session = opts.direct ?? (this.ready ? this.session : undefined);
      if (session) return this.transmit(session, type.id, body, pending);
      if (this.queue.length >= this.opts.maxQueued) {
        return pending.reject(new DiscoveryError('unavailable', `discovery ${this.opts.addr} is unreachable and ${this.opts.maxQueued} requests are already waiting`));
      }
      this.queue.push({ msgId: type.id, body, pending });
    }) as Promise<Res[]>;
  }

  private transmit(session: TcpSession, msgId: number, body: Uint8Array, pending: Pending): void {
    this.seq = this.seq >= 0xfffffffe ? 1 : this.seq + 1;
    this.pending.set(this.seq, pending);
    if (!session.send(msgId, this.seq, body)) {
      this.pending.delete(this.seq);
      pending.reject(new DiscoveryError('unavailable', 'connection to discovery is closed'));
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.request(M.GetReq, { key }, M.GetResp);
    return res.found && res.kv ? fromPb(res.kv) : undefined;
  }

  async list(prefix: string): Promise<KeyValue[]> {
    const parts = await this.requestParts(M.ListReq, { prefix }, M.ListResp);
    return parts.flatMap((p) => p.kvs.map(fromPb));
  }

  async put(key: string, value: Uint8Array | string): Promise<number> {
    return (await this.request(M.PutReq, { key, value: toBytes(value) }, M.PutResp)).revision;
  }

  async delete(key: string): Promise<number> {
    return (await this.request(M.DeleteReq, { key, prefix: false }, M.DeleteResp)).deleted;
  }

  async deletePrefix(prefix: string): Promise<number> {
    return (await this.request(M.DeleteReq, { key: prefix, prefix: true }, M.DeleteResp)).deleted;
  }

  async clear(): Promise<number> {
    const keys = (await this.list('')).map((kv) => kv.key).filter((k) => !k.startsWith(SERVICE_PREFIX) && !k.startsWith(CLAIM_PREFIX));
    if (keys.length === 0) return 0;
    const res = await this.txn([], keys.map((key) => ({ type: 'delete', key })));
    return res.succeeded ? keys.length : 0;
  }

  async txn(compares: readonly Compare[], ops: readonly TxnOp[]): Promise<TxnResult> {
    const res = await this.request(
      M.TxnReq,
      {
        compares: compares.map((c) => ({ key: c.key, mod_rev: c.modRev })),
        ops: ops.map((op) => (op.type === 'put' ? { key: op.key, value: toBytes(op.value) } : { key: op.key, delete: true, prefix: op.prefix ?? false })),
      },
      M.TxnResp,
    );
    return { succeeded: res.succeeded, revision: res.revision };
  }

  // ---- watches and cache -----------------------------------------------

  async watch(prefix: string, options: WatchOptions<KvEvent> = {}): Promise<Watch> {
    const id = this.nextWatchId++;
    const state = new WatchState(prefix, options, () => {
      this.watches.delete(id);
      if (this.ready && this.session) this.request(M.CancelWatchReq, { watch_id: id }, M.OkResp).catch(() => {});
    });
    this.watches.set(id, state);
    try {
      await this.subscribe(id, state, undefined, true);
    } catch (err) {
      this.watches.delete(id);
      throw err;
    }
    return state;
  }

  private async subscribe(id: number, state: WatchState, direct: TcpSession | undefined, initial: boolean): Promise<void> {
    const parts = await this.requestParts(M.WatchReq, { watch_id: id, prefix: state.prefix }, M.WatchResp, direct ? { direct } : {});
    const kvs = parts.flatMap((p) => p.kvs.map(fromPb));
    state.applySnapshot(kvs, parts[0]?.revision ?? 0, initial);
  }

  private onWatchEvent(ev: WatchEvent): void {
    if (ev.watch_id === REGISTRY_NOTICE) return this.onRegistrationDeleted(ev);
    const state = this.watches.get(ev.watch_id);
    if (!state) return;
    for (const e of ev.events) {
      if (e.type === EVENT_DELETE) state.applyDelete(e.kv.key, e.kv.mod_rev);
      else state.applyPut(fromPb(e.kv));
    }
  }

  cached(key: string): KeyValue | undefined {
    let best: WatchState | undefined;
    for (const w of this.watches.values()) {
      if (key.startsWith(w.prefix) && (!best || w.prefix.length > best.prefix.length)) best = w;
    }
    return best?.get(key);
  }

  // ---- service registry -------------------------------------------------

  async register(desc: ServiceDesc): Promise<void> {
    const valid = validateServiceDesc(desc);
    if (typeof valid === 'string') throw new DiscoveryError('bad_request', valid);
    const key = serviceKey(valid.name, valid.id);
    this.services.set(key, valid);
    try {
      await this.request(M.RegisterReq, { desc: valid }, M.OkResp);
    } catch (err) {
      // Refused: not ours, so never re-registered after a reconnect either.
      if (err instanceof RegistrationConflict && this.services.get(key) === valid) this.services.delete(key);
      throw err;
    }
  }

  async deregister(name: string, id: string): Promise<void> {
    this.services.delete(serviceKey(name, id));
    await this.request(M.DeregisterReq, { name, id }, M.OkResp);
  }

  /** The server's notice that someone else deleted a registration of ours (`gamemesh sd clearsvc`): put it back. */
  private onRegistrationDeleted(ev: WatchEvent): void {
    for (const e of ev.events) {
      const desc = e.type === EVENT_DELETE ? this.services.get(e.kv.key) : undefined;
      if (desc) this.register(desc).catch((err: Error) => this.onRegisterError(err, desc));
    }
  }

  private onRegisterError(err: Error, desc: ServiceDesc): void {
    if (err instanceof RegistrationConflict) {
      const key = serviceKey(desc.name, desc.id);
      if (this.services.get(key) === desc) this.services.delete(key);
      this.emit('conflict', err, desc);
    } else {
      this.emit('error', err);
    }
  }

  watchServices(name?: string, options: WatchOptions<ServiceEvent> = {}): Promise<ServiceWatch> {
    return watchServicesOn(this, name, options);
  }

  listServices(name?: string): Promise<ServiceDesc[]> {
    return listServicesOn(this, name);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ready = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    clearInterval(this.sweepTimer);
    for (const w of [...this.watches.values()]) w.stop();
    const err = new DiscoveryError('closed', 'discovery client is closed');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const q of this.queue) q.pending.reject(err);
    this.queue = [];
    const session = this.session;
    this.session = undefined;
    if (session && !session.closed) {
      await new Promise<void>((resolve) => {
        session.once('close', () => resolve());
        session.close('client closed');
      });
    }
  }
}

const TYPES_BY_ID = new Map<number, MessageType<unknown>>(Object.values(M).map((t) => [t.id, t as MessageType<unknown>]));
function typeOf(id: number): MessageType<unknown> {
  const t = TYPES_BY_ID.get(id);
  if (!t) throw new Error(`unknown message id ${id}`);
  return t;
}

const CODES: readonly DiscoveryErrorCode[] = ['unavailable', 'unauthorized', 'bad_request', 'timeout', 'too_large', 'closed', 'internal', 'conflict'];
function toCode(code: string): DiscoveryErrorCode {
  return (CODES as readonly string[]).includes(code) ? (code as DiscoveryErrorCode) : 'internal';
}

export function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

function fromPb(kv: PbKeyValue): KeyValue {
  return { key: kv.key, value: asBytes(kv.value), createRev: kv.create_rev, modRev: kv.mod_rev };
}
