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
