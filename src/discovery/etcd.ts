import { EventEmitter } from 'node:events';
import { CompareResult, CompareTarget, Etcd3, type IKeyValue, type IOptions, type IRequestOp, type Watcher } from 'etcd3';
import type { DiscoveryClientEvents } from './client.js';
import { LeaseRegistry } from './etcd-registry.js';
import { backoffMs, etcdClientOptions, neverSent, oneLine, prefixRange, toBuffer, toDiscoveryError, type EtcdTlsOptions } from './etcd-support.js';
import { EtcdPrefixWatch, type WatchHost } from './etcd-watch.js';
import { RegistrationGuard } from './registration-guard.js';
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

export type { EtcdTlsOptions } from './etcd-support.js';

/** How the etcd backend connects: endpoints, prefix, lease TTL, TLS and credentials (docs/etcd.md). */
export interface EtcdDiscoveryOptions {
  /** `host:port` of each etcd member (an `http://` or `https://` scheme is accepted). */
  endpoints: readonly string[];
  /** Every key lives under this etcd key prefix, stripped on the way out. Default `gamemesh/`. */
  prefix?: string;
  /** TTL of the lease that holds this client's registrations (s). Default 10; etcd's minimum is about 2. */
  leaseTtlSec?: number;
  /** etcd user and password (etcd `auth enable`). */
  auth?: { username: string; password: string };
  /** TLS to the members: PEM contents, or `true` for TLS with the system's CA roots. */
  tls?: EtcdTlsOptions | boolean;
  /** Shown in errors only; etcd has no notion of client names. */
  name?: string;
  /** Deadline of each etcd call (ms). Default 10000. */
  requestTimeoutMs?: number;
  /** How long `connect` keeps trying to reach etcd (ms). Default 5000. */
  connectTimeoutMs?: number;
  /** Reject `connect` on the first failed attempt instead of retrying until connectTimeoutMs (CLI use). */
  failFast?: boolean;
  /** Passed to the etcd3 client as they are, over what the options above produce. */
  etcd?: Partial<IOptions>;
}

const DEFAULT_PREFIX = 'gamemesh/';
const PAGE = 1000;
const MAX_KEY_BYTES = 4096;

/**
 * The Discovery interface on an etcd v3 cluster, so services, the gateway and
 * the CLI run unchanged on it. KV maps to etcd keys under a prefix, revisions
 * are etcd's create/mod revisions, transactions are etcd transactions with
 * mod-revision compares, and registrations are keys bound to a lease.
 */
export class EtcdDiscovery extends EventEmitter<DiscoveryClientEvents> implements Discovery {
  private readonly etcd: Etcd3;
  private readonly prefix: Buffer;
  private readonly registry: LeaseRegistry;
  private readonly guard: RegistrationGuard;
  private readonly watches = new Set<EtcdPrefixWatch>();
  private readonly watchHost: WatchHost;
  private readonly opts: { endpoints: readonly string[]; requestTimeoutMs: number; connectTimeoutMs: number; failFast: boolean };
  private up = false;
  private everUp = false;
  private closed = false;
  private probeTimer: NodeJS.Timeout | undefined;
  /** etcd member that answered last (hex), for logs. */
  serverId = '';

