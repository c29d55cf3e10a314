// A whole cluster in this process (discovery, the game, a gateway and the
// login), on free ports: `gamemesh/testing`. `npm test` runs it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestCluster } from 'gamemesh/testing';
import { startGame } from '../src/game.js';
import { HelloReq, HelloResp, LobbyChanged, routes } from '../src/gen/index.js';

const game = { name: 'game', start: (config: Parameters<typeof startGame>[0]['config']) => startGame({ config }) };

test('players who join the lobby see each other', async (t) => {
  const cluster = await startTestCluster({ services: [game], routes, login: true });
  t.after(() => cluster.stop());

  const alice = await cluster.client({ account: 'alice' });
  assert.equal((await alice.request(HelloReq, HelloResp, {})).name, 'alice');
  const seen: LobbyChanged[] = [];
  alice.on(LobbyChanged, (change) => seen.push(change));
  const aliceRoom = await alice.joinOrCreate('lobby', {}, { service: 'game' });

  const bob = await cluster.client({ account: 'bob' });
  await bob.request(HelloReq, HelloResp, {});
  const bobRoom = await bob.joinOrCreate('lobby', {}, { service: 'game' });
  assert.equal(bobRoom.id, aliceRoom.id, 'one lobby for both');

  await until(() => seen.some((c) => c.joined === 'bob'));
  assert.deepEqual(seen.at(-1)?.players, ['alice', 'bob']);
  await bobRoom.leave();
  await until(() => seen.some((c) => c.left === 'bob'));
  assert.deepEqual(seen.at(-1)?.players, ['alice']);
});

test('a client without a login token is refused', async (t) => {
  const cluster = await startTestCluster({ services: [game], routes });
  t.after(() => cluster.stop());
  const anonymous = await cluster.client();
  await assert.rejects(anonymous.request(HelloReq, HelloResp, {}), /log in first/);
  await assert.rejects(anonymous.joinOrCreate('lobby', {}, { service: 'game' }), /HelloReq first/);
});

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check(); ) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
