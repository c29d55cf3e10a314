/**
 * The service runtime with every node in this process, on real sockets and a
 * real (in-memory) discovery server: discovery-driven links, one-way
 * messages and RPC, typed error codes, targets and selection strategies,
 * lazy links by logical address, interceptors, link rules, lifecycle events
 * and draining.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcError } from '../src/service/errors.js';
import type { ServiceNode } from '../src/service/node.js';
import type { PeerInfo } from '../src/service/rpc.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { acceptedSessions, cleanupStack, elapsedSince, expectRpcError, serveEcho, startDiscoveryServer, startNode, makeNode, type EchoStats } from './helpers/mesh.js';
import { waitFor, within } from './helpers/proc.js';

interface Received {
  text: string;
  n: number;
  from: string;
}

/** Records one-way EchoResp messages (used as the "notify" message in these tests). */
function collectMessages(node: ServiceNode): Received[] {
  const got: Received[] = [];
  node.onMessage(EchoResp, (msg, ctx) => {
    got.push({ text: msg.text, n: msg.n, from: ctx.peer.id });
  });
  return got;
}

const ids = (peers: readonly PeerInfo[]) => peers.map((p) => p.id);

test('two services find each other through discovery and exchange one-way messages and RPCs both ways', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  let alphaGot: Received[] = [];
  let betaGot: Received[] = [];
  const alpha = await startNode(defer, addr, { name: 'alpha', dependencies: ['beta'] }, (n) => {
    serveEcho(n);
    alphaGot = collectMessages(n);
  });
  assert.equal(alpha.ready, false, 'alpha waits for its dependency');
  const beta = await startNode(defer, addr, { name: 'beta', dependencies: ['alpha'] }, (n) => {
    serveEcho(n);
    betaGot = collectMessages(n);
  });
  await within(Promise.all([alpha.whenReady(), beta.whenReady()]), 5000, 'both nodes ready');
  assert.deepEqual(ids(alpha.instances('beta')), ['beta#0@dev']);
  assert.deepEqual(ids(beta.instances('alpha')), ['alpha#0@dev']);

  const ab = await alpha.call('beta', EchoReq, EchoResp, { text: 'hello beta', n: 7 });
  assert.equal(ab.text, 'hello beta');
  assert.equal(ab.n, 7);
  assert.equal(ab.server, beta.id);
  const ba = await beta.call('alpha', EchoReq, EchoResp, { text: 'hello alpha', n: 8 });
  assert.equal(ba.server, alpha.id);
  assert.equal(ba.n, 8);

  for (let i = 0; i < 20; i++) await alpha.send('beta', EchoResp, { text: `a${i}`, n: i });
  for (let i = 0; i < 20; i++) void beta.send('alpha', EchoResp, { text: `b${i}`, n: i });
  await waitFor(() => betaGot.length >= 20 && alphaGot.length >= 20, 3000, 'one-way messages delivered');
  assert.deepEqual(
    betaGot,
    Array.from({ length: 20 }, (_, i) => ({ text: `a${i}`, n: i, from: alpha.id })),
    'every message arrives once, in order, from alpha',
  );
  assert.deepEqual(
    alphaGot,
    Array.from({ length: 20 }, (_, i) => ({ text: `b${i}`, n: i, from: beta.id })),
  );

  // Many calls in flight at once are each answered with their own response.
  const many = await Promise.all(Array.from({ length: 200 }, (_, i) => alpha.call('beta', EchoReq, EchoResp, { text: `m${i}`, n: i })));
  many.forEach((r, i) => {
    assert.equal(r.text, `m${i}`);
    assert.equal(r.n, i);
  });
});

