/**
 * The demo cluster with its hub on NATS (`--var hub=nats://...`): the hub
 * service is not started, every service gets GAMEMESH_HUB, and world chat,
 * whispers and the bots run through nats-server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChatMsg, ChatSendReq, ChatSendResp, WhisperReq, WhisperResp } from '../demo/gen/index.js';
import { login } from '../demo/play/login.js';
import { enterWorld, playerClient } from '../demo/play/player.js';
import { startDemo } from './helpers/demo.js';
import { cleanupStack } from './helpers/mesh.js';
import { NatsCluster, natsMissing } from './helpers/nats.js';
import { BIN, Proc, waitFor } from './helpers/proc.js';

const missing = natsMissing();
if (missing && process.env['CI']) test('nats-server is installed (required when CI is set)', () => assert.fail(missing));

test('the demo on NATS: no hub service, chat and the bots go through nats-server', { skip: missing && !process.env['CI'] ? missing : false, timeout: 120_000 }, async (t) => {
  const defer = cleanupStack(t);
  const nats = await NatsCluster.start(1);
  defer(() => nats.stop());
  const { url, service, output } = await startDemo(defer, { vars: { hub: nats.url } });
  assert.equal(service('hub').state, 'skipped', 'the hub service is not started');

  const join = async (name: string) => {
    const account = await login(url, name, 'test-password');
    const client = playerClient(account, 'ws', { requestTimeoutMs: 5000 });
    defer(() => client.close());
    const chat: string[] = [];
    client.on(ChatMsg, (m) => chat.push(`${m.channel}:${m.from}:${m.text}`));
    await client.connect();
    await enterWorld(client, account.token);
    return { client, chat };
  };
  const a = await join('nats-a');
  const b = await join('nats-b');
  await a.client.request(ChatSendReq, ChatSendResp, { text: 'hello over nats' });
  await b.client.request(WhisperReq, WhisperResp, { to: 'nats-a', text: 'psst' });
  await waitFor(() => b.chat.includes('world:nats-a:hello over nats') && a.chat.includes('whisper:nats-b:psst'), 10_000, 'chat through NATS');

  const bot = new Proc('bot', process.execPath, [BIN, 'bot', '--login', url, '--clients', '10', '--duration', '4']);
  defer(() => bot.stop());
  const exit = await bot.exited;
  assert.equal(exit.code, 0, `bot failed:\n${bot.stdout}\n${bot.stderr}`);
  assert.match(bot.stdout, /^errors: none$/m);
  assert.doesNotMatch(output(), /exited with code|killed by|restarting/, 'no service died');
});
