/**
 * What the dashboard knows of the cluster, kept live: every registered
 * service (from the registry), what each one's admin port says (links,
 * memory, clients, calls per second), node flags from the KV
 * (`config/nodes/<id>`, read as the runtime reads them: node-state.ts),
 * the route table, and a log of registry changes. Changes are announced
 * with `onChange`; the HTTP side throttles them into server-sent events.
 */
import type { Discovery, KvEvent, ServiceDesc, ServiceEvent, ServiceWatch, Watch } from '../discovery/types.js';
import { NODE_STATE_PREFIX, parseNodeState } from '../discovery/node-state.js';
import { RouteTable, type Route } from '../gateway/routes.js';
import type { Logger } from '../log/index.js';
import { AdminPoller, type Load } from './poll.js';

export interface ServiceView {
  readonly id: string;
  readonly name: string;
  /** host:port of the link listener. */
  readonly address: string;
  /** Logical address cluster.type.index. */
  readonly addr: string;
  readonly group: string;
  /** From the registration (issue 13 adds it); '' when not given. */
  readonly version: string;
  /** The registration's state, else the admin port's, else 'registered'. */
  readonly state: string;
  /** The node's `available` flag at config/nodes/<id> (src/discovery/node-state.ts): true unless an operator set it false. */
  readonly available: boolean;
  readonly admin: string;
  readonly meta: Readonly<Record<string, string>>;
  readonly load: Load | undefined;
}

export interface LogEntry {
  readonly at: number;
  readonly kind: 'join' | 'leave' | 'change';
  readonly id: string;
  readonly text: string;
}

export interface ClusterState {
  readonly sdaddr: string;
  readonly connected: boolean;
  readonly services: readonly ServiceView[];
  readonly links: ReadonlyArray<readonly [string, string]>;
  readonly routes: readonly Route[];
  readonly routesError: string | undefined;
  readonly log: readonly LogEntry[];
  readonly updatedAt: number;
}

const LOG_MAX = 200;
export const NODES_PREFIX = NODE_STATE_PREFIX;
export const ROUTES_KV_KEY = 'config/gateway/routes';

export class ClusterModel {
  private services: ServiceWatch | undefined;
  private kv: Watch | undefined;
  private readonly log: LogEntry[] = [];
  private readonly listeners = new Set<(what: 'state' | 'kv', keys?: readonly string[]) => void>();
  private readonly poller: AdminPoller;

  constructor(
    private readonly disco: Discovery,
    private readonly sdaddr: string,
    token: string | undefined,
    private readonly logger: Logger,
    pollMs = 2000,
  ) {
    this.poller = new AdminPoller(token, pollMs, () => this.changed('state'), logger);
  }

  async start(): Promise<this> {
    this.services = await this.disco.watchServices(undefined, { onEvent: (ev) => this.onService(ev) });
    this.kv = await this.disco.watch('', { onEvent: (ev) => this.onKv(ev) });
    for (const d of this.services.list()) this.record('join', d.id, `${d.id} at ${d.host}:${d.port} (registered before the dashboard started)`);
    this.poller.set(this.services.list());
    return this;
  }

  stop(): void {
    this.services?.stop();
    this.kv?.stop();
    this.poller.stop();
  }

  onChange(fn: (what: 'state' | 'kv', keys?: readonly string[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(what: 'state' | 'kv', keys?: readonly string[]): void {
    for (const fn of this.listeners) fn(what, keys);
  }

  /** The KV cache (the dashboard watches everything). */
  get store(): Watch {
    if (!this.kv) throw new Error('the dashboard model is not started');
    return this.kv;
  }

  private onService(ev: ServiceEvent): void {
    const d = ev.desc;
    if (ev.type === 'add') this.record('join', d.id, `${d.id} joined at ${d.host}:${d.port}${d.meta['version'] ? ` (version ${d.meta['version']})` : ''}`);
    else if (ev.type === 'remove') this.record('leave', d.id, `${d.id} left`);
    else {
      const before = this.poller.desc(d.id);
      const what: string[] = [];
      for (const k of ['version', 'state', 'available', 'addr']) {
        if (before && (before.meta[k] ?? '') !== (d.meta[k] ?? '')) what.push(`${k} ${before.meta[k] ?? '-'} -> ${d.meta[k] ?? '-'}`);
      }
      if (before && (before.host !== d.host || before.port !== d.port)) what.push(`address ${before.host}:${before.port} -> ${d.host}:${d.port}`);
      if (what.length > 0) this.record('change', d.id, `${d.id}: ${what.join(', ')}`);
    }
    this.poller.set(this.services?.list() ?? []);
    this.changed('state');
  }

  private onKv(ev: KvEvent): void {
    const key = ev.type === 'put' ? ev.kv.key : ev.key;
    if (key.startsWith(NODES_PREFIX)) {
      const id = key.slice(NODES_PREFIX.length);
      const before = parseNodeState(ev.prev).available;
      const after = parseNodeState(ev.type === 'put' ? ev.kv : undefined).available;
      if (before !== after) this.record('change', id, `${id}: available ${String(before)} -> ${String(after)}`);
    }
    if (key.startsWith(NODES_PREFIX) || key === ROUTES_KV_KEY) this.changed('state');
    this.changed('kv', [key]);
  }

  private record(kind: LogEntry['kind'], id: string, text: string): void {
    this.log.push({ at: Date.now(), kind, id, text });
    if (this.log.length > LOG_MAX) this.log.splice(0, this.log.length - LOG_MAX);
  }

  snapshot(): ClusterState {
    const descs = this.services?.list() ?? [];
    const services = descs.map((d) => this.view(d));
    const ids = new Set(descs.map((d) => d.id));
    const links = new Map<string, readonly [string, string]>();
    for (const s of services) {
      for (const l of s.load?.links ?? []) {
        if (!ids.has(l)) continue;
        const pair = (s.id < l ? [s.id, l] : [l, s.id]) as [string, string];
        links.set(pair.join('\n'), pair);
      }
    }
    let routes: Route[] = [];
    let routesError: string | undefined;
    const raw = this.kv?.get(ROUTES_KV_KEY);
    if (raw) {
      try {
        routes = RouteTable.parse(Buffer.from(raw.value).toString('utf8')).toJSON().routes.slice();
      } catch (err) {
        routesError = (err as Error).message;
      }
    }
    return { sdaddr: this.sdaddr, connected: this.disco.connected, services, links: [...links.values()], routes, routesError, log: [...this.log].reverse(), updatedAt: Date.now() };
  }

  private view(d: ServiceDesc): ServiceView {
    const load = this.poller.load(d.id);
    return {
      id: d.id,
      name: d.name,
      address: `${d.host}:${d.port}`,
      addr: d.meta['addr'] ?? '',
      group: d.meta['group'] ?? '',
      version: d.meta['version'] ?? '',
      state: d.meta['state'] ?? load?.state ?? 'registered',
      available: parseNodeState(this.kv?.get(`${NODES_PREFIX}${d.id}`)).available,
      admin: d.meta['admin'] ?? '',
      meta: d.meta,
      load,
    };
  }
}
