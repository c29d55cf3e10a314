/**
 * The game-client SDK against a real agent and backend, over TCP,
 * WebSocket and KCP: handshake, typed requests, agent and backend errors, pushes and
 * broadcasts, the heartbeat keeping a client alive and the agent dropping a
 * silent one, request timeouts, kicks, and reconnecting to a restarted agent
 * with the onReconnect hook.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, GameClient, kcpTransport, tcpTransport, wsTransportNode, type GameClientOptions, type Kick, type Transport } from '../src/client-node/index.js';
import type { Agent } from '../src/gateway/agent.js';
import { KickCode } from '../src/gateway/kick.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { emptyType, NO_HANDLER_ID, startGatewayMesh, UNROUTED_ID, type GatewayMesh } from './helpers/gateway.js';
import { cleanupStack, type Defer } from './helpers/mesh.js';
import { waitFor, within } from './helpers/proc.js';

type Kind = 'tcp' | 'ws' | 'kcp';
const KINDS: readonly Kind[] = ['tcp', 'ws', 'kcp'];

/** Reads the agent's address on every call: after a restart it is the new agent (same ports). */
function transportFor(kind: Kind, mesh: GatewayMesh): () => Transport {
  return () => {
    if (kind === 'ws') return wsTransportNode(mesh.agent.wsUrl ?? '');
    const [host = '', port = ''] = ((kind === 'kcp' ? mesh.agent.kcpAddress : mesh.agent.tcpAddress) ?? '').split(':');
    return kind === 'kcp' ? kcpTransport(host, Number(port)) : tcpTransport(host, Number(port));
  };
}

function makeClient(defer: Defer, kind: Kind, mesh: GatewayMesh, opts: Partial<GameClientOptions> = {}): GameClient {
  const client = new GameClient({ transport: transportFor(kind, mesh), clientName: `test/${kind}`, reconnect: false, onError: (err) => assert.fail(err as Error), ...opts });
  defer(() => client.close());
  return client;
}

