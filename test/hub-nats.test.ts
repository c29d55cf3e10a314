/**
 * The hub on NATS: the hub behaviour suite on one nats-server, auth from
 * flags, and a three-server cluster that loses one server to kill -9 with
 * every subscriber still served.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NatsHub } from '../src/hub/nats/hub.js';
import { createHub } from '../src/hub/open.js';
import type { PubSub } from '../src/hub/api.js';
import { EchoReq } from './helpers/echo.js';
import { cleanupStack, startDiscoveryServer, startNode } from './helpers/mesh.js';
import { NatsCluster, natsMissing } from './helpers/nats.js';
import { freePort, waitFor, within } from './helpers/proc.js';
import { hubBehaviour } from './suites/hub-behaviour.js';

const missing = natsMissing();
if (missing) {
  // CI must run these; elsewhere a missing nats-server only skips them, and says so.
  if (process.env['CI']) test('nats-server is installed (required when CI is set)', () => assert.fail(missing));
  else test('hub on NATS', { skip: missing }, () => {});
} else {
  hubBehaviour({
    name: 'NATS',
    async start(defer) {
      const nats = await NatsCluster.start(1);
      defer(() => nats.stop());
      return { config: { hub: nats.url }, restart: () => nats.restart(0, 200) };
    },
  });

  test('NATS auth: the token and user/password come from the config; a wrong one never connects', async (t) => {
    const defer = cleanupStack(t);
    const { addr } = await startDiscoveryServer(defer);
    const withToken = await NatsCluster.start(1, { token: 's3cret-token' });
    defer(() => withToken.stop());
    const withUser = await NatsCluster.start(1, { user: 'game', pass: 'pa55' });
    defer(() => withUser.stop());
    const hubs: PubSub[] = [];
    const make = async (name: string, config: Record<string, string>) => {
      let hub: PubSub | undefined;
      await startNode(defer, addr, { name, config }, (node) => {
        hub = createHub(node);
      });
      hubs.push(hub as PubSub);
      return hub as PubSub;
    };
    const good = await make('good', { hub: withToken.url, hubtoken: 's3cret-token' });
    const user = await make('user', { hub: withUser.url, hubuser: 'game', hubpass: 'pa55' });
    const bad = await make('bad', { hub: withToken.url, hubtoken: 'wrong' });
    assert.ok(good instanceof NatsHub && user instanceof NatsHub);
    await within(Promise.all([good.whenSynced(), user.whenSynced()]), 10_000, 'good credentials connect');
    const got: number[] = [];
    good.subscribe('c', EchoReq, (m) => {
      got.push(m.n);
    });
    await good.whenSynced();
    good.publish('c', EchoReq, { n: 7 });
    await waitFor(() => got.length === 1, 5000, 'a message with token auth');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(bad.synced, false, 'a wrong token never connects');
    assert.equal(bad.publish('c', EchoReq, { n: 8 }), true, 'its publishes are queued');
    assert.equal(bad.stats().queued, 1);
    assert.deepEqual(got, [7]);
  });

  test('no NATS server yet: publishes queue, the client connects once one starts; a node stopped while none answers stops cleanly', async (t) => {
    const defer = cleanupStack(t);
    const { addr } = await startDiscoveryServer(defer);
    const port = await freePort();
    const hubs: PubSub[] = [];
    for (const name of ['early', 'gone']) {
      await startNode(defer, addr, { name, config: { hub: `nats://127.0.0.1:${port}` } }, (node) => {
        hubs.push(new NatsHub(node, { reconnectWaitMs: 100 }));
      });
    }
    const [early, gone] = hubs as [PubSub, PubSub];
    const mine: number[] = [];
    early.subscribe('late', EchoReq, (m) => {
      mine.push(m.n);
    });
    assert.equal(early.publish('late', EchoReq, { n: 1 }), true);
    assert.equal(early.stats().queued, 1);
    const started = Date.now();
    await gone.node.stop();
    assert.ok(Date.now() - started < 3000, 'stopping does not wait for a server');
    const nats = await NatsCluster.start(1, { port });
    defer(() => nats.stop());
    await within(early.whenSynced(), 10_000, 'connected once the server is up');
    await waitFor(() => mine.length === 1, 5000, 'the queued message');
    assert.deepEqual(mine, [1]);
    assert.equal(gone.synced, false, 'the stopped node never connected');
  });

  test('a three-server NATS cluster loses one server to kill -9: every subscriber still gets every later message', async (t) => {
    const defer = cleanupStack(t);
    const { addr } = await startDiscoveryServer(defer);
    const nats = await NatsCluster.start(3);
    defer(() => nats.stop());
    // Each client is pinned to one server first (its list starts there), so all three servers carry clients.
    const clients: PubSub[] = [];
    for (let i = 0; i < 6; i++) {
      const first = nats.server(i % 3).endpoint;
      const rest = nats.servers.map((s) => s.endpoint).filter((e) => e !== first);
      let hub: PubSub | undefined;
      await startNode(defer, addr, { name: 'game', config: { svcindex: i } }, (node) => {
        hub = new NatsHub(node, { url: `nats://${[first, ...rest].join(',')}`, reconnectWaitMs: 100 });
      });
      clients.push(hub as PubSub);
    }
    const got = new Map(clients.map((c) => [c, [] as string[]]));
    for (const c of clients) c.subscribe('world', EchoReq, (m, from) => void got.get(c)?.push(`${from.publisher}/${m.text === 'probe' ? -1 : m.n}`));
    await within(Promise.all(clients.map((c) => c.whenSynced())), 10_000, 'clients synced');
    // Interest crosses routes a moment after each server confirmed it: probe until every client hears every other.
    let probe = 0;
    await waitFor(
      () => {
        for (const c of clients) c.publish('world', EchoReq, { text: 'probe', n: --probe });
        return [...got.values()].every((g) => clients.every((p) => g.some((x) => x.startsWith(`${p.node.id}/`))));
      },
      10_000,
      'every client hears every other across the cluster',
      200,
    );
    const killed = nats.server(0);
    await killed.kill9();
    const moved = clients.filter((_, i) => i % 3 === 0);
    // The clients of the killed server reconnect to the others and subscribe again.
    await waitFor(() => moved.every((c) => !c.synced), 5000, 'the killed server is noticed').catch(() => {});
    await within(Promise.all(clients.map((c) => c.whenSynced())), 10_000, 'every client synced after the kill');
    for (const g of got.values()) g.length = 0;
    await waitFor(
      () => {
        for (const c of clients) c.publish('world', EchoReq, { text: 'probe', n: --probe });
        return [...got.values()].every((g) => clients.every((p) => g.some((x) => x.startsWith(`${p.node.id}/`))));
      },
      15_000,
      'every client hears every other after the kill',
      200,
    );
    // Now the guarantee holds again: every later message reaches every subscriber once, in order.
    const COUNT = 200;
    for (let n = 0; n < COUNT; n++) for (const c of clients) c.publish('world', EchoReq, { n });
    // Probes still on their way are recorded as -1: leave them out.
    const counted = (g: string[]) => g.map((x) => x.split('/') as [string, string]).filter(([, n]) => Number(n) >= 0);
    await waitFor(() => [...got.values()].every((g) => counted(g).length === clients.length * COUNT), 10_000, 'every message at every subscriber').catch((err: Error) => {
      throw new Error(`${err.message}: ${[...got.values()].map((g) => counted(g).length).join(', ')}; ${clients.map((c) => JSON.stringify(c.stats())).join(' ')}`);
    });
    for (const [c, g] of got) {
      for (const p of clients) {
        const ns = counted(g).filter(([id]) => id === p.node.id).map(([, n]) => Number(n));
        assert.deepEqual(ns, Array.from({ length: COUNT }, (_, i) => i), `${c.node.id} from ${p.node.id}`);
      }
    }
  });
}
