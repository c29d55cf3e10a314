/**
 * Issue 6's acceptance for the demo: the whole cluster started with
 * `--sdaddr etcd://...` (no built-in discovery process) works end to end:
 * login, two players on the agents, the game's saved progress, and chat
 * through the hub.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ChatMsg, ChatSendReq, ChatSendResp, EarnGoldReq, EarnGoldResp } from '../demo/gen/index.js';
import { login } from '../demo/play/login.js';
import { enterWorld, playerClient } from '../demo/play/player.js';
import { startCluster } from '../src/up/supervisor.js';
import { EtcdCluster, etcdMissing } from './helpers/etcd.js';
import { cleanupStack } from './helpers/mesh.js';
import { freePort, ROOT, waitFor } from './helpers/proc.js';

const missing = etcdMissing();

if (missing && process.env['CI']) {
  test('etcd is installed (required when CI is set)', () => assert.fail(missing));
} else {
  test('the demo cluster runs on etcd (--sdaddr etcd://...)', { timeout: 90_000, skip: missing }, async (t) => {
    const defer = cleanupStack(t);
    const etcd = await EtcdCluster.start(1);
    defer(() => etcd.stop());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gamemesh-demo-etcd-'));
    defer(() => fs.rmSync(dir, { recursive: true, force: true }));
    const sdaddr = `etcd://${etcd.endpoints.map((e) => e.replace(/^https?:\/\//, '')).join(',')}/demo-test/`;
    let output = '';
    const cluster = startCluster(path.join(ROOT, 'demo', 'cluster.json'), {
      cwd: ROOT,
      vars: { sdaddr, http: `127.0.0.1:${await freePort()}`, dashboard: `127.0.0.1:${await freePort()}`, data: dir },
      write: (text) => {
        output += text;
      },
      color: false,
    });
    defer(() => cluster.stop());
    await cluster.ready;
    const skipped = cluster.services.find((s) => s.name === 'discovery');
    assert.equal(skipped?.state, 'skipped', 'no built-in discovery process on etcd');
    const url = cluster.urls[0] as string;

    const players = [];
    for (const name of ['etcd-alice', 'etcd-bob']) {
      const account = await login(url, name, 'test-password');
      const client = playerClient(account, 'ws', { requestTimeoutMs: 5000 });
      defer(() => client.close());
      const chat: string[] = [];
      client.on(ChatMsg, (m) => chat.push(`${m.from}:${m.text}`));
      await client.connect();
      await enterWorld(client, account.token);
      players.push({ name, client, chat, agent: account.agent.ws });
    }
    const [alice, bob] = players as [(typeof players)[number], (typeof players)[number]];
    assert.notEqual(alice.agent, bob.agent, 'login spread the two players over the two agents');
    const earned = await alice.client.request(EarnGoldReq, EarnGoldResp, {});
    assert.ok(earned.earned > 0 && (earned.player?.gold ?? 0) >= earned.earned);
    await alice.client.request(ChatSendReq, ChatSendResp, { text: 'hello over etcd' });
    await waitFor(() => bob.chat.includes('etcd-alice:hello over etcd'), 5000, 'bob to get alice\'s world chat', 20);
    assert.doesNotMatch(output, /restarting in/, 'no service crashed');
  });
}
