/**
 * The hub as a real process (`gamemesh hub`, from dist: build first) with
 * subscriber nodes in this process: kill -9 of the hub and a restart. The
 * subscribers re-subscribe by themselves, and what is published after the
 * restart reaches every one of them, in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hub } from '../src/hub/client.js';
import { EchoReq } from './helpers/echo.js';
import { cleanupStack, SECRET, startDiscoveryServer, startNode, type Defer } from './helpers/mesh.js';
import { BIN, runCli, spawnNode, waitFor, within, type Cleanup, type Proc } from './helpers/proc.js';

interface HubProc {
  proc: Proc;
  id: string;
  port: number;
}

async function spawnHub(t: Cleanup, sdaddr: string): Promise<HubProc> {
  const proc = spawnNode(t, BIN, ['hub', '--sdaddr', sdaddr, '--token', SECRET, '--listen', '127.0.0.1:0', '--loglevel', 'warn'], 'gamemesh hub');
  const m = await proc.waitForStdout(/hub (\S+) listening 127\.0\.0\.1:(\d+)\n/, 10_000);
  return { proc, id: m[1] as string, port: Number(m[2]) };
}

async function startClient(defer: Defer, sdaddr: string, name: string, index: number): Promise<Hub> {
  let hub: Hub | undefined;
  await startNode(defer, sdaddr, { name, config: { svcindex: index } }, (node) => {
    hub = new Hub(node);
  });
  return hub as Hub;
}

interface Got {
  publisher: string;
  text: string;
  n: number;
}

/** The n's of the messages with this text from this publisher, in arrival order. */
const seq = (got: readonly Got[], publisher: string, text: string) => got.filter((g) => g.publisher === publisher && g.text === text).map((g) => g.n);
const upTo = (count: number) => Array.from({ length: count }, (_, i) => i);

test('kill -9 of the hub: subscribers re-subscribe by themselves when it restarts, and publishing works again', { timeout: 20_000 }, async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const first = await spawnHub(t, addr);
  const clients = [await startClient(defer, addr, 'game', 0), await startClient(defer, addr, 'game', 1), await startClient(defer, addr, 'chat', 0)];
  const [pub, , other] = clients as [Hub, Hub, Hub];
  const got = new Map<Hub, Got[]>();
  for (const c of clients) {
    const list: Got[] = [];
    got.set(c, list);
    c.subscribe('news', EchoReq, (msg, from) => {
      list.push({ publisher: from.publisher, text: msg.text, n: msg.n });
    });
  }
  const allSynced = () => within(Promise.all(clients.map((c) => c.whenSynced())), 5000, 'every client synced with the hub');
  await allSynced();

  for (let n = 0; n < 50; n++) pub.publish('news', EchoReq, { text: 'before', n });
  await waitFor(() => clients.every((c) => seq(got.get(c) ?? [], pub.node.id, 'before').length === 50), 5000, 'the messages before the kill');

  const exit = await first.proc.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  await waitFor(() => clients.every((c) => !c.synced), 5000, 'every client to see the hub go');
  // No hub: publishes are queued (bounded), not lost and not an error.
  for (let n = 0; n < 10; n++) assert.equal(pub.publish('news', EchoReq, { text: 'outage', n }), true);
  assert.equal(pub.stats().queued, 10);

  // Same id, new process, new port; nothing is done to the clients.
  const second = await spawnHub(t, addr);
  assert.equal(second.id, first.id);
  assert.notEqual(second.port, first.port);
  await waitFor(() => clients.every((c) => c.synced), 8000, 'every client to re-subscribe at the restarted hub');
  // The queue waited for the publisher's own subscriptions, so it got its own queued messages back.
  await waitFor(() => seq(got.get(pub) ?? [], pub.node.id, 'outage').length === 10, 3000, "the publisher's queued messages");
  assert.deepEqual(seq(got.get(pub) ?? [], pub.node.id, 'outage'), upTo(10));
  assert.equal(pub.stats().queued, 0);

  const COUNT = 200;
  for (let n = 0; n < COUNT; n++) {
    assert.equal(pub.publish('news', EchoReq, { text: 'after', n }), true);
    assert.equal(other.publish('news', EchoReq, { text: 'after', n }), true);
  }
  const done = () => clients.every((c) => [pub, other].every((p) => seq(got.get(c) ?? [], p.node.id, 'after').length === COUNT));
  await waitFor(done, 5000, 'every message published after the restart at every subscriber');
  for (const c of clients) {
    for (const p of [pub, other]) assert.deepEqual(seq(got.get(c) ?? [], p.node.id, 'after'), upTo(COUNT), `${c.node.id} got ${p.node.id}'s messages in order`);
  }
  // Direct messages (auto-subscription to name and id) work again too.
  const direct: string[] = [];
  other.onDirect(EchoReq, (msg) => {
    direct.push(msg.text);
  });
  pub.publish('chat', EchoReq, { text: 'to the chat service' });
  pub.publish(other.node.id, EchoReq, { text: 'to chat#0' });
  await waitFor(() => direct.length === 2, 3000, 'direct messages after the restart');
  assert.deepEqual(direct, ['to the chat service', 'to chat#0']);
  await second.proc.kill('SIGTERM');
  assert.equal(second.proc.exit?.code, 0, `the hub stops cleanly on SIGTERM: ${second.proc.stderr}`);
});

test('gamemesh hub --help lists its flags; a bad flag exits 2', async () => {
  const help = await runCli(['hub', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--max-channels/);
  assert.match(help.stdout, /--max-body/);
  const bad = await runCli(['hub', '--max-channels', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /max-channels/);
});