test('typed error codes reach the caller', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  let echo: EchoStats = { calls: 0, begun: [], aborted: [] };
  let narrow: EchoStats = echo;
  const callee = await startNode(defer, addr, { name: 'echo' }, (n) => {
    echo = serveEcho(n);
  });
  await startNode(defer, addr, { name: 'narrow', maxInflight: 1 }, (n) => {
    narrow = serveEcho(n);
  });
  const client = await startNode(defer, addr, { name: 'client', dependencies: ['echo', 'narrow', 'late'] });
  await waitFor(() => client.instances('echo').length === 1 && client.instances('narrow').length === 1, 5000, 'client linked to echo and narrow');

  await t.test('unknown_method: the callee has no handler for the request type', async () => {
    // EchoResp is a valid message, but nobody serves it as a request.
    await expectRpcError(client.call('echo', EchoResp, EchoReq, { text: 'x' }), 'unknown_method', /1002/);
  });

  await t.test('application: the handler throws', async () => {
    await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'throw:kaboom' }), 'application', /kaboom/);
    // A handler that throws an RpcError chooses the code the caller sees.
    await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'rpcerror:bad_request' }), 'bad_request', /refused by the handler/);
    const ok = await client.call('echo', EchoReq, EchoResp, { text: 'still fine' });
    assert.equal(ok.server, callee.id, 'the callee keeps serving after a handler failure');
  });

  await t.test('timeout: a slow handler and a short deadline; the callee sees its signal abort', async () => {
    const t0 = performance.now();
    await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'sleep:3000 timeout' }, { timeoutMs: 150 }), 'timeout');
    const elapsed = elapsedSince(t0);
    assert.ok(elapsed >= 140 && elapsed < 1000, `the call failed after ${elapsed.toFixed(0)} ms, expected about 150`);
    await waitFor(() => echo.aborted.some((a) => a.text === 'sleep:3000 timeout'), 2000, "the callee's ctx.signal to abort");
    const reason = echo.aborted.find((a) => a.text === 'sleep:3000 timeout')?.reason;
    assert.ok(reason instanceof RpcError && reason.code === 'cancelled', `abort reason: ${String(reason)}`);
  });

  await t.test('cancelled: the caller aborts its signal', async () => {
    const ac = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ac.abort(), 50);
    await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'sleep:3000 cancel' }, { signal: ac.signal, timeoutMs: 5000 }), 'cancelled');
    assert.ok(elapsedSince(t0) < 1000, 'cancellation is immediate, not at the deadline');
    await waitFor(() => echo.aborted.some((a) => a.text === 'sleep:3000 cancel'), 2000, "the callee's ctx.signal to abort");

    const before = echo.calls;
    await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'never sent' }, { signal: AbortSignal.abort() }), 'cancelled');
    await client.call('echo', EchoReq, EchoResp, { text: 'barrier' });
    assert.equal(echo.calls, before + 1, 'a call with an already-aborted signal never reaches the callee');
  });

  await t.test('unavailable: no instance, unknown id, unknown logical address', async () => {
    const t0 = performance.now();
    await expectRpcError(client.call('ghost', EchoReq, EchoResp, {}, { timeoutMs: 5000 }), 'unavailable', /ghost/);
    await expectRpcError(client.call({ id: 'ghost#0@dev' }, EchoReq, EchoResp, {}, { timeoutMs: 5000 }), 'unavailable');
    await expectRpcError(client.call({ addr: '1.77.77' }, EchoReq, EchoResp, {}, { timeoutMs: 5000 }), 'unavailable', /1\.77\.77/);
    await expectRpcError(client.send('late', EchoResp, {}), 'unavailable');
    assert.ok(elapsedSince(t0) < 1000, 'unavailable is reported at once, not at the deadline');
  });

  await t.test('waitForInstance: the call waits until an instance appears, or times out', async () => {
    const t0 = performance.now();
    await expectRpcError(client.call('late', EchoReq, EchoResp, {}, { waitForInstance: true, timeoutMs: 200 }), 'timeout');
    assert.ok(elapsedSince(t0) >= 190, 'it waited for the deadline');

    const pending = client.call('late', EchoReq, EchoResp, { text: 'patience' }, { waitForInstance: true, timeoutMs: 5000 });
    let settled = false;
    void pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(150);
    assert.equal(settled, false, 'the call is still waiting');
    const late = await startNode(defer, addr, { name: 'late' }, serveEcho);
    const res = await within(pending, 5000, 'the waiting call');
    assert.equal(res.server, late.id);
    assert.equal(res.text, 'patience');
  });

  await t.test('busy: maxInflight 1 and a slow call in flight', async () => {
    const slow = client.call('narrow', EchoReq, EchoResp, { text: 'sleep:300 busy' });
    await waitFor(() => narrow.begun.includes('sleep:300 busy'), 2000, 'the slow call to start');
    await expectRpcError(client.call('narrow', EchoReq, EchoResp, { text: 'second' }), 'busy');
    assert.equal((await slow).text, 'sleep:300 busy', 'the call in flight completes');
    assert.equal((await client.call('narrow', EchoReq, EchoResp, { text: 'third' })).text, 'third', 'the slot is free again');
    assert.equal(narrow.begun.includes('second'), false, 'the refused call never reached the handler');
  });
});

