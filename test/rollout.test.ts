/**
 * Versions and retiring in one process (docs/rollout.md): the admission
 * rule, a newer version taking over selection and lookups by type while
 * calls keep flowing, the older one leaving by itself once idle, the drain
 * request in config/nodes, and --drain-max cutting a retiring node short.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admission, admitted, newestVersions } from '../src/discovery/admission.js';
import { nodeStateKey, updateNodeState } from '../src/discovery/node-state.js';
import type { ServiceDesc } from '../src/discovery/types.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, serveEcho, startDiscoveryServer, startNode } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

const desc = (id: string, meta: Record<string, string>, name = 'game'): ServiceDesc => ({ id, name, host: '127.0.0.1', port: 1, meta: { group: 'dev', ...meta } });

test('admission: available flag, draining, retiring, versions per service and group', () => {
  const v1 = desc('game#0@dev', { version: '1' });
  const v2 = desc('game#1@dev', { version: '2' });
  const v2starting = desc('game#2@dev', { version: '2', ready: '0' });
  const v3retiring = desc('game#3@dev', { version: '3', state: 'retiring' });
  const other = desc('game#0@test', { version: '1', group: 'test' });
  assert.deepEqual(admission(v1), { admit: true });
  assert.match((admission(v1, { state: { available: false } }) as { reason: string }).reason, /disabled/);
  assert.match((admission(v1, { draining: true }) as { reason: string }).reason, /stopping/);
  assert.match((admission(v3retiring) as { reason: string }).reason, /retiring/);
  const newest = newestVersions([v1, v2, v2starting, v3retiring, other]);
  assert.equal(newest(v1), 2, 'a retiring v3 does not count');
  assert.equal(newest(other), 1, 'another group has its own versions');
  assert.match((admission(v1, { newest: newest(v1) }) as { reason: string }).reason, /version 1; version 2 of game is live/);
  assert.equal(admission(v2, { newest: newest(v2) }).admit, true);
  // A version that is still starting takes nothing over.
  assert.equal(newestVersions([v1, v2starting])(v1), 1);
  // A disabled newer version takes nothing over either.
  const states = (id: string) => ({ available: id !== 'game#1@dev' });
  assert.deepEqual(admitted([v1, v2, other], states).map((d) => d.id), ['game#0@dev', 'game#0@test']);
  assert.deepEqual(admitted([v1, v2, other], () => ({ available: true })).map((d) => d.id), ['game#1@dev', 'game#0@test']);
  // Garbage versions count as 1 rather than winning.
  assert.equal(newestVersions([desc('x', { version: 'NaN' }), desc('y', { version: '-5' }), v1])(v1), 1);
});

test('a newer version takes over while calls flow; the older one retires and stops by itself', { timeout: 30_000 }, async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const v1 = await startNode(defer, addr, { name: 'echo', type: 40, config: { svcindex: 0, svcversion: 1 } }, serveEcho);
  const caller = await startNode(defer, addr, { name: 'caller', type: 41, dependencies: ['echo'] });
  await caller.whenReady();
  const retired = new Promise<void>((resolve) => v1.once('retired', resolve));
  const retiring = new Promise<string>((resolve) => v1.once('retiring', resolve));

  const servers = new Map<string, number>();
  let failures = 0;
  let stop = false;
  const flow = (async () => {
    for (let n = 0; !stop; n++) {
      try {
        const r = await caller.call('echo', EchoReq, EchoResp, { text: 'hi', n }, { timeoutMs: 3000 });
        servers.set(r.server, (servers.get(r.server) ?? 0) + 1);
      } catch (err) {
        failures++;
        t.diagnostic(`call failed: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await waitFor(() => (servers.get(v1.id) ?? 0) > 20, 10_000, 'calls reach v1');
  const v2 = await startNode(defer, addr, { name: 'echo', type: 40, config: { svcindex: 1, svcversion: 2 } }, serveEcho);
  assert.match(await retiring, /version 2 of echo is live \(echo#1@dev\)/);
  await retired;
  await waitFor(() => v1.status().state === 'stopped', 10_000, 'v1 stops');
  const before = servers.get(v2.id) ?? 0;
  await waitFor(() => (servers.get(v2.id) ?? 0) > before + 20, 10_000, 'calls reach v2');
  stop = true;
  await flow;
  assert.equal(failures, 0, 'no call failed across the takeover');
  assert.deepEqual(await caller.addrsByType(40), [v2.logicalAddress]);
});

test('drain through config/nodes, holds, and --drain-max', { timeout: 30_000 }, async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  let held = 1;
  const node = await startNode(defer, addr, { name: 'room', type: 42, config: { 'drain-max': 1 } }, (n) => n.addHold(() => held));
  const other = await startNode(defer, addr, { name: 'watcher', type: 43 });
  await waitFor(async () => (await other.addrsByType(42)).length === 1, 5000, 'the room node is listed');
  const timedOut = new Promise<number>((resolve) => node.once('drainTimeout', () => resolve(performance.now())));
  const t0 = performance.now();
  await updateNodeState(other.discovery, node.id, { drain: true });
  await waitFor(() => node.retiring, 5000, 'the drain request is taken');
  // The request is cleared as it is taken; the registration says why it gets no work.
  await waitFor(async () => (await other.discovery.get(nodeStateKey(node.id))) === undefined, 5000, 'the drain flag is cleared');
  await waitFor(async () => (await other.addrsByType(42)).length === 0, 5000, 'a retiring node is not looked up by type');
  assert.equal((await other.discovery.listServices()).find((d) => d.id === node.id)?.meta['state'], 'retiring');
  assert.equal(node.status().state, 'retiring');
  assert.equal(node.status().holding, 1);
  const at = await timedOut;
  assert.ok(at - t0 >= 900, `drain-max of 1 s was kept (${Math.round(at - t0)} ms)`);
  held = 0;
  await waitFor(() => node.status().state === 'stopped', 5000, 'the node stops after drain-max');
  assert.equal(node.retire(), false, 'a stopped node does not retire again');
});
