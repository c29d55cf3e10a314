/** The login service's metrics: logins by result and how long they took. */
import { HistogramFamily, type FastHistogram } from '../observe/metrics.js';
import { counterFrom } from '../observe/metrics.js';

const RESULTS: Readonly<Record<number, string>> = { 400: 'bad_request', 401: 'unauthorized', 405: 'bad_request', 413: 'bad_request', 429: 'rate_limited', 503: 'unavailable' };

const counts = new Map<string, number>();
const latency = new HistogramFamily('gamemesh_login_duration_seconds', 'POST /api/login: time to answer, by result', ['result'], [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);
const series = new Map<string, FastHistogram>();

counterFrom('gamemesh_login_requests_total', 'POST /api/login answers by result: ok (token issued), created (account registered, demo mode), unauthorized, rate_limited, unavailable, bad_request, error', ['result'], (set) => {
  for (const [result, n] of counts) set({ result }, n);
});

/** The result label of an answer's HTTP status. */
export function loginResult(status: number, created = false): string {
  if (status === 200) return created ? 'created' : 'ok';
  return RESULTS[status] ?? 'error';
}

export function countLogin(result: string, startedMs: number): void {
  counts.set(result, (counts.get(result) ?? 0) + 1);
  let h = series.get(result);
  if (!h) series.set(result, (h = latency.with(result)));
  h.observeSince(startedMs);
}
