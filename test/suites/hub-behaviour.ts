import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PubSub } from '../../src/hub/api.js';
import { createHub } from '../../src/hub/open.js';
import type { NodeConfig } from '../../src/service/node.js';
import { EchoReq } from '../helpers/echo.js';
import { cleanupStack, startDiscoveryServer, startNode, type Defer } from '../helpers/mesh.js';
import { waitFor, within } from '../helpers/proc.js';

/**
 * What the hub API must do whichever backend carries it. hub.test.ts runs it
 * on the hub service, hub-nats.test.ts on NATS, unchanged.
 */
export interface HubBackend {
  readonly name: string;
  /** Starts the relay (a hub service node, or nats-server) for one test; stopped by `defer`. */
  start(defer: Defer, sdaddr: string): Promise<Relay>;
}

export interface Relay {
  /** What every node of the test needs in its config (e.g. `hub: 'nats://...'`). */
  readonly config: Partial<NodeConfig>;
  /** Kills the relay and starts it again: subscriptions live only in the clients. */
  restart(): Promise<void>;
}

/** One delivery as a test records it. */
export interface Got {
  publisher: string;
  channel: string;
  text: string;
  n: number;
}

/** Records every delivery on `channel`. */
export function collect(hub: PubSub, channel: string): Got[] {
  const got: Got[] = [];
  hub.subscribe(channel, EchoReq, (msg, from) => {
    got.push({ publisher: from.publisher, channel: from.channel, text: msg.text, n: msg.n });
  });
  return got;
}

/** Fails with what each publisher's sequence looked like if it is not 0..count-1 in order. */
export function assertInOrder(got: readonly Got[], publisher: string, count: number, who: string): void {
  const ns = got.filter((g) => g.publisher === publisher).map((g) => g.n);
  assert.equal(ns.length, count, `${who} got ${ns.length} of ${count} messages from ${publisher}`);
  const firstBad = ns.findIndex((n, i) => n !== i);
  assert.equal(firstBad, -1, `${who}: message ${firstBad} from ${publisher} was n=${ns[firstBad]}`);
}

const synced = (hubs: readonly PubSub[]) => within(Promise.all(hubs.map((h) => h.whenSynced())), 10_000, 'hub clients synced');

