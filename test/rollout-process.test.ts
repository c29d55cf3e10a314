/**
 * Rollout controls on real processes: the admin port's GET /status, POST
 * /drain and POST /stop (401 without the token), a drained instance exiting
 * 0 by itself, `gamemesh status` and `gamemesh drain`, the forced exit
 * of a process whose handler never returns, after --stop-timeout, and
 * `gamemesh up FILE --roll SERVICE` against a running `gamemesh up`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ServiceNode } from '../src/service/node.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { silent } from './helpers/mesh.js';
import { BIN, freePort, Proc, startDiscovery, tempDir, waitFor } from './helpers/proc.js';
import { adminRequest, ROLL_TOKEN, runCli, spawnRollService, timeOf } from './helpers/rollout.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

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
  // The version is in the registration, as gamemesh sd viewsvc shows it.
  const view = await runCli(['sd', '--addr', sd.addr, '--token', ROLL_TOKEN, 'viewsvc']);
  assert.match(view.stdout, new RegExp(`^roll\t${escape(svc.id)}\t.*"version":"3"`, 'm'));

  // Drain: it retires, and with nothing to hold it, exits 0 by itself.
  const drained = await adminRequest(svc.admin, 'POST', '/drain');
  assert.equal(drained.status, 202);
  assert.equal(drained.body['retiring'], true);
  const exit = await svc.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, svc.stderr.slice(-2000));
  assert.match(svc.stdout, /retiring POST \/drain/);
  assert.match(svc.stdout, /retired\n/);

  // gamemesh status and gamemesh drain: through the admin port, or the KV for a node without one.
  const plain = await spawnRollService(t, sd.addr, ['--svcindex', '2'], 'roll-plain');
  const withAdmin = await spawnRollService(t, sd.addr, ['--admin', '127.0.0.1:0', '--svcindex', '3'], 'roll-admin');
  const env = { ...process.env, GAMEMESH_TOKEN: ROLL_TOKEN };
  const st = await runCli(['status', '--addr', sd.addr], env);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^ID +VERSION +STATE +HOLDING +RSS +ADMIN$/m);
  assert.match(st.stdout, new RegExp(`^${escape(withAdmin.id)} +1 +running +0 +\\d+ MiB +${escape(withAdmin.admin)}$`, 'm'));
  assert.match(st.stdout, new RegExp(`^${escape(plain.id)} +1 +running +- +- +\\(none\\)$`, 'm'));
  const json = JSON.parse((await runCli(['status', '--addr', sd.addr, '--json'], env)).stdout) as Array<{ id: string; holding?: number }>;
  assert.equal(json.find((r) => r.id === withAdmin.id)?.holding, 0);
  assert.equal((await runCli(['drain', 'nosuch#0@dev', '--addr', sd.addr], env)).code, 1);
  const viaKv = await runCli(['drain', plain.id, '--addr', sd.addr], env);
  assert.equal(viaKv.code, 0, viaKv.stderr);
  assert.match(viaKv.stdout, /drain requested in config\/nodes/);
  assert.deepEqual(await plain.exited, { code: 0, signal: null });
  const viaAdmin = await runCli(['drain', withAdmin.id, '--addr', sd.addr], env);
  assert.equal(viaAdmin.code, 0, viaAdmin.stderr);
  assert.match(viaAdmin.stdout, /retiring/);
  assert.deepEqual(await withAdmin.exited, { code: 0, signal: null });
  // A wrong token is refused by the admin ports too.
  const other3 = await spawnRollService(t, sd.addr, ['--admin', '127.0.0.1:0', '--svcindex', '4'], 'roll-4');
  const bad = await runCli(['status', '--addr', sd.addr], { ...process.env, GAMEMESH_TOKEN: 'wrong' });
  assert.notEqual(bad.code, 0);
  await other3.stop();

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

test('gamemesh up FILE --roll SERVICE: the running supervisor rolls it; the old instance exits 0 and is not restarted', { timeout: 90_000 }, async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'cluster.json');
  const sdPort = await freePort();
  fs.writeFileSync(
    file,
    JSON.stringify({
      name: 'rolltest',
      vars: { sdaddr: `127.0.0.1:${sdPort}` },
      env: { GAMEMESH_TOKEN: ROLL_TOKEN, GAMEMESH_ADMIN: '127.0.0.1:0' },
      services: [
        { name: 'discovery', role: 'discovery', run: ['gamemesh', 'discovery', '--addr', '${sdaddr}'], ready: 'listening on' },
        { name: 'roll', run: ['node', 'dist/test/fixtures/rollout-service.js'], ready: '^ready ', version: 4 },
      ],
    }),
  );
  const noUp = await runCli(['up', file, '--roll', 'roll']);
  assert.equal(noUp.code, 1);
  assert.match(noUp.stderr, /no gamemesh up is running/);

  const up = new Proc('gamemesh up', process.execPath, [BIN, 'up', file]);
  t.after(() => up.kill('SIGINT', 15_000).catch(() => up.stop()));
  await up.waitForStdout(/cluster rolltest is up/, 30_000);
  const env = { ...process.env, GAMEMESH_TOKEN: ROLL_TOKEN };
  assert.match((await runCli(['status', '--addr', `127.0.0.1:${sdPort}`], env)).stdout, /^roll#0@dev +4 +running/m);

  const bad = await runCli(['up', file, '--roll', 'nosuch']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /no service "nosuch" in cluster rolltest/);
  const refused = await runCli(['up', file, '--roll', 'discovery']);
  assert.match(refused.stderr, /cannot roll discovery/);

  const rolled = await runCli(['up', file, '--roll', 'roll'], process.env, 60_000);
  assert.equal(rolled.code, 0, `${rolled.stdout}\n${rolled.stderr}`);
  assert.match(rolled.stdout, /roll: rolling: starting version 5: --svcversion 5 --svcindex 512/);
  assert.match(rolled.stdout, /roll: version 5 is ready; the old instance retires\nroll: the old instance exited with code 0\nrolled roll/);
  const after = await runCli(['status', '--addr', `127.0.0.1:${sdPort}`], env);
  assert.match(after.stdout, /^roll#512@dev +5 +running/m);
  assert.doesNotMatch(after.stdout, /^roll#0@dev/m);
  assert.match(up.stdout, /roll +\| stopped \(exited with code 0\)/);
  // And back: index 0 again, version 6.
  const again = await runCli(['up', file, '--roll', 'roll'], process.env, 60_000);
  assert.equal(again.code, 0, again.stderr);
  assert.match((await runCli(['status', '--addr', `127.0.0.1:${sdPort}`], env)).stdout, /^roll#0@dev +6 +running/m);
  // Drained by hand, it leaves for good: gamemesh up does not bring it back.
  assert.equal((await runCli(['drain', 'roll#0@dev', '--addr', `127.0.0.1:${sdPort}`], env)).code, 0);
  await up.waitForStdout(/roll +\| exited with code 0 by itself \(retired, or stopped over its admin port\); not restarted/, 15_000);
  assert.deepEqual(await up.kill('SIGINT', 15_000), { code: 0, signal: null });
});
