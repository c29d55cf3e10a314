/**
 * gamemesh/testing: a cluster in the test's process starts, answers a
 * client through login, survives the kill and restart of a service, an
 * agent and discovery, and stops leaving nothing behind (no handle, port or
 * file), checked with process.getActiveResourcesInfo().
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayBackend } from '../src/gateway/backend.js';
import { SESSION_UID } from '../src/gateway/identity.js';
import { loadJwtKey, verifyToken } from '../src/login/tokens.js';
import { ServiceNode } from '../src/service/node.js';
import { startTestCluster, TestClusterError, type TestServiceConfig } from '../src/testing/index.js';
import { EchoReq, EchoResp } from './helpers/echo.js';

const ROUTES = [{ msgId: EchoReq.id, name: 'echo.EchoReq', service: 'echo', rule: 'pass' as const }];

/** Echoes the text with the account of the login token the client handshook with, and the instance's start count. */
function echoService() {
  let starts = 0;
  return {
    name: 'echo',
    starts: () => starts,
    async start(config: TestServiceConfig) {
      const generation = ++starts;
      const node = new ServiceNode({ name: 'echo', config, shutdownTimeoutMs: 500 });
      const backend = new GatewayBackend(node);
      await node.start();
      const key = await loadJwtKey(node.discovery);
      backend.handle(EchoReq, EchoResp, async (req, client) => {
        const token = client.session['token'];
        const who = token ? (await verifyToken(token, key)).sub : 'anonymous';
        if (!client.session[SESSION_UID]) await client.bind({ [SESSION_UID]: who });
        return { text: `${who}: ${req.text}`, n: generation, server: node.id };
      });
      return node;
    },
  };
}

/** The resources a finished test must not leave: sockets, servers, timers. File handles are counted too. */
function resources(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

test('start, a client through login, kill and restart a service and an agent, clean stop', { timeout: 60_000 }, async () => {
  // What the runner itself holds before the cluster exists.
  await sleep(50);
  const before = resources();
  const echo = echoService();
  const cluster = await startTestCluster({ services: [echo], routes: ROUTES, login: true, agents: 2, discovery: 'datafile' });
  let ports: number[] = [];
  try {
    assert.deepEqual(cluster.names, ['discovery', 'echo', 'agent-1', 'agent-2', 'login']);
    assert.equal(cluster.agents.length, 2);
    ports = [Number(cluster.sdaddr.split(':')[1]), ...cluster.agents.flatMap((a) => [Number(a.tcpAddress?.split(':')[1]), Number(new URL(a.wsUrl ?? '').port)]), Number(new URL(cluster.loginUrl ?? '').port)];
    assert.ok(ports.every((p) => p > 0));
    // The check at the end can see what the cluster holds: here, its listening sockets.
    const listening = (list: readonly string[]) => count(list)['TCPServerWrap'] ?? 0;
    assert.ok(listening(resources()) >= listening(before) + ports.length, `${listening(resources())} listening sockets`);

    const alice = await cluster.client({ account: 'alice' });
    assert.equal(alice.account, 'alice');
    const hi = await alice.request(EchoReq, EchoResp, { text: 'hi' });
    assert.deepEqual({ ...hi }, { text: 'alice: hi', n: 1, server: cluster.agents[0]?.node.instances('echo')[0]?.id });
    const bob = await cluster.client({ account: 'bob', transport: 'tcp' });
    assert.equal((await bob.request(EchoReq, EchoResp, { text: 'yo' })).text, 'bob: yo');

    // A killed service answers nothing; restarted, the same client is served by the new instance.
    await cluster.kill('echo');
    assert.equal(cluster.isRunning('echo'), false);
    await assert.rejects(alice.request(EchoReq, EchoResp, { text: 'anyone?' }, { timeoutMs: 3000 }));
    await cluster.restart('echo');
    await until(async () => (await alice.request(EchoReq, EchoResp, { text: 'back' }, { timeoutMs: 2000 }).catch(() => undefined))?.n === 2, 'the restarted echo to answer');
    assert.equal(echo.starts(), 2);

    // A killed agent drops its clients; restarted on the same ports, a new client gets through.
    assert.equal(cluster.agents.reduce((n, a) => n + a.online, 0), 2);
    await cluster.kill('agent-1');
    assert.equal(cluster.agents.length, 1);
    await cluster.restart('agent-1');
    assert.equal(cluster.agents.length, 2);
    const carol = await cluster.client({ account: 'carol', agent: 0 });
    assert.equal((await carol.request(EchoReq, EchoResp, { text: 'after' })).text, 'carol: after');

    // Discovery on its datafile: restarted on the same port, the KV survives and the nodes find it again.
    await cluster.restart('discovery');
    const dave = await cluster.client({ account: 'dave' });
    assert.equal((await dave.request(EchoReq, EchoResp, { text: 'still' })).text, 'dave: still');

    await assert.rejects(cluster.kill('nope'), (err: Error) => err instanceof TestClusterError && /no part named "nope"/.test(err.message));
  } finally {
    await cluster.stop();
  }
  await cluster.stop(); // idempotent

  // Nothing listens on the ports any more, and no handle is left.
  for (const port of ports) assert.equal(await canConnect(port), false, `port ${port} is closed`);
  await until(() => resources().length <= before.length, `the resources to go (left: ${JSON.stringify(resources())}, before: ${JSON.stringify(before)})`, 5000);
  assert.deepEqual(count(resources()), count(before));
});

test('bad options fail clearly; a failed start stops what it started', async () => {
  await assert.rejects(startTestCluster({ agents: -1 }), /agents must be a whole number/);
  await assert.rejects(startTestCluster({ services: [{ name: 'login', start: () => Promise.reject(new Error('x')) }] }), /"login" is taken/);
  const tmpBefore = fs.readdirSync('/tmp').filter((f) => f.startsWith('gamemesh-test-')).length;
  await assert.rejects(
    startTestCluster({ discovery: 'datafile', services: [{ name: 'broken', start: () => Promise.reject(new Error('no database')) }] }),
    /no database/,
  );
  assert.equal(fs.readdirSync('/tmp').filter((f) => f.startsWith('gamemesh-test-')).length, tmpBefore, 'the temporary datafile folder is removed');
});

test('without login, client() connects to an agent directly', async () => {
  const cluster = await startTestCluster({ services: [echoService()], routes: ROUTES });
  try {
    const c = await cluster.client();
    assert.equal(c.account, '');
    assert.equal((await c.request(EchoReq, EchoResp, { text: 'x' })).text, 'anonymous: x');
    await assert.rejects(cluster.client({ agent: 3 }), /agent 3 is not running/);
  } finally {
    await cluster.stop();
  }
  await assert.rejects(cluster.client(), /stopped/);
});

function count(list: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of list) out[r] = (out[r] ?? 0) + 1;
  return out;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
