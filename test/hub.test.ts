/**
 * The hub with every node in this process, on real sockets and an in-memory
 * discovery server: fan-out to every subscriber, per-publisher order under
 * concurrent publishers, auto-subscription to a node's name and id,
 * unsubscribe, the publish queue, several hub instances, and bad input.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Hub, type HubOptions } from '../src/hub/client.js';
import { H, preEncoded } from '../src/hub/messages.js';
import { startHub, type HubServer, type HubServerOptions } from '../src/hub/server.js';
import type { ServiceNode } from '../src/service/node.js';
import type { MessageType } from '../src/wire/message-type.js';
import { EchoReq } from './helpers/echo.js';
import { cleanupStack, expectRpcError, startDiscoveryServer, startNode, type Defer } from './helpers/mesh.js';
import { waitFor, within } from './helpers/proc.js';
import { assertInOrder, collect, type Got } from './suites/hub-behaviour.js';

async function startHubNode(defer: Defer, sdaddr: string, index = 0, options: HubServerOptions = {}): Promise<HubServer> {
  let server: HubServer | undefined;
  await startNode(defer, sdaddr, { name: 'hub', type: 2, config: { svcindex: index } }, (node) => {
    server = startHub(node, options);
  });
  return server as HubServer;
}

/** A started node with a Hub client, synced with every hub instance that is up. */
async function startClient(defer: Defer, sdaddr: string, name: string, index = 0, options: HubOptions = {}): Promise<Hub> {
  let hub: Hub | undefined;
  await startNode(defer, sdaddr, { name, config: { svcindex: index } }, (node) => {
    hub = new Hub(node, options);
  });
  return hub as Hub;
}



const synced = (hubs: readonly Hub[]) => within(Promise.all(hubs.map((h) => h.whenSynced())), 5000, 'hub clients synced');

test('every subscriber gets every message, in order per publisher, with two publishers sending 1,000 each at once', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const server = await startHubNode(defer, addr);
  const a = await startClient(defer, addr, 'game', 0);
  const b = await startClient(defer, addr, 'game', 1);
  const c = await startClient(defer, addr, 'chat', 0);
  const got = new Map([a, b, c].map((h) => [h, collect(h, 'news')]));
  await synced([a, b, c]);
  assert.deepEqual(server.subscribersOf('news').sort(), [a.node.id, b.node.id, c.node.id].sort());

  const COUNT = 1000;
  // Both publishers interleave in small bursts, so their messages cross at the hub.
  const publishAll = async (hub: Hub) => {
    for (let i = 0; i < COUNT; i++) {
      assert.equal(hub.publish('news', EchoReq, { text: hub.node.id, n: i }), true);
      if (i % 50 === 49) await sleep(1);
    }
  };
  await Promise.all([publishAll(a), publishAll(b)]);
  await waitFor(() => [...got.values()].every((g) => g.length === 2 * COUNT), 8000, 'every subscriber to get 2,000 messages');
  for (const [hub, g] of got) {
    for (const publisher of [a.node.id, b.node.id]) assertInOrder(g, publisher, COUNT, hub.node.id);
    assert.ok(g.every((m) => m.channel === 'news' && m.text === m.publisher), 'channel and publisher are reported');
  }
  await sleep(50);
  assert.ok([...got.values()].every((g) => g.length === 2 * COUNT), 'nothing is delivered twice');
  assert.equal(server.stats().published, 2 * COUNT);
  assert.equal(server.stats().delivered, 6 * COUNT);
});

test("each node is subscribed to its own name and id: publish to a service reaches all its instances, to an id reaches one", async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const server = await startHubNode(defer, addr);
  const g0 = await startClient(defer, addr, 'game', 0);
  const g1 = await startClient(defer, addr, 'game', 1);
  const chat = await startClient(defer, addr, 'chat', 0);
  const got = new Map<Hub, Got[]>();
  for (const h of [g0, g1, chat]) {
    const list: Got[] = [];
    got.set(h, list);
    h.onDirect(EchoReq, (msg, from) => {
      list.push({ publisher: from.publisher, channel: from.channel, text: msg.text, n: msg.n });
    });
  }
  await synced([g0, g1, chat]);
  assert.deepEqual(server.channelsOf(g1.node.id).sort(), ['game', 'game#1@dev']);

  chat.publish('game', EchoReq, { text: 'to every game', n: 1 });
  chat.publish(g1.node.id, EchoReq, { text: 'to game#1 only', n: 2 });
  g0.publish('chat', EchoReq, { text: 'to chat', n: 3 });
  await waitFor(() => got.get(g1)?.length === 2 && got.get(chat)?.length === 1 && got.get(g0)?.length === 1, 3000, 'direct messages');
  await sleep(50);
  assert.deepEqual(got.get(g0), [{ publisher: chat.node.id, channel: 'game', text: 'to every game', n: 1 }]);
  assert.deepEqual(got.get(g1), [
    { publisher: chat.node.id, channel: 'game', text: 'to every game', n: 1 },
    { publisher: chat.node.id, channel: 'game#1@dev', text: 'to game#1 only', n: 2 },
  ]);
  assert.deepEqual(got.get(chat), [{ publisher: g0.node.id, channel: 'chat', text: 'to chat', n: 3 }]);
  assert.throws(() => chat.onDirect(EchoReq, () => {}), /already registered/);
});