test('targets: by id, and round-robin, random, least-loaded and hash over 3 instances', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const echoes: ServiceNode[] = [];
  for (let i = 0; i < 3; i++) echoes.push(await startNode(defer, addr, { name: 'echo', config: { svcindex: i } }, serveEcho));
  const [e0, e1, e2] = echoes as [ServiceNode, ServiceNode, ServiceNode];
  const client = await startNode(defer, addr, { name: 'client', dependencies: ['echo'] });
  await waitFor(() => client.instances('echo').length === 3, 5000, 'three echo instances linked');
  assert.deepEqual(ids(client.instances('echo')), ['echo#0@dev', 'echo#1@dev', 'echo#2@dev']);

  const serverOf = async (target: Parameters<ServiceNode['call']>[0]) => (await client.call(target, EchoReq, EchoResp, { text: 'who' })).server;

  await t.test('by {id}', async () => {
    for (const e of echoes) for (let i = 0; i < 5; i++) assert.equal(await serverOf({ id: e.id }), e.id);
    await expectRpcError(client.call({ id: 'echo#9@dev' }, EchoReq, EchoResp, {}), 'unavailable');
  });

  await t.test('round-robin spreads evenly', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const s = await serverOf({ service: 'echo', strategy: 'round-robin' });
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { [e0.id]: 10, [e1.id]: 10, [e2.id]: 10 });
  });

  await t.test('random reaches every instance', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) seen.add(await serverOf({ service: 'echo', strategy: 'random' }));
    assert.equal(seen.size, 3);
  });

  await t.test('hash: the same key always picks the same instance, in every process', async () => {
    const first = new Map<string, string>();
    for (let k = 0; k < 40; k++) first.set(`player-${k}`, await serverOf({ service: 'echo', strategy: 'hash', key: `player-${k}` }));
    for (let round = 0; round < 2; round++) {
      for (const [key, server] of first) assert.equal(await serverOf({ service: 'echo', strategy: 'hash', key }), server, `key ${key}`);
    }
    assert.ok(new Set(first.values()).size >= 2, 'keys spread over more than one instance');
    // Another node that sees the same instances makes the same choices.
    const other = await startNode(defer, addr, { name: 'other', dependencies: ['echo'] });
    await waitFor(() => other.instances('echo').length === 3, 5000, 'the other client linked to all three');
    for (const [key, server] of first) {
      assert.equal((await other.call({ service: 'echo', strategy: 'hash', key }, EchoReq, EchoResp, {})).server, server, `key ${key} on another node`);
    }
  });

  await t.test('least-loaded prefers the instance that reported the lowest load', async () => {
    e0.setLoad(50);
    e1.setLoad(5);
    e2.setLoad(80);
    const allGoTo = async (id: string, n: number) => {
      for (let i = 0; i < n; i++) if ((await serverOf({ service: 'echo', strategy: 'least-loaded' })) !== id) return false;
      return true;
    };
    await waitFor(() => allGoTo(e1.id, 10), 3000, 'calls to go to the least-loaded instance');
    assert.ok(await allGoTo(e1.id, 30), 'every call goes to the least-loaded instance');
    e1.setLoad(100);
    await waitFor(() => allGoTo(e0.id, 10), 3000, 'calls to follow the new least-loaded instance');
    assert.ok(await allGoTo(e0.id, 30));
  });
});

