/**
 * Clusters and harbors in one process, over real sockets: the cluster
 * partition of lookups by type, selection and dials (own cluster plus
 * exported nodes); calls and messages to another cluster's address through
 * two harbors, with typed errors, deadlines and cancellation crossing them;
 * a fast `unreachable` for unknown clusters; and a harbor's bounded queue.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harbor } from '../src/harbor/harbor.js';
import type { ServiceNode } from '../src/service/node.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, elapsedSince, expectRpcError, serveEcho, SECRET, silent, startDiscoveryServer, startNode, type Defer } from './helpers/mesh.js';
import { waitFor, within } from './helpers/proc.js';
import { RawLink } from './helpers/raw-link.js';
import { connectDiscovery } from '../src/discovery/connect.js';
import { packAddr } from '../src/service/identity.js';

const CENTER_SECRET = 'center-test-secret';

async function startHarbor(defer: Defer, sdaddr: string, center: string, cluster: number, index = 0, extra: { maxQueueBytes?: number; admin?: string } = {}): Promise<Harbor> {
  const { admin, ...rest } = extra;
  const harbor = new Harbor({ config: { sdaddr, cluster, svcindex: index, token: SECRET, listen: '127.0.0.1:0', admin }, center, centerToken: CENTER_SECRET, logger: silent, ...rest });
  defer(() => harbor.stop());
  return harbor.start();
}

/** Two clusters, each with its own discovery and harbor, and a center between the harbors. */
async function twoClusters(defer: Defer) {
  const [sd1, sd2, center] = await Promise.all([startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer, 500, CENTER_SECRET)]);
  const [h1, h2] = await Promise.all([startHarbor(defer, sd1.addr, center.addr, 1), startHarbor(defer, sd2.addr, center.addr, 2)]);
  await waitFor(() => h1.center.instances('harbor').length === 1 && h2.center.instances('harbor').length === 1, 5000, 'the harbors link through the center');
  let echo: ReturnType<typeof serveEcho> | undefined;
  const target = await startNode(defer, sd2.addr, { name: 'echo', type: 9, config: { cluster: 2, svcindex: 1 } }, (n) => (echo = serveEcho(n)));
  const caller = await startNode(defer, sd1.addr, { name: 'caller', type: 8, config: { cluster: 1, svcindex: 1 } });
  await waitFor(() => caller.instances('harbor').length === 1 && target.instances('harbor').length === 1, 5000, 'nodes link to their harbors');
  return { sd1, sd2, center, h1, h2, caller, target, echo: echo as ReturnType<typeof serveEcho> };
}

test('a node of cluster 1 without --export is never seen by cluster 2: not by type, not by name, not dialed', async (t) => {
  const defer = cleanupStack(t);
  // One discovery shared by both clusters (clustergo's layout): the partition is the nodes' own filter.
  const { addr } = await startDiscoveryServer(defer);
  const hidden = await startNode(defer, addr, { name: 'battle', type: 7, config: { cluster: 1, svcindex: 1 } }, serveEcho);
  const shown = await startNode(defer, addr, { name: 'battle', type: 7, config: { cluster: 1, svcindex: 2, export: true } }, serveEcho);
  const local = await startNode(defer, addr, { name: 'battle', type: 7, config: { cluster: 2, svcindex: 3 } }, serveEcho);
  const other = await startNode(defer, addr, { name: 'game', type: 6, dependencies: ['battle'], config: { cluster: 2, svcindex: 1 } });
  const same = await startNode(defer, addr, { name: 'game', type: 6, dependencies: ['battle'], config: { cluster: 1, svcindex: 2 } });
  await within(Promise.all([other.whenReady(), same.whenReady()]), 5000, 'both games ready');
  await waitFor(() => other.instances('battle').length === 2 && same.instances('battle').length === 2, 5000, 'links to the visible battles');
  await sleep(200); // time for a wrong dial to show up

  assert.deepEqual(await other.addrsByType(7), [shown.logicalAddress, local.logicalAddress].sort(), 'cluster 2 sees its own battle and the exported one');
  assert.deepEqual(other.instances('battle').map((p) => p.id).sort(), [`${shown.id}/c1`, local.id].sort(), 'cluster 2 selects among the same two');
  assert.equal(other.isConnected(`${hidden.id}/c1`), false, 'cluster 2 never dialed the hidden node');
  for (let i = 0; i < 20; i++) assert.notEqual(await other.pickAddr(7, `k${i}`), hidden.logicalAddress);
  for (let i = 0; i < 10; i++) assert.notEqual((await other.call('battle', EchoReq, EchoResp, { text: 'x', n: i })).server, hidden.id);
  // Named explicitly it needs a harbor; with none, the answer is immediate.
  const t0 = performance.now();
  await expectRpcError(other.call({ addr: hidden.logicalAddress }, EchoReq, EchoResp, { text: 'x', n: 1 }), 'unreachable', /no harbor of cluster 2/);
  assert.ok(elapsedSince(t0) < 1000);
  // The exported node took cluster 2's link, but does not pick cluster 2's unexported game by name.
  await waitFor(() => shown.isConnected(`${other.id}/c2`) && shown.isConnected(same.id), 5000, 'both games linked to the exported battle');
  assert.deepEqual(shown.instances('game').map((p) => p.id), [same.id]);
  // The exported node of cluster 1 is dialed directly, by address too.
  assert.equal((await other.call({ addr: shown.logicalAddress }, EchoReq, EchoResp, { text: 'x', n: 1 })).server, shown.id);

  // Dialing the hidden node anyway (its host:port is in the shared registry) is refused after the handshake.
  const raw = await RawLink.open(defer, hidden.address.port);
  await raw.handshake('intruder#9@dev', SECRET, packAddr({ cluster: 2, type: 6, index: 9 }));
  await raw.expectClosed('a link from cluster 2 to an unexported node of cluster 1');
  assert.ok(raw.errors().some((e) => e.code === 'unreachable'));

  // Cluster 1 sees its own two and not cluster 2's unexported battle.
  assert.deepEqual(await same.addrsByType(7), [hidden.logicalAddress, shown.logicalAddress].sort());
  assert.deepEqual(same.instances('battle').map((p) => p.id).sort(), [hidden.id, shown.id].sort());
  assert.equal(same.isConnected(`${local.id}/c2`), false);
});

