/**
 * Whether a node may be given new work (a call picked by selection, a
 * player sent by login, an address returned by a lookup by type). One rule
 * for every place that picks, so that a disabled, draining, retiring or
 * outdated node is skipped everywhere at once. Work it already has (bound
 * and sticky clients, calls by id) is not this function's business.
 *
 * Other filters compose with it: `const a = admission(desc, ctx); if
 * (!a.admit) return a;` then their own checks (memory, cluster export...).
 */
import type { NodeState } from './node-state.js';
import type { ServiceDesc } from './types.js';

/**
 * `code` says which rule refused: `disabled`, `draining`, `retiring`,
 * `outdated` here; composed filters add their own (`memory`, ...).
 */
export type Admission = { readonly admit: true } | { readonly admit: false; readonly code: string; readonly reason: string };

/** Refused only for being replaced (retiring or outdated): such a node still serves when no other can. */
export function replacedOnly(a: Admission): boolean {
  return !a.admit && (a.code === 'retiring' || a.code === 'outdated');
}

/** The admission of a node that may take new work. */
export const ADMIT: Admission = { admit: true };

/** What admission reads of a registration: only the id, name and meta. */
export type AdmissionRecord = Pick<ServiceDesc, 'id' | 'name' | 'meta'>;

/** What admission knows of a node besides its registration: the operators' state, the newest version, whether it is draining. */
export interface AdmissionContext {
  /** The operators' state of the node (config/nodes/<id>); absent: available. */
  readonly state?: Pick<NodeState, 'available'>;
  /** The highest version among the live, non-retiring nodes of its service and group (newestVersions); absent: no version rule. */
  readonly newest?: number;
  /** The node said on its link that it is stopping. */
  readonly draining?: boolean;
}

/** Registration meta: `version` (svcversion) and `state`. */
export const VERSION_META = 'version';
export const STATE_META = 'state';
/** The `state` meta of a node that is retiring (docs/rollout.md). */
export const RETIRING = 'retiring';
/** `ready: "0"` until the node's dependencies are connected; absent counts as ready. */
export const READY_META = 'ready';

/** The registered version; 1 when absent or not a positive integer (nodes from before versions). */
export function versionOf(desc: AdmissionRecord): number {
  const v = Number(desc.meta[VERSION_META]);
  return Number.isSafeInteger(v) && v >= 1 ? v : 1;
}

/** Whether the registration says the node is retiring. */
export function isRetiring(desc: AdmissionRecord): boolean {
  return desc.meta[STATE_META] === RETIRING;
}

/** The single admission rule: admit, or the reason why not. */
export function admission(desc: AdmissionRecord, ctx: AdmissionContext = {}): Admission {
  if (ctx.state && !ctx.state.available) return { admit: false, code: 'disabled', reason: `${desc.id} is disabled (config/nodes/${desc.id})` };
  if (ctx.draining) return { admit: false, code: 'draining', reason: `${desc.id} is stopping` };
  if (isRetiring(desc)) return { admit: false, code: 'retiring', reason: `${desc.id} is retiring` };
  const version = versionOf(desc);
  if (ctx.newest !== undefined && version < ctx.newest) return { admit: false, code: 'outdated', reason: `${desc.id} runs version ${version}; version ${ctx.newest} of ${desc.name} is live` };
  return ADMIT;
}

/** The key newest versions are kept under: a version takes over its own service, group and cluster only. */
export function versionScope(desc: AdmissionRecord): string {
  return `${desc.name}@${desc.meta['group'] ?? ''}/${clusterOf(desc)}`;
}

/** The cluster of a registration's logical address (`cluster.type.index`); '' without one. */
function clusterOf(desc: AdmissionRecord): string {
  const addr = desc.meta['addr'] ?? '';
  const dot = addr.indexOf('.');
  return dot < 0 ? '' : addr.slice(0, dot);
}

/** Whether a registration can take over from older versions: ready, not retiring, and available by `available` when given. */
export function canTakeOver(desc: AdmissionRecord, available?: (id: string) => boolean): boolean {
  return desc.meta[READY_META] !== '0' && !isRetiring(desc) && (available === undefined || available(desc.id));
}

/**
 * The highest version of each service and group among these registrations,
 * counting only nodes that can take over (canTakeOver): a newer node that is
 * still starting, or was disabled, does not push the older ones out.
 */
export function newestVersions(descs: Iterable<AdmissionRecord>, available?: (id: string) => boolean): (desc: AdmissionRecord) => number | undefined {
  const newest = new Map<string, number>();
  for (const d of descs) {
    if (!canTakeOver(d, available)) continue;
    const scope = versionScope(d);
    newest.set(scope, Math.max(newest.get(scope) ?? 0, versionOf(d)));
  }
  return (desc) => newest.get(versionScope(desc));
}

/** The registrations admission admits, given the node states: for pickers over a list. */
export function admitted<D extends AdmissionRecord>(descs: readonly D[], state: (id: string) => Pick<NodeState, 'available'>): D[] {
  const newest = newestVersions(descs, (id) => state(id).available);
  return descs.filter((d) => admission(d, { state: state(d.id), newest: newest(d) }).admit);
}
