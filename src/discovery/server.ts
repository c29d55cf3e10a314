import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../log/index.js';
import { definedOnly } from '../net/options.js';
import { listenTcp, type TcpListener, type TcpSession } from '../net/tcp.js';
import { asBytes, type MessageType } from '../wire/registry.js';
import { DISCOVERY_PROTOCOL, EVENT_DELETE, EVENT_PUT, M, REGISTRY_NOTICE, type PbKeyValue, type PbEvent, type TxnReq } from './messages.js';
import { DurableOutbox } from './outbox.js';
import { Persistence } from './persist.js';
import { RequestError } from './request-error.js';
import { isSecretKey, NO_TOKEN_SECRET_MESSAGE } from './secrets.js';
import { ServerRegistry } from './server-registry.js';
import { KvStore, type Change, type Mutation } from './store.js';
import { RegistrationConflict, SERVICE_PREFIX, type KeyValue } from './types.js';
import { validateServiceDesc } from './service-desc.js';
import { discoveryServers, retireDiscovery, type DiscoveryCounts } from './metrics.js';

/** Options of the built-in discovery and KV server. */
export interface DiscoveryServerOptions {
  host?: string;
  port?: number;
  /** Snapshot path; the journal is PATH.journal. Without it, data lives in memory only. */
  datafile?: string;
  /** When set, clients must prove they hold it (HMAC challenge). */
  token?: string;
  /** How long a dropped client's services stay registered (ms). */
  graceMs?: number;
  fsync?: boolean;
  compactBytes?: number;
  maxFrame?: number;
  maxValueBytes?: number;
  maxKeyBytes?: number;
  maxWatchesPerClient?: number;
  maxClients?: number;
  handshakeTimeoutMs?: number;
  logger?: Logger;
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 8900,
  graceMs: 3000,
  maxFrame: 16 * 1024 * 1024,
  maxValueBytes: 8 * 1024 * 1024,
  maxKeyBytes: 4096,
  maxWatchesPerClient: 1024,
  maxClients: 10_000,
  handshakeTimeoutMs: 5000,
};

/** Snapshot and list answers are cut into frames of about this many bytes. */
const CHUNK_BYTES = 1024 * 1024;

interface Client {
  readonly session: TcpSession;
  readonly nonce: Buffer;
  name: string;
  /** From Hello: the same for every connection of one client object, so it can take its own registrations back. */
  instance: string;
  authed: boolean;
  readonly watches: Map<number, string>;
  readonly services: Set<string>;
}

export interface DiscoveryServerEvents {
  fatal: [err: Error];
}

/**
 * The built-in discovery and KV server: one event loop, an in-memory store,
 * and a journal. Every answer and watch event that reflects a write is held
 * until that write is on disk, so nothing a client has seen can be lost.
 */
export class DiscoveryServer extends EventEmitter<DiscoveryServerEvents> implements DiscoveryCounts {
  readonly store = new KvStore();
  readonly serverId = randomBytes(8).toString('hex');
  private readonly opts: typeof DEFAULTS & DiscoveryServerOptions;
  private readonly log: Logger;
  private listener: TcpListener | undefined;
  private listenerClosed: Promise<void> | undefined;
  private persistence: Persistence | undefined;
  private readonly clients = new Set<Client>();
  private readonly registry: ServerRegistry;
  private outbox = new DurableOutbox(0);
  private stopping: Promise<void> | undefined;
  /** Requests handled, by message id. */
  readonly ops = new Map<number, number>();
  /** Set when a journal write or fsync failed: nothing more is acknowledged, and the server shuts down. */
  private failed: Error | undefined;

  constructor(options: DiscoveryServerOptions = {}) {
    super();
    this.opts = { ...DEFAULTS, ...definedOnly(options) };
    this.log = options.logger ?? createLogger('discovery');
    this.registry = new ServerRegistry({
      store: this.store,
      log: this.log,
      graceMs: this.opts.graceMs,
      commit: (mutations) => void this.commit(mutations),
      canCommit: () => !this.stopping && !this.failed,
    });
  }