test('calls and messages reach another cluster through two harbors; errors, deadlines and cancels cross unchanged', async (t) => {
  const defer = cleanupStack(t);
  const { caller, target, echo, h1, h2 } = await twoClusters(defer);
  const to = { addr: target.logicalAddress };

  const res = await caller.call(to, EchoReq, EchoResp, { text: 'over the harbors', n: 42 });
  assert.deepEqual([res.text, res.n, res.server], ['over the harbors', 42, target.id]);
  assert.ok(h1.counts.forwarded >= 1 && h2.counts.forwarded >= 1, 'both harbors forwarded');
  assert.equal(caller.isConnected(target.id), false, 'no direct link between the clusters');

  // Pipelined: many in flight, every answer to its own call.
  const many = await Promise.all(Array.from({ length: 200 }, (_, i) => caller.call(to, EchoReq, EchoResp, { text: `p${i}`, n: i })));
  assert.deepEqual(many.map((r) => r.n), Array.from({ length: 200 }, (_, i) => i));

  // Typed errors.
  await expectRpcError(caller.call(to, EchoReq, EchoResp, { text: 'rpcerror:busy', n: 1 }), 'busy', /refused by the handler/);
  await expectRpcError(caller.call(to, EchoReq, EchoResp, { text: 'throw:boom', n: 1 }), 'application', /boom/);
  await expectRpcError(caller.call(to, EchoResp, EchoReq, { text: 'no handler', n: 1 }), 'unknown_method');

  // A deadline: the caller times out, and the cancel reaches the handler through both harbors.
  await expectRpcError(caller.call(to, EchoReq, EchoResp, { text: 'sleep:3000', n: 1 }, { timeoutMs: 300 }), 'timeout');
  await waitFor(() => echo.aborted.some((a) => a.text === 'sleep:3000'), 3000, 'the remote handler sees the deadline pass');
  // Cancellation by the caller.
  const ac = new AbortController();
  const p = caller.call(to, EchoReq, EchoResp, { text: 'sleep:3001', n: 1 }, { signal: ac.signal });
  await waitFor(() => echo.begun.includes('sleep:3001'), 3000, 'the remote handler started');
  ac.abort();
  await expectRpcError(p, 'cancelled');
  await waitFor(() => echo.aborted.some((a) => a.text === 'sleep:3001'), 3000, 'the remote handler sees the cancel');

  // One-way messages, both ways: the target answers to ctx.peer.addr, the caller's logical address.
  const got: string[] = [];
  caller.onMessage(EchoResp, (m) => void got.push(m.text));
  target.onMessage(EchoResp, async (m, ctx) => {
    assert.equal(ctx.peer.addr, caller.addr);
    await target.send({ addr: ctx.peer.addr }, EchoResp, { text: `re:${m.text}`, n: m.n, server: target.id });
  });
  await caller.send(to, EchoResp, { text: 'hello', n: 1, server: caller.id });
  await waitFor(() => got.includes('re:hello'), 3000, 'the reply message came back through the harbors');

  // A call from cluster 2 to cluster 1 also works (the caller serves echo too).
  serveEcho(caller);
  assert.equal((await target.call({ addr: caller.logicalAddress }, EchoReq, EchoResp, { text: 'back', n: 2 })).server, caller.id);
});

