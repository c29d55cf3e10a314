// A whole cluster in this process (discovery, the game, a gateway and the
// login), on free ports: `gamemesh/testing`. `npm test` runs it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestCluster } from 'gamemesh/testing';
import { startGame } from '../src/game.js';
import { JoinReq, JoinResp, LobbyChanged, routes } from '../src/gen/index.js';

test('players who join the lobby see each other', async (t) => {
  const cluster = await startTestCluster({
    services: [{ name: 'game', start: (config) => startGame({ config }) }],
    routes,
    login: true,
  });
  t.after(() => cluster.stop());

  const alice = await cluster.client({ account: 'alice' });
  assert.deepEqual((await alice.request(JoinReq, JoinResp, {})).players, ['alice']);

  const joined = new Promise<LobbyChanged>((resolve) => alice.on(LobbyChanged, resolve));
  const bob = await cluster.client({ account: 'bob' });
  const answer = await bob.request(JoinReq, JoinResp, {});
  assert.equal(answer.name, 'bob');
  assert.deepEqual(answer.players, ['alice', 'bob']);
  assert.equal((await joined).name, 'bob');
});

test('a client without a login token is refused', async (t) => {
  const cluster = await startTestCluster({ services: [{ name: 'game', start: (config) => startGame({ config }) }], routes });
  t.after(() => cluster.stop());
  const anonymous = await cluster.client();
  await assert.rejects(anonymous.request(JoinReq, JoinResp, {}), /log in first/);
});