  get address(): { host: string; port: number } {
    if (!this.listener) throw new Error('server is not started');
    return { host: this.listener.host, port: this.listener.port };
  }

  get clientCount(): number {
    return this.clients.size;
  }

  get revision(): number {
    return this.store.revision;
  }

  get watchCount(): number {
    let n = 0;
    for (const c of this.clients) n += c.watches.size;
    return n;
  }

  get serviceCount(): number {
    return this.store.keys(SERVICE_PREFIX).length;
  }

  async start(): Promise<this> {
    if (this.opts.datafile) {
      const { persistence, recovered } = await Persistence.open(this.opts.datafile, {
        fsync: this.opts.fsync,
        compactBytes: this.opts.compactBytes,
        warn: (msg) => this.log.warn(msg),
      });
      for (const kv of recovered.kvs.values()) this.store.restore(kv);
      this.store.setRevision(recovered.revision);
      this.persistence = persistence;
      persistence.snapshotSource = () => ({ revision: this.store.revision, kvs: this.store.all() });
      persistence.onDurable = (rev) => this.outbox.release(rev);
      persistence.onFailure = (err) => this.onJournalFailure(err);
      this.log.info({ datafile: this.opts.datafile, keys: this.store.size, revision: recovered.revision, journalEntries: recovered.journalEntries }, 'recovered');
    }
    this.outbox = new DurableOutbox(this.store.revision);
    // Live services re-register within the grace period.
    this.registry.recover();
    this.listener = await listenTcp(
      {
        host: this.opts.host,
        port: this.opts.port,
        maxFrame: this.opts.maxFrame,
        maxOutbound: 64 * 1024 * 1024,
        maxConnections: this.opts.maxClients,
        idleTimeoutMs: 30_000,
        heartbeatMs: 10_000,
      },
      (session) => this.accept(session),
    );
    this.log.info({ host: this.listener.host, port: this.listener.port, auth: Boolean(this.opts.token), persistent: Boolean(this.persistence) }, 'discovery listening');
    discoveryServers.add(this);
    return this;
  }

  /** Stops accepting, flushes the journal, closes every client. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.registry.stop();
      if (this.persistence) await this.persistence.close();
      // Whatever the journal could not make durable is never sent: close() released the rest.
      this.outbox.drop();
      await this.closeListener();
      retireDiscovery(this);
      this.log.info('discovery stopped');
    })();
    return this.stopping;
  }

  private accept(session: TcpSession): void {
    const client: Client = { session, nonce: randomBytes(16), name: '', instance: '', authed: false, watches: new Map(), services: new Set() };
    this.clients.add(client);
    const handshake = setTimeout(() => {
      if (!client.authed) this.fail(client, 0, 'bad_request', 'no Hello within the handshake timeout');
    }, this.opts.handshakeTimeoutMs);
    handshake.unref();
    session.on('frame', (msgId, seq, body) => {
      try {
        this.onFrame(client, msgId, seq, body);
      } catch (err) {
        if (err instanceof RegistrationConflict) this.sendError(client, seq, 'conflict', err.message, err.retryAfterMs);
        else if (err instanceof RequestError) this.sendError(client, seq, err.code, err.message);
        else this.fail(client, seq, 'bad_request', `malformed ${msgName(msgId)}: ${(err as Error).message}`);
      }
    });
    session.once('close', (reason) => {
      clearTimeout(handshake);
      this.clients.delete(client);
      this.log.debug({ client: client.name, remote: session.remoteAddress, reason }, 'client closed');
      this.registry.ownerGone(client);
    });
    session.send(M.Challenge.id, 0, M.Challenge.encode({ nonce: client.nonce, protocol: DISCOVERY_PROTOCOL }));
  }

  /** Closes one bad client, with a logged reason and an Error frame first. */
  private fail(client: Client, seq: number, code: string, message: string): void {
    this.log.warn({ client: client.name, remote: client.session.remoteAddress, code }, `closing client: ${message}`);
    client.session.send(M.Error.id, seq, M.Error.encode({ code, message }));
    client.session.close(message);
  }

