/**
 * Two names for one service instance:
 * - the service id `name#index@group` (cellmesh), unique in the registry;
 * - the logical address `cluster.type.index` (clustergo), packed in 32 bits
 *   as 14 bits of cluster, 8 of type and 10 of index. Type 255 is reserved
 *   for harbors (cross-cluster routers).
 */
export const MAX_CLUSTER = (1 << 14) - 1;
export const MAX_TYPE = 254;
export const HARBOR_TYPE = 255;
export const MAX_INDEX = (1 << 10) - 1;

export class IdentityError extends Error {
  override name = 'IdentityError';
}

/** A service instance's id: name#index@group. */
export function serviceId(name: string, index: number, group: string): string {
  return `${name}#${index}@${group}`;
}

/** Splits a service id into name, index and group; throws on anything else. */
export function parseServiceId(id: string): { name: string; index: number; group: string } {
  const m = /^([^#@]+)#(\d+)@([^#@]+)$/.exec(id);
  if (!m) throw new IdentityError(`bad service id ${JSON.stringify(id)}: expected name#index@group`);
  return { name: m[1] as string, index: Number(m[2]), group: m[3] as string };
}

/** A logical address: cluster, type and index (cluster.type.index). */
export interface LogicalAddr {
  readonly cluster: number;
  readonly type: number;
  readonly index: number;
}

/** A logical address packed into one number. */
export function packAddr({ cluster, type, index }: LogicalAddr): number {
  check(cluster, MAX_CLUSTER, 'cluster');
  check(type, HARBOR_TYPE, 'type');
  check(index, MAX_INDEX, 'index');
  return ((cluster << 18) | (type << 10) | index) >>> 0;
}

/** A packed logical address back into its parts. */
export function unpackAddr(packed: number): LogicalAddr {
  return { cluster: packed >>> 18, type: (packed >>> 10) & 0xff, index: packed & 0x3ff };
}

/** A logical address as text: cluster.type.index. */
export function formatAddr(addr: number | LogicalAddr): string {
  const a = typeof addr === 'number' ? unpackAddr(addr) : addr;
  return `${a.cluster}.${a.type}.${a.index}`;
}

/** Parses cluster.type.index into a packed address; throws on anything else. */
export function parseAddr(text: string): number {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (!m) throw new IdentityError(`bad logical address ${JSON.stringify(text)}: expected cluster.type.index`);
  return packAddr({ cluster: Number(m[1]), type: Number(m[2]), index: Number(m[3]) });
}

function check(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new IdentityError(`logical address ${what} ${v} is not in 0..${max}`);
}
