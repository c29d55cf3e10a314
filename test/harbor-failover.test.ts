/**
 * Harbor failover with real processes: cluster 1 has two `gamemesh harbor`
 * processes; one is killed with SIGKILL while calls to cluster 2 are in
 * flight through both. The calls on the dead one fail fast with
 * `unavailable`, those on the other complete, new traffic moves to the
 * survivor within a second, and nothing hangs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Harbor } from '../src/harbor/harbor.js';
import type { RpcError } from '../src/service/errors.js';
import type { ServiceNode } from '../src/service/node.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import path from 'node:path';
import { connectDiscovery } from '../src/discovery/connect.js';
import { cleanupStack, expectRpcError, SECRET, serveEcho, silent, startDiscoveryServer, startNode, type EchoStats } from './helpers/mesh.js';
import { BIN, FIXTURES, spawnNode, waitFor, type Proc } from './helpers/proc.js';

const CENTER_SECRET = 'center-failover-secret';

test('kill -9 one of two harbors mid-traffic: its calls fail fast, the others complete, new calls move over within 1 s', { timeout: 60_000 }, async (t) => {
  const defer = cleanupStack(t);
  const [sd1, sd2, center] = await Promise.all([startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer, 500, CENTER_SECRET)]);
  const harborProc = (index: number): Proc =>
    spawnNode(t, BIN, ['harbor', '--sdaddr', sd1.addr, '--cluster', '1', '--svcindex', String(index), '--token', SECRET, '--center', center.addr, '--center-token', CENTER_SECRET, '--loglevel', 'warn'], `harbor-1.${index}`);
  const procs = [harborProc(0), harborProc(1)];
  await Promise.all(procs.map((p) => p.waitForStdout(/harbor 1\.255\.\d+ listening/, 20_000)));
  const h2 = new Harbor({ config: { sdaddr: sd2.addr, cluster: 2, token: SECRET }, center: center.addr, centerToken: CENTER_SECRET, logger: silent });
  defer(() => h2.stop());
  await h2.start();
  await waitFor(() => h2.center.instances('harbor').length === 2, 10_000, 'cluster 2 links to both harbors of cluster 1');

  const stats: EchoStats[] = [];
  const targets: ServiceNode[] = [];
  for (let i = 1; i <= 8; i++) targets.push(await startNode(defer, sd2.addr, { name: 'echo', type: 9, config: { cluster: 2, svcindex: i } }, (n) => void stats.push(serveEcho(n))));
  const caller = await startNode(defer, sd1.addr, { name: 'caller', type: 8, config: { cluster: 1, svcindex: 1 } });
  await waitFor(() => caller.instances('harbor').length === 2, 10_000, 'the caller links to both harbors');
  for (const target of targets) assert.equal((await caller.call({ addr: target.logicalAddress }, EchoReq, EchoResp, { text: 'warm', n: 0 })).server, target.id);

  // One slow call to each target; the targets spread over both harbors.
  const inflight = targets.map((target) => {
    const t0 = performance.now();
    return caller.call({ addr: target.logicalAddress }, EchoReq, EchoResp, { text: 'sleep:2500', n: 1 }, { timeoutMs: 15_000 }).then(
      () => ({ code: 'ok', at: performance.now(), t0 }),
      (err: RpcError) => ({ code: err.code, at: performance.now(), t0 }),
    );
  });
  await waitFor(() => stats.every((s) => s.begun.includes('sleep:2500')), 10_000, 'every slow call reached its target');
  // Steady traffic too: 40 workers calling the targets back to back, across the kill.
  let stopTraffic = false;
  const traffic: Array<{ code: string; at: number }> = [];
  const workers = Array.from({ length: 40 }, async (_, w) => {
    for (let i = 0; !stopTraffic; i++) {
      const target = targets[(w + i) % targets.length] as ServiceNode;
      const code = await caller.call({ addr: target.logicalAddress }, EchoReq, EchoResp, { text: `w${w}`, n: i }, { timeoutMs: 5000 }).then(
        () => 'ok',
        (err: RpcError) => err.code,
      );
      traffic.push({ code, at: performance.now() });
    }
  });
  await new Promise((r) => setTimeout(r, 300));
  const killedAt = performance.now();
  await procs[0]?.kill('SIGKILL');

  // New traffic: every target answers again, through the survivor, within a second of the kill.
  const moved = await Promise.all(
    targets.map(async (target) => {
      for (;;) {
        try {
          await caller.call({ addr: target.logicalAddress }, EchoReq, EchoResp, { text: 'after', n: 2 }, { timeoutMs: 1000 });
          return performance.now() - killedAt;
        } catch (err) {
          if (performance.now() - killedAt > 5000) throw err;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }),
  );
  assert.ok(Math.max(...moved) < 1000, `new calls moved to the other harbor within 1 s of the kill (took ${Math.round(Math.max(...moved))} ms)`);
  await new Promise((r) => setTimeout(r, 1500));
  stopTraffic = true;
  await Promise.all(workers);
  const codes0 = new Set(traffic.map((x) => x.code));
  assert.ok([...codes0].every((c) => c === 'ok' || c === 'unavailable'), `steady traffic saw only ok or unavailable (no timeouts, nothing hung): ${[...codes0].join(',')}`);
  const late = traffic.filter((x) => x.at > killedAt + 1000);
  assert.ok(late.length > 100 && late.every((x) => x.code === 'ok'), `a second after the kill every call succeeds (${late.length} calls, codes ${[...new Set(late.map((x) => x.code))].join(',')})`);
  assert.ok(traffic.filter((x) => x.at < killedAt).every((x) => x.code === 'ok'), 'before the kill every call succeeded');

  const settled = await Promise.all(inflight);
  const codes = settled.map((s) => s.code);
  assert.ok(codes.includes('unavailable'), `some in-flight calls went through the killed harbor: ${codes.join(',')}`);
  assert.ok(codes.includes('ok'), `some went through the survivor and completed: ${codes.join(',')}`);
  for (const s of settled) {
    assert.ok(s.code === 'ok' || s.code === 'unavailable', `only ok or unavailable, got ${s.code}`);
    if (s.code === 'unavailable') assert.ok(s.at - killedAt < 1000, `a call on the dead harbor failed ${Math.round(s.at - killedAt)} ms after the kill`);
  }
  // The targets' handlers of the lost calls were told: their work is aborted, not left running.
  await waitFor(() => stats.filter((s) => s.aborted.length > 0).length === codes.filter((c) => c === 'unavailable').length, 5000, 'the lost calls are aborted on their targets');
  assert.equal(procs[1]?.running, true, 'the other harbor is still up');
});

test('kill -9 of the target: calls routed to it through harbors fail fast with unavailable, not at their deadline', { timeout: 60_000 }, async (t) => {
  const defer = cleanupStack(t);
  const [sd1, sd2, center] = await Promise.all([startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer, 500, CENTER_SECRET)]);
  const harbors = [1, 2].map((cluster) => new Harbor({ config: { sdaddr: cluster === 1 ? sd1.addr : sd2.addr, cluster, token: SECRET }, center: center.addr, centerToken: CENTER_SECRET, logger: silent }));
  for (const h of harbors) defer(() => h.stop());
  await Promise.all(harbors.map((h) => h.start()));
  const target = spawnNode(t, path.join(FIXTURES, 'echo-service.js'), ['--sdaddr', sd2.addr, '--token', SECRET, '--cluster', '2', '--svcindex', '4'], 'echo-service 2.x.4');
  await target.waitForStdout(/^ready /m, 10_000);
  const disco = await connectDiscovery(sd2.addr, { token: SECRET });
  defer(() => disco.close());
  const addr = (await disco.listServices('echo'))[0]?.meta['addr'] as string;
  const caller = await startNode(defer, sd1.addr, { name: 'caller', type: 8, config: { cluster: 1, svcindex: 1 } });
  await waitFor(() => caller.instances('harbor').length === 1 && harbors.every((h) => h.linkedHarbors() === 1), 10_000, 'links');
  assert.equal((await caller.call({ addr }, EchoReq, EchoResp, { text: 'warm', n: 0 })).text, 'warm');
  const slow = Promise.allSettled(Array.from({ length: 5 }, (_, i) => caller.call({ addr }, EchoReq, EchoResp, { text: 'sleep:8000', n: i }, { timeoutMs: 15_000 })));
  await target.waitForStdout(/(begin sleep:8000\n[^]*){5}/, 10_000);
  const killedAt = performance.now();
  await target.kill('SIGKILL');
  const settled = await slow;
  for (const r of settled) await expectRpcError(r.status === 'rejected' ? Promise.reject(r.reason as Error) : Promise.resolve(r.value), 'unavailable', /gone/);
  assert.ok(performance.now() - killedAt < 2000, `the calls failed ${Math.round(performance.now() - killedAt)} ms after the kill, not at their deadline`);
});
