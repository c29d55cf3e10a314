import { EventQueue } from './event-queue.js';
import { decodeServiceDesc } from './service-desc.js';
import { SERVICE_PREFIX, type Discovery, type KvEvent, type ServiceDesc, type ServiceEvent, type ServiceWatch, type Watch, type WatchOptions } from './types.js';

/** Registry events over a KV watch: put without prev = add, put with prev = update, delete = remove. */
export function toServiceEvent(ev: KvEvent): ServiceEvent | undefined {
  if (ev.type === 'put') {
    const desc = decodeServiceDesc(ev.kv.value);
    if (!desc) return undefined;
    return { type: ev.prev ? 'update' : 'add', desc };
  }
  const desc = ev.prev ? decodeServiceDesc(ev.prev.value) : undefined;
  return desc ? { type: 'remove', desc } : undefined;
}

/** Wraps a KV watch on the registry prefix as a typed service view. */
export class ServiceWatchView implements ServiceWatch {
  private readonly queues = new Set<EventQueue<ServiceEvent>>();
  private kv: Watch | undefined;
  /** Decoded once per change, so lookups on the hot path cost a map read. */
  private readonly byId = new Map<string, ServiceDesc>();

  constructor(private readonly options: WatchOptions<ServiceEvent>) {}

  /** Pass this as the KV watch's onEvent. */
  readonly onKvEvent = (ev: KvEvent): void => {
    const se = toServiceEvent(ev);
    if (!se) return;
    if (se.type === 'remove') this.byId.delete(se.desc.id);
    else this.byId.set(se.desc.id, se.desc);
    this.options.onEvent?.(se);
    for (const q of this.queues) q.push(se);
  };

  attach(kv: Watch): this {
    this.kv = kv;
    for (const entry of kv.list()) {
      const d = decodeServiceDesc(entry.value);
      if (d) this.byId.set(d.id, d);
    }
    return this;
  }

  list(): ServiceDesc[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: string): ServiceDesc | undefined {
    return this.byId.get(id);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<ServiceEvent> {
    const q: EventQueue<ServiceEvent> = new EventQueue(this.options.maxBuffered ?? 10_000, () => this.queues.delete(q));
    this.queues.add(q);
    return q;
  }

  stop(): void {
    for (const q of [...this.queues]) q.end();
    this.kv?.stop();
  }
}

function registryPrefix(name: string | undefined): string {
  return name ? `${SERVICE_PREFIX}${name}/` : SERVICE_PREFIX;
}

/** `Discovery.watchServices` for any backend, on top of its KV watch. */
export async function watchServicesOn(d: Pick<Discovery, 'watch'>, name: string | undefined, options: WatchOptions<ServiceEvent>): Promise<ServiceWatch> {
  const view = new ServiceWatchView(options);
  return view.attach(await d.watch(registryPrefix(name), { onEvent: view.onKvEvent }));
}

/** `Discovery.listServices` for any backend, on top of its KV list. */
export async function listServicesOn(d: Pick<Discovery, 'list'>, name: string | undefined): Promise<ServiceDesc[]> {
  const kvs = await d.list(registryPrefix(name));
  return kvs.map((kv) => decodeServiceDesc(kv.value)).filter((desc): desc is ServiceDesc => desc !== undefined);
}
