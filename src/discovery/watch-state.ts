import { EventQueue } from './event-queue.js';
import { byKey } from './store.js';
import type { KeyValue, KvEvent, Watch, WatchOptions } from './types.js';

const DEFAULT_MAX_BUFFERED = 10_000;

/**
 * The client side of one prefix watch, whatever the backend: the local cache,
 * and fan-out of events to the callback and to async iterators. Backends feed
 * it snapshots and events; it keeps the cache and the event stream consistent,
 * and turns a re-snapshot after a reconnect into exactly the missed changes.
 */
export class WatchState implements Watch {
  private readonly cache = new Map<string, KeyValue>();
  private readonly queues = new Set<EventQueue<KvEvent>>();
  private stopped = false;
  /** Highest revision applied; events at or below it are duplicates. */
  revision = 0;

  constructor(
    readonly prefix: string,
    private readonly options: WatchOptions<KvEvent>,
    private readonly onStop: (w: WatchState) => void,
  ) {}

  get active(): boolean {
    return !this.stopped;
  }

  get(key: string): KeyValue | undefined {
    return this.cache.get(key);
  }

  list(): KeyValue[] {
    return [...this.cache.values()].sort(byKey);
  }

  /**
   * Installs a snapshot. The first one only fills the cache; later ones (after
   * a reconnect) emit the puts and deletes that turn the old cache into it.
   */
  applySnapshot(kvs: readonly KeyValue[], revision: number, initial: boolean): void {
    const next = new Map(kvs.map((kv) => [kv.key, kv]));
    if (!initial) {
      for (const [key, prev] of this.cache) if (!next.has(key)) this.emitDelete(key, revision, prev);
      for (const kv of kvs) {
        const prev = this.cache.get(kv.key);
        if (!prev || prev.modRev !== kv.modRev || !sameBytes(prev.value, kv.value)) this.emitPut(kv, prev);
      }
    }
    this.cache.clear();
    for (const [k, v] of next) this.cache.set(k, v);
    this.revision = Math.max(this.revision, revision);
  }

  applyPut(kv: KeyValue): void {
    if (kv.modRev <= this.revision && this.cache.get(kv.key)?.modRev === kv.modRev) return;
    const prev = this.cache.get(kv.key);
    this.cache.set(kv.key, kv);
    this.revision = Math.max(this.revision, kv.modRev);
    this.emit({ type: 'put', kv, prev });
  }

  applyDelete(key: string, revision: number): void {
    const prev = this.cache.get(key);
    if (!prev) return;
    this.cache.delete(key);
    this.revision = Math.max(this.revision, revision);
    this.emit({ type: 'delete', key, revision, prev });
  }

  private emitPut(kv: KeyValue, prev: KeyValue | undefined): void {
    this.emit({ type: 'put', kv, prev });
  }

  private emitDelete(key: string, revision: number, prev: KeyValue): void {
    this.emit({ type: 'delete', key, revision, prev });
  }

  private emit(event: KvEvent): void {
    if (this.stopped) return;
    this.options.onEvent?.(event);
    for (const q of this.queues) q.push(event);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<KvEvent> {
    const q: EventQueue<KvEvent> = new EventQueue(this.options.maxBuffered ?? DEFAULT_MAX_BUFFERED, () => this.queues.delete(q));
    if (this.stopped) q.end();
    else this.queues.add(q);
    return q;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const q of [...this.queues]) q.end();
    this.onStop(this);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