  private onFrame(client: Client, msgId: number, seq: number, body: Buffer): void {
    // Only the protocol's own range: a hostile client's made-up ids must not grow the map.
    if (msgId >= 100 && msgId < 200) this.ops.set(msgId, (this.ops.get(msgId) ?? 0) + 1);
    if (!client.authed) {
      if (msgId !== M.Hello.id) return this.fail(client, seq, 'bad_request', `expected Hello, got ${msgName(msgId)}`);
      return this.onHello(client, seq, body);
    }
    switch (msgId) {
      case M.GetReq.id: {
        const { key } = M.GetReq.decode(body);
        this.checkSecret(key);
        const kv = this.store.get(key);
        return this.reply(client, M.GetResp, seq, { found: kv !== undefined, kv: kv ? toPb(kv) : null, revision: this.store.revision });
      }
      case M.ListReq.id: {
        const { prefix } = M.ListReq.decode(body);
        return this.sendChunked(client, this.visible(this.store.list(prefix)), (kvs, more) => this.reply(client, M.ListResp, seq, { kvs, revision: this.store.revision, more }));
      }
      case M.PutReq.id: {
        const req = M.PutReq.decode(body);
        const key = req.key;
        const value = asBytes(req.value);
        this.checkKey(key);
        this.checkValue(value);
        this.checkSecret(key);
        this.commit([{ key, value }]);
        return this.reply(client, M.PutResp, seq, { revision: this.store.revision });
      }
      case M.DeleteReq.id: {
        const req = M.DeleteReq.decode(body);
        const keys = req.prefix ? this.store.keys(req.key) : this.store.get(req.key) ? [req.key] : [];
        const changes = this.commit(keys.map((key) => ({ key, delete: true })));
        return this.reply(client, M.DeleteResp, seq, { deleted: changes.length, revision: this.store.revision });
      }
      case M.TxnReq.id:
        return this.onTxn(client, seq, M.TxnReq.decode(body));
      case M.WatchReq.id:
        return this.onWatch(client, seq, M.WatchReq.decode(body));
      case M.CancelWatchReq.id: {
        client.watches.delete(M.CancelWatchReq.decode(body).watch_id);
        return this.reply(client, M.OkResp, seq, { revision: this.store.revision });
      }
      case M.RegisterReq.id:
        return this.onRegister(client, seq, M.RegisterReq.decode(body).desc);
      case M.DeregisterReq.id: {
        const { name, id } = M.DeregisterReq.decode(body);
        this.checkWritable();
        this.registry.deregister(client, name, id);
        return this.reply(client, M.OkResp, seq, { revision: this.store.revision });
      }
      default:
        return this.fail(client, seq, 'bad_request', `unknown message id ${msgId}`);
    }
  }

  private onHello(client: Client, seq: number, body: Buffer): void {
    const hello = M.Hello.decode(body);
    if (hello.protocol !== DISCOVERY_PROTOCOL) {
      return this.fail(client, seq, 'bad_request', `protocol ${hello.protocol} is not supported (server speaks ${DISCOVERY_PROTOCOL})`);
    }
    if (this.opts.token) {
      const expected = createHmac('sha256', this.opts.token).update(client.nonce).digest();
      const proof = Buffer.from(hello.proof);
      if (proof.length !== expected.length || !timingSafeEqual(proof, expected)) {
        return this.fail(client, seq, 'unauthorized', proof.length === 0 ? 'this server requires a token' : 'wrong token');
      }
    }
    client.authed = true;
    client.name = hello.name.slice(0, 128);
    client.instance = hello.instance ? hello.instance.slice(0, 64) : randomBytes(8).toString('hex');
    this.reply(client, M.HelloAck, seq, { revision: this.store.revision, server_id: this.serverId });
  }

