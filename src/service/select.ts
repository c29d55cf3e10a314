import { createHash } from 'node:crypto';
import { memoryRatio, memoryRefusal } from '../discovery/memory.js';

/** How a call to a service picks one of its instances. */
export type Strategy = 'random' | 'round-robin' | 'least-loaded' | 'least-memory' | 'hash';

export interface Candidate {
  readonly id: string;
  readonly load: number;
  /** The registration, for strategies that read its meta (least-memory). */
  readonly desc?: { readonly meta: Readonly<Record<string, string>> } | undefined;
}

const VNODES = 64;

/**
 * Picks one instance among candidates. Candidates arrive sorted by id, so
 * every process that sees the same instances makes the same hash choice.
 */
export class Selector {
  private readonly rr = new Map<string, number>();
  private readonly rings = new Map<string, { key: string; ring: Array<[number, string]> }>();

  pick<C extends Candidate>(service: string, candidates: readonly C[], strategy: Strategy, key?: string): C | undefined {
    if (candidates.length <= 1 && strategy !== 'least-memory') return candidates[0];
    switch (strategy) {
      case 'random':
        return candidates[Math.floor(Math.random() * candidates.length)];
      case 'round-robin': {
        const n = this.rr.get(service) ?? 0;
        this.rr.set(service, n + 1);
        return candidates[n % candidates.length];
      }
      case 'least-loaded': {
        // Start at a random offset so equal loads spread instead of piling on the first.
        const start = Math.floor(Math.random() * candidates.length);
        let best = candidates[start] as C;
        for (let i = 1; i < candidates.length; i++) {
          const c = candidates[(start + i) % candidates.length] as C;
          if (c.load < best.load) best = c;
        }
        return best;
      }
      case 'least-memory': {
        // Nodes above their memory threshold take no new work; none left: nothing to pick.
        let best: C | undefined;
        let bestRatio = Infinity;
        for (const c of candidates) {
          const meta = c.desc?.meta ?? {};
          if (memoryRefusal({ id: c.id, meta }) !== undefined) continue;
          const r = memoryRatio(meta);
          if (r < bestRatio) {
            best = c;
            bestRatio = r;
          }
        }
        return best;
      }
      case 'hash': {
        if (key === undefined) throw new TypeError('the hash strategy needs a key');
        const id = this.ringFor(service, candidates).lookup(hash32(key));
        return candidates.find((c) => c.id === id);
      }
    }
  }

  private ringFor(service: string, candidates: readonly Candidate[]): { lookup(h: number): string } {
    const key = candidates.map((c) => c.id).join('\n');
    let cached = this.rings.get(service);
    if (cached?.key !== key) {
      const ring: Array<[number, string]> = [];
      for (const c of candidates) for (let v = 0; v < VNODES; v++) ring.push([hash32(`${c.id}#${v}`), c.id]);
      ring.sort((a, b) => a[0] - b[0]);
      cached = { key, ring };
      this.rings.set(service, cached);
    }
    const ring = cached.ring;
    return {
      lookup(h: number): string {
        let lo = 0;
        let hi = ring.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if ((ring[mid] as [number, string])[0] < h) lo = mid + 1;
          else hi = mid;
        }
        return (ring[lo % ring.length] as [number, string])[1];
      },
    };
  }
}

export function hash32(s: string): number {
  return createHash('md5').update(s).digest().readUInt32BE(0);
}
