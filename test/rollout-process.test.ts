/**
 * Rollout controls on real processes: the admin port's GET /status, POST
 * /drain and POST /stop (401 without the token), a drained instance exiting
 * 0 by itself, `gamemesh status` and `gamemesh drain`, and the forced exit
 * of a process whose handler never returns, after --stop-timeout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceNode } from '../src/service/node.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { silent } from './helpers/mesh.js';
import { startDiscovery, waitFor } from './helpers/proc.js';
import { adminRequest, ROLL_TOKEN, spawnRollService, timeOf } from './helpers/rollout.js';

test('admin port: 401 without the token; GET /status, POST /drain, POST /stop', { timeout: 60_000 }, async (t) => {
  const sd = await startDiscovery(t, { token: ROLL_TOKEN });
  const svc = await spawnRollService(t, sd.addr, ['--admin', '127.0.0.1:0', '--svcversion', '3']);
  assert.match(svc.admin, /^127\.0\.0\.1:\d+$/);

  for (const [method, route] of [['GET', '/status'], ['POST', '/drain'], ['POST', '/stop']] as const) {
    assert.equal((await adminRequest(svc.admin, method, route, null)).status, 401, `${method} ${route} without a token`);
    assert.equal((await adminRequest(svc.admin, method, route, 'wrong-token')).status, 401, `${method} ${route} with a wrong token`);
  }
  assert.ok(svc.running, 'refused requests changed nothing');
  const status = await adminRequest(svc.admin, 'GET', '/status');
  assert.equal(status.status, 200);
  assert.equal(status.body['id'], svc.id);
  assert.equal(status.body['version'], 3);
  assert.equal(status.body['state'], 'running');
  assert.match(String(status.body['address']), /^127\.0\.0\.1:\d+$/);
  assert.equal(typeof (status.body['memory'] as { rss: number }).rss, 'number');
  assert.ok(Array.isArray(status.body['links']));
  assert.equal((await adminRequest(svc.admin, 'GET', '/drain')).status, 405);

  // Drain: it retires, and with nothing to hold it, exits 0 by itself.
  const drained = await adminRequest(svc.admin, 'POST', '/drain');
  assert.equal(drained.status, 202);
  assert.equal(drained.body['retiring'], true);
  const exit = await svc.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, svc.stderr.slice(-2000));
  assert.match(svc.stdout, /retiring POST \/drain/);
  assert.match(svc.stdout, /retired\n/);

  // POST /stop: a graceful stop, exit 0.
  const other = await spawnRollService(t, sd.addr, ['--admin', '127.0.0.1:0', '--svcindex', '1'], 'roll-2');
  assert.equal((await adminRequest(other.admin, 'POST', '/stop')).status, 202);
  assert.deepEqual(await other.exited, { code: 0, signal: null });
});

test('SIGTERM with a handler that never returns: the process exits after --stop-timeout', { timeout: 60_000 }, async (t) => {
  const sd = await startDiscovery(t, { token: ROLL_TOKEN });
  const svc = await spawnRollService(t, sd.addr, ['--stop-timeout', '1']);
  const caller = new ServiceNode({ name: 'caller', type: 45, dependencies: ['roll'], logger: silent, config: { sdaddr: sd.addr, token: ROLL_TOKEN, svcindex: 0 } });
  t.after(() => caller.stop());
  await caller.start();
  await caller.whenReady();
  assert.equal((await caller.call('roll', EchoReq, EchoResp, { text: 'hello', n: 1 })).text, 'hello');
  const stuck = caller.call('roll', EchoReq, EchoResp, { text: 'stuck', n: 2 }, { timeoutMs: 30_000 });
  stuck.catch(() => {});
  await svc.waitForStdout(/stuck begun/, 10_000);
  const t0 = performance.now();
  svc.child.kill('SIGTERM');
  const exit = await svc.exited;
  const tookMs = performance.now() - t0;
  // 1 s of stop timeout, then the close; well under the 30 s the call would wait, and the handler never finishes.
  assert.ok(tookMs >= 900, `waited for the stop timeout (${Math.round(tookMs)} ms)`);
  assert.ok(tookMs < 8000, `exited soon after the stop timeout (${Math.round(tookMs)} ms)`);
  assert.equal(exit.signal, null, 'it exited by itself, not by a kill');
  assert.equal(exit.code, 0);
  assert.match(svc.stderr, /abandoning calls still in flight/);
  // The caller hears of it at once (the link closed), not at its 30 s deadline.
  const failedIn = await timeOf(stuck);
  assert.ok(failedIn < 5000, `the stuck call failed soon after (${Math.round(failedIn)} ms)`);
  await assert.rejects(stuck);
  await waitFor(() => caller.instances('roll').length === 0, 5000, 'the caller dropped the link');
});
