/**
 * A room's lifecycle in one process (a discovery server, an agent, a
 * backend with a RoomHost, SDK clients over TCP): onCreate, onTick at its
 * rate with dt, lock/unlock, kick (the client hears onLeave "kicked"),
 * dispose after the last leave only once the delay has passed (and not
 * when someone joins within it), onDispose; kept and dropped groups; the
 * least-memory strategy and login's agent choice by memory.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GameClient, tcpTransport } from '../src/client-node/index.js';
import { MEM_MAX_META, MEM_META } from '../src/discovery/memory.js';
import type { ServiceDesc } from '../src/discovery/types.js';
import { Agent } from '../src/gateway/agent.js';
import { GatewayBackend } from '../src/gateway/backend.js';
import { RouteTable } from '../src/gateway/routes.js';
import { pickAgent } from '../src/login/agents.js';
import { RoomHost } from '../src/rooms/host.js';
import type { Room } from '../src/rooms/room.js';
import { Selector } from '../src/service/select.js';
import { ServiceNode } from '../src/service/node.js';
import { GW } from './helpers/gw-proto.js';
import { cleanupStack, silent, startDiscoveryServer } from './helpers/mesh.js';
import { startTestCluster } from '../src/testing/index.js';
import { waitFor } from './helpers/proc.js';

const ROUTES = RouteTable.parse({ version: 1, routes: [{ msgId: GW.PushReq.id, name: GW.PushReq.name, service: 'rooms', rule: 'auth' }] });

test('room lifecycle: ticks, lock, kick, dispose after the delay, groups kept or dropped', { timeout: 30_000 }, async (t) => {
  // Set by the service's start, which runs before startTestCluster resolves.
  let backend!: GatewayBackend;
  let host!: RoomHost;
  const events: string[] = [];
  const ticks: number[] = [];
  // gamemesh/testing: discovery, this backend and an agent in this process; stopped after the test.
  const cluster = await startTestCluster({
    routes: ROUTES,
    logLevel: 'silent',
    services: [
      {
        name: 'rooms',
        start: async (config) => {
          const node = new ServiceNode({ name: 'rooms', config, shutdownTimeoutMs: 500 });
          backend = new GatewayBackend(node);
          host = new RoomHost(backend);
          host.define<{ created: number }>('arena', {
            maxClients: 3,
            tickHz: 20,
            disposeDelayMs: 400,
            state: () => ({ created: 0 }),
            onCreate: (room, options) => {
              room.state.created = Date.now();
              events.push(`create ${String(options['map'])}`);
            },
            onJoin: () => void events.push('join'),
            onLeave: (_room, m, reason) => void events.push(`leave ${m.seat} ${reason}`),
            onTick: (_room, dt) => void ticks.push(dt),
            onDispose: () => void events.push('dispose'),
          });
          host.onMessage(GW.PushReq, (room, m, msg) => {
            if (msg.text === 'lock') room.lock();
            if (msg.text === 'kick-me') room.kick(m, 'asked for it');
          });
          return node.start();
        },
      },
    ],
  });
  t.after(() => cluster.stop());
  const agent = cluster.agents[0] as Agent;
  const client = () => cluster.client({ transport: 'tcp', reconnect: false });
  const [a, b, c] = [await client(), await client(), await client()];

  const ra = await a.create('arena', { map: 'dunes' }, { service: 'rooms' });
  const room = host.room(ra.id) as Room<{ created: number }>;
  assert.ok(room.state.created > 0, 'state made and set in onCreate');
  assert.deepEqual(events, ['create dunes', 'join']);
  // The clock: 20 Hz, dt about 50 ms.
  await sleep(600);
  assert.ok(ticks.length >= 5, `${ticks.length} ticks in 600 ms`);
  const mid = [...ticks].sort((x, y) => x - y)[Math.floor(ticks.length / 2)] as number;
  assert.ok(mid > 30 && mid < 120, `median dt ${mid} ms`);

  // A joinOrCreate with the room's filter finds it; a different filter makes another room.
  const rb = await b.joinOrCreate('arena', { map: 'dunes' }, { service: 'rooms' });
  assert.equal(rb.id, ra.id);
  const other = await c.joinOrCreate('arena', { map: 'ice' }, { service: 'rooms' });
  assert.notEqual(other.id, ra.id);
  await other.leave();

  // Locked: no one joins, by id or by joinOrCreate (which makes a new room instead).
  a.send(GW.PushReq, { text: 'lock' });
  await waitFor(() => room.locked, 3000, 'locked');
  await assert.rejects(c.joinById(ra.id, {}, { service: 'rooms' }), /locked/);
  const fresh = await c.joinOrCreate('arena', { map: 'dunes' }, { service: 'rooms' });
  assert.notEqual(fresh.id, ra.id);
  await fresh.leave();
  room.unlock();

  // Kicked: the client hears it.
  const kicked = new Promise((resolve) => rb.onLeave(resolve));
  b.send(GW.PushReq, { text: 'kick-me' });
  assert.deepEqual(await kicked, { code: 'kicked', reason: 'asked for it' });
  assert.equal(room.size, 1);

  // The last member leaves: the room waits 400 ms; a join within it keeps the room.
  await ra.leave();
  await sleep(150);
  assert.equal(host.room(ra.id), room, 'still there within the delay');
  const rc = await c.joinById(ra.id, {}, { service: 'rooms' });
  await sleep(500);
  assert.equal(host.room(ra.id), room, 'a join within the delay kept it');
  await rc.leave();
  await waitFor(() => host.room(ra.id) === undefined, 3000, 'disposed after the delay');
  assert.equal(events.filter((e) => e === 'dispose').length, 3, 'the dunes, ice and fresh rooms were disposed');
  const tickCount = ticks.length;
  await sleep(200);
  assert.equal(ticks.length, tickCount, 'the clock stopped with the room');
  assert.equal(backend.groups.find(`room:${ra.id}`), undefined, "the room's group went with it");

  // Groups: an empty group is dropped unless kept.
  const ref = { agent: agent.node.id, id: 999_999 };
  const g = backend.group('temp');
  g.add(ref);
  g.remove(ref);
  assert.equal(backend.groups.find('temp'), undefined);
  const kept = backend.group('lobby', { keep: true });
  kept.add(ref);
  kept.remove(ref);
  assert.equal(backend.groups.find('lobby'), kept);
});

const desc = (id: string, rss: number, limit: number, extra: Record<string, string> = {}): ServiceDesc => ({
  name: 'agent',
  id,
  host: '127.0.0.1',
  port: 1,
  meta: { [MEM_META]: `${rss}/${limit}`, [MEM_MAX_META]: '0.9', tcp: `127.0.0.1:${id.length}`, ...extra },
});

test('least-memory: the lowest memory use wins, a node above its threshold is never picked', () => {
  const sel = new Selector();
  const c = (id: string, rss: number) => ({ id, load: 0, desc: desc(id, rss, 100) });
  assert.equal(sel.pick('s', [c('a', 50), c('b', 20), c('c', 70)], 'least-memory')?.id, 'b');
  assert.equal(sel.pick('s', [c('a', 95), c('b', 91)], 'least-memory'), undefined, 'all above 90 %: none');
  assert.equal(sel.pick('s', [c('a', 95)], 'least-memory'), undefined);
  // A node that reports no memory counts as having room.
  assert.equal(sel.pick('s', [c('a', 95), { id: 'old', load: 0 }], 'least-memory')?.id, 'old');
});

test("login's agent choice skips agents above their memory threshold, and can rank by memory", () => {
  const agents = [desc('a', 95, 100, { online: '0' }), desc('bb', 60, 100, { online: '0' }), desc('ccc', 10, 100, { online: '50' })];
  for (let i = 0; i < 20; i++) assert.notEqual(pickAgent(agents)?.id, 'a');
  assert.equal(pickAgent(agents, { strategy: 'least-memory' })?.id, 'ccc');
  assert.equal(pickAgent(agents, { strategy: 'least-loaded' })?.id, 'bb');
  assert.equal(pickAgent([agents[0] as ServiceDesc]), undefined);
});

test('a retiring host takes no new members, keeps its seated ones, and retires once they are gone', { timeout: 30_000 }, async (t) => {
  const defer = cleanupStack(t);
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  const node = new ServiceNode({ name: 'rooms', config: { sdaddr }, logger: silent, shutdownTimeoutMs: 500 });
  const host = new RoomHost(new GatewayBackend(node));
  host.define('arena', { maxClients: 4, reconnectSec: 5 });
  defer(() => node.stop());
  await node.start();
  const agent = await new Agent({ node: { config: { sdaddr }, logger: silent, shutdownTimeoutMs: 500 }, routes: ROUTES, heartbeatSec: 5 }).start();
  defer(() => agent.stop());
  await waitFor(() => node.instances('agent').length > 0 && agent.node.instances('rooms').length > 0, 5000, 'linked');
  const port = Number(agent.tcpAddress?.split(':')[1]);
  const mk = () => {
    const c = new GameClient({ transport: () => tcpTransport('127.0.0.1', port), reconnect: false });
    defer(() => c.close());
    return c;
  };
  const [a, b] = [mk(), mk()];
  await Promise.all([a.connect(), b.connect()]);
  const room = await a.create('arena', {}, { service: 'rooms' });
  let retired = false;
  node.once('retired', () => (retired = true));
  assert.equal(node.retire('a newer version is live'), true);
  await assert.rejects(b.joinById(room.id, {}, { service: 'rooms' }), (err: Error & { code?: string }) => err.code === 'unavailable' && /retiring/.test(err.message));
  await assert.rejects(b.joinOrCreate('arena', {}, { service: 'rooms' }), (err: Error & { code?: string }) => err.code === 'overloaded' && /is retiring/.test(err.message));
  // b, refused, leaves; a still holds its seat.
  b.close();
  await sleep(600);
  assert.equal(retired, false, 'a seat is still held');
  a.close();
  // The seat is kept for a reconnect (5 s): the host stays until it expires, then retires.
  await sleep(1000);
  assert.equal(retired, false, 'the kept seat still holds the host');
  await waitFor(() => retired, 15_000, 'retired once the kept seat expired');
});
