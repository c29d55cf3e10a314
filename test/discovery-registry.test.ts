/**
 * The service registry across real processes: a registering process dies and
 * its service goes away after the grace period; the discovery server dies and
 * comes back empty and the registration comes back by itself; and token auth.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { DiscoveryClient } from '../src/discovery/client.js';
import { DiscoveryError, serviceKey, type ServiceDesc, type ServiceEvent } from '../src/discovery/types.js';
import { connectClient, FIXTURES, freePort, spawnNode, startDiscovery, waitFor, within, type Cleanup } from './helpers/proc.js';

const GAME: ServiceDesc = { name: 'game', id: 'game#1@dev', host: '127.0.0.1', port: 1234, meta: {} };
const FIXTURE = path.join(FIXTURES, 'register-service.js');

interface Seen {
  event: ServiceEvent;
  at: number;
}

async function spawnRegistered(t: Cleanup, addr: string) {
  const child = spawnNode(t, FIXTURE, [addr, GAME.name, GAME.id], 'register-service');
  await child.waitForStdout(/^registered /m, 10_000);
  return child;
}

test("a killed process's service is removed after the grace period", { timeout: 30_000 }, async (t) => {
  const GRACE_MS = 500;
  const server = await startDiscovery(t, { graceMs: GRACE_MS });
  const watcher = await connectClient(t, { addr: server.addr });
  const seen: Seen[] = [];
  const watch = await watcher.watchServices('game', { onEvent: (event) => seen.push({ event, at: Date.now() }) });
  t.after(() => watch.stop());
  assert.deepEqual(watch.list(), []);

  const child = await spawnRegistered(t, server.addr);
  await waitFor(() => seen.some((s) => s.event.type === 'add'), 3000, "the watcher's add event");
  assert.deepEqual(
    seen.map((s) => s.event),
    [{ type: 'add', desc: GAME }],
  );
  assert.deepEqual(watch.list(), [GAME]);

  const killedAt = Date.now();
  const exit = await child.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  await waitFor(() => seen.some((s) => s.event.type === 'remove'), GRACE_MS + 1000 - (Date.now() - killedAt), "the watcher's remove event within graceMs + 1 s");
  const removed = seen.find((s) => s.event.type === 'remove') as Seen;
  assert.deepEqual(removed.event, { type: 'remove', desc: GAME });
  const elapsed = removed.at - killedAt;
  assert.ok(elapsed >= GRACE_MS - 50, `removed after ${elapsed} ms: the grace period of ${GRACE_MS} ms was not honoured`);
  assert.ok(elapsed <= GRACE_MS + 1000, `removed after ${elapsed} ms`);
  assert.deepEqual(watch.list(), []);
  assert.deepEqual(await watcher.listServices('game'), []);
  assert.equal(seen.length, 2, 'exactly one add and one remove');
});

test('after the server restarts empty, live services re-register by themselves', { timeout: 30_000 }, async (t) => {
  const port = await freePort();
  const first = await startDiscovery(t, { port });
  const watcher = await connectClient(t, { addr: first.addr, name: 'watcher' });
  // Unrelated writes first, so the registration's revision on the old server
  // (4) differs from the one it gets on the new, empty one.
  for (const k of ['a', 'b', 'c']) await watcher.put(`other/${k}`, k);
  const seen: Seen[] = [];
  const watch = await watcher.watchServices('game', { onEvent: (event) => seen.push({ event, at: Date.now() }) });
  t.after(() => watch.stop());

  const child = await spawnRegistered(t, first.addr);
  await waitFor(() => watch.get(GAME.id) !== undefined, 3000, 'the watcher to see the service');
  const key = serviceKey(GAME.name, GAME.id);
  const oldRev = watcher.cached(key)?.modRev;
  assert.equal(oldRev, 4);
  const firstServerId = watcher.serverId;
  const reconnects: boolean[] = [];
  watcher.on('connected', (info) => reconnects.push(info.reconnect));

  assert.equal((await first.kill('SIGKILL')).signal, 'SIGKILL');
  const restartedAt = seen.length;
  const second = await startDiscovery(t, { port }); // no --datafile: memory only
  assert.equal(second.port, port);

  // Nobody acts: the watcher's client and the child's client reconnect on their own.
  await waitFor(() => watcher.connected && watcher.serverId !== firstServerId, 8000, 'the watcher to reconnect to the new server');
  assert.deepEqual(reconnects, [true]);
  assert.equal(await watcher.get('other/a'), undefined, 'the new server really is empty');
  await waitFor(async () => (await watcher.listServices('game')).length === 1, 8000, 'the child to re-register with the new server');
  assert.deepEqual(await watcher.listServices('game'), [GAME]);
  await child.waitForStdout(/reconnect=true/, 3000);
  assert.ok(child.running, 'the registering process is still alive');

  // The watcher's view is rebuilt from the new server, not a stale leftover.
  await waitFor(() => watcher.cached(key)?.modRev === 1, 3000, "the watcher's cache to hold the new server's registration");
  assert.deepEqual(watch.list(), [GAME]);
  const after = seen.slice(restartedAt).map((s) => s.event);
  const last = after.at(-1);
  assert.ok(last, 'the watcher saw the re-registration');
  assert.ok(last.type === 'add' || last.type === 'update', JSON.stringify(after));
  assert.deepEqual(last.desc, GAME);
  assert.ok(
    after.every((e) => e.desc.id === GAME.id),
    JSON.stringify(after),
  );
});

test('SIGTERM exits 0 even when a registered client hangs through the shutdown', { timeout: 30_000 }, async (t) => {
  // The frozen child never answers the server's FIN, so the shutdown lasts
  // longer than the grace period its registration gets when its session closes.
  const GRACE_MS = 200;
  const server = await startDiscovery(t, { graceMs: GRACE_MS });
  const child = await spawnRegistered(t, server.addr);
  process.kill(child.pid, 'SIGSTOP');
  t.after(() => {
    if (child.running) process.kill(child.pid, 'SIGCONT');
  });

  const exit = await server.kill('SIGTERM', 6000);
  assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr}`);
  assert.doesNotMatch(server.stderr, /Error|at .*\.js:\d+/, 'no crash during the shutdown');
  assert.ok(
    server.logs().some((l) => l['msg'] === 'discovery stopped'),
    'the server logs that it stopped',
  );
});

test('with --token, a wrong or missing token is refused as unauthorized; the right one works', { timeout: 30_000 }, async (t) => {
  const server = await startDiscovery(t, { token: 's3cret' });

  for (const [token, message] of [
    ['wrong', /wrong token/],
    [undefined, /requires a token/],
  ] as const) {
    const started = Date.now();
    await assert.rejects(
      within(DiscoveryClient.connect({ addr: server.addr, token, connectTimeoutMs: 4000 }), 6000, 'the refusal'),
      (err: unknown) => {
        assert.ok(err instanceof DiscoveryError, `expected a DiscoveryError, got ${String(err)}`);
        assert.equal(err.code, 'unauthorized');
        assert.match(err.message, message);
        return true;
      },
      `token ${String(token)}`,
    );
    // A refusal, not a connect timeout after retrying.
    assert.ok(Date.now() - started < 2000, `refusal took ${Date.now() - started} ms`);
  }

  const client = await connectClient(t, { addr: server.addr, token: 's3cret' });
  assert.ok(client.connected);
  const rev = await client.put('auth/ok', 'yes');
  assert.equal((await client.get('auth/ok'))?.modRev, rev);
});
