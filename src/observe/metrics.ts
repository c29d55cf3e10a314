/**
 * The process's Prometheus metrics (prom-client): one registry, and the two
 * shapes the hot paths use so that counting costs next to nothing.
 *
 * - Counters and gauges are plain integer fields kept by the code that
 *   counts (AgentStats, HubStats, ...). prom-client reads them in a
 *   `collect()` callback at scrape time: no prom-client call per message.
 * - Histograms on hot paths are `FastHistogram` series: a fixed bucket array
 *   and a sum, exposed through a prom-client Histogram whose `get()` reads
 *   them. Timing (performance.now()) is done only while metrics are on.
 *
 * Metrics are on once `enableMetrics()` runs (the admin server does it): then
 * prom-client's default process metrics start, and the latency histograms
 * take samples. Counters count either way; they are the stats the code keeps anyway.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricType } from 'prom-client';

/** The one registry of this process; every gamemesh metric is in it. */
export const registry = new Registry();

let enabled = false;

/** True once metrics are on: latency histograms take samples. */
export function metricsOn(): boolean {
  return enabled;
}

/** Turns metrics on for this process (idempotent): default process metrics, hot-path timing. */
export function enableMetrics(): void {
  if (enabled) return;
  enabled = true;
  collectDefaultMetrics({ register: registry });
}

/** Latency buckets in seconds: 100 µs to 10 s, what game-server calls span. */
export const LATENCY_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One series of a histogram: counts per bucket, a sum and a count, as plain numbers. */
export class FastHistogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }

  /** Seconds since `startMs` (a performance.now() reading). */
  observeSince(startMs: number): void {
    this.observe((performance.now() - startMs) / 1000);
  }
}

type Labels = Record<string, string>;

interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}

/**
 * A histogram family whose series are FastHistograms, one per label set,
 * made on first use. Reading it is prom-client's normal text or JSON output.
 */
export class HistogramFamily<L extends string = string> extends Histogram<L> {
  private readonly series = new Map<string, { labels: Labels; h: FastHistogram }>();
  private readonly bounds: readonly number[];
  private readonly names: readonly L[];
  private readonly familyName: string;
  private readonly familyHelp: string;

  constructor(name: string, help: string, labelNames: readonly L[] = [], buckets: readonly number[] = LATENCY_BUCKETS) {
    super({ name, help, labelNames, buckets: [...buckets], registers: [registry] });
    this.bounds = buckets;
    this.names = labelNames;
    this.familyName = name;
    this.familyHelp = help;
  }

  /** The series for these label values, in labelNames order (cache it on the hot path). */
  with(...values: string[]): FastHistogram {
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const labels: Labels = {};
      this.names.forEach((n, i) => (labels[n] = values[i] ?? ''));
      s = { labels, h: new FastHistogram(this.bounds) };
      this.series.set(key, s);
    }
    return s.h;
  }

  // prom-client's registry reads getForPromString() when present, else get().
  getForPromString(): Promise<{ name: string; help: string; type: MetricType; values: Sample[]; aggregator: 'sum' }> {
    const values: Sample[] = [];
    for (const { labels, h } of this.series.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += h.counts[i] as number;
        values.push({ value: acc, labels: { ...labels, le: String(le) }, metricName: `${this.familyName}_bucket` });
      });
      values.push({ value: h.count, labels: { ...labels, le: '+Inf' }, metricName: `${this.familyName}_bucket` });
      values.push({ value: h.sum, labels, metricName: `${this.familyName}_sum` });
      values.push({ value: h.count, labels, metricName: `${this.familyName}_count` });
    }
    return Promise.resolve({ name: this.familyName, help: this.familyHelp, type: 'histogram' as unknown as MetricType, values, aggregator: 'sum' });
  }

  override get(): ReturnType<Histogram<L>['get']> {
    return this.getForPromString() as unknown as ReturnType<Histogram<L>['get']>;
  }
}

type Reader<L extends string> = (set: (labels: Partial<Record<L, string>>, value: number) => void) => void;

/** A counter whose values are read at scrape time: `read` calls `set(labels, total)` for each series. */
export function counterFrom<L extends string>(name: string, help: string, labelNames: readonly L[], read: Reader<L>): Counter<L> {
  return new Counter<L>({ name, help, labelNames, registers: [registry], collect: collector<L, Counter<L>>(read, (m, l, v) => m.inc(l, v)) });
}

/** A gauge read at scrape time, like counterFrom. */
export function gaugeFrom<L extends string>(name: string, help: string, labelNames: readonly L[], read: Reader<L>): Gauge<L> {
  return new Gauge<L>({ name, help, labelNames, registers: [registry], collect: collector<L, Gauge<L>>(read, (m, l, v) => m.set(l, v)) });
}

function collector<L extends string, M extends { reset(): void }>(read: Reader<L>, put: (m: M, labels: Partial<Record<L, string>>, value: number) => void): (this: M) => void {
  return function (this: M) {
    this.reset();
    read((labels, value) => put(this, labels, value));
  };
}

/**
 * The live instances of one kind (agents, hubs, discovery servers) in this
 * process, whose counters a collect() callback adds up. An instance that
 * stops leaves its counts behind in `retired`, so a counter never goes down.
 */
export class Instances<T, C extends Record<string, number>> {
  private readonly live = new Set<T>();
  private readonly retired: C;

  constructor(
    private readonly counters: (instance: T) => C,
    zero: C,
  ) {
    this.retired = { ...zero };
  }

  add(instance: T): void {
    this.live.add(instance);
  }

  retire(instance: T): void {
    if (!this.live.delete(instance)) return;
    const c = this.counters(instance);
    for (const k of Object.keys(c) as (keyof C)[]) (this.retired[k] as number) += c[k] as number;
  }

  values(): IterableIterator<T> {
    return this.live.values();
  }

  /** Every counter summed over live and retired instances. */
  totals(): C {
    const out = { ...this.retired };
    for (const i of this.live) {
      const c = this.counters(i);
      for (const k of Object.keys(c) as (keyof C)[]) (out[k] as number) += c[k] as number;
    }
    return out;
  }
}
