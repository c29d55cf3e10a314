/**
 * docs/grafana/gamemesh-dashboard.json must keep up with the code: every
 * metric a panel queries is one this process registers (the metric modules
 * of every layer, with the default process metrics on), with the histogram
 * suffixes only on histograms; panels are well formed for Grafana's import.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import '../src/service/metrics.js';
import '../src/gateway/metrics.js';
import '../src/hub/metrics.js';
import '../src/login/metrics.js';
import '../src/discovery/metrics.js';
import { enableMetrics } from '../src/observe/metrics.js';
import { ROOT } from './helpers/proc.js';

interface Panel {
  type: string;
  title: string;
  id: number;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ expr: string; refId: string }>;
}

test('the Grafana dashboard queries only metrics gamemesh exposes', async () => {
  const registry = await enableMetrics();
  const families = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  const dash = JSON.parse(readFileSync(path.join(ROOT, 'docs', 'grafana', 'gamemesh-dashboard.json'), 'utf8')) as { panels: Panel[]; templating: { list: { name: string }[] }; uid: string };
  assert.ok(dash.uid);
  assert.deepEqual(dash.templating.list.map((v) => v.name), ['datasource', 'job']);
  const ids = new Set<number>();
  let queried = 0;
  for (const p of dash.panels) {
    assert.ok(!ids.has(p.id), `panel id ${p.id} twice`);
    ids.add(p.id);
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`);
    if (p.type === 'row') continue;
    assert.ok(p.targets && p.targets.length > 0, `${p.title} has queries`);
    assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: refIds are unique`);
    for (const t of p.targets) {
      for (const name of t.expr.match(/\b(gamemesh|process|nodejs)_[a-z0-9_]+/g) ?? []) {
        queried++;
        const base = name.replace(/_(bucket|sum|count)$/, '');
        if (families.has(name)) continue;
        assert.ok(families.has(base), `${p.title}: ${name} is not a metric gamemesh registers`);
        assert.equal(families.get(base), 'histogram', `${p.title}: ${name} has a histogram suffix on a ${families.get(base)}`);
      }
    }
  }
  assert.ok(queried >= 30, `the panels query the main metrics (${queried} references)`);
});
