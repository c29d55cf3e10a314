/**
 * The metric shapes of src/observe/metrics.ts: FastHistogram's buckets (a
 * value on a bound belongs to that bucket, as in Prometheus), families
 * declared before and after prom-client is loaded, a name declared twice,
 * and Instances, whose counters never go down when an instance retires.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { counterFrom, enableMetrics, FastHistogram, gaugeFrom, HistogramFamily, Instances, metricsOn } from '../src/observe/metrics.js';
import { parsePrometheus } from './helpers/prom.js';

test('FastHistogram: le semantics, sum and count', () => {
  const h = new FastHistogram([1, 2, 5]);
  for (const v of [0.5, 1, 1.5, 2, 5, 7, -1]) h.observe(v);
  assert.deepEqual([...h.counts], [3, 2, 1, 1]);
  assert.equal(h.count, 7);
  assert.equal(h.sum, 16);
});

test('families before and after enableMetrics, in the text format', async () => {
  assert.equal(metricsOn(), false, 'off until enabled');
  let n = 3;
  counterFrom('test_early_total', 'declared before prom-client is loaded', ['kind'], (set) => {
    set({ kind: 'a' }, n);
    set({ kind: 'b' }, 0);
  });
  const fam = new HistogramFamily('test_early_seconds', 'a histogram', ['method'], [0.1, 1]);
  fam.with('x').observe(0.05);
  fam.with('x').observe(0.5);
  fam.with('y').observe(9);
  const registry = await enableMetrics();
  assert.equal(metricsOn(), true);
  assert.equal(await enableMetrics(), registry, 'one registry per process');
  gaugeFrom('test_late', 'declared after', [], (set) => set({}, 42));
  assert.throws(() => gaugeFrom('test_late', 'again', [], () => {}), /declared twice/);
  n = 5;
  const s = parsePrometheus(await registry.metrics());
  assert.equal(s.value('test_early_total', { kind: 'a' }), 5, 'read at scrape time');
  assert.equal(s.value('test_early_total', { kind: 'b' }), 0);
  assert.equal(s.value('test_late'), 42);
  assert.equal(s.value('test_early_seconds_bucket', { method: 'x', le: '0.1' }), 1);
  assert.equal(s.value('test_early_seconds_bucket', { method: 'x', le: '1' }), 2);
  assert.equal(s.value('test_early_seconds_bucket', { method: 'x', le: '+Inf' }), 2);
  assert.equal(s.value('test_early_seconds_count', { method: 'y' }), 1);
  assert.equal(s.value('test_early_seconds_sum', { method: 'y' }), 9);
  assert.ok(s.value('process_cpu_user_seconds_total') !== undefined, 'default metrics');
  const json = await registry.getMetricsAsJSON();
  assert.equal(json.find((m) => m.name === 'test_early_seconds')?.type, 'histogram');
});

test('Instances: totals over live and retired instances never go down', () => {
  const inst = new Instances<{ n: number }, { n: number }>((i) => ({ n: i.n }), { n: 0 });
  const a = { n: 5 };
  const b = { n: 7 };
  inst.add(a);
  inst.add(b);
  assert.equal(inst.totals().n, 12);
  inst.retire(a);
  a.n = 100; // what it does after retiring no longer counts
  assert.equal(inst.totals().n, 12);
  inst.retire(a);
  assert.equal(inst.totals().n, 12, 'retiring twice counts once');
  assert.deepEqual([...inst.values()], [b]);
});
