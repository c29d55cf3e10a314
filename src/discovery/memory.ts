/**
 * Placement by memory (DOMI): every node registers its resident memory
 * against its limit, and its threshold, in its registration meta. This is
 * the one check that login's agent choice, the `least-memory` selection and
 * room placement apply: a node above its threshold takes no new clients or
 * rooms. Pure: it reads registration meta only.
 */

/** Meta key: `<rss bytes>/<limit bytes>`. */
export const MEM_META = 'mem';
/** Meta key: the node's threshold as a fraction (0.9). */
export const MEM_MAX_META = 'memmax';
/** The memory use, as a fraction of the limit, above which a node takes no new rooms. */
export const DEFAULT_MEM_THRESHOLD = 0.9;

/** A node's memory use as it reports it in its meta, for placement by memory. */
export interface MemoryReport {
  readonly rss: number;
  readonly limit: number;
  /** rss / limit. */
  readonly ratio: number;
  readonly threshold: number;
}

/** The node's memory report from its meta; undefined when it reports none (an older node: it counts as having room). */
export function memoryOf(meta: Readonly<Record<string, string>>): MemoryReport | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(meta[MEM_META] ?? '');
  if (!m) return undefined;
  const rss = Number(m[1]);
  const limit = Number(m[2]);
  if (!(limit > 0)) return undefined;
  const t = Number(meta[MEM_MAX_META]);
  return { rss, limit, ratio: rss / limit, threshold: t > 0 && t <= 1 ? t : DEFAULT_MEM_THRESHOLD };
}

/** Why this node takes no new clients or rooms because of its memory, or undefined when it has room. */
export function memoryRefusal(node: { readonly id: string; readonly meta: Readonly<Record<string, string>> }): string | undefined {
  const m = memoryOf(node.meta);
  return m ? refusalText(node.id, m) : undefined;
}

/** The same check on a report (the node's own, before it is registered). */
export function refusalText(id: string, m: MemoryReport): string | undefined {
  if (m.ratio < m.threshold) return undefined;
  return `${id} uses ${pct(m.ratio)} of its ${mib(m.limit)} memory limit (threshold ${pct(m.threshold)})`;
}

/** For least-memory ordering: the used fraction, 0 for a node that reports nothing. */
export function memoryRatio(meta: Readonly<Record<string, string>>): number {
  return memoryOf(meta)?.ratio ?? 0;
}

function pct(x: number): string {
  return `${Math.round(x * 100)} %`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
