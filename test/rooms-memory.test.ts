/**
 * Placement by memory with real processes: nodes forced above their memory
 * threshold with `--memlimit 10m` (any Node process's RSS is far above it)
 * beside nodes with room. Shown: login never sends a player to the agent
 * above it, and that agent refuses a client that connects anyway, saying
 * why; no room is placed on the backend above it; when every backend is
 * above it, matchmaking fails with the typed error `overloaded` and the
 * reason; when every agent is, login answers 503 with the reason.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, GameClient, tcpTransport } from '../src/client-node/index.js';
import type { AgentProc } from './helpers/gateway.js';
import { BIN, spawnNode, waitFor, type Cleanup } from './helpers/proc.js';
import { expectCode, roomClient, startRoomCluster, whenLinked } from './helpers/rooms.js';

const OVER = ['--memlimit', '10m'];

async function startLoginProc(t: Cleanup, sdaddr: string): Promise<string> {
  const proc = spawnNode(t, BIN, ['login', '--sdaddr', sdaddr, '--http', '127.0.0.1:0', '--demo', '--loglevel', 'warn', '--rate-burst', '1000', '--jwt-secret', 'a-test-secret-of-at-least-32-bytes!!'], 'gamemesh login');
  const m = await proc.waitForStdout(/login listening on (\S+)\n/, 10_000);
  return m[1] as string;
}

async function login(url: string, account: string): Promise<{ status: number; body: { agent?: { tcp?: string }; error?: string } }> {
  const res = await fetch(new URL('/api/login', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account, password: 'password-123' }) });
  return { status: res.status, body: (await res.json()) as { agent?: { tcp?: string }; error?: string } };
}

test('a node above its memory threshold gets no new rooms and no players; all above: overloaded and 503, with the reason', { timeout: 60_000 }, async (t) => {
  const { sdaddr, agents, backends } = await startRoomCluster(t, { backendArgs: [[], OVER], agentArgs: [OVER, []] });
  const [hot, cool] = agents as [AgentProc, AgentProc];
  const url = await startLoginProc(t, sdaddr);

  // Login: every player goes to the agent with room.
  await waitFor(async () => (await login(url, 'probe')).status === 200, 10_000, 'login sees an agent').catch(async (err: Error) => assert.fail(`${err.message}: ${JSON.stringify(await login(url, 'probe'))}`));
  for (let i = 0; i < 10; i++) {
    const r = await login(url, `player${i}`);
    assert.equal(r.status, 200, r.body.error);
    assert.equal(r.body.agent?.tcp, `${cool.host}:${cool.tcpPort}`, 'login skips the agent above its threshold');
  }
  // The hot agent refuses a client that comes anyway, and says why.
  const direct = new GameClient({ transport: () => tcpTransport(hot.host, hot.tcpPort), reconnect: false });
  t.after(() => direct.close());
  await assert.rejects(direct.connect(), (err: unknown) => err instanceof ClientError && err.code === 'kicked' && /the agent is full: agent#0@dev uses \d+ % of its 10\.0 MiB memory limit \(threshold 90 %\)/.test(err.message));

  // Rooms: none is placed on the hot backend (rooms#1), whichever instance matchmakes.
  const clients = Array.from({ length: 10 }, () => roomClient(t, cool));
  await Promise.all(clients.map((x) => x.c.connect()));
  await whenLinked([clients[0]!.c]);
  const rooms = await Promise.all(clients.map((x) => x.c.create('match')));
  assert.deepEqual([...new Set(rooms.map((r) => r.host))], ['rooms#0@dev']);

  // Only the hot backend left: matchmaking says overloaded, and why.
  await backends[0]!.kill('SIGTERM');
  const late = roomClient(t, cool);
  await late.c.connect();
  await waitFor(
    async () => {
      try {
        await late.c.joinOrCreate('match', { fresh: true }, { timeoutMs: 3000 });
        return false;
      } catch (err) {
        return err instanceof ClientError && err.code === 'overloaded';
      }
    },
    10_000,
    'matchmaking answers overloaded once only the hot backend is left',
    200,
  );
  await expectCode(late.c.create('match'), 'overloaded', /rooms#1@dev uses \d+ % of its 10\.0 MiB memory limit/);

  // Only the hot agent left: login answers 503 with the reason.
  await cool.proc.kill('SIGTERM');
  await waitFor(async () => (await login(url, 'after')).status === 503, 10_000, 'login answers 503');
  const r = await login(url, 'after2');
  assert.equal(r.status, 503);
  assert.match(r.body.error ?? '', /no gateway \(agent\) is available right now: agent#0@dev uses \d+ % of its 10\.0 MiB memory limit/);
});
