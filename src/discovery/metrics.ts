/**
 * The discovery server's metrics: requests by operation, the revision,
 * sessions, watches and registered services, and the journal's group-commit
 * sizes, fsync latency and snapshot (compaction) time.
 */
import { counterFrom, FastHistogram, gaugeFrom, HistogramFamily } from '../observe/metrics.js';
import { M } from './messages.js';

/** What a server exposes to its metrics. */
export interface DiscoveryCounts {
  /** Requests by message id. */
  readonly ops: Map<number, number>;
  readonly revision: number;
  readonly clientCount: number;
  readonly watchCount: number;
  readonly serviceCount: number;
}

export const discoveryServers = new Set<DiscoveryCounts>();
const retiredOps = new Map<number, number>();

export function retireDiscovery(s: DiscoveryCounts): void {
  if (!discoveryServers.delete(s)) return;
  for (const [id, n] of s.ops) retiredOps.set(id, (retiredOps.get(id) ?? 0) + n);
}

const OP_NAMES = new Map<number, string>(
  Object.values(M).map((t) => [t.id, t.name.replace('gamemesh.discovery.', '').replace(/Req$/, '').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase()]),
);

counterFrom('gamemesh_discovery_requests_total', 'Discovery server: requests by operation (get, list, put, delete, txn, watch, cancel_watch, register, deregister, hello)', ['op'], (set) => {
  const sums = new Map(retiredOps);
  for (const s of discoveryServers) for (const [id, n] of s.ops) sums.set(id, (sums.get(id) ?? 0) + n);
  for (const [id, n] of sums) set({ op: OP_NAMES.get(id) ?? 'other' }, n);
});
const sum = (pick: (s: DiscoveryCounts) => number) => (set: (l: Record<never, string>, v: number) => void) => {
  let n = 0;
  for (const s of discoveryServers) n += pick(s);
  set({}, n);
};
gaugeFrom('gamemesh_discovery_revision', 'Discovery server: the current revision of the store', [], (set) => {
  let rev = 0;
  for (const s of discoveryServers) rev = Math.max(rev, s.revision);
  set({}, rev);
});
gaugeFrom('gamemesh_discovery_sessions', 'Discovery server: client connections', [], sum((s) => s.clientCount));
gaugeFrom('gamemesh_discovery_watchers', 'Discovery server: watches open', [], sum((s) => s.watchCount));
gaugeFrom('gamemesh_discovery_services', 'Discovery server: registered service instances', [], sum((s) => s.serviceCount));

/** Journal records written by one group commit (one write + one fdatasync). */
export const journalBatch: FastHistogram = new HistogramFamily('gamemesh_discovery_journal_batch_records', 'Discovery journal: records per group commit (one write and one fdatasync)', [], [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]).with();
export const fsyncSeconds: FastHistogram = new HistogramFamily('gamemesh_discovery_fsync_seconds', 'Discovery journal: fdatasync time per group commit').with();
export const snapshotSeconds: FastHistogram = new HistogramFamily('gamemesh_discovery_snapshot_seconds', 'Discovery journal: time to write a snapshot and empty the journal (compaction)', [], [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]).with();
