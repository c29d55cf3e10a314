/**
 * Versions and retiring in one process (docs/operations.md): the admission
 * rule, a newer version taking over selection and lookups by type while
 * calls keep flowing, the older one leaving by itself once idle, the drain
 * request in config/nodes, --drain-max cutting a retiring node short; the
 * roll plan (versions, indexes) and hostile input on the roll control socket.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { admission, admitted, newestVersions } from '../src/discovery/admission.js';
import { nodeStateKey, updateNodeState } from '../src/discovery/node-state.js';
import type { ServiceDesc } from '../src/discovery/types.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, serveEcho, startDiscoveryServer, startNode } from './helpers/mesh.js';
import { tempDir, waitFor } from './helpers/proc.js';
import { parseClusterFile } from '../src/up/config.js';
import type { ResolvedService } from '../src/up/resolve.js';
import { cannotRoll, controlPath, indexOf, listenControl, requestRoll, rolledSpec, versionOf } from '../src/up/roll.js';

const desc = (id: string, meta: Record<string, string>, name = 'game'): ServiceDesc => ({ id, name, host: '127.0.0.1', port: 1, meta: { group: 'dev', addr: '1.16.0', ...meta } });

test('admission: available flag, draining, retiring, versions per service and group', () => {
  const v1 = desc('game#0@dev', { version: '1' });
  const v2 = desc('game#1@dev', { version: '2' });
  const v2starting = desc('game#2@dev', { version: '2', ready: '0' });
  const v3retiring = desc('game#3@dev', { version: '3', state: 'retiring' });
  const other = desc('game#0@test', { version: '1', group: 'test' });
  const otherCluster = desc('game#5@dev/c2', { version: '9', addr: '2.16.5' });
  assert.deepEqual(admission(v1), { admit: true });
  assert.match((admission(v1, { state: { available: false } }) as { reason: string }).reason, /disabled/);
  assert.match((admission(v1, { draining: true }) as { reason: string }).reason, /stopping/);
  assert.match((admission(v3retiring) as { reason: string }).reason, /retiring/);
  const newest = newestVersions([v1, v2, v2starting, v3retiring, other, otherCluster]);
  assert.equal(newest(v1), 2, 'a retiring v3 does not count');
  assert.equal(newest(other), 1, 'another group has its own versions');
  assert.equal(newest(otherCluster), 9, 'another cluster has its own versions too');
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
  let slowest = 0;
  let stop = false;
  const flow = (async () => {
    for (let n = 0; !stop; n++) {
      try {
        const t0 = performance.now();
        const r = await caller.call('echo', EchoReq, EchoResp, { text: 'hi', n }, { timeoutMs: 3000 });
        slowest = Math.max(slowest, performance.now() - t0);
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
  t.diagnostic(`calls: ${[...servers].map(([id, n]) => `${id} ${n}`).join(', ')}; failed ${failures}; slowest ${slowest.toFixed(1)} ms`);
  assert.equal(failures, 0, 'no call failed across the takeover');
  assert.deepEqual(await caller.addrsByType(40), [v2.logicalAddress]);
  // An old version started by mistake retires at once, and never gets a call.
  const late = await startNode(defer, addr, { name: 'echo', type: 40, config: { svcindex: 2, svcversion: 1 } }, serveEcho);
  await waitFor(() => late.status().state === 'stopped', 10_000, 'the late v1 stops by itself');
  for (let n = 0; n < 20; n++) assert.equal((await caller.call('echo', EchoReq, EchoResp, { text: 'after', n })).server, v2.id);
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

test('roll plans: next version and a flipped index appended; cluster-file versions checked', () => {
  const spec = (args: string[], env: Record<string, string> = {}): ResolvedService => ({ name: 'game', run: [], command: 'node', args, env, ready: undefined, oneshot: false, skip: undefined });
  assert.deepEqual(rolledSpec(spec(['game.js'])).args, ['game.js', '--svcversion', '2', '--svcindex', '512']);
  const once = rolledSpec(spec(['game.js', '--svcindex', '3'], { GAMEMESH_SVCVERSION: '7' }));
  assert.deepEqual(once.args.slice(-4), ['--svcversion', '8', '--svcindex', '515']);
  // The appended flags are the last ones, so they count: back to index 3, version 9.
  assert.deepEqual(rolledSpec(once).args.slice(-4), ['--svcversion', '9', '--svcindex', '3']);
  assert.equal(indexOf(spec(['--svcindex=12'])), 12);
  assert.equal(versionOf(spec(['-svcversion', '4'])), 4);
  assert.deepEqual(rolledSpec(spec(['--svcindex', '1023'])).args.slice(-2), ['--svcindex', '511']);
  assert.match(cannotRoll({ ...spec([]), oneshot: true }) ?? '', /oneshot/);
  assert.match(cannotRoll({ ...spec([]), role: 'discovery' }) ?? '', /discovery/);
  const file = (version: unknown) => JSON.stringify({ name: 'c', services: [{ name: 'game', run: ['node', 'g.js'], version }] });
  assert.equal(parseClusterFile(file(3)).services[0]?.version, 3);
  for (const bad of [0, -1, 1.5, '2', null]) assert.throws(() => parseClusterFile(file(bad)), /services\[0\]\.version \(game\): must be a positive integer/);
});

test('the roll control socket: one JSON line asks; bad, oversized and concurrent requests are refused', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'cluster.json');
  let release: () => void = () => {};
  const asked: string[][] = [];
  const close = await listenControl(file, (names, note) => {
    asked.push([...names]);
    note(`rolling ${names.join(',')}`);
    return new Promise<void>((resolve) => (release = resolve));
  });
  t.after(close);
  assert.equal((fs.statSync(controlPath(file)).mode & 0o777).toString(8), '600');
  await assert.rejects(listenControl(file, async () => {}), /another gamemesh up runs this cluster file/);
  const raw = (text: string) =>
    new Promise<string>((resolve) => {
      const sock = net.connect(controlPath(file));
      let got = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (got += d));
      sock.on('error', () => resolve(got));
      sock.on('close', () => resolve(got));
      sock.write(text);
    });
  assert.match(await raw('not json\n'), /expected \{\\"roll\\": \[/);
  assert.match(await raw('{"roll": []}\n'), /expected \{\\"roll\\": \[/);
  assert.match(await raw('{"roll": [1]}\n'), /expected \{\\"roll\\": \[/);
  assert.equal(await raw('x'.repeat(70 * 1024)), '', 'a line over 64 KiB is cut off');
  const notes: string[] = [];
  const first = requestRoll(file, ['game'], (n) => notes.push(n));
  await waitFor(() => notes.length === 1, 5000, 'the first roll starts');
  await assert.rejects(requestRoll(file, ['agent'], () => {}), /a roll is already under way/);
  release();
  await first;
  assert.deepEqual(asked, [['game']]);
  assert.deepEqual(notes, ['rolling game']);
  close();
  await assert.rejects(requestRoll(file, ['game'], () => {}), /no gamemesh up is running/);
});
