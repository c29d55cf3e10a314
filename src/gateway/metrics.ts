/**
 * The agent's metrics: clients online by transport, messages by what became
 * of them, kicks by code, outbound cut-offs, handshake failures, and the
 * backend round-trip histogram. The agent counts in AgentStats and the
 * arrays below; prom-client reads them at scrape time.
 */
import { counterFrom, gaugeFrom, HistogramFamily, Instances, type FastHistogram } from '../observe/metrics.js';
import type { AgentStats } from './agent.js';

/** Kicks sent, by code (index), process-wide. */
const kicks = new Float64Array(32);
let cutoffs = 0;

export function countKick(code: number): void {
  if (code >= 0 && code < kicks.length) kicks[code] = (kicks[code] as number) + 1;
}

/** BaseSession's close reason when the peer stops reading (src/net/base-session.ts). */
const CUTOFF_REASON = 'outbound queue over';

/** A client connection closed: counts it when it was cut off for not reading. */
export function countClose(reason: string): void {
  if (reason.startsWith(CUTOFF_REASON)) cutoffs++;
}

export interface AgentCounts {
  readonly stats: AgentStats;
  onlineByTransport(): Map<string, number>;
}

type Totals = Omit<AgentStats, 'online'>;

export const agents = new Instances<AgentCounts, Totals>(
  ({ stats: { forwarded, blocked, unknown, unauthenticated, rateLimited, undeliverable } }) => ({ forwarded, blocked, unknown, unauthenticated, rateLimited, undeliverable }),
  { forwarded: 0, blocked: 0, unknown: 0, unauthenticated: 0, rateLimited: 0, undeliverable: 0 },
);

gaugeFrom('gamemesh_agent_clients', 'Client connections open on this agent, by transport (tcp, ws, kcp)', ['transport'], (set) => {
  const sums = new Map<string, number>();
  for (const a of agents.values()) for (const [t, n] of a.onlineByTransport()) sums.set(t, (sums.get(t) ?? 0) + n);
  for (const [transport, n] of sums) set({ transport }, n);
});

counterFrom(
  'gamemesh_agent_messages_total',
  'Client messages by what became of them: forwarded to a backend, blocked by the route table, rate_limited (the client was kicked), undeliverable (no backend), unknown (no route), unauthenticated',
  ['result'],
  (set) => {
    const t = agents.totals();
    set({ result: 'forwarded' }, t.forwarded);
    set({ result: 'blocked' }, t.blocked);
    set({ result: 'rate_limited' }, t.rateLimited);
    set({ result: 'undeliverable' }, t.undeliverable);
    set({ result: 'unknown' }, t.unknown);
    set({ result: 'unauthenticated' }, t.unauthenticated);
  },
);

counterFrom('gamemesh_agent_kicks_total', 'Kicks sent to clients, by Kick code (docs/protocol.md: 1 shutdown or full, 3 rate limit, 6 unknown message, 7 bad handshake, 9 kicked by a backend, ...)', ['code'], (set) => {
  kicks.forEach((n, code) => {
    if (n > 0) set({ code: String(code) }, n);
  });
});
counterFrom('gamemesh_agent_handshake_failures_total', 'Clients refused for a bad, late or missing handshake (Kick code 7)', [], (set) => set({}, kicks[7] as number));
counterFrom('gamemesh_agent_outbound_cutoffs_total', 'Clients cut off because they stopped reading and their outbound queue overflowed', [], (set) => set({}, cutoffs));

const roundTrip = new HistogramFamily('gamemesh_agent_backend_roundtrip_seconds', 'Client requests: time from forwarding to a backend to its answer passing back through the agent, by backend service', ['service']);
const byBackend = new Map<string, FastHistogram>();

/** The round-trip series of a backend id (name#index@group), cached. */
export function roundTripOf(backendId: string): FastHistogram {
  let h = byBackend.get(backendId);
  if (!h) {
    const hash = backendId.indexOf('#');
    h = roundTrip.with(hash > 0 ? backendId.slice(0, hash) : backendId);
    // Ids are a bounded set in a cluster; the cap only guards against a pathological churn of them.
    if (byBackend.size < 10_000) byBackend.set(backendId, h);
  }
  return h;
}
