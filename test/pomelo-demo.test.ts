/**
 * The demo cluster (demo/cluster.json, as `npm start` runs it, on free
 * ports) played through an agent's raw pomelo TCP port by a client built on
 * the npm package pomelo-protocol: login over HTTP, enter the game with the
 * token, earn gold, level up, world chat with a native gamemesh client both
 * ways, a kick on duplicate login, and kill -9 of the social service in the
 * middle of chat traffic (the pomelo client stays connected, is told, gets
 * error responses, and chats again once the supervisor has restarted it).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { GameClient } from '../src/client/index.js';
import { tcpTransport } from '../src/client-node/index.js';
import { ChatMsg, ChatSendReq, ChatSendResp, EnterGameReq, EnterGameResp, JoinChatReq, JoinChatResp } from '../demo/gen/index.js';
import { cleanupStack } from './helpers/mesh.js';
import { PomeloTestClient, type Json } from './helpers/pomelo-client.js';
import { startDemoCluster } from './helpers/demo-cluster.js';
import { waitFor } from './helpers/proc.js';

interface LoginBody {
  token: string;
  agent: { tcp?: string; ws?: string; pomelo_ws?: string; pomelo_tcp?: string };
}

async function login(url: string, account: string): Promise<LoginBody> {
  const res = await fetch(new URL('/api/login', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account, password: 'test-password' }) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as LoginBody;
}

test('the demo through the pomelo TCP port: game, chat with a native client, duplicate login, kill -9 of social', { timeout: 120_000 }, async (t) => {
  const defer = cleanupStack(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gamemesh-pomelo-demo-'));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  let output = '';
  // A failed start stops what it started; a started cluster is stopped after the test.
  const started = await startDemoCluster(dir, { color: false, write: (s) => (output += s), restartDelayMs: 200, stopTimeoutMs: 5000 }).catch((err: Error) => assert.fail(`${err.message}\n${output.slice(-3000)}`));
  defer(() => started.cluster.stop());
  const { httpPort } = started;
  const url = `http://127.0.0.1:${httpPort}`;
  try {
    const ann = await login(url, 'pomelo-ann');
    assert.ok(ann.agent.pomelo_tcp && ann.agent.pomelo_ws, `login names the agent's pomelo ports: ${JSON.stringify(ann.agent)}`);
    const c = await PomeloTestClient.connect(ann.agent.pomelo_tcp);
    defer(() => c.destroy());
    const hs = await c.handshake();
    assert.equal(hs.code, 200);
    assert.ok(hs.sys?.dict?.['game.player.earnGold'], 'the demo routes are in the dictionary');

    const entered = await c.request('game.player.enterGame', { token: ann.token });
    assert.deepEqual(entered, { player: { name: 'pomelo-ann', level: 1, gold: 0 } });
    const poor = await c.request('game.player.levelUp');
    assert.deepEqual(poor, { code: 500, error: 'application', message: 'level 2 costs 100 gold; you have 0' });
    let gold = 0;
    for (let i = 0; gold < 100; i++) {
      assert.ok(i < 20, 'earning 100 gold took over 20 requests');
      // Half of them by dictionary code, as pomelo-jsclient does when it has the dictionary.
      const earned = await c.request('game.player.earnGold', {}, { compress: i % 2 === 0 });
      const player = earned['player'] as Json;
      assert.ok((earned['earned'] as number) > 0);
      assert.equal(player['gold'], gold + (earned['earned'] as number));
      gold = player['gold'] as number;
    }
    assert.deepEqual(await c.request('game.player.levelUp'), { player: { name: 'pomelo-ann', level: 2, gold: gold - 100 }, cost: 100 });
    const forged = await c.request('game.player.enterGame', { token: `${ann.token}x` });
    assert.equal(forged['code'], 500);
    assert.equal(forged['error'], 'bad_request');

    // World chat: a native gamemesh client and the pomelo client hear each other.
    const bob = await login(url, 'native-bob');
    const [host = '', port = ''] = (bob.agent.tcp ?? '').split(':');
    const native = new GameClient({ transport: () => tcpTransport(host, Number(port)), token: bob.token, reconnect: false });
    defer(() => native.close());
    await native.connect();
    const nativeChat: string[] = [];
    native.on(ChatMsg, (m) => nativeChat.push(`${m.from}:${m.text}`));
    await native.request(EnterGameReq, EnterGameResp, { token: bob.token });
    await native.request(JoinChatReq, JoinChatResp, { token: bob.token });
    const joined = await c.request('social.chat.join', { token: ann.token });
    assert.equal(joined['name'], 'pomelo-ann');
    await native.request(ChatSendReq, ChatSendResp, { text: 'hello from a native client' });
    const heard = await c.waitPush('onChat', (m) => m['text'] === 'hello from a native client', 5000);
    assert.equal(heard['channel'], 'world');
    assert.equal(heard['from'], 'native-bob');
    assert.ok((heard['time_ms'] as number) > 0);
    assert.ok(c.pushes.some((p) => p.compressed), 'onChat is pushed by its dictionary code');
    assert.deepEqual(await c.request('social.chat.send', { text: 'hi bob, from pomelo' }), {});
    await waitFor(() => nativeChat.includes('pomelo-ann:hi bob, from pomelo'), 5000, 'the pomelo chat at the native client');

    // kill -9 of social in the middle of chat traffic.
    const social = started.cluster.services.find((s) => s.name === 'social') ?? assert.fail('no social service');
    const pid = social.pid ?? assert.fail('social has no pid');
    const answers: Json[] = [];
    let chatting = true;
    const loop = (async () => {
      for (let i = 0; chatting; i++) {
        answers.push(await c.request('social.chat.send', { text: `msg ${i}` }, { timeoutMs: 10_000 }));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor(() => answers.length >= 5, 5000, 'chat traffic');
    process.kill(pid, 'SIGKILL');
    const down = await c.waitPush('gamemesh.backendStatus', (m) => m['up'] === false, 10_000);
    assert.equal(down['service'], 'social');
    // The game goes on meanwhile, on the same connection.
    assert.equal(((await c.request('game.player.stats'))['player'] as Json)['level'], 2);
    await waitFor(() => social.restarts === 1 && social.state === 'ready', 20_000, 'the supervisor to restart social');
    await c.waitPush('gamemesh.backendStatus', (m) => m['up'] === true, 10_000);
    chatting = false;
    await loop;
    const failed = answers.filter((a) => a['code'] === 500);
    assert.ok(failed.length > 0, 'some chat failed during the outage');
    assert.ok(failed.every((a) => a['error'] === 'unavailable' || a['error'] === 'bad_request'), JSON.stringify(failed.slice(0, 3)));
    assert.ok(answers.every((a) => a['code'] === 500 || Object.keys(a).length === 0), 'every answer is a success or an error response');
    // The new social instance knows no player yet: both join again, and chat works.
    await c.request('social.chat.join', { token: ann.token });
    await native.request(JoinChatReq, JoinChatResp, { token: bob.token });
    // The restarted social subscribes to the hub again on its own time: say it until it is heard.
    await waitFor(
      async () => {
        assert.deepEqual(await c.request('social.chat.send', { text: 'back again' }), {});
        await new Promise((r) => setTimeout(r, 200));
        return nativeChat.includes('pomelo-ann:back again');
      },
      10_000,
      'chat after the restart at the native client',
    );
    await c.waitPush('onChat', (m) => m['text'] === 'back again');
    assert.equal(c.isClosed, false);

    // Duplicate login: entering the game again from another pomelo client kicks the first one.
    const again = await PomeloTestClient.connect(ann.agent.pomelo_ws);
    defer(() => again.destroy());
    await again.handshake();
    assert.deepEqual(await again.request('game.player.enterGame', { token: (await login(url, 'pomelo-ann')).token }), { player: { name: 'pomelo-ann', level: 2, gold: gold - 100 } });
    await c.closed;
    assert.deepEqual(c.kicks, [{ reason: 'logged in from another client', code: 9 }]);
    assert.equal(again.isClosed, false);
  } catch (err) {
    t.diagnostic(output.split('\n').slice(-40).join('\n'));
    throw err;
  }
});
