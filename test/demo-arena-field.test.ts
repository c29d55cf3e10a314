/** The arena's simulation (demo/arena/field.ts) and tick-jitter window (jitter.ts), without a network. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FIELD, RADIUS, SPEED, spawn, steer, step } from '../demo/arena/field.js';
import { JitterRecorder } from '../demo/arena/jitter.js';

test('arena field: moves by the held direction, clamps hostile input, stays inside, ignores stale inputs', () => {
  const b = spawn('p', 0);
  const x0 = b.x;
  steer(b, 1, 0, 1);
  step(b, 100);
  assert.equal(b.x, x0 + SPEED / 10);
  // Out-of-range and non-numbers become -1..1 / 0; a diagonal is no faster than a straight line.
  steer(b, 1e9, Number.NaN, 2);
  assert.deepEqual([b.dx, b.dy, b.ack], [1, 0, 2]);
  steer(b, -5, 7, 3);
  const before = { x: b.x, y: b.y };
  step(b, 100);
  assert.ok(Math.abs(Math.hypot(b.x - before.x, b.y - before.y) - SPEED / 10) < 1e-9);
  // A reordered older input is ignored.
  steer(b, 0, 0, 2);
  assert.deepEqual([b.dx, b.dy, b.ack], [-1, 1, 3]);
  // A stalled tick moves a bounded amount, and never out of the field.
  for (let i = 0; i < 100; i++) step(b, 10_000);
  assert.deepEqual([b.x, b.y], [RADIUS, FIELD.height - RADIUS]);
  assert.equal(new Set(Array.from({ length: 8 }, (_, i) => `${spawn('q', i).x},${spawn('q', i).y}`)).size, 8, 'eight spawn spots');
});

test('arena jitter: p99 of |interval - period| over the window only', () => {
  const j = new JitterRecorder(50);
  j.record(90, 0); // outside the window below
  for (let i = 0; i < 99; i++) j.record(51, 20_000);
  j.record(60, 20_000);
  const s = j.summary(10, 25_000);
  assert.deepEqual([s.ticks, s.p50Ms, s.p99Ms, s.maxMs], [100, 1, 1, 10]);
});
