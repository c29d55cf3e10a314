/**
 * Tiny shared helpers for the benches in this folder: a timing loop and an
 * aligned table printer. No dependencies beyond Node.
 */
import { pathToFileURL } from 'node:url';

/** Default time per measured case; `BENCH_MS=300 node dist/bench/run.js` for a quick pass. */
export const DEFAULT_MS = envMs() ?? 1000;

function envMs(): number | undefined {
  const raw = process.env['BENCH_MS'];
  if (raw === undefined || raw === '') return undefined;
  const ms = Number(raw);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

// Every result goes here so the optimiser cannot drop the measured work.
let sink: unknown;

/** The last value a measured function returned (keeps results observable). */
export function lastResult(): unknown {
  return sink;
}

function nowNs(): bigint {
  return process.hrtime.bigint();
}

function runBatch(fn: () => unknown, n: number): number {
  const t0 = nowNs();
  for (let i = 0; i < n; i++) sink = fn();
  return Number(nowNs() - t0);
}

/**
 * Calls `fn` repeatedly for about `ms` milliseconds and returns calls per second.
 * A warm-up (a fifth of `ms`, 50..250 ms) runs first so the function is
 * optimised, and it sizes the batches (about 5 ms each) so the clock is read
 * rarely.
 */
export function measure(name: string, fn: () => unknown, ms: number = DEFAULT_MS): number {
  try {
    const warmNs = Math.min(250, Math.max(50, ms / 5)) * 1e6;
    const batchNs = 5e6;
    let batch = 1;
    const warmStart = nowNs();
    while (Number(nowNs() - warmStart) < warmNs) {
      const took = runBatch(fn, batch);
      if (took < batchNs) batch = Math.min(batch * 2, 1 << 24);
    }
    let calls = 0;
    let elapsed = 0;
    const budgetNs = ms * 1e6;
    while (elapsed < budgetNs) {
      elapsed += runBatch(fn, batch);
      calls += batch;
    }
    return (calls * 1e9) / elapsed;
  } catch (err) {
    throw new Error(`bench case "${name}" failed`, { cause: err });
  }
}

/** 1234567.8 -> "1,234,568" */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A number with `digits` decimals, thousands separated. */
export function fmtNum(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "1.23x" */
export function fmtRatio(n: number): string {
  return `${n.toFixed(2)}x`;
}

/**
 * Prints an aligned table that is also valid Markdown: the first column is
 * left-aligned, the others right-aligned.
 */
export function printTable(title: string, headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, col) => Math.max(h.length, ...rows.map((r) => (r[col] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    '| ' + widths.map((w, col) => (col === 0 ? (cells[col] ?? '').padEnd(w) : (cells[col] ?? '').padStart(w))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, col) => (col === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  const out = [`### ${title}`, '', line(headers), rule, ...rows.map(line), ''];
  console.log(out.join('\n'));
}

/** True when the module with this `import.meta.url` is the script Node was started with. */
export function isMain(importMetaUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && importMetaUrl === pathToFileURL(script).href;
}