  private onTxn(client: Client, seq: number, req: TxnReq): void {
    for (const c of req.compares) this.checkSecret(c.key);
    for (const op of req.ops) if (!op.delete) this.checkSecret(op.key);
    const ok = req.compares.every((c) => (this.store.get(c.key)?.modRev ?? 0) === c.mod_rev);
    if (!ok) return this.reply(client, M.TxnResp, seq, { succeeded: false, revision: this.store.revision });
    const mutations: Mutation[] = [];
    // Later ops see earlier ones: a delete after a put of the same key wins.
    const state = new Map<string, boolean>();
    const exists = (key: string) => state.get(key) ?? this.store.get(key) !== undefined;
    for (const op of req.ops) {
      if (op.delete) {
        const keys = op.prefix ? [...new Set([...this.store.keys(op.key), ...[...state.keys()].filter((k) => k.startsWith(op.key))])] : [op.key];
        for (const key of keys) {
          if (exists(key)) mutations.push({ key, delete: true });
          state.set(key, false);
        }
      } else {
        this.checkKey(op.key);
        const value = asBytes(op.value);
        this.checkValue(value);
        mutations.push({ key: op.key, value });
        state.set(op.key, true);
      }
    }
    this.commit(collapse(mutations));
    this.reply(client, M.TxnResp, seq, { succeeded: true, revision: this.store.revision });
  }

  private onWatch(client: Client, seq: number, req: { watch_id: number; prefix: string }): void {
    if (client.watches.has(req.watch_id)) throw new RequestError('bad_request', `watch id ${req.watch_id} is already in use`);
    if (client.watches.size >= this.opts.maxWatchesPerClient) throw new RequestError('bad_request', `more than ${this.opts.maxWatchesPerClient} watches`);
    client.watches.set(req.watch_id, req.prefix);
    // Single-threaded: the snapshot and the registration happen at one
    // revision, so events after it are exactly those above the snapshot.
    const revision = this.store.revision;
    this.sendChunked(client, this.visible(this.store.list(req.prefix)), (kvs, more) => this.reply(client, M.WatchResp, seq, { watch_id: req.watch_id, kvs, revision, more }));
  }

  private onRegister(client: Client, seq: number, pb: unknown): void {
    const desc = validateServiceDesc(pb);
    if (typeof desc === 'string') throw new RequestError('bad_request', desc);
    this.checkWritable();
    this.registry.register(client, desc);
    this.reply(client, M.OkResp, seq, { revision: this.store.revision });
  }

  /**
   * A journal write or fsync failed. The write it carried (and any after it)
   * was never acknowledged and never will be: what waits in the outbox is
   * dropped, every client is disconnected, and the server stops, so that a
   * restart serves exactly what is on disk (docs/protocol.md, Durability).
   */
  private onJournalFailure(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.log.fatal({ err, durable: this.outbox.durableRevision, revision: this.store.revision }, 'journal write failed; acknowledging nothing more and shutting down');
    this.outbox.drop();
    const message = `the discovery journal failed (${err.message}); the server is shutting down`;
    for (const client of this.clients) {
      client.session.send(M.Error.id, 0, M.Error.encode({ code: 'unavailable', message }));
      client.session.close(message);
    }
    void this.closeListener();
    this.emit('fatal', err);
  }

  private closeListener(): Promise<void> {
    this.listenerClosed ??= this.listener?.close() ?? Promise.resolve();
    return this.listenerClosed;
  }

  private checkWritable(): void {
    if (this.stopping) throw new RequestError('unavailable', 'server is shutting down');
    if (this.failed) throw new RequestError('unavailable', `the journal failed (${this.failed.message}); this server accepts no more writes`);
  }

  private commit(mutations: Mutation[]): Change[] {
    this.checkWritable();
    const changes = this.store.commit(mutations);
    if (changes.length === 0) return changes;
    const revision = this.store.revision;
    this.persistence?.append({
      revision,
      mutations: changes.map((c) => (c.kv ? { key: c.key, value: c.kv.value, create_rev: c.kv.createRev } : { key: c.key, delete: true })),
    });
    if (!this.persistence) this.outbox.release(revision);
    this.notify(changes);
    return changes;
  }