test('an unknown cluster or address answers a typed error at once, not a timeout', async (t) => {
  const defer = cleanupStack(t);
  const { caller, target } = await twoClusters(defer);
  let t0 = performance.now();
  await expectRpcError(caller.call({ addr: '9.3.1' }, EchoReq, EchoResp, { text: 'x', n: 1 }, { timeoutMs: 5000 }), 'unreachable', /cluster 9/);
  assert.ok(elapsedSince(t0) < 1000, `unreachable took ${elapsedSince(t0)} ms`);
  t0 = performance.now();
  await expectRpcError(caller.call({ addr: '2.9.77' }, EchoReq, EchoResp, { text: 'x', n: 1 }, { timeoutMs: 5000 }), 'unavailable', /2\.9\.77/);
  assert.ok(elapsedSince(t0) < 2000, `unavailable took ${elapsedSince(t0)} ms`);
  // The route still works afterwards.
  assert.equal((await caller.call({ addr: target.logicalAddress }, EchoReq, EchoResp, { text: 'x', n: 1 })).server, target.id);
  // A burst at a target the harbor has no link to yet: held while it dials, then delivered, every answer to its call.
  const fresh = await startNode(defer, target.config.sdaddr, { name: 'echo', type: 9, config: { cluster: 2, svcindex: 2 } }, serveEcho);
  const burst = await Promise.all(Array.from({ length: 100 }, (_, i) => caller.call({ addr: fresh.logicalAddress }, EchoReq, EchoResp, { text: `b${i}`, n: i })));
  assert.deepEqual(burst.map((r) => [r.n, r.server]), Array.from({ length: 100 }, (_, i) => [i, fresh.id]));
});

test('a slow target cluster makes its harbor answer busy instead of queueing without bound', async (t) => {
  const defer = cleanupStack(t);
  const [sd1, sd2, center] = await Promise.all([startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer, 500, CENTER_SECRET)]);
  const [h1] = await Promise.all([startHarbor(defer, sd1.addr, center.addr, 1, 0, { maxQueueBytes: 1024 }), startHarbor(defer, sd2.addr, center.addr, 2)]);
  await waitFor(() => h1.center.instances('harbor').length === 1, 5000, 'harbors linked');
  const target: ServiceNode = await startNode(defer, sd2.addr, { name: 'echo', type: 9, config: { cluster: 2, svcindex: 1 } }, serveEcho);
  const caller = await startNode(defer, sd1.addr, { name: 'caller', type: 8, config: { cluster: 1, svcindex: 1 } });
  await waitFor(() => caller.instances('harbor').length === 1, 5000, 'caller links to its harbor');
  const to = { addr: target.logicalAddress };
  await caller.call(to, EchoReq, EchoResp, { text: 'warm', n: 0 });
  // 6 MiB of 60 KiB requests at once (under the caller's own link limit): far more than the 1 KiB the harbor may queue toward cluster 2.
  const big = 'x'.repeat(60 * 1024);
  const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => caller.call(to, EchoReq, EchoResp, { text: big, n: i }, { timeoutMs: 20_000 })));
  const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code?: string }).code));
  assert.ok(codes.includes('busy'), `some calls were refused busy: ${[...new Set(codes)].join(',')}`);
  assert.ok(codes.includes('ok'), 'some calls got through');
  assert.ok(codes.every((c) => c === 'ok' || c === 'busy'), `only ok or busy: ${[...new Set(codes)].join(',')}`);
  assert.ok(h1.counts.busy > 0);
  // And it recovers.
  assert.equal((await caller.call(to, EchoReq, EchoResp, { text: 'after', n: 1 })).text, 'after');
});

