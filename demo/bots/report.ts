/** The bot run's progress line and its final table. */
import { isMessage, KINDS, percentile, type Recorder } from './stats.js';

export interface RunInfo {
  readonly clients: number;
  readonly transport: string;
  readonly rampSec: number;
  readonly run: string;
  /** From the start until every bot was playing (or had failed). */
  readonly loginPhaseSec: number;
  /** From then to the end of the last bot: the --duration, give or take the last answers. */
  readonly steadySec: number;
  readonly steadyMessages: number;
}

export function progressLine(elapsedSec: number, phase: string, clients: number, rec: Recorder, msgsPerSec: number): string {
  return `${String(Math.round(elapsedSec)).padStart(4)}s  ${phase.padEnd(10)}  logged in ${rec.loggedIn}/${clients}  playing ${rec.playing}  msgs/s ${Math.round(msgsPerSec)}  errors ${rec.errorCount}`;
}

const ms = (v: number) => (Number.isNaN(v) ? '-' : v < 10 ? v.toFixed(1) : String(Math.round(v)));

export function summary(info: RunInfo, rec: Recorder): string {
  const out: string[] = [];
  const total = info.loginPhaseSec + info.steadySec;
  out.push(`gamemesh bot: ${info.clients} clients over ${info.transport}, run ${info.run}: all in after ${info.loginPhaseSec.toFixed(1)} s (ramp ${info.rampSec} s), then all playing for ${info.steadySec.toFixed(1)} s`);
  out.push('');
  const header = ['request', 'count', 'per s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'];
  const rows: string[][] = [];
  const all: number[] = [];
  const row = (name: string, values: number[], perSec: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    rows.push([name, String(sorted.length), perSec.toFixed(1), ms(percentile(sorted, 50)), ms(percentile(sorted, 95)), ms(percentile(sorted, 99)), ms(sorted[sorted.length - 1] ?? NaN)]);
  };
  const loginSec = Math.max(0.001, (rec.loginSpan.last - rec.loginSpan.first) / 1000);
  for (const kind of KINDS) {
    const values = rec.latencies.get(kind) ?? [];
    if (isMessage(kind)) all.push(...values);
    row(kind, values, kind === 'login' ? (values.length ? values.length / loginSec : 0) : values.length / total);
  }
  row('all messages', all, all.length / total);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  out.push(fmt(header));
  for (const [i, r] of rows.entries()) {
    if (i === rows.length - 1) out.push(fmt(widths.map((w) => '-'.repeat(w))));
    out.push(fmt(r));
  }
  out.push('');
  const logins = rec.latencies.get('login')?.length ?? 0;
  out.push(`logins/s ${(logins ? logins / loginSec : 0).toFixed(1)} (${logins} in ${loginSec.toFixed(1)} s)   messages/s ${(info.steadyMessages / Math.max(0.001, info.steadySec)).toFixed(1)} with all playing (${(all.length / total).toFixed(1)} over the whole ${total.toFixed(1)} s)`);
  out.push(`latencies: the whole run, logins included; chat pushes received ${rec.pushes}`);
  if (rec.notices.down || rec.notices.up) out.push(`backend notices: ${rec.notices.down} down, ${rec.notices.up} up`);
  if (rec.errors.size === 0) {
    out.push('errors: none');
  } else {
    out.push(`errors: ${rec.errorCount}, the last at ${new Date(rec.lastErrorAt).toISOString()}`);
    const codes = [...rec.errors.entries()].sort((a, b) => b[1].count - a[1].count);
    const width = Math.max(...codes.map(([c]) => c.length));
    for (const [code, e] of codes) out.push(`  ${code.padEnd(width)}  ${String(e.count).padStart(6)}  in ${[...e.kinds].join(', ')}; e.g. ${e.example}`);
  }
  return `${out.join('\n')}\n`;
}

/** Upper bounds (ms) of the latency histogram in --json reports; a last bucket holds the rest. */
export const BUCKETS_MS: readonly number[] = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];

export interface LatencyJson {
  readonly count: number;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly max: number | null;
  readonly mean: number | null;
  /** Counts per bucket of BUCKETS_MS (not cumulative), then one for everything above the last bound. */
  readonly buckets: readonly number[];
}

/** `gamemesh bot --json FILE`: the run's latency histogram per request kind, for CI comparisons. */
export interface BotJson {
  readonly format: 'gamemesh-bot/1';
  readonly clients: number;
  readonly transport: string;
  readonly run: string;
  readonly loginPhaseSec: number;
  readonly steadySec: number;
  readonly messagesPerSec: number;
  readonly bucketsMs: readonly number[];
  readonly requests: Readonly<Record<string, LatencyJson>>;
  /** Every message kind together (logins and connects left out). */
  readonly messages: LatencyJson;
  readonly errors: Readonly<Record<string, number>>;
  readonly pushes: number;
}

function latencyJson(values: readonly number[]): LatencyJson {
  const sorted = [...values].sort((a, b) => a - b);
  const buckets = new Array<number>(BUCKETS_MS.length + 1).fill(0);
  for (const v of sorted) {
    let i = 0;
    while (i < BUCKETS_MS.length && v > (BUCKETS_MS[i] as number)) i++;
    buckets[i] = (buckets[i] as number) + 1;
  }
  const at = (p: number) => (sorted.length ? Number(percentile(sorted, p).toFixed(3)) : null);
  return {
    count: sorted.length,
    p50: at(50),
    p95: at(95),
    p99: at(99),
    max: sorted.length ? Number((sorted[sorted.length - 1] as number).toFixed(3)) : null,
    mean: sorted.length ? Number((sorted.reduce((a, v) => a + v, 0) / sorted.length).toFixed(3)) : null,
    buckets,
  };
}

export function jsonReport(info: RunInfo, rec: Recorder): BotJson {
  const requests: Record<string, LatencyJson> = {};
  const all: number[] = [];
  for (const kind of KINDS) {
    const values = rec.latencies.get(kind) ?? [];
    if (isMessage(kind)) all.push(...values);
    requests[kind] = latencyJson(values);
  }
  return {
    format: 'gamemesh-bot/1',
    clients: info.clients,
    transport: info.transport,
    run: info.run,
    loginPhaseSec: Number(info.loginPhaseSec.toFixed(3)),
    steadySec: Number(info.steadySec.toFixed(3)),
    messagesPerSec: Number((info.steadyMessages / Math.max(0.001, info.steadySec)).toFixed(1)),
    bucketsMs: BUCKETS_MS,
    requests,
    messages: latencyJson(all),
    errors: Object.fromEntries([...rec.errors].map(([code, e]) => [code, e.count])),
    pushes: rec.pushes,
  };
}