  private constructor(options: EtcdDiscoveryOptions) {
    super();
    // An 'error' with no listener would throw; errors are also surfaced per request.
    this.on('error', () => {});
    this.opts = {
      endpoints: options.endpoints,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      failFast: options.failFast ?? false,
    };
    const ttl = options.leaseTtlSec ?? 10;
    if (!Number.isInteger(ttl) || ttl < 1) throw new DiscoveryError('bad_request', `lease TTL must be a whole number of seconds >= 1, got ${ttl}`);
    this.prefix = Buffer.from(options.prefix ?? DEFAULT_PREFIX, 'utf8');
    this.etcd = new Etcd3(etcdClientOptions({ endpoints: options.endpoints, tls: options.tls, auth: options.auth, requestTimeoutMs: this.opts.requestTimeoutMs, etcd: options.etcd }));
    this.registry = new LeaseRegistry(this.etcd, ttl, {
      claims: {
        // Reads and compare-guarded writes: a retry after a lost answer only repeats a no-op or fails a compare.
        txn: (req) => this.call((o) => this.etcd.kv.txn(req, o)),
        leaseTtl: async (id) => Number((await this.call((o) => this.etcd.leaseClient.leaseTimeToLive({ ID: id }, o))).TTL),
        fullKey: (key) => this.fullKey(key),
      },
      onDown: (reason) => this.markDown(reason),
      onUp: () => this.markUp(),
      onError: (err) => this.emit('error', err),
      onConflict: (err, desc) => this.onConflict(err, desc),
    });
    this.guard = new RegistrationGuard({
      watch: (prefix, opts) => this.watch(prefix, opts),
      registered: (key) => this.registry.registered(key),
      register: (desc) => this.register(desc),
      onError: (err, desc) => (err instanceof RegistrationConflict ? this.onConflict(err, desc) : this.emit('error', err)),
    });
    this.watchHost = {
      snapshot: (prefix) => this.range(prefix),
      openWatcher: (prefix, from) => this.openWatcher(prefix, from),
      toKeyValue: (kv) => this.toKeyValue(kv),
      userKey: (key) => this.userKey(key),
      onDown: (reason) => this.markDown(reason),
      onUp: () => this.markUp(),
    };
  }