test('with a discovery per cluster, harbors carry exported nodes across: found by type and by name, dialed directly, gone when they leave', async (t) => {
  const defer = cleanupStack(t);
  const [sd1, sd2, sd3, center] = await Promise.all([startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer, 500, CENTER_SECRET)]);
  const harbors = await Promise.all([startHarbor(defer, sd1.addr, center.addr, 1), startHarbor(defer, sd2.addr, center.addr, 2), startHarbor(defer, sd3.addr, center.addr, 3)]);
  await waitFor(() => harbors.every((h) => h.center.instances('harbor').length === 2), 5000, 'the harbors link through the center');
  const shown = await startNode(defer, sd3.addr, { name: 'battle', type: 7, config: { cluster: 3, svcindex: 1, export: true } }, serveEcho);
  const hidden = await startNode(defer, sd3.addr, { name: 'battle', type: 7, config: { cluster: 3, svcindex: 2 } }, serveEcho);
  const games = await Promise.all([1, 2].map((c, i) => startNode(defer, [sd1, sd2][i]?.addr as string, { name: 'game', type: 6, dependencies: ['battle'], config: { cluster: c, svcindex: 1 } })));
  await within(Promise.all(games.map((g) => g.whenReady())), 5000, 'both games find a battle');
  for (const game of games) {
    assert.deepEqual(await game.addrsByType(7), [shown.logicalAddress]);
    // Ids are unique within a cluster: another cluster's node is known as id/c<cluster>.
    assert.deepEqual(game.instances('battle').map((p) => p.id), [`${shown.id}/c3`]);
    assert.equal((await game.call('battle', EchoReq, EchoResp, { text: 'meet', n: 1 })).server, shown.id);
    assert.equal(game.isConnected(`${shown.id}/c3`), true, 'an exported node is dialed directly');
    // The hidden one is still reachable when named: through the harbors.
    assert.equal((await game.call({ addr: hidden.logicalAddress }, EchoReq, EchoResp, { text: 'named', n: 2 })).server, hidden.id);
    assert.equal(game.isConnected(`${hidden.id}/c3`), false);
  }
  // Copies wiped by hand (`gamemesh sd clearvalue`) come back while their registration lives.
  const sd1Client = await connectDiscovery(sd1.addr, { token: SECRET });
  const centerClient = await connectDiscovery(center.addr, { token: CENTER_SECRET });
  defer(() => Promise.all([sd1Client.close(), centerClient.close()]));
  const key = `harbor/exports/${shown.logicalAddress}`;
  await sd1Client.clear();
  await centerClient.delete(key);
  await waitFor(async () => (await sd1Client.get(key)) !== undefined && (await centerClient.get(key)) !== undefined, 5000, 'the copies are put back');
  await waitFor(async () => (await games[0]?.addrsByType(7))?.[0] === shown.logicalAddress, 5000, 'cluster 1 sees the battle again');

  await shown.stop();
  await waitFor(async () => (await games[0]?.addrsByType(7))?.length === 0 && (await games[1]?.addrsByType(7))?.length === 0, 5000, 'the copies leave with the registration');
  assert.equal(games[0]?.instances('battle').length, 0);
});

test("a harbor's admin port: its counts in /status and in Prometheus /metrics", async (t) => {
  const defer = cleanupStack(t);
  const [sd1, sd2, center] = await Promise.all([startDiscoveryServer(defer), startDiscoveryServer(defer), startDiscoveryServer(defer, 500, CENTER_SECRET)]);
  const [h1] = await Promise.all([startHarbor(defer, sd1.addr, center.addr, 1, 0, { admin: '127.0.0.1:0' }), startHarbor(defer, sd2.addr, center.addr, 2)]);
  await waitFor(() => h1.linkedHarbors() === 1, 5000, 'harbors linked');
  const target = await startNode(defer, sd2.addr, { name: 'echo', type: 9, config: { cluster: 2, svcindex: 1 } }, serveEcho);
  const caller = await startNode(defer, sd1.addr, { name: 'caller', type: 8, config: { cluster: 1, svcindex: 1 } });
  await waitFor(() => caller.instances('harbor').length === 1, 5000, 'caller links to its harbor');
  for (let i = 0; i < 5; i++) await caller.call({ addr: target.logicalAddress }, EchoReq, EchoResp, { text: 'm', n: i });
  await expectRpcError(caller.call({ addr: '9.1.1' }, EchoReq, EchoResp, { text: 'x', n: 0 }), 'unreachable');
  const base = `http://${h1.local.admin?.address}`;
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${SECRET}` } });
    assert.equal(res.status, 200, path);
    return res.text();
  };
  const status = JSON.parse(await get('/status')) as { addr: string; harbor: { forwarded: number; unreachable: number; harbors: string[] } };
  assert.equal(status.addr, '1.255.0');
  assert.ok(status.harbor.forwarded >= 10, `forwarded ${status.harbor.forwarded}`);
  assert.equal(status.harbor.unreachable, 1);
  assert.deepEqual(status.harbor.harbors, ['2.255.0']);
  const metrics = await get('/metrics');
  const forwarded = /^gamemesh_harbor_frames_total\{result="forwarded"\} (\d+)$/m.exec(metrics);
  assert.ok(forwarded && Number(forwarded[1]) >= 10, 'the forwarded counter is exported');
  assert.match(metrics, /^gamemesh_harbor_frames_total\{result="unreachable"\} [1-9]/m);
  assert.match(metrics, /^gamemesh_harbor_peers [1-9]/m);
});
