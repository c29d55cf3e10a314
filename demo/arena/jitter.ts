/**
 * Tick jitter: how far each room's tick interval is from its period, over
 * the last seconds. A fixed ring of samples, so a long run costs no more
 * memory than a short one.
 */
const CAPACITY = 65_536;

export interface JitterSummary {
  /** Ticks (across all rooms) in the window. */
  readonly ticks: number;
  readonly windowSec: number;
  /** |interval - period|, in ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export class JitterRecorder {
  private readonly dev = new Float64Array(CAPACITY);
  private readonly at = new Float64Array(CAPACITY);
  private next = 0;
  private count = 0;

  constructor(private readonly periodMs: number) {}

  record(intervalMs: number, now = performance.now()): void {
    this.dev[this.next] = Math.abs(intervalMs - this.periodMs);
    this.at[this.next] = now;
    this.next = (this.next + 1) % CAPACITY;
    if (this.count < CAPACITY) this.count++;
  }

  /** Over the ticks of the last windowSec seconds (as many as the ring holds). */
  summary(windowSec = 10, now = performance.now()): JitterSummary {
    const from = now - windowSec * 1000;
    const values: number[] = [];
    for (let i = 0; i < this.count; i++) if ((this.at[i] as number) >= from) values.push(this.dev[i] as number);
    values.sort((a, b) => a - b);
    const pick = (p: number) => (values.length === 0 ? 0 : (values[Math.min(values.length - 1, Math.ceil(p * values.length) - 1)] as number));
    const round = (v: number) => Math.round(v * 100) / 100;
    return { ticks: values.length, windowSec, p50Ms: round(pick(0.5)), p99Ms: round(pick(0.99)), maxMs: round(values[values.length - 1] ?? 0) };
  }
}