  /** Resolves once etcd answered (and accepted the credentials). */
  static async connect(options: EtcdDiscoveryOptions): Promise<EtcdDiscovery> {
    const d = new EtcdDiscovery(options);
    const deadline = Date.now() + d.opts.connectTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await d.probe(Math.max(1, Math.min(d.opts.requestTimeoutMs, deadline - Date.now())));
        return d;
      } catch (err) {
        const e = toDiscoveryError(err);
        const retriable = e.code === 'unavailable' || e.code === 'timeout';
        if (!retriable || d.opts.failFast || Date.now() + 100 >= deadline) {
          await d.close();
          if (!retriable) throw new DiscoveryError(e.code, `etcd at ${d.opts.endpoints.join(',')}: ${e.message.replace(/^etcd: /, '')}`);
          const tried = d.opts.failFast ? '' : ` within ${d.opts.connectTimeoutMs} ms`;
          throw new DiscoveryError('unavailable', `cannot reach etcd at ${d.opts.endpoints.join(',')}${tried}: ${e.message.replace(/^etcd is unavailable: /, '')}`);
        }
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** Math.min(attempt, 4), 1000)));
      }
    }
  }

  get connected(): boolean {
    return this.up && !this.closed;
  }

  // ---- plumbing -------------------------------------------------------

  /**
   * Runs one etcd call: maps errors onto DiscoveryError and follows
   * reachability. While etcd is unreachable and the request surely was not
   * sent, it is tried again until the request timeout, so a short outage (a
   * member restarting) delays calls instead of failing them, as the built-in
   * client's queue does. A request that may have been applied is not repeated.
   */
  private async call<T>(fn: (options: { deadline: number }) => Promise<T>, retry = true): Promise<T> {
    const deadline = Date.now() + this.opts.requestTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new DiscoveryError('closed', 'discovery client is closed');
      try {
        const res = await fn({ deadline });
        this.markUp();
        return res;
      } catch (err) {
        const e = toDiscoveryError(err);
        if (e.code === 'unavailable') this.markDown(e.message);
        const wait = backoffMs(attempt, 50, 500);
        if (!retry || !neverSent(err) || Date.now() + wait >= deadline) throw e;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private async probe(timeoutMs: number): Promise<void> {
    const res = await this.call(() => this.etcd.kv.range({ ...prefixRange(this.prefix), limit: 1, keys_only: true }, { deadline: Date.now() + timeoutMs }), false);
    this.serverId = BigInt(res.header.member_id).toString(16);
  }

  private markUp(): void {
    if (this.closed || this.up) return;
    this.up = true;
    const reconnect = this.everUp;
    this.everUp = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    // etcd answers again: watches and the registry waiting out a backoff catch up now.
    for (const w of this.watches) w.kick();
    this.registry.kick();
    this.emit('connected', { serverId: this.serverId, revision: 0, reconnect });
  }

  /** Marks etcd unreachable and polls it until it answers, so `connected` recovers without traffic. */
  private markDown(reason: string): void {
    if (this.closed) return;
    if (this.up) {
      this.up = false;
      this.emit('disconnected', reason);
    }
    if (this.probeTimer || !this.everUp) return;
    let probing = false;
    this.probeTimer = setInterval(() => {
      if (probing) return;
      probing = true;
      this.probe(this.opts.requestTimeoutMs)
        .catch(() => {})
        .finally(() => (probing = false));
    }, 250);
    this.probeTimer.unref();
  }

  private fullKey(key: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(key, 'utf8')]);
  }

  private userKey(key: Buffer): string {
    return key.subarray(this.prefix.length).toString('utf8');
  }

  private toKeyValue(kv: IKeyValue): KeyValue {
    return { key: this.userKey(kv.key), value: kv.value, createRev: Number(kv.create_revision), modRev: Number(kv.mod_revision) };
  }

  private checkKey(key: string): void {
    if (typeof key !== 'string' || key.length === 0) throw new DiscoveryError('bad_request', 'key must not be empty');
    if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new DiscoveryError('too_large', `key is over ${MAX_KEY_BYTES} bytes`);
  }

  /** Everything under `prefix` at one revision, read in pages pinned to that revision. */
  private async range(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const { key, range_end } = prefixRange(this.fullKey(prefix));
    const kvs: KeyValue[] = [];
    let from = key;
    let revision = 0;
    while (true) {
      const res = await this.call((o) => this.etcd.kv.range({ key: from, range_end, limit: PAGE, ...(revision ? { revision } : {}) }, o));
      if (!revision) revision = Number(res.header.revision);
      for (const kv of res.kvs) kvs.push(this.toKeyValue(kv));
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) return { kvs, revision };
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  private openWatcher(prefix: string, fromRevision: number): Watcher {
    const { key, range_end } = prefixRange(this.fullKey(prefix));
    return this.etcd.watch().inRange({ start: key, end: range_end }).startRevision(String(fromRevision)).watcher();
  }

  // ---- KV -------------------------------------------------------------

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.call((o) => this.etcd.kv.range({ key: this.fullKey(key) }, o));
    const kv = res.kvs[0];
    return kv ? this.toKeyValue(kv) : undefined;
  }

  async list(prefix: string): Promise<KeyValue[]> {
    return (await this.range(prefix)).kvs;
  }

  async put(key: string, value: Uint8Array | string): Promise<number> {
    this.checkKey(key);
    const res = await this.call((o) => this.etcd.kv.put({ key: this.fullKey(key), value: toBuffer(value) }, o));
    return Number(res.header.revision);
  }

  async delete(key: string): Promise<number> {
    const res = await this.call((o) => this.etcd.kv.deleteRange({ key: this.fullKey(key) }, o));
    return Number(res.deleted);
  }

  async deletePrefix(prefix: string): Promise<number> {
    const res = await this.call((o) => this.etcd.kv.deleteRange(prefixRange(this.fullKey(prefix)), o));
    return Number(res.deleted);
  }

  /** Range deletes in one transaction around the registry's two prefixes (`_claim/` sorts before `_svc/`). */
  async clear(): Promise<number> {
    const all = prefixRange(this.prefix);
    const claims = prefixRange(this.fullKey(CLAIM_PREFIX));
    const svc = prefixRange(this.fullKey(SERVICE_PREFIX));
    const gaps: Array<[Buffer, Buffer]> = [
      [all.key, claims.key],
      [claims.range_end, svc.key],
      [svc.range_end, all.range_end],
    ];
    const success = gaps.map(([key, range_end]) => ({ request_delete_range: { key, range_end } }));
    const res = await this.call((o) => this.etcd.kv.txn({ compare: [], success, failure: [] }, o));
    return res.responses.reduce((n, r) => n + Number(r.response_delete_range?.deleted ?? 0), 0);
  }

  async txn(compares: readonly Compare[], ops: readonly TxnOp[]): Promise<TxnResult> {
    for (const c of compares) this.checkKey(c.key);
    const success: IRequestOp[] = ops.map((op) => {
      if (op.type === 'put') {
        this.checkKey(op.key);
        return { request_put: { key: this.fullKey(op.key), value: toBuffer(op.value) } };
      }
      return { request_delete_range: op.prefix ? prefixRange(this.fullKey(op.key)) : { key: this.fullKey(op.key) } };
    });
    // A missing key has mod_revision 0 in etcd's compares, so `modRev: 0` reads "must not exist".
    const compare = compares.map((c) => ({ key: this.fullKey(c.key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: c.modRev }));
    const res = await this.call((o) => this.etcd.kv.txn({ compare, success, failure: [] }, o));
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  // ---- watches and cache ----------------------------------------------

  async watch(prefix: string, options: WatchOptions<KvEvent> = {}): Promise<Watch> {
    if (this.closed) throw new DiscoveryError('closed', 'discovery client is closed');
    const w = new EtcdPrefixWatch(this.watchHost, prefix, options, (stopped) => this.watches.delete(stopped));
    this.watches.add(w);
    await w.start();
    return w.state;
  }

  cached(key: string): KeyValue | undefined {
    let best: EtcdPrefixWatch | undefined;
    for (const w of this.watches) {
      if (key.startsWith(w.prefix) && (!best || w.prefix.length > best.prefix.length)) best = w;
    }
    return best?.state.get(key);
  }

  // ---- service registry -----------------------------------------------

  async register(desc: ServiceDesc): Promise<void> {
    const valid = validateServiceDesc(desc);
    if (typeof valid === 'string') throw new DiscoveryError('bad_request', valid);
    if (this.closed) throw new DiscoveryError('closed', 'discovery client is closed');
    try {
      await this.registry.register(valid);
    } catch (err) {
      const e = toDiscoveryError(err);
      if (e.code === 'unavailable') this.markDown(e.message);
      throw e;
    }
    this.guard.follow(serviceKey(valid.name, valid.id));
  }

  async deregister(name: string, id: string): Promise<void> {
    if (this.closed) throw new DiscoveryError('closed', 'discovery client is closed');
    this.guard.unfollow(serviceKey(name, id));
    await this.registry.deregister(name, id);
  }

  private onConflict(err: RegistrationConflict, desc: ServiceDesc): void {
    this.guard.unfollow(serviceKey(desc.name, desc.id));
    this.emit('conflict', err, desc);
  }

  watchServices(name?: string, options: WatchOptions<ServiceEvent> = {}): Promise<ServiceWatch> {
    return watchServicesOn(this, name, options);
  }

  listServices(name?: string): Promise<ServiceDesc[]> {
    return listServicesOn(this, name);
  }

  /** Does not revoke the lease: this client's services go away when it expires. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.guard.close();
    this.registry.close();
    const cancels = [...this.watches].map((w) => w.dispose());
    for (const w of [...this.watches]) w.state.stop();
    this.closed = true;
    this.up = false;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(cancels), new Promise((r) => (timer = setTimeout(r, 200)))]);
    clearTimeout(timer);
    try {
      this.etcd.close();
    } catch (err) {
      this.emit('error', new DiscoveryError('internal', `closing the etcd client: ${oneLine((err as Error).message)}`));
    }
  }
}
