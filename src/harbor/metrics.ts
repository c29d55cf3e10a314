/**
 * The harbor's metrics, read from Harbor.counts at scrape time (on the
 * harbor's admin port, `--admin`).
 */
import { counterFrom, gaugeFrom, Instances } from '../observe/metrics.js';
import type { HarborCounts } from './harbor.js';

export const harbors = new Instances<{ readonly counts: HarborCounts; linkedHarbors(): number }, HarborCounts>((h) => ({ ...h.counts }), { forwarded: 0, busy: 0, unreachable: 0, unavailable: 0, dropped: 0 });

counterFrom(
  'gamemesh_harbor_frames_total',
  'Frames at a harbor: forwarded to the next hop; refused busy (a full queue), unreachable (no harbor of the target cluster) or unavailable (the target cannot be reached); dropped (unreadable, spoofed, or one-way with nowhere to go)',
  ['result'],
  (set) => {
    const t = harbors.totals();
    for (const k of ['forwarded', 'busy', 'unreachable', 'unavailable', 'dropped'] as const) set({ result: k }, t[k]);
  },
);
gaugeFrom('gamemesh_harbor_peers', 'Other harbors a harbor is linked to through the center', [], (set) => {
  let n = 0;
  for (const h of harbors.values()) n += h.linkedHarbors();
  set({}, n);
});