test('{addr}: a lazy link to a service that is not a dependency; exactly one link when both sides dial at once', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  // Several fresh pairs, each side sending to the other at the same moment,
  // so that both sides dial and the duplicate link has to be resolved while
  // calls and messages are already on their way over both links.
  interface Pair {
    alpha: ServiceNode;
    beta: ServiceNode;
    alphaGot: Received[];
    betaGot: Received[];
    ups: { alpha: number; beta: number };
    downs: { alpha: number; beta: number };
  }
  const pairs: Pair[] = [];
  for (let i = 0; i < 6; i++) {
    const counts = { ups: { alpha: 0, beta: 0 }, downs: { alpha: 0, beta: 0 } };
    let alphaGot: Received[] = [];
    let betaGot: Received[] = [];
    const alpha = await startNode(defer, addr, { name: 'alpha', type: 1, config: { svcindex: i } }, (n) => {
      serveEcho(n);
      alphaGot = collectMessages(n);
      n.on('peerUp', () => counts.ups.alpha++);
      n.on('peerDown', () => counts.downs.alpha++);
    });
    const beta = await startNode(defer, addr, { name: 'beta', type: 2, config: { svcindex: i } }, (n) => {
      serveEcho(n);
      betaGot = collectMessages(n);
      n.on('peerUp', () => counts.ups.beta++);
      n.on('peerDown', () => counts.downs.beta++);
    });
    assert.equal(alpha.logicalAddress, `1.1.${i}`);
    assert.equal(beta.logicalAddress, `1.2.${i}`);
    pairs.push({ alpha, beta, alphaGot, betaGot, ...counts });
  }
  assert.equal(pairs[0]?.alpha.instances('beta').length, 0, 'no link before the first send');

  await within(
    Promise.all(
      pairs.map(async ({ alpha, beta }, i) => {
        const burst = (from: ServiceNode, to: string | number, tag: string) => [
          ...Array.from({ length: 5 }, (_, k) => from.send({ addr: to }, EchoResp, { text: `${tag} m${k}`, n: k })),
          ...Array.from({ length: 5 }, async (_, k) => {
            const res = await from.call({ addr: to }, EchoReq, EchoResp, { text: `${tag} c${k}`, n: k });
            assert.equal(res.text, `${tag} c${k}`);
            return res.server;
          }),
        ];
        const servers = await Promise.all([...burst(alpha, beta.logicalAddress, `a${i}`), ...burst(beta, alpha.addr, `b${i}`)]);
        assert.deepEqual(servers.filter((s) => s !== undefined).sort(), [...Array(5).fill(alpha.id), ...Array(5).fill(beta.id)], `pair ${i}: every call answered by the right node`);
      }),
    ),
    5000,
    'sends and calls both ways in every pair',
  );

  const expected = (tag: string, from: string) => Array.from({ length: 5 }, (_, k) => ({ text: `${tag} m${k}`, n: k, from }));
  await waitFor(() => pairs.every((p) => p.alphaGot.length >= 5 && p.betaGot.length >= 5), 2000, 'every one-way message delivered');
  // Settle: the losing duplicate, if any, is retired and then closed on both sides.
  await waitFor(() => pairs.every(({ alpha, beta }) => acceptedSessions(alpha) + acceptedSessions(beta) === 1), 4000, 'a single TCP connection in every pair');
  await sleep(100);
  for (const [i, p] of pairs.entries()) {
    const { alpha, beta } = p;
    // Messages sent one after the other on one side may travel on different
    // links while the duplicate is resolved: each arrives exactly once.
    const byText = (a: Received, b: Received) => (a.text < b.text ? -1 : 1);
    assert.deepEqual([...p.betaGot].sort(byText), expected(`a${i}`, alpha.id), `pair ${i}: beta got each message once`);
    assert.deepEqual([...p.alphaGot].sort(byText), expected(`b${i}`, beta.id), `pair ${i}: alpha got each message once`);
    assert.equal(acceptedSessions(alpha) + acceptedSessions(beta), 1, `pair ${i}: still a single connection`);
    assert.deepEqual(ids(alpha.instances('beta')), [beta.id]);
    assert.deepEqual(ids(beta.instances('alpha')), [alpha.id]);
    assert.deepEqual(p.ups, { alpha: 1, beta: 1 }, `pair ${i}: one peerUp on each side`);
    assert.deepEqual(p.downs, { alpha: 0, beta: 0 }, `pair ${i}: no peerDown`);
    // The surviving link carries traffic both ways, also by service name now.
    assert.equal((await alpha.call('beta', EchoReq, EchoResp, {})).server, beta.id);
    assert.equal((await beta.call({ addr: alpha.logicalAddress }, EchoReq, EchoResp, {})).server, alpha.id);
  }
});