  private notify(changes: Change[]): void {
    for (const c of changes) {
      if (c.type !== 'delete' || !c.key.startsWith(SERVICE_PREFIX)) continue;
      // Watch id 0 is the registry notice: "your registration was deleted"; the owner registers it again.
      const owner = this.registry.deletedByOther(c.key) as Client | undefined;
      if (owner) this.reply(owner, M.WatchEvent, 0, { watch_id: REGISTRY_NOTICE, events: [{ type: EVENT_DELETE, kv: { key: c.key, value: new Uint8Array(0), create_rev: 0, mod_rev: c.revision } }] });
    }
    for (const client of this.clients) {
      for (const [watchId, prefix] of client.watches) {
        let events: PbEvent[] | undefined;
        for (const c of changes) {
          if (!c.key.startsWith(prefix) || (!this.opts.token && isSecretKey(c.key))) continue;
          (events ??= []).push(
            c.kv ? { type: EVENT_PUT, kv: toPb(c.kv) } : { type: EVENT_DELETE, kv: { key: c.key, value: new Uint8Array(0), create_rev: 0, mod_rev: c.revision } },
          );
        }
        if (events) this.reply(client, M.WatchEvent, 0, { watch_id: watchId, events });
      }
    }
  }

  private sendChunked(client: Client, kvs: KeyValue[], send: (kvs: PbKeyValue[], more: boolean) => void): void {
    let chunk: PbKeyValue[] = [];
    let bytes = 0;
    for (const kv of kvs) {
      if (chunk.length > 0 && bytes + kv.value.length + kv.key.length > CHUNK_BYTES) {
        send(chunk, true);
        chunk = [];
        bytes = 0;
      }
      chunk.push(toPb(kv));
      bytes += kv.value.length + kv.key.length + 32;
    }
    send(chunk, false);
  }

  /** Sends now if the store holds nothing undurable, else once the journal catches up. */
  private reply<T>(client: Client, type: MessageType<T>, seq: number, msg: T): void {
    this.outbox.send(this.store.revision, client.session, type.id, seq, type.encode(msg));
  }

  private sendError(client: Client, seq: number, code: string, message: string, retryMs?: number): void {
    this.reply(client, M.Error, seq, { code, message, retry_ms: retryMs ?? 0 });
  }

  /**
   * With a token, every client has proved it holds it, so secrets are theirs
   * to read. Without one, nobody has: secret keys are neither served nor stored.
   */
  private checkSecret(key: string): void {
    if (!this.opts.token && isSecretKey(key)) throw new RequestError('unauthorized', `${key} ${NO_TOKEN_SECRET_MESSAGE}`);
  }

  private visible(kvs: KeyValue[]): KeyValue[] {
    return this.opts.token ? kvs : kvs.filter((kv) => !isSecretKey(kv.key));
  }

  private checkKey(key: string): void {
    if (key.length === 0) throw new RequestError('bad_request', 'key must not be empty');
    if (Buffer.byteLength(key) > this.opts.maxKeyBytes) throw new RequestError('too_large', `key is over ${this.opts.maxKeyBytes} bytes`);
  }

  private checkValue(value: Uint8Array): void {
    if (value.length > this.opts.maxValueBytes) throw new RequestError('too_large', `value of ${value.length} bytes is over the limit of ${this.opts.maxValueBytes}`);
  }
}

/** Keeps the last mutation per key, in first-seen order. */
function collapse(mutations: Mutation[]): Mutation[] {
  const last = new Map<string, Mutation>();
  for (const m of mutations) {
    last.delete(m.key);
    last.set(m.key, m);
  }
  return [...last.values()];
}

function toPb(kv: KeyValue): PbKeyValue {
  return { key: kv.key, value: kv.value, create_rev: kv.createRev, mod_rev: kv.modRev };
}

function msgName(id: number): string {
  for (const t of Object.values(M)) if (t.id === id) return t.name.replace('gamemesh.discovery.', '');
  return `message ${id}`;
}
