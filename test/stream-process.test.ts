/**
 * Streams to a game node in another process when that process hangs
 * (SIGSTOP): the kernel keeps the TCP connection up, so only the link's idle
 * timeout can tell; every stream on the link must then fail with
 * `unavailable` within that failure detection time (15 s idle, checked
 * every 2.5 s), not hang forever.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { ServiceNode } from '../src/service/node.js';
import type { MeshStream } from '../src/service/stream/index.js';
import { ROOT, spawnNode, startDiscovery, within } from './helpers/proc.js';
import { expectStreamError } from './helpers/streams.js';

const IDLE_MS = 15_000;

test('a hung game process: every stream on its link fails with unavailable within the idle timeout', async (t) => {
  const sd = await startDiscovery(t);
  const game = spawnNode(t, path.join(ROOT, 'dist', 'examples', 'stream-gate', 'game.js'), ['--sdaddr', sd.addr, '--loglevel', 'warn'], 'game');
  await game.waitForStdout(/ready/, 10_000);
  const gate = new ServiceNode({ name: 'gate', config: { sdaddr: sd.addr, listen: '127.0.0.1:0' }, dependencies: ['game'], logger: pino({ level: 'silent' }) });
  t.after(() => gate.stop());
  await gate.start();
  await within(gate.whenReady(), 10_000, 'the gate linked to the game');
  const streams: MeshStream[] = [];
  for (let i = 0; i < 50; i++) {
    const s = gate.openStream('game');
    await within(once(s, 'open'), 5000, 'a stream to open');
    s.write(`hello ${i}`);
    await within(once(s, 'data'), 5000, 'its echo');
    streams.push(s);
  }
  game.child.kill('SIGSTOP');
  t.after(() => game.child.kill('SIGCONT'));
  const t0 = performance.now();
  const errors = await Promise.all(streams.map((s) => expectStreamError(s, 'unavailable', /lost: idle for over/, IDLE_MS + 10_000)));
  const took = performance.now() - t0;
  assert.equal(errors.length, 50);
  assert.ok(took >= IDLE_MS - 3000, `not before the idle timeout (${Math.round(took)} ms)`);
  assert.ok(took <= IDLE_MS + 5000, `within the idle timeout and a check interval (${Math.round(took)} ms)`);
});