test('client and server interceptors run in order and can refuse a call', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const trace: string[] = [];
  /** ClientCall.timeoutMs seen by the client interceptor: the time left of the call's deadline. */
  const budgets: number[] = [];
  let stats: EchoStats = { calls: 0, begun: [], aborted: [] };
  const server = await startNode(defer, addr, { name: 'echo' }, (n) => {
    stats = serveEcho(n);
    n.onMessage(EchoResp, () => {
      trace.push('message handler');
    });
    n.use({
      server: async (call, next) => {
        trace.push(`s1> ${call.kind} ${call.method} from ${call.peer.id}`);
        if ((call.request as EchoReq).text === 'deny') throw new RpcError('bad_request', 'denied by s1');
        const res = await next();
        trace.push('<s1');
        return res;
      },
    });
    n.use({
      server: async (call, next) => {
        trace.push(`s2> ${call.kind}`);
        if ((call.request as EchoReq).text === 'explode') throw new Error('s2 exploded');
        const res = await next();
        trace.push('<s2');
        return res;
      },
    });
  });
  const client = await startNode(defer, addr, { name: 'client', dependencies: ['echo'] }, (n) => {
    n.use({
      client: async (call, next) => {
        trace.push(`c1> ${call.method} to ${call.peer.id}`);
        budgets.push(call.timeoutMs);
        if ((call.request as EchoReq).text === 'forbidden') throw new RpcError('bad_request', 'refused by c1');
        const res = await next();
        trace.push(`<c1 ${(res as EchoResp).server}`);
        return res;
      },
    });
    n.use({
      client: async (_call, next) => {
        trace.push('c2>');
        const res = await next();
        trace.push('<c2');
        return res;
      },
    });
  });
  await within(client.whenReady(), 5000, 'client ready');

  const res = await client.call('echo', EchoReq, EchoResp, { text: 'ok' }, { timeoutMs: 1234 });
  assert.equal(res.server, server.id);
  const budget = budgets[0] ?? NaN;
  assert.ok(budget > 1200 && budget <= 1234, `the interceptor sees the call's remaining time: ${budget}`);
  assert.deepEqual(trace, [`c1> echo.EchoReq to ${server.id}`, 'c2>', `s1> rpc echo.EchoReq from ${client.id}`, 's2> rpc', '<s2', '<s1', '<c2', `<c1 ${server.id}`]);
  assert.equal(stats.calls, 1);

  trace.length = 0;
  await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'forbidden' }), 'bad_request', /refused by c1/);
  assert.deepEqual(trace, [`c1> echo.EchoReq to ${server.id}`], 'a refusing client interceptor stops the chain before anything is sent');

  trace.length = 0;
  await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'deny' }), 'bad_request', /denied by s1/);
  assert.deepEqual(trace, [`c1> echo.EchoReq to ${server.id}`, 'c2>', `s1> rpc echo.EchoReq from ${client.id}`]);

  trace.length = 0;
  await expectRpcError(client.call('echo', EchoReq, EchoResp, { text: 'explode' }), 'application', /s2 exploded/);
  assert.equal(trace.includes('<s1'), false);
  assert.equal(stats.calls, 1, 'refused calls never reach the handler');

  // One-way messages pass the server interceptors too.
  trace.length = 0;
  await client.send('echo', EchoResp, { text: 'note' });
  await waitFor(() => trace.includes('message handler'), 2000, 'the message handler');
  assert.deepEqual(trace, [`s1> message echo.EchoResp from ${client.id}`, 's2> message', 'message handler', '<s2', '<s1']);
});

test("link rules: a 'dev' node links to a 'test' instance only when its rule allows it", async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const testUps: string[] = [];
  const inTest = await startNode(defer, addr, { name: 'echo', config: { svcgroup: 'test', svcindex: 1 } }, (n) => {
    serveEcho(n);
    n.on('peerUp', (p) => testUps.push(p.id));
  });
  const inDev = await startNode(defer, addr, { name: 'echo', config: { svcgroup: 'dev', svcindex: 0 } }, serveEcho);
  assert.equal(inTest.id, 'echo#1@test');

  const strict = await startNode(defer, addr, { name: 'strict', dependencies: ['echo'] });
  const relaxed = await startNode(defer, addr, { name: 'relaxed', dependencies: ['echo'], linkRules: { echo: 'dev|test' } });
  const globbed = await startNode(defer, addr, { name: 'globbed', dependencies: ['echo'], linkRules: { echo: 'te*' } });
  await waitFor(() => relaxed.instances('echo').length === 2, 5000, 'the dev|test node to link to both instances');
  await waitFor(() => strict.instances('echo').length === 1 && globbed.instances('echo').length === 1, 5000, 'the other nodes to link');
  // The strict node had as long as the relaxed one to link to the test instance; give it a bit more.
  await sleep(200);
  assert.deepEqual(ids(strict.instances('echo')), [inDev.id], "the default rule is the node's own group");
  assert.deepEqual(ids(relaxed.instances('echo')), [inDev.id, inTest.id]);
  assert.deepEqual(ids(globbed.instances('echo')), [inTest.id]);
  assert.deepEqual(testUps.sort(), [globbed.id, relaxed.id], 'only nodes whose rule matches ever link to the test instance');
  for (let i = 0; i < 6; i++) assert.equal((await strict.call('echo', EchoReq, EchoResp, {})).server, inDev.id);
  await expectRpcError(strict.call({ id: inTest.id }, EchoReq, EchoResp, {}), 'unavailable');
});

