/**
 * The process's Prometheus metrics: one prom-client registry, and the two
 * shapes the hot paths use so that counting costs next to nothing.
 *
 * - Counters and gauges are plain integer fields kept by the code that
 *   counts (AgentStats, HubStats, ...). prom-client reads them in a
 *   `collect()` callback at scrape time: no prom-client call per message.
 * - Histograms on hot paths are `FastHistogram` series: a fixed bucket array
 *   and a sum, read by prom-client at scrape time. Timing (performance.now())
 *   is done only while metrics are on.
 *
 * The layers declare their families here (`counterFrom`, `gaugeFrom`,
 * `HistogramFamily`) without loading prom-client: a process without an admin
 * port never loads it. `enableMetrics()` (the admin server calls it) loads
 * it, registers every family declared so far and later, starts prom-client's
 * default process metrics, and turns the latency timing on.
 */
import type { Registry } from 'prom-client';

let enabled = false;
let bridge: Promise<Bridge> | undefined;
let loaded: Bridge | undefined;

/** True once metrics are on: latency histograms take samples. */
export function metricsOn(): boolean {
  return enabled;
}

/** Turns metrics on for this process (idempotent) and resolves with its registry. */
export function enableMetrics(): Promise<Registry> {
  bridge ??= import('./prom.js').then((m) => {
    const b = m.createBridge();
    for (const f of families) b.add(f);
    loaded = b;
    enabled = true;
    return b;
  });
  return bridge.then((b) => b.registry);
}

/** What the prom-client side (prom.ts) does with the families declared here. */
export interface Bridge {
  readonly registry: Registry;
  add(family: Family): void;
}

type Labels = Record<string, string>;

/** One sample as prom-client's registry writes it. */
export interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}

export type Reader<L extends string> = (set: (labels: Partial<Record<L, string>>, value: number) => void) => void;

/** A metric family as declared by a layer, before (or without) prom-client. */
export type Family =
  | { readonly kind: 'counter' | 'gauge'; readonly name: string; readonly help: string; readonly labelNames: readonly string[]; readonly read: Reader<string> }
  | { readonly kind: 'histogram'; readonly name: string; readonly help: string; readonly labelNames: readonly string[]; readonly bounds: readonly number[]; samples(): Sample[] };

const families: Family[] = [];

function declare(f: Family): void {
  if (families.some((g) => g.name === f.name)) throw new TypeError(`metric ${f.name} is declared twice`);
  families.push(f);
  loaded?.add(f);
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

/**
 * A histogram family whose series are FastHistograms, one per label set,
 * made on first use. Reading it is prom-client's normal text or JSON output.
 */
export class HistogramFamily<L extends string = string> {
  private readonly series = new Map<string, { labels: Labels; h: FastHistogram }>();

  constructor(
    readonly name: string,
    help: string,
    private readonly labelNames: readonly L[] = [],
    private readonly bounds: readonly number[] = LATENCY_BUCKETS,
  ) {
    declare({ kind: 'histogram', name, help, labelNames, bounds, samples: () => this.samples() });
  }

  /** The series for these label values, in labelNames order (cache it on the hot path). */
  with(...values: string[]): FastHistogram {
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      s = { labels, h: new FastHistogram(this.bounds) };
      this.series.set(key, s);
    }
    return s.h;
  }

  /** Cumulative buckets, +Inf, _sum and _count of every series. */
  samples(): Sample[] {
    const values: Sample[] = [];
    for (const { labels, h } of this.series.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += h.counts[i] as number;
        values.push({ value: acc, labels: { ...labels, le: String(le) }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: h.count, labels: { ...labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: h.sum, labels, metricName: `${this.name}_sum` });
      values.push({ value: h.count, labels, metricName: `${this.name}_count` });
    }
    return values;
  }
}

/** A counter whose values are read at scrape time: `read` calls `set(labels, total)` for each series. */
export function counterFrom<L extends string>(name: string, help: string, labelNames: readonly L[], read: Reader<L>): void {
  declare({ kind: 'counter', name, help, labelNames, read: read as Reader<string> });
}

/** A gauge read at scrape time, like counterFrom. */
export function gaugeFrom<L extends string>(name: string, help: string, labelNames: readonly L[], read: Reader<L>): void {
  declare({ kind: 'gauge', name, help, labelNames, read: read as Reader<string> });
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
