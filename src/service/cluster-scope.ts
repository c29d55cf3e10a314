/**
 * Clusters partition the mesh (clustergo): a node discovers, dials and
 * selects the nodes of its own cluster and the exported nodes of others.
 * Any other address is reached only when named, through harbors. This is
 * one predicate so that every place that filters candidates (dependency
 * watches, lookups by type, lookups by address) applies the same rule.
 */
import type { ServiceDesc } from '../discovery/types.js';
import { HARBOR_TYPE, parseAddr, unpackAddr } from './identity.js';

/** Registration meta set by `--export`. */
export const EXPORT_META = 'export';

/** The cluster of a registration's logical address; undefined when it has none (or a bad one). */
export function clusterOf(desc: ServiceDesc): number | undefined {
  const text = desc.meta['addr'];
  if (!text) return undefined;
  try {
    return unpackAddr(parseAddr(text)).cluster;
  } catch {
    return undefined;
  }
}

/**
 * Whether a node of `cluster` may see `desc`. A registration without a
 * logical address counts as local (tools, older nodes). A harbor of another
 * cluster is never visible: harbors meet in their center, not in clusters.
 */
export function visibleInCluster(cluster: number, desc: ServiceDesc): boolean {
  const text = desc.meta['addr'];
  if (!text) return true;
  let addr: number;
  try {
    addr = parseAddr(text);
  } catch {
    return false;
  }
  const a = unpackAddr(addr);
  if (a.cluster === cluster) return true;
  return a.type !== HARBOR_TYPE && desc.meta[EXPORT_META] === '1';
}
