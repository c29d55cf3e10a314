import type { KeyValue } from './types.js';

export interface Change {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** Present for puts. */
  readonly kv: KeyValue | undefined;
  readonly prev: KeyValue | undefined;
  readonly revision: number;
}

export type Mutation = { readonly key: string; readonly value: Uint8Array } | { readonly key: string; readonly delete: true };

/**
 * The in-memory KV: every commit is one revision, applied all or nothing.
 * It knows nothing of files or sockets; the server journals what it commits.
 */
export class KvStore {
  private rev = 0;
  private readonly map = new Map<string, KeyValue>();

  get revision(): number {
    return this.rev;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): KeyValue | undefined {
    return this.map.get(key);
  }

  /** Entries under a prefix, sorted by key. */
  list(prefix: string): KeyValue[] {
    const out: KeyValue[] = [];
    for (const kv of this.map.values()) if (kv.key.startsWith(prefix)) out.push(kv);
    return out.sort(byKey);
  }

  keys(prefix: string): string[] {
    const out: string[] = [];
    for (const key of this.map.keys()) if (key.startsWith(prefix)) out.push(key);
    return out;
  }

  all(): IterableIterator<KeyValue> {
    return this.map.values();
  }

  /**
   * Applies mutations under one new revision. Deletes of absent keys are
   * dropped; when nothing changes no revision is spent and [] is returned.
   */
  commit(mutations: readonly Mutation[]): Change[] {
    const revision = this.rev + 1;
    const changes: Change[] = [];
    for (const m of mutations) {
      const prev = this.map.get(m.key);
      if ('delete' in m) {
        if (!prev) continue;
        this.map.delete(m.key);
        changes.push({ type: 'delete', key: m.key, kv: undefined, prev, revision });
      } else {
        const kv: KeyValue = { key: m.key, value: m.value, createRev: prev ? prev.createRev : revision, modRev: revision };
        this.map.set(m.key, kv);
        changes.push({ type: 'put', key: m.key, kv, prev, revision });
      }
    }
    if (changes.length > 0) this.rev = revision;
    return changes;
  }

  /** Recovery: install an entry exactly as it was persisted. */
  restore(kv: KeyValue): void {
    this.map.set(kv.key, kv);
  }

  restoreDelete(key: string): void {
    this.map.delete(key);
  }

  setRevision(revision: number): void {
    this.rev = revision;
  }
}

export function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