test('unsubscribe stops delivery, only when the last handler of a channel goes; a failing handler hurts nobody', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const server = await startHubNode(defer, addr);
  const pub = await startClient(defer, addr, 'pub');
  const sub = await startClient(defer, addr, 'sub');
  const first: number[] = [];
  const second: number[] = [];
  const raw: number[] = [];
  const stopFirst = sub.subscribe('room', EchoReq, (m) => {
    first.push(m.n);
  });
  const stopSecond = sub.subscribe('room', EchoReq, (m) => {
    second.push(m.n);
  });
  sub.subscribe('room', EchoReq, () => {
    throw new Error('a handler that always fails');
  });
  const stopThrowing = sub.subscribe('room', EchoReq, () => Promise.reject(new Error('and one that rejects')));
  const stopRaw = sub.subscribeRaw('room', (msgId, body, from) => {
    assert.equal(msgId, EchoReq.id);
    assert.equal(from.msgId, EchoReq.id);
    raw.push(EchoReq.decode(body).n);
  });
  await synced([pub, sub]);

  pub.publish('room', EchoReq, { n: 1 });
  await waitFor(() => first.length === 1 && second.length === 1 && raw.length === 1, 3000, 'the first message');
  stopFirst();
  stopFirst();
  stopRaw();
  await synced([sub]);
  pub.publish('room', EchoReq, { n: 2 });
  await waitFor(() => second.length === 2, 3000, 'the second message');
  assert.deepEqual(first, [1]);
  assert.deepEqual(raw, [1]);
  assert.deepEqual(server.subscribersOf('room'), [sub.node.id], 'other handlers still hold the channel');

  stopSecond();
  stopThrowing();
  assert.deepEqual(server.subscribersOf('room'), [sub.node.id], 'the handler that throws still holds it');
  const gone = sub.subscribe('gone', EchoReq, () => {});
  await synced([sub]);
  assert.ok(server.subscribersOf('gone').includes(sub.node.id));
  gone();
  await synced([sub]);
  assert.deepEqual(server.subscribersOf('gone'), [], 'the hub forgets a channel whose last handler went');
  const before = sub.stats().received;
  pub.publish('gone', EchoReq, { n: 3 });
  pub.publish(sub.node.id, EchoReq, { n: 4 });
  await waitFor(() => sub.stats().received === before + 1, 3000, 'the direct message');
  await sleep(50);
  assert.equal(sub.stats().received, before + 1, 'nothing arrives on an unsubscribed channel');
  assert.deepEqual(second, [1, 2]);
});

test('publishes wait in a bounded queue until a hub connects, and a node gets what it published to itself', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const early = await startClient(defer, addr, 'early', 0, { maxQueued: 5 });
  const mine: number[] = [];
  early.subscribe(early.node.id, EchoReq, (m) => {
    mine.push(m.n);
  });
  assert.equal(early.synced, false);
  for (let n = 0; n < 5; n++) assert.equal(early.publish(early.node.id, EchoReq, { n }), true);
  assert.equal(early.publish(early.node.id, EchoReq, { n: 5 }), false, 'the sixth is over maxQueued');
  assert.deepEqual({ queued: early.stats().queued, dropped: early.stats().dropped }, { queued: 5, dropped: 1 });

  await startHubNode(defer, addr);
  await synced([early]);
  await waitFor(() => mine.length === 5, 3000, 'the queued messages');
  assert.deepEqual(mine, [0, 1, 2, 3, 4]);
  assert.equal(early.stats().queued, 0);
});

test('with two hub instances: subscribed at both, each publisher uses one, every message arrives once and in order', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const hubs = [await startHubNode(defer, addr, 0), await startHubNode(defer, addr, 1)];
  const clients: Hub[] = [];
  for (let i = 0; i < 6; i++) clients.push(await startClient(defer, addr, 'game', i));
  const got = new Map(clients.map((h) => [h, collect(h, 'world')]));
  await waitFor(() => clients.every((c) => c.node.instances('hub').length === 2), 5000, 'every client linked to both hubs');
  await synced(clients);
  for (const server of hubs) assert.equal(server.subscribersOf('world').length, 6, 'every client is subscribed at every hub');

  const COUNT = 200;
  for (let n = 0; n < COUNT; n++) for (const c of clients) c.publish('world', EchoReq, { n });
  await waitFor(() => [...got.values()].every((g) => g.length === 6 * COUNT), 8000, 'every message at every subscriber');
  for (const [hub, g] of got) for (const c of clients) assertInOrder(g, c.node.id, COUNT, hub.node.id);
  const published = hubs.map((s) => s.stats().published);
  assert.equal(published[0]! + published[1]!, 6 * COUNT, 'each message went through exactly one hub');
  assert.ok(published.every((p) => p % COUNT === 0), `each publisher stuck to one hub: ${published.join(', ')}`);
});

