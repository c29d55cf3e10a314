/**
 * Exported nodes of other clusters, when each cluster has its own discovery:
 * harbors copy every `--export`ed registration of their cluster into the
 * center, and the center's copies of other clusters into their own
 * cluster's KV under EXPORTS_PREFIX (src/harbor/exports-relay.ts). A node
 * reads them from here as if they were registrations, for dependency
 * watches, lookups by type and lookups by address.
 */
import type { Discovery, KeyValue, ServiceDesc, ServiceEvent, Watch } from '../discovery/types.js';
import { clusterOf } from './cluster-scope.js';

export const EXPORTS_PREFIX = 'harbor/exports/';

/** The key of an exported registration: by logical address, which is unique in the mesh. */
export function exportKey(desc: ServiceDesc): string {
  return `${EXPORTS_PREFIX}${desc.meta['addr'] ?? desc.id}`;
}

/** A stored copy, checked field by field (it came from another cluster); undefined when malformed. */
export function parseExport(value: Uint8Array): ServiceDesc | undefined {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(value).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const d = v as Record<string, unknown>;
  if (typeof d['name'] !== 'string' || typeof d['id'] !== 'string' || typeof d['host'] !== 'string' || !Number.isInteger(d['port'])) return undefined;
  const meta = d['meta'];
  if (typeof meta !== 'object' || meta === null || Object.values(meta).some((x) => typeof x !== 'string')) return undefined;
  return { name: d['name'], id: d['id'], host: d['host'], port: d['port'] as number, meta: { ...(meta as Record<string, string>) } };
}

export function encodeExport(desc: ServiceDesc): string {
  return JSON.stringify({ name: desc.name, id: desc.id, host: desc.host, port: desc.port, meta: desc.meta });
}

/** The copies in this cluster's discovery of other clusters' exported nodes. */
export class ExportsView {
  private readonly byKey = new Map<string, ServiceDesc>();
  private readonly listeners = new Set<(ev: ServiceEvent) => void>();
  private watch: Watch | undefined;

  constructor(private readonly cluster: number) {}

  async open(disco: Discovery): Promise<this> {
    this.watch = await disco.watch(EXPORTS_PREFIX, {
      onEvent: (ev) => {
        if (ev.type === 'put') return this.put(ev.kv);
        const old = this.byKey.get(ev.key);
        if (!old) return;
        this.byKey.delete(ev.key);
        this.emit({ type: 'remove', desc: old });
      },
    });
    for (const kv of this.watch.list()) this.put(kv, false);
    return this;
  }

  private put(kv: KeyValue, notify = true): void {
    const desc = parseExport(kv.value);
    // Only other clusters' exported nodes: a copy of this cluster's own would shadow its real registration.
    if (!desc || desc.meta['export'] !== '1' || clusterOf(desc) === undefined || clusterOf(desc) === this.cluster) return;
    const had = this.byKey.has(kv.key);
    this.byKey.set(kv.key, desc);
    if (notify) this.emit({ type: had ? 'update' : 'add', desc });
  }

  private emit(ev: ServiceEvent): void {
    for (const fn of this.listeners) fn(ev);
  }

  list(name?: string): ServiceDesc[] {
    const all = [...this.byKey.values()];
    return name === undefined ? all : all.filter((d) => d.name === name);
  }

  /** Calls fn for every change; returns the unsubscribe. */
  onEvent(fn: (ev: ServiceEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  stop(): void {
    this.watch?.stop();
    this.listeners.clear();
  }
}
