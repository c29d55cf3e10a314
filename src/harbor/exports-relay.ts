/**
 * How exported nodes cross clusters that have their own discoveries: each
 * harbor copies its cluster's `--export`ed registrations into the center,
 * and the center's copies of the other clusters into its own cluster's KV
 * (src/service/exports.ts), where nodes read them. Every harbor of a cluster
 * writes the same values, so two harbors agree and either may die. A copy
 * leaves with its registration; at start a harbor deletes the copies that
 * outlived theirs (a harbor killed before it could).
 */
import type { Discovery, ServiceDesc, ServiceWatch, Watch } from '../discovery/types.js';
import type { Logger } from '../log/index.js';
import { clusterOf, EXPORT_META } from '../service/cluster-scope.js';
import { encodeExport, EXPORTS_PREFIX, exportKey, parseExport } from '../service/exports.js';

export class ExportsRelay {
  private registry: ServiceWatch | undefined;
  private centerCopies: Watch | undefined;
  private localCopies: Watch | undefined;
  private stopped = false;

  constructor(
    private readonly cluster: number,
    private readonly local: Discovery,
    private readonly center: Discovery,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    // Out: this cluster's exported registrations into the center.
    this.registry = await this.local.watchServices(undefined, {
      onEvent: (ev) => {
        if (!this.ours(ev.desc)) return;
        if (ev.type === 'remove') this.write(this.center.delete(exportKey(ev.desc)));
        else this.write(this.center.put(exportKey(ev.desc), encodeExport(ev.desc)));
      },
    });
    const live = new Set<string>();
    for (const desc of this.registry.list()) {
      if (!this.ours(desc)) continue;
      live.add(exportKey(desc));
      await this.center.put(exportKey(desc), encodeExport(desc));
    }
    for (const kv of await this.center.list(EXPORTS_PREFIX)) {
      const desc = parseExport(kv.value);
      if (desc && clusterOf(desc) === this.cluster && !live.has(kv.key)) await this.center.delete(kv.key);
    }
    // In: the other clusters' copies from the center into this cluster's KV.
    this.centerCopies = await this.center.watch(EXPORTS_PREFIX, {
      onEvent: (ev) => {
        if (ev.type === 'put') {
          if (this.theirs(ev.kv.value)) this.write(this.local.put(ev.kv.key, ev.kv.value));
          return;
        }
        this.write(this.local.delete(ev.key));
        // Deleted by hand (`gamemesh sd clearvalue` on the center) while its registration lives: put it back.
        const desc = ev.prev ? parseExport(ev.prev.value) : undefined;
        const live = desc && this.ours(desc) ? this.registry?.get(desc.id) : undefined;
        if (live && this.ours(live) && exportKey(live) === ev.key) this.write(this.center.put(ev.key, encodeExport(live)));
      },
    });
    const present = new Set<string>();
    for (const kv of this.centerCopies.list()) {
      if (!this.theirs(kv.value)) continue;
      present.add(kv.key);
      await this.local.put(kv.key, kv.value);
    }
    for (const kv of await this.local.list(EXPORTS_PREFIX)) if (!present.has(kv.key)) await this.local.delete(kv.key);
    // A copy deleted here by hand (`gamemesh sd clearvalue`) while the center still has it: put it back.
    this.localCopies = await this.local.watch(EXPORTS_PREFIX, {
      onEvent: (ev) => {
        if (ev.type !== 'delete') return;
        const kv = this.centerCopies?.get(ev.key);
        if (kv && this.theirs(kv.value)) this.write(this.local.put(ev.key, kv.value));
      },
    });
  }

  private ours(desc: ServiceDesc): boolean {
    return desc.meta[EXPORT_META] === '1' && clusterOf(desc) === this.cluster;
  }

  private theirs(value: Uint8Array): boolean {
    const desc = parseExport(value);
    return desc !== undefined && desc.meta[EXPORT_META] === '1' && clusterOf(desc) !== undefined && clusterOf(desc) !== this.cluster;
  }

  private write(p: Promise<unknown>): void {
    p.catch((err: Error) => {
      if (!this.stopped) this.log.warn({ err: err.message }, 'copying an exported registration failed');
    });
  }

  stop(): void {
    this.stopped = true;
    this.registry?.stop();
    this.centerCopies?.stop();
    this.localCopies?.stop();
  }
}