/** Sends a body that is not the message it claims to be. */
const garbage = <T>(type: MessageType<T>): MessageType<{ bytes: Uint8Array }> => preEncoded(type as MessageType<unknown>);

test('bad input is refused with a clear error and never hurts the hub', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const server = await startHubNode(defer, addr, 0, { maxChannelsPerSubscriber: 10, maxChannelLength: 64 });
  const sub = await startClient(defer, addr, 'sub');
  const got = collect(sub, 'ok');
  let raw: ServiceNode | undefined;
  // Linked to the subscriber too, to try a forged Deliver on it.
  await startNode(defer, addr, { name: 'rogue', dependencies: ['hub', 'sub'] }, (n) => {
    raw = n;
  });
  const rogue = raw as ServiceNode;
  await within(rogue.whenReady(), 5000, 'rogue linked to the hub');
  await synced([sub]);

  // In the client: programming errors throw at once.
  assert.throws(() => sub.publish('', EchoReq, {}), TypeError);
  assert.throws(() => sub.subscribe('x'.repeat(257), EchoReq, () => {}), /over the limit of 256/);
  assert.throws(() => sub.publishRaw('ok', 70_000, new Uint8Array(0)), RangeError);
  assert.throws(() => sub.publishRaw('ok', 1000, new Uint8Array(1024 * 1024 + 1)), /body of 1048577 bytes/);

  // At the hub, straight on the wire: refused as a whole, nothing added.
  const hubTarget = { service: 'hub' };
  await expectRpcError(rogue.call(hubTarget, H.Subscribe, H.Ok, { channels: ['fine', 'y'.repeat(65)] }), 'bad_request', /over the limit of 64/);
  await expectRpcError(rogue.call(hubTarget, H.Subscribe, H.Ok, { channels: ['fine', ''] }), 'bad_request', /non-empty/);
  const eleven = Array.from({ length: 11 }, (_, i) => `c${i}`);
  await expectRpcError(rogue.call(hubTarget, H.Subscribe, H.Ok, { channels: eleven }), 'bad_request', /would hold 11 channels; the hub allows 10/);
  assert.deepEqual(server.channelsOf(rogue.id), []);
  assert.equal((await rogue.call(hubTarget, H.Subscribe, H.Ok, { channels: eleven.slice(0, 10) })).channels, 10);
  await expectRpcError(rogue.call(hubTarget, H.Subscribe, H.Ok, { channels: ['one-more'] }), 'bad_request', /allows 10/);
  await expectRpcError(rogue.call(hubTarget, garbage(H.Subscribe), H.Ok, { bytes: Uint8Array.of(0xff, 0xff, 0xff) }), 'bad_request', /undecodable/);

  // One-way publishes cannot be answered: the bad ones are dropped and counted.
  await rogue.send(hubTarget, H.Publish, { channel: '', msg_id: EchoReq.id, body: EchoReq.encode({ n: 1 }) });
  await rogue.send(hubTarget, H.Publish, { channel: 'z'.repeat(65), msg_id: EchoReq.id, body: EchoReq.encode({ n: 2 }) });
  await rogue.send(hubTarget, H.Publish, { channel: 'ok', msg_id: EchoReq.id, body: new Uint8Array(1024 * 1024 + 1) });
  await rogue.send(hubTarget, garbage(H.Publish), { bytes: Uint8Array.of(0x0a, 0xff) });
  // A Deliver from anyone but the hub is ignored by clients.
  assert.ok(rogue.sendToPeer(sub.node.id, H.Deliver, { channel: 'ok', msg_id: EchoReq.id, body: EchoReq.encode({ n: 99 }), publisher: 'forged' }));
  await rogue.send(hubTarget, H.Publish, { channel: 'ok', msg_id: EchoReq.id, body: EchoReq.encode({ text: 'good', n: 3 }) });
  await waitFor(() => got.length === 1, 3000, 'the good publish after the bad ones');
  await sleep(50);
  assert.deepEqual(got, [{ publisher: rogue.id, channel: 'ok', text: 'good', n: 3 }], 'only the good one arrives, named by its real publisher');
  assert.equal(server.stats().refused, 7, '4 subscriptions and 3 publishes refused (undecodable ones are dropped before the hub sees them)');
  assert.ok(rogue.isConnected(server.node.id), 'the rogue link is still up');
  assert.ok(sub.node.isConnected(server.node.id), 'the subscriber link is still up');
});
