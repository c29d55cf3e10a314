import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../log/index.js';
import { definedOnly } from '../net/options.js';
import { listenTcp, type TcpListener, type TcpSession } from '../net/tcp.js';
import { asBytes, type MessageType } from '../wire/registry.js';
import { DISCOVERY_PROTOCOL, EVENT_DELETE, EVENT_PUT, M, type PbKeyValue, type PbEvent, type TxnReq } from './messages.js';
import { DurableOutbox } from './outbox.js';
import { Persistence } from './persist.js';
import { KvStore, type Change, type Mutation } from './store.js';
import { SERVICE_PREFIX, serviceKey, type KeyValue } from './types.js';
import { encodeServiceDesc, validateServiceDesc } from './service-desc.js';
import { discoveryServers, retireDiscovery, type DiscoveryCounts } from './metrics.js';

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

class RequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Client {
  readonly session: TcpSession;
  readonly nonce: Buffer;
  name: string;
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
  private persistence: Persistence | undefined;
  private readonly clients = new Set<Client>();
  private readonly owners = new Map<string, Client>();
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private outbox = new DurableOutbox(0);
  private stopping: Promise<void> | undefined;
  /** Requests handled, by message id. */
  readonly ops = new Map<number, number>();

  constructor(options: DiscoveryServerOptions = {}) {
    super();
    this.opts = { ...DEFAULTS, ...definedOnly(options) };
    this.log = options.logger ?? createLogger('discovery');
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
      persistence.onFailure = (err) => {
        this.log.fatal({ err }, 'journal write failed; refusing to acknowledge more writes');
        this.emit('fatal', err);
      };
      this.log.info({ datafile: this.opts.datafile, keys: this.store.size, revision: recovered.revision, journalEntries: recovered.journalEntries }, 'recovered');
    }
    this.outbox = new DurableOutbox(this.store.revision);
    // Registrations that outlived their owners' connections get the same
    // grace as a dropped client: live services re-register within it.
    for (const key of this.store.keys(SERVICE_PREFIX)) this.startGrace(key);
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
      for (const t of this.graceTimers.values()) clearTimeout(t);
      this.graceTimers.clear();
      if (this.persistence) await this.persistence.close();
      this.outbox.release(this.store.revision);
      await this.listener?.close();
      retireDiscovery(this);
      this.log.info('discovery stopped');
    })();
    return this.stopping;
  }

  private accept(session: TcpSession): void {
    const client: Client = { session, nonce: randomBytes(16), name: '', authed: false, watches: new Map(), services: new Set() };
    this.clients.add(client);
    const handshake = setTimeout(() => {
      if (!client.authed) this.fail(client, 0, 'bad_request', 'no Hello within the handshake timeout');
    }, this.opts.handshakeTimeoutMs);
    handshake.unref();
    session.on('frame', (msgId, seq, body) => {
      try {
        this.onFrame(client, msgId, seq, body);
      } catch (err) {
        if (err instanceof RequestError) this.sendError(client, seq, err.code, err.message);
        else this.fail(client, seq, 'bad_request', `malformed ${msgName(msgId)}: ${(err as Error).message}`);
      }
    });
    session.once('close', (reason) => {
      clearTimeout(handshake);
      this.clients.delete(client);
      this.log.debug({ client: client.name, remote: session.remoteAddress, reason }, 'client closed');
      for (const key of client.services) {
        if (this.owners.get(key) === client) {
          this.owners.delete(key);
          this.startGrace(key);
        }
      }
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
        const kv = this.store.get(key);
        return this.reply(client, M.GetResp, seq, { found: kv !== undefined, kv: kv ? toPb(kv) : null, revision: this.store.revision });
      }
      case M.ListReq.id: {
        const { prefix } = M.ListReq.decode(body);
        return this.sendChunked(client, this.store.list(prefix), (kvs, more) => this.reply(client, M.ListResp, seq, { kvs, revision: this.store.revision, more }));
      }
      case M.PutReq.id: {
        const req = M.PutReq.decode(body);
        const key = req.key;
        const value = asBytes(req.value);
        this.checkKey(key);
        this.checkValue(value);
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
        const key = serviceKey(name, id);
        const owner = this.owners.get(key);
        if (owner && owner !== client) throw new RequestError('bad_request', `service ${id} is registered by another live client`);
        this.owners.delete(key);
        client.services.delete(key);
        this.cancelGrace(key);
        this.commit([{ key, delete: true }]);
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
    this.reply(client, M.HelloAck, seq, { revision: this.store.revision, server_id: this.serverId });
  }

  private onTxn(client: Client, seq: number, req: TxnReq): void {
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
    this.sendChunked(client, this.store.list(req.prefix), (kvs, more) => this.reply(client, M.WatchResp, seq, { watch_id: req.watch_id, kvs, revision, more }));
  }

  private onRegister(client: Client, seq: number, pb: unknown): void {
    const desc = validateServiceDesc(pb);
    if (typeof desc === 'string') throw new RequestError('bad_request', desc);
    const key = serviceKey(desc.name, desc.id);
    const value = encodeServiceDesc(desc);
    const old = this.owners.get(key);
    if (old && old !== client) old.services.delete(key);
    this.owners.set(key, client);
    client.services.add(key);
    this.cancelGrace(key);
    const existing = this.store.get(key);
    // An identical re-registration (after a reconnect) is not a change.
    if (!existing || !Buffer.from(existing.value).equals(value)) this.commit([{ key, value }]);
    this.reply(client, M.OkResp, seq, { revision: this.store.revision });
  }

  private startGrace(key: string): void {
    this.cancelGrace(key);
    // On shutdown, registrations stay in the store: the next start grants them a new grace.
    if (this.stopping) return;
    const timer = setTimeout(() => {
      this.graceTimers.delete(key);
      // Checked again here: without a journal to flush, stop() closes the
      // sessions (which start grace timers) before `stopping` is assigned,
      // and commit() would then throw from this timer, uncaught.
      if (this.stopping || this.owners.has(key)) return;
      this.log.info({ key }, 'service owner gone; removing registration');
      this.commit([{ key, delete: true }]);
    }, this.opts.graceMs);
    timer.unref();
    this.graceTimers.set(key, timer);
  }

  private cancelGrace(key: string): void {
    const t = this.graceTimers.get(key);
    if (t) {
      clearTimeout(t);
      this.graceTimers.delete(key);
    }
  }

  private commit(mutations: Mutation[]): Change[] {
    if (this.stopping) throw new RequestError('unavailable', 'server is shutting down');
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
    for (const client of this.clients) {
      for (const [watchId, prefix] of client.watches) {
        let events: PbEvent[] | undefined;
        for (const c of changes) {
          if (!c.key.startsWith(prefix)) continue;
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

  private sendError(client: Client, seq: number, code: string, message: string): void {
    this.reply(client, M.Error, seq, { code, message });
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