test('lifecycle: ready, peerUp, peerDown and stopping fire', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  const events: string[] = [];
  const client = makeNode(defer, addr, { name: 'client', dependencies: ['echo'] });
  client.on('ready', () => events.push('ready'));
  client.on('peerUp', (p) => events.push(`up ${p.id}`));
  client.on('peerDown', (p, reason) => {
    assert.ok(reason.length > 0, 'peerDown carries a reason');
    events.push(`down ${p.id}`);
  });
  await client.start();
  assert.equal(client.ready, false);
  assert.deepEqual(events, []);

  const echoEvents: string[] = [];
  const echo = makeNode(defer, addr, { name: 'echo' });
  serveEcho(echo);
  echo.on('ready', () => echoEvents.push('ready'));
  echo.on('stopping', () => echoEvents.push('stopping'));
  echo.on('peerUp', (p) => echoEvents.push(`up ${p.id}`));
  await echo.start();
  assert.equal(echo.ready, true, 'a node without dependencies is ready once started');
  await within(client.whenReady(), 5000, 'client ready');
  await waitFor(() => echoEvents.includes(`up ${client.id}`), 2000, 'the callee to see the client come up');
  assert.deepEqual(events, ['up echo#0@dev', 'ready']);
  assert.equal(client.ready, true);

  await echo.stop();
  await waitFor(() => events.length === 3, 2000, 'peerDown');
  assert.deepEqual(events, ['up echo#0@dev', 'ready', 'down echo#0@dev']);
  assert.deepEqual(echoEvents, ['ready', `up ${client.id}`, 'stopping']);
  assert.deepEqual(client.instances('echo'), []);
  await expectRpcError(echo.call('client', EchoReq, EchoResp, {}), 'unavailable', /stopped/);

  // The same instance comes back: peerUp again, but the node was ready already.
  const again = await startNode(defer, addr, { name: 'echo' }, serveEcho);
  await waitFor(() => events.length === 4, 5000, 'peerUp after the restart');
  assert.deepEqual(events, ['up echo#0@dev', 'ready', 'down echo#0@dev', 'up echo#0@dev']);
  assert.equal((await client.call('echo', EchoReq, EchoResp, {})).server, again.id);
});

test('a draining peer is skipped by selection while its calls in flight complete', async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer);
  let s0: EchoStats = { calls: 0, begun: [], aborted: [] };
  const e0 = await startNode(defer, addr, { name: 'echo', config: { svcindex: 0 } }, (n) => {
    s0 = serveEcho(n);
  });
  const e1 = await startNode(defer, addr, { name: 'echo', config: { svcindex: 1 } }, serveEcho);
  const client = await startNode(defer, addr, { name: 'client', dependencies: ['echo'] });
  await waitFor(() => client.instances('echo').length === 2, 5000, 'two instances linked');

  const slow = client.call({ id: e0.id }, EchoReq, EchoResp, { text: 'sleep:1500 drain' });
  await waitFor(() => s0.begun.includes('sleep:1500 drain'), 2000, 'the slow call to start');
  const stopping = e0.stop();
  await waitFor(() => client.instances('echo').length === 1, 2000, 'the draining instance to leave the candidates');
  assert.deepEqual(ids(client.instances('echo')), [e1.id]);
  for (const strategy of ['round-robin', 'random', 'least-loaded'] as const) {
    for (let i = 0; i < 10; i++) assert.equal((await client.call({ service: 'echo', strategy }, EchoReq, EchoResp, {})).server, e1.id, strategy);
  }
  // Addressed directly, the draining instance itself refuses new calls.
  await expectRpcError(client.call({ id: e0.id }, EchoReq, EchoResp, { text: 'too late' }), 'unavailable', /shutting down/);
  const done = await within(slow, 3000, 'the slow call');
  assert.equal(done.server, e0.id, 'the call in flight completed on the draining instance');
  await within(stopping, 3000, 'e0 to stop');
  assert.equal(s0.begun.includes('too late'), false);
});