export function hubBehaviour(backend: HubBackend): void {
  async function setup(t: Parameters<typeof cleanupStack>[0]) {
    const defer = cleanupStack(t);
    const { addr } = await startDiscoveryServer(defer);
    const relay = await backend.start(defer, addr);
    const client = async (name: string, index = 0): Promise<PubSub> => {
      let hub: PubSub | undefined;
      await startNode(defer, addr, { name, config: { svcindex: index, ...relay.config } }, (node) => {
        hub = createHub(node);
      });
      return hub as PubSub;
    };
    return { relay, client };
  }

  describe(`Hub behaviour: ${backend.name}`, () => {
    test('every subscriber gets every message once, in order per publisher, with two publishers sending 1,000 each at once', async (t) => {
      const { client } = await setup(t);
      const a = await client('game', 0);
      const b = await client('game', 1);
      const c = await client('chat', 0);
      const got = new Map([a, b, c].map((h) => [h, collect(h, 'news')]));
      await synced([a, b, c]);
      const COUNT = 1000;
      const publishAll = async (hub: PubSub) => {
        for (let i = 0; i < COUNT; i++) {
          assert.equal(hub.publish('news', EchoReq, { text: hub.node.id, n: i }), true);
          if (i % 50 === 49) await sleep(1);
        }
      };
      await Promise.all([publishAll(a), publishAll(b)]);
      await waitFor(() => [...got.values()].every((g) => g.length === 2 * COUNT), 10_000, 'every subscriber to get 2,000 messages');
      for (const [hub, g] of got) {
        for (const publisher of [a.node.id, b.node.id]) assertInOrder(g, publisher, COUNT, hub.node.id);
        assert.ok(g.every((m) => m.channel === 'news' && m.text === m.publisher), 'channel and publisher are reported');
      }
      await sleep(100);
      assert.ok([...got.values()].every((g) => g.length === 2 * COUNT), 'nothing is delivered twice');
      assert.equal(a.stats().published, COUNT);
      assert.equal(c.stats().received, 2 * COUNT);
    });

    test('each node is subscribed to its own name and id', async (t) => {
      const { client } = await setup(t);
      const g0 = await client('game', 0);
      const g1 = await client('game', 1);
      const chat = await client('chat', 0);
      const got = new Map<PubSub, Got[]>();
      for (const h of [g0, g1, chat]) {
        const list: Got[] = [];
        got.set(h, list);
        h.onDirect(EchoReq, (msg, from) => {
          list.push({ publisher: from.publisher, channel: from.channel, text: msg.text, n: msg.n });
        });
      }
      await synced([g0, g1, chat]);
      chat.publish('game', EchoReq, { text: 'to every game', n: 1 });
      chat.publish(g1.node.id, EchoReq, { text: 'to game#1 only', n: 2 });
      g0.publish('chat', EchoReq, { text: 'to chat', n: 3 });
      await waitFor(() => got.get(g1)?.length === 2 && got.get(chat)?.length === 1 && got.get(g0)?.length === 1, 5000, 'direct messages');
      await sleep(100);
      assert.deepEqual(got.get(g0), [{ publisher: chat.node.id, channel: 'game', text: 'to every game', n: 1 }]);
      assert.deepEqual(got.get(g1), [
        { publisher: chat.node.id, channel: 'game', text: 'to every game', n: 1 },
        { publisher: chat.node.id, channel: g1.node.id, text: 'to game#1 only', n: 2 },
      ]);
      assert.deepEqual(got.get(chat), [{ publisher: g0.node.id, channel: 'chat', text: 'to chat', n: 3 }]);
    });

    test('unsubscribe stops delivery when the last handler goes; failing handlers hurt nobody', async (t) => {
      const { client } = await setup(t);
      const pub = await client('pub');
      const sub = await client('sub');
      const first: number[] = [];
      const second: number[] = [];
      const raw: number[] = [];
      const stopFirst = sub.subscribe('room', EchoReq, (m) => {
        first.push(m.n);
      });
      sub.subscribe('room', EchoReq, (m) => {
        second.push(m.n);
      });
      sub.subscribe('room', EchoReq, () => {
        throw new Error('a handler that always fails');
      });
      sub.subscribe('room', EchoReq, () => Promise.reject(new Error('and one that rejects')));
      const stopRaw = sub.subscribeRaw('room', (msgId, body) => {
        assert.equal(msgId, EchoReq.id);
        raw.push(EchoReq.decode(body).n);
      });
      await synced([pub, sub]);
      pub.publish('room', EchoReq, { n: 1 });
      await waitFor(() => first.length === 1 && second.length === 1 && raw.length === 1, 5000, 'the first message');
      stopFirst();
      stopFirst();
      stopRaw();
      await synced([sub]);
      pub.publish('room', EchoReq, { n: 2 });
      await waitFor(() => second.length === 2, 5000, 'the second message');
      assert.deepEqual(first, [1]);
      assert.deepEqual(raw, [1]);

      const gone = sub.subscribe('gone', EchoReq, () => {});
      await synced([sub]);
      gone();
      await synced([sub]);
      const before = sub.stats().received;
      pub.publish('gone', EchoReq, { n: 3 });
      pub.publish(sub.node.id, EchoReq, { n: 4 });
      await waitFor(() => sub.stats().received === before + 1, 5000, 'the direct message');
      await sleep(100);
      assert.equal(sub.stats().received, before + 1, 'nothing arrives on an unsubscribed channel');
      assert.deepEqual(second, [1, 2]);
    });

    test('subscribe then publish at once: the node receives its own message', async (t) => {
      const { client } = await setup(t);
      const me = await client('me');
      const mine: number[] = [];
      for (let i = 0; i < 20; i++) {
        me.subscribe(`fresh-${i}`, EchoReq, (m) => {
          mine.push(m.n);
        });
        me.publish(`fresh-${i}`, EchoReq, { n: i });
      }
      await waitFor(() => mine.length === 20, 5000, 'own messages');
      assert.deepEqual(mine, Array.from({ length: 20 }, (_, i) => i));
    });

    test('any channel name up to 256 bytes works and names never collide; bad ones throw', async (t) => {
      const { client } = await setup(t);
      const pub = await client('pub');
      const sub = await client('sub');
      const names = ['a.b', 'a%2Eb', 'a b', '*', '>', 'a.*', 'room:42', 'ünïcødé 🎮', '$SYS', 'tab\there', 'x'.repeat(256), 'é'.repeat(128)];
      const got = new Map(names.map((n) => [n, collect(sub, n)]));
      await synced([pub, sub]);
      names.forEach((name, i) => pub.publish(name, EchoReq, { text: name, n: i }));
      await waitFor(() => [...got.values()].every((g) => g.length === 1), 5000, 'one message on each channel');
      await sleep(100);
      for (const [name, g] of got) assert.deepEqual(g.map((m) => [m.channel, m.text]), [[name, name]], `only its own message on ${JSON.stringify(name)}`);

      assert.throws(() => pub.publish('', EchoReq, {}), TypeError);
      assert.throws(() => sub.subscribe('x'.repeat(257), EchoReq, () => {}), /over the limit of 256/);
      assert.throws(() => pub.publishRaw('ok', 70_000, new Uint8Array(0)), RangeError);
      assert.throws(() => pub.publishRaw('ok', 1000, new Uint8Array(1024 * 1024 + 1)), /body of 1048577 bytes/);
    });

    test('the relay is killed and restarts: clients subscribe again by themselves', async (t) => {
      const { relay, client } = await setup(t);
      const pub = await client('pub');
      const sub = await client('sub');
      const got = collect(sub, 'after');
      await synced([pub, sub]);
      pub.publish('after', EchoReq, { n: 0 });
      await waitFor(() => got.length === 1, 5000, 'the first message');
      await relay.restart();
      await synced([pub, sub]);
      // The subscriber may be back a moment after the publisher: publish until it hears.
      let n = 1;
      await waitFor(
        () => {
          if (got.length < 2) pub.publish('after', EchoReq, { n: n++ });
          return got.length >= 2;
        },
        10_000,
        'a message after the restart',
        100,
      );
      assert.ok(got.every((g) => g.publisher === pub.node.id));
      assert.equal(sub.synced, true);
    });
  });
}
