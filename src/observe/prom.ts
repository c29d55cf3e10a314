/**
 * The prom-client side of src/observe/metrics.ts, loaded only when metrics
 * are turned on: the registry, the default process metrics, and one
 * prom-client metric per declared family, whose values are read from the
 * declaring code at scrape time.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricType } from 'prom-client';
import type { Bridge, Family, Sample } from './metrics.js';

export function createBridge(): Bridge {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    add(f: Family): void {
      const { name, help } = f;
      const labelNames = [...f.labelNames];
      if (f.kind === 'histogram') {
        new FamilyHistogram(f, registry);
      } else if (f.kind === 'counter') {
        const read = f.read;
        new Counter({ name, help, labelNames, registers: [registry], collect() {
          this.reset();
          read((labels, value) => this.inc(labels, value));
        } });
      } else {
        const read = f.read;
        new Gauge({ name, help, labelNames, registers: [registry], collect() {
          this.reset();
          read((labels, value) => this.set(labels, value));
        } });
      }
    },
  };
}

type HistogramFamilySpec = Extract<Family, { kind: 'histogram' }>;
type Exported = { name: string; help: string; type: MetricType; values: Sample[]; aggregator: 'sum' };

/** A prom-client Histogram whose samples come from the family's FastHistograms. */
class FamilyHistogram extends Histogram<string> {
  constructor(
    private readonly spec: HistogramFamilySpec,
    registry: Registry,
  ) {
    super({ name: spec.name, help: spec.help, labelNames: [...spec.labelNames], buckets: [...spec.bounds], registers: [registry] });
  }

  // The registry reads getForPromString() when there is one, else get().
  getForPromString(): Promise<Exported> {
    return Promise.resolve({ name: this.spec.name, help: this.spec.help, type: 'histogram' as unknown as MetricType, values: this.spec.samples(), aggregator: 'sum' });
  }

  override get(): ReturnType<Histogram<string>['get']> {
    return this.getForPromString() as unknown as ReturnType<Histogram<string>['get']>;
  }
}