async function expectClientError(p: Promise<unknown>, code: string, message?: RegExp): Promise<ClientError> {
  try {
    const value = await p;
    assert.fail(`expected ClientError(${code}), got ${JSON.stringify(value)}`);
  } catch (err) {
    assert.ok(err instanceof ClientError, `expected a ClientError(${code}), got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    if (message) assert.match(err.message, message);
    return err;
  }
}

const waitOnline = (agent: Agent, n: number) => waitFor(() => agent.online === n, 3000, `${n} clients online`);

for (const kind of KINDS) {
  test(`${kind}: handshake, typed requests matched by seq, one-way send, ping`, async (t) => {
    const defer = cleanupStack(t);
    const mesh = await startGatewayMesh(defer);
    const client = makeClient(defer, kind, mesh, { token: 'jwt-123' });
    assert.equal(client.state, 'idle');
    const info = await within(client.connect(), 3000, 'connect');
    assert.equal(client.state, 'open');
    assert.equal(info.version, 1);
    assert.equal(info.heartbeatSec, 1);
    assert.match(info.sessionId, /^agent#0@dev\/\d+$/);
    assert.ok(Math.abs(info.serverTimeMs - Date.now()) < 5000);
    assert.equal(await client.connect(), info, 'connect() on an open client returns the same handshake');

    const res = await client.request(EchoReq, EchoResp, { text: 'hello', n: 7 });
    assert.deepEqual({ ...res }, { text: 'hello', n: 7, server: mesh.backendNode.id });

    // Many at once, answered out of order (sleeps), each to its own request.
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) => client.request(EchoReq, EchoResp, { text: i % 3 === 0 ? `sleep:${40 - i}` : `m${i}`, n: i })));
    many.forEach((r, i) => assert.equal(r.n, i));
    assert.equal(client.inFlight, 0);

    assert.equal(client.send(EchoReq, { text: 'one-way', n: 1 }), true, 'a one-way message is sent (its answer, seq 0, is a push nobody listens to)');
    const rtt = await client.ping();
    assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
    assert.equal(client.rttMs, rtt);
    client.close();
    assert.equal(client.state, 'closed');
    assert.equal(client.send(EchoReq, { text: 'late' }), false);
    await expectClientError(client.request(EchoReq, EchoResp, { text: 'late' }), 'closed');
  });

  test(`${kind}: agent and backend errors, timeouts, busy`, async (t) => {
    const defer = cleanupStack(t);
    const mesh = await startGatewayMesh(defer);
    const client = makeClient(defer, kind, mesh, { maxPending: 3 });
    await client.connect();

    await expectClientError(client.request(EchoReq, EchoResp, { text: 'throw:boom' }), 'application', /^boom$/);
    await expectClientError(client.request(emptyType(NO_HANDLER_ID, 'nohandler'), EchoResp, {}), 'unknown_method');
    // An "auth" route before a backend bound this client: refused by the agent.
    await expectClientError(client.request(EchoResp, EchoResp, { text: 'secret' }), 'unauthenticated');
    await client.request(EchoReq, EchoResp, { text: 'login:alice' });
    assert.equal((await client.request(EchoResp, EchoResp, {})).text, 'hello alice');

    // A timeout; the late answer is dropped and the next request is answered normally.
    const t0 = performance.now();
    await expectClientError(client.request(EchoReq, EchoResp, { text: 'sleep:300' }, { timeoutMs: 80 }), 'timeout');
    assert.ok(performance.now() - t0 < 250);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await client.request(EchoReq, EchoResp, { text: 'after', n: 2 })).n, 2);

    // Wrong answer type for what the caller expected.
    await expectClientError(client.request(EchoReq, EchoReq, { text: 'x' }), 'bad_response');

    const slow = [1, 2, 3].map((i) => client.request(EchoReq, EchoResp, { text: 'sleep:100', n: i }));
    await expectClientError(client.request(EchoReq, EchoResp, { text: 'one too many' }), 'busy');
    assert.deepEqual((await Promise.all(slow)).map((r) => r.n), [1, 2, 3]);
    assert.equal(client.state, 'open', 'errors leave the connection open');
  });

  test(`${kind}: pushes to one client and broadcasts, by message id`, async (t) => {
    const defer = cleanupStack(t);
    const mesh = await startGatewayMesh(defer);
    const a = makeClient(defer, kind, mesh);
    const b = makeClient(defer, kind, mesh);
    await Promise.all([a.connect(), b.connect()]);
    await Promise.all([a.request(EchoReq, EchoResp, { text: 'whoami:a' }), b.request(EchoReq, EchoResp, { text: 'whoami:b' })]);
    const gotA: string[] = [];
    const gotB: string[] = [];
    const gotB2: string[] = [];
    a.on(EchoResp, (m) => gotA.push(m.text));
    b.on(EchoResp, (m) => gotB.push(m.text));
    const offB2 = b.on(EchoResp, (m) => gotB2.push(m.text));

    const refA = mesh.clients.get('a');
    assert.ok(refA);
    assert.equal(mesh.backend.send(refA, EchoResp, { text: 'just for a' }), true);
    await waitFor(() => gotA.length === 1, 2000, 'push to a');
    assert.deepEqual(gotA, ['just for a']);

    offB2();
    assert.equal(mesh.backend.broadcast(EchoResp, { text: 'everyone' }), 1, 'one agent');
    await waitFor(() => gotA.length === 2 && gotB.length === 1, 2000, 'broadcast');
    assert.deepEqual(gotA, ['just for a', 'everyone']);
    assert.deepEqual(gotB, ['everyone']);
    assert.deepEqual(gotB2, [], 'an unsubscribed handler gets nothing');
  });

  test(`${kind}: an unrouted message id gets the client kicked (code 6), with no reconnect`, async (t) => {
    const defer = cleanupStack(t);
    const mesh = await startGatewayMesh(defer);
    const client = makeClient(defer, kind, mesh, { reconnect: { retries: 5, minDelayMs: 10, maxDelayMs: 20 } });
    await client.connect();
    const kicks: Kick[] = [];
    let reconnecting = 0;
    client.onKick((k) => kicks.push(k));
    client.onReconnecting(() => reconnecting++);
    const closed = new Promise<{ reason: string; kick?: Kick }>((resolve) => client.onClose(resolve));
    const inFlight = expectClientError(client.request(EchoReq, EchoResp, { text: 'sleep:500' }), 'closed', /kicked/);

    assert.equal(client.send(emptyType(UNROUTED_ID, 'unrouted'), {}), true);
    const info = await within(closed, 3000, 'close after the kick');
    assert.equal(kicks.length, 1);
    assert.equal(kicks[0]?.code, KickCode.UNKNOWN_MESSAGE);
    assert.match(kicks[0]?.reason ?? '', /1999/);
    assert.equal(info.kick?.code, KickCode.UNKNOWN_MESSAGE);
    await inFlight;
    assert.equal(client.state, 'closed');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(reconnecting, 0);
    await waitOnline(mesh.agent, 0);
  });
}

test('the heartbeat keeps clients past 2 x heartbeat_sec; the agent drops silent ones (every transport)', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startGatewayMesh(defer);
  const live = KINDS.map((kind) => makeClient(defer, kind, mesh));
  const silent = KINDS.map((kind) => makeClient(defer, kind, mesh, { heartbeat: false }));
  const closedReasons: string[] = [];
  for (const c of silent) c.onClose((info) => closedReasons.push(info.reason));
  await Promise.all([...live, ...silent].map((c) => c.connect()));
  const connectedAt = performance.now();
  await waitOnline(mesh.agent, 2 * KINDS.length);

  // The agent's idle limit is 2 x 1 s + 1 s; give it time to notice.
  await waitFor(() => closedReasons.length === KINDS.length, 5000, 'silent clients dropped');
  assert.ok(closedReasons.every((r) => /closed/.test(r)), closedReasons.join('; '));
  for (const c of silent) assert.equal(c.state, 'closed');
  assert.ok(performance.now() - connectedAt > 2000, 'live clients have been connected for over 2 x heartbeat_sec');
  for (const c of live) {
    assert.equal(c.state, 'open');
    assert.ok(c.rttMs !== undefined, 'the heartbeat measured a round trip');
    assert.equal((await c.request(EchoReq, EchoResp, { text: 'still here', n: 1 })).n, 1);
  }
  assert.equal(mesh.agent.online, KINDS.length);
});

test('reconnect: the agent restarts on the same ports; clients come back, onReconnect re-logs in (every transport)', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startGatewayMesh(defer);
  const hookCalls: string[] = [];
  const clients = KINDS.map((kind) =>
    makeClient(defer, kind, mesh, {
      reconnect: { retries: 50, minDelayMs: 20, maxDelayMs: 150 },
      onReconnect: async (c) => {
        hookCalls.push(kind);
        // The new agent has never seen this client: bind it again, as after a login.
        await c.request(EchoReq, EchoResp, { text: `login:${kind}-user` });
      },
    }),
  );
  const events = clients.map(() => ({ kicks: [] as number[], reconnecting: 0, reconnected: 0, closed: 0 }));
  clients.forEach((c, i) => {
    const e = events[i] as (typeof events)[number];
    c.onKick((k) => e.kicks.push(k.code));
    c.onReconnecting(() => e.reconnecting++);
    c.onReconnected(() => e.reconnected++);
    c.onClose(() => e.closed++);
  });
  await Promise.all(clients.map((c) => c.connect()));
  for (const [i, c] of clients.entries()) {
    await c.request(EchoReq, EchoResp, { text: `login:${KINDS[i]}-user` });
    assert.equal((await c.request(EchoResp, EchoResp, {})).text, `hello ${KINDS[i]}-user`);
  }
  const inFlight = clients.map((c) => expectClientError(c.request(EchoReq, EchoResp, { text: 'sleep:1000' }), 'closed', /shutting down/));

  const restarted = mesh.restartAgent(300);
  await Promise.all(inFlight);
  await restarted;
  await waitFor(() => events.every((e) => e.reconnected === 1), 5000, 'every client reconnected');

  // A hook may run more than once: an attempt that drops mid-hook is retried (on a loaded machine, the new agent may still be settling).
  assert.deepEqual([...new Set(hookCalls)].sort(), [...KINDS].sort());
  for (const [i, c] of clients.entries()) {
    const e = events[i] as (typeof events)[number];
    assert.deepEqual(e.kicks, [KickCode.SHUTDOWN], 'the old agent said it was shutting down');
    assert.ok(e.reconnecting >= 1);
    assert.equal(e.closed, 0);
    assert.equal(c.state, 'open');
    // The new agent numbers its clients from 1; retried attempts under load may have used a few numbers.
    assert.match(c.info?.sessionId ?? '', /^agent#0@dev\/\d$/, 'a session of the new agent');
    // The auth route works again: onReconnect's login bound the client on the new agent.
    assert.equal((await c.request(EchoResp, EchoResp, {})).text, `hello ${KINDS[i]}-user`);
  }
  assert.equal(mesh.agent.online, KINDS.length);
});

test('reconnect gives up after its retries and reports close', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startGatewayMesh(defer);
  const client = makeClient(defer, 'tcp', mesh, { reconnect: { retries: 3, minDelayMs: 10, maxDelayMs: 20 } });
  await client.connect();
  let attempts = 0;
  client.onReconnecting(() => attempts++);
  const closed = new Promise<string>((resolve) => client.onClose((info) => resolve(info.reason)));
  await mesh.agent.stop();
  const reason = await within(closed, 3000, 'give up');
  assert.equal(attempts, 3);
  assert.match(reason, /gave up after 3 reconnect attempts/);
  assert.equal(client.state, 'closed');
});
