/**
 * Acceptance tests of the gateway with real processes (build first): a
 * `gamemesh discovery` process, `gamemesh agent`, gw-backend fixture
 * processes (test/fixtures/gw-backend.ts), route tables uploaded with
 * `gamemesh routes push`, and game clients in this process (the SDK, or raw
 * sockets for what the SDK would never send).
 *
 * Shown: blocked, pass and auth rules are enforced (an unauthenticated client
 * never reaches an auth handler); a route change pushed while clients are
 * connected applies to them without reconnects; a client bound to a backend
 * that is killed with -9 is told, and reaches it again after its restart
 * without logging in again; a client that stops reading is cut off while
 * the agent's memory stays bounded; oversized and malformed frames close
 * only the client that sent them; the heartbeat period is reloaded from the
 * KV and silent clients are closed; the agent reports its online count.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { ClientError, ClientMessages, GameClient, tcpTransport, wsTransportNode, type BackendStatus, type GameClientOptions, type Kick } from '../src/client-node/index.js';
import { KickCode } from '../src/gateway/kick.js';
import { emptyType, pushRoutes, RawTcpClient, rssBytes, spawnAgent, spawnGwBackend, type AgentProc, type BackendProc } from './helpers/gateway.js';
import { GW, routeTable } from './helpers/gw-proto.js';
import { connectClient, runCli, startDiscovery, tempDir, waitFor, within, type Cleanup } from './helpers/proc.js';

type Kind = 'tcp' | 'ws';

/** In no route table: the agent kicks a client that sends it (code 6). */
const UNROUTED_ID = 1999;

const BASE_ROUTES = routeTable([
  [GW.LoginReq, 'gw', 'pass'],
  [GW.SecretReq, 'gw', 'auth'],
  [GW.EchoReq, 'gw', 'pass'],
  [GW.PushReq, 'gw', 'pass'],
  [GW.FloodReq, 'gw', 'pass'],
  [GW.AdminReq, 'gw', 'blocked'],
]);

interface Cluster {
  sdaddr: string;
  dir: string;
  agent: AgentProc;
  backend: BackendProc;
}

/**
 * A discovery process, the route table pushed with the CLI, then an agent
 * and a gw backend (svcindex 0) as processes. The agent reads the table when
 * it starts, so no wait for a live update is needed here.
 */
async function startCluster(t: Cleanup, options: { agentArgs?: readonly string[]; graceMs?: number } = {}): Promise<Cluster> {
  const disco = await startDiscovery(t, { graceMs: options.graceMs });
  const dir = tempDir(t, 'gamemesh-gw-');
  await pushRoutes(disco.addr, dir, BASE_ROUTES);
  const [agent, backend] = await Promise.all([spawnAgent(t, disco.addr, options.agentArgs), spawnGwBackend(t, disco.addr)]);
  return { sdaddr: disco.addr, dir, agent, backend };
}

interface Events {
  kicks: Kick[];
  statuses: BackendStatus[];
  closes: string[];
  reconnecting: number;
  errors: string[];
}

/** An SDK client of the agent, closed after the test, with everything it reports recorded. */
function makeClient(t: Cleanup, agent: AgentProc, kind: Kind, opts: Partial<GameClientOptions> = {}): { client: GameClient; events: Events } {
  const events: Events = { kicks: [], statuses: [], closes: [], reconnecting: 0, errors: [] };
  const client = new GameClient({
    transport: () => (kind === 'tcp' ? tcpTransport(agent.host, agent.tcpPort) : wsTransportNode(agent.wsUrl)),
    clientName: `gw-test/${kind}`,
    reconnect: false,
    requestTimeoutMs: 3000,
    onError: (err, where) => events.errors.push(`${where}: ${String(err)}`),
    ...opts,
  });
  client.onKick((k) => events.kicks.push(k));
  client.onBackendStatus((s) => events.statuses.push(s));
  client.onClose((info) => events.closes.push(info.reason));
  client.onReconnecting(() => events.reconnecting++);
  t.after(() => client.close());
  return { client, events };
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

/**
 * Repeats `attempt` until it resolves. The agent and a backend link up on
 * their own after both registered, and a pushed route table reaches the
 * agent through a watch: until then a request may be refused or dropped.
 */
async function eventually<T>(attempt: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof ClientError) || !['unavailable', 'timeout'].includes(err.code)) throw err;
      if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last error: ${err.code}: ${err.message})`);
      await sleep(50);
    }
  }
}

const echo = (client: GameClient, text: string, n = 0) => client.request(GW.EchoReq, GW.EchoResp, { text, n });

/** The first echo through a new agent: waits (bounded) for the agent-backend link. */
const reachable = (client: GameClient) => eventually(() => client.request(GW.EchoReq, GW.EchoResp, { text: 'hello' }, { timeoutMs: 500 }), 8000, 'the backend through the agent');

/** Field by field: a decoded message keeps proto3 defaults (up = false) on its prototype, where a spread misses them. */
const statusOf = (s: BackendStatus | undefined) => s && { service: s.service, id: s.id, up: s.up };

const count = (text: string, re: RegExp) => text.match(new RegExp(re.source, 'gm'))?.length ?? 0;

test('blocked, pass and auth are enforced; an unauthenticated client never reaches an auth handler', { timeout: 30_000 }, async (t) => {
  const { agent, backend } = await startCluster(t);
  const { client: alice, events: aliceEv } = makeClient(t, agent, 'tcp');
  const { client: bob, events: bobEv } = makeClient(t, agent, 'ws');
  const { client: rogue, events: rogueEv } = makeClient(t, agent, 'tcp');
  await Promise.all([alice.connect(), bob.connect(), rogue.connect()]);
  assert.equal((await reachable(alice)).server, backend.id);

  // auth before any backend bound the client: the agent refuses it, on both transports.
  await expectClientError(alice.request(GW.SecretReq, GW.SecretResp, { text: 'too early' }), 'unauthenticated', /SecretReq needs a session bound by gw/);
  await expectClientError(bob.request(GW.SecretReq, GW.SecretResp, { text: 'too early' }), 'unauthenticated');
  // A one-way auth message is dropped just the same (its Error has nobody waiting for it).
  assert.equal(bob.send(GW.SecretReq, { text: 'one-way too early' }), true);

  // blocked: no answer at all, and the connection stays up.
  await expectClientError(alice.request(GW.AdminReq, GW.EchoResp, { text: 'blocked' }, { timeoutMs: 400 }), 'timeout');
  assert.equal(alice.state, 'open');
  assert.equal((await echo(alice, 'after the blocked one', 1)).n, 1, 'the next request is answered');

  // A message id that no route names: that client is kicked with code 6, no one else.
  assert.equal(rogue.send(emptyType(UNROUTED_ID, 'unrouted'), {}), true);
  await waitFor(() => rogueEv.closes.length === 1, 3000, 'the rogue client kicked');
  assert.equal(rogueEv.kicks[0]?.code, KickCode.UNKNOWN_MESSAGE);
  assert.match(rogueEv.kicks[0]?.reason ?? '', /1999/);

  // pass: login binds alice; from then on her auth messages reach the backend with her session.
  const login = await alice.request(GW.LoginReq, GW.LoginResp, { user: 'alice' });
  assert.deepEqual({ ...login }, { user: 'alice', server: backend.id });
  const secret = await alice.request(GW.SecretReq, GW.SecretResp, { text: 'the password' });
  assert.deepEqual({ ...secret }, { user: 'alice', text: 'the password', server: backend.id });
  // Bob is still not bound: binding is per client.
  await expectClientError(bob.request(GW.SecretReq, GW.SecretResp, { text: 'still too early' }), 'unauthenticated');
  // A round trip through the backend after everything above: what it was sent has arrived.
  assert.equal((await echo(bob, 'flush')).text, 'flush');

  const out = backend.proc.stdout;
  assert.equal(count(out, /^auth-reached /), 1, `only alice's logged-in SecretReq reached the backend:\n${out}`);
  assert.match(out, /^auth-reached alice the password$/m);
  assert.doesNotMatch(out, /too early/);
  assert.doesNotMatch(out, /^admin-reached/m, 'a blocked message never reaches the backend');
  for (const [c, ev] of [
    [alice, aliceEv],
    [bob, bobEv],
  ] as const) {
    assert.equal(c.state, 'open');
    assert.deepEqual(ev.closes, []);
    assert.deepEqual(ev.kicks, []);
    assert.deepEqual(ev.errors, []);
  }
});

test('a route change pushed while clients are connected takes effect for them without reconnects', { timeout: 30_000 }, async (t) => {
  const { sdaddr, dir, agent, backend } = await startCluster(t);
  const other = await spawnGwBackend(t, sdaddr, ['--name', 'gw2']);
  const clients = [makeClient(t, agent, 'tcp', { reconnect: { retries: 5, minDelayMs: 10, maxDelayMs: 50 } }), makeClient(t, agent, 'ws', { reconnect: { retries: 5, minDelayMs: 10, maxDelayMs: 50 } })];
  // Connected under the old table; used only after the change.
  const { client: bystander, events: bystanderEv } = makeClient(t, agent, 'tcp');
  await bystander.connect();
  await reachable(bystander);
  assert.equal((await bystander.request(GW.PushReq, GW.EchoResp, { text: 'routed for now', count: 0 })).text, 'routed for now');
  const sessions: string[] = [];
  for (const [i, { client }] of clients.entries()) {
    sessions.push((await client.connect()).sessionId);
    await reachable(client);
    assert.equal((await client.request(GW.LoginReq, GW.LoginResp, { user: `user${i}` })).server, backend.id);
    await expectClientError(client.request(GW.AdminReq, GW.EchoResp, { text: 'blocked' }, { timeoutMs: 300 }), 'timeout');
    assert.equal((await echo(client, 'x')).server, backend.id);
  }

  // AdminReq: blocked -> pass; EchoReq: gw -> gw2. SecretReq stays auth on gw.
  await pushRoutes(
    sdaddr,
    dir,
    routeTable([
      [GW.LoginReq, 'gw', 'pass'],
      [GW.SecretReq, 'gw', 'auth'],
      [GW.EchoReq, 'gw2', 'pass'],
      [GW.AdminReq, 'gw', 'pass'],
    ]),
  );
  for (const [i, { client }] of clients.entries()) {
    // Until the agent has the new table, the message is dropped (a timeout); then it is answered.
    const admin = await eventually(() => client.request(GW.AdminReq, GW.EchoResp, { text: `admin from user${i}` }, { timeoutMs: 1000 }), 5000, 'AdminReq to pass');
    assert.equal(admin.server, backend.id);
    // The agent links to gw2 only once the new table names it.
    // (Paced: a refused request still counts against the agent's 100 messages per second.)
    await waitFor(async () => (await echo(client, 'moved').catch(() => undefined))?.server === other.id, 5000, 'EchoReq answered by gw2', 50);
    // The binding made under the old table still holds.
    assert.deepEqual({ ...(await client.request(GW.SecretReq, GW.SecretResp, { text: 'after the change' })) }, { user: `user${i}`, text: 'after the change', server: backend.id });
  }
  assert.match(backend.proc.stdout, /^admin-reached admin from user0$/m);
  assert.match(backend.proc.stdout, /^admin-reached admin from user1$/m);

  // A message the new table no longer names: the agent now kicks for it (code 6).
  assert.equal(bystander.send(GW.PushReq, { text: 'no longer routed', count: 0 }), true);
  await waitFor(() => bystanderEv.closes.length === 1, 3000, 'the kick for a message the new table dropped');
  assert.equal(bystanderEv.kicks[0]?.code, KickCode.UNKNOWN_MESSAGE);
  for (const [i, { client, events }] of clients.entries()) {
    assert.equal(client.state, 'open');
    assert.equal(client.info?.sessionId, sessions[i], 'the same connection (the agent numbers each new one)');
    assert.equal(events.reconnecting, 0, 'no reconnect');
    assert.deepEqual(events.closes, []);
    assert.deepEqual(events.kicks, []);
    assert.deepEqual(events.errors, []);
  }
});

test('kill -9 of the bound backend: clients are told; after its restart they reach it again without logging in', { timeout: 30_000 }, async (t) => {
  // A short grace: the dead backend's registration expires while it is down, as after a real crash.
  const { sdaddr, agent, backend } = await startCluster(t, { graceMs: 300 });
  const disco = await connectClient(t, { addr: sdaddr });
  const { client, events } = makeClient(t, agent, 'tcp', { reconnect: { retries: 5, minDelayMs: 10, maxDelayMs: 50 } });
  const { client: unbound, events: unboundEv } = makeClient(t, agent, 'ws');
  await Promise.all([client.connect(), unbound.connect()]);
  await reachable(client);
  await reachable(unbound);
  await client.request(GW.LoginReq, GW.LoginResp, { user: 'alice' });
  assert.equal((await client.request(GW.SecretReq, GW.SecretResp, { text: 'before' })).user, 'alice');

  const exit = await backend.proc.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  await waitFor(() => events.statuses.length >= 1, 3000, 'BackendStatus up=false');
  assert.deepEqual(statusOf(events.statuses[0]), { service: 'gw', id: backend.id, up: false });
  // The binding is kept, but its backend is down: auth messages are refused, not queued.
  await expectClientError(client.request(GW.SecretReq, GW.SecretResp, { text: 'while down' }), 'unavailable', /gw#0@dev/);
  // Gone from discovery too: the agent forgets the instance, but keeps its clients' bindings.
  await waitFor(async () => (await disco.listServices('gw')).length === 0, 3000, 'the registration of the killed backend to expire');
  await expectClientError(client.request(GW.SecretReq, GW.SecretResp, { text: 'while gone' }), 'unavailable');

  // Same --svcindex, so the same service id; a new process on a new port.
  const restarted = await spawnGwBackend(t, sdaddr, ['--svcindex', '0']);
  assert.equal(restarted.id, backend.id);
  await waitFor(() => events.statuses.length >= 2, 8000, 'BackendStatus up=true');
  assert.deepEqual(statusOf(events.statuses[1]), { service: 'gw', id: backend.id, up: true });

  // No new login: the agent kept the binding and the session, and sends them along.
  const after = await client.request(GW.SecretReq, GW.SecretResp, { text: 'after the restart' });
  assert.deepEqual({ ...after }, { user: 'alice', text: 'after the restart', server: backend.id });
  assert.match(restarted.proc.stdout, /^auth-reached alice after the restart$/m);
  assert.doesNotMatch(restarted.proc.stdout, /^login /m, 'nobody logged in at the restarted backend');
  assert.doesNotMatch(restarted.proc.stdout + backend.proc.stdout, /while (down|gone)/);

  assert.equal(events.statuses.length, 2);
  assert.deepEqual(unboundEv.statuses, [], 'only clients bound to that backend are told');
  assert.equal((await echo(unbound, 'still here')).server, backend.id);
  for (const [c, ev] of [
    [client, events],
    [unbound, unboundEv],
  ] as const) {
    assert.equal(c.state, 'open');
    assert.equal(ev.reconnecting, 0);
    assert.deepEqual(ev.closes, []);
    assert.deepEqual(ev.errors, []);
  }
});

test('a client that stops reading is cut off; the agent stays within a memory bound and others keep working', { timeout: 30_000 }, async (t) => {
  const MAX_OUTBOUND = 1024 * 1024;
  /** How much the agent's resident memory may grow while one client holds a flood back. */
  const RSS_LIMIT = 100 * 1024 * 1024;
  const { agent, backend } = await startCluster(t, { agentArgs: ['--max-outbound', String(MAX_OUTBOUND)] });
  const { client: good, events: goodEv } = makeClient(t, agent, 'ws');
  await good.connect();
  await reachable(good);
  const notices: number[] = [];
  good.on(GW.Notice, (m) => notices.push(m.n));

  const slow = await RawTcpClient.connect(agent.host, agent.tcpPort);
  t.after(() => slow.destroy());
  const ack = await slow.handshake();
  const slowRef = ack.session_id; // `${agent id}/${client id}`, as the backend names it too
  assert.match(slowRef, /^agent#0@dev\/\d+$/);
  // From now on nothing is read: the kernel buffers fill, then the agent's queue for it.
  slow.socket.pause();

  const baseline = rssBytes(agent.proc.pid);
  let peak = baseline;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(agent.proc.pid));
    } catch {
      // The agent is gone; the assertions below say so better than a throw in a timer.
    }
  }, 20);
  t.after(() => clearInterval(sampler));

  const TOTAL = 400 * 1024 * 1024;
  const started = performance.now();
  slow.send(GW.FloodReq.id, 2, GW.FloodReq.encode({ size: 32 * 1024, total_bytes: TOTAL }));
  // While it floods, another client's requests and pushes still go through.
  const closedLine = new RegExp(`^client-closed ${slowRef.replace(/[#/]/g, '\\$&')} user=- reason=(.*)$`, 'm');
  let rounds = 0;
  while (!closedLine.test(backend.proc.stdout)) {
    assert.ok(performance.now() - started < 10_000, `the slow client was not cut off within 10 s; backend said:\n${backend.proc.stdout}`);
    assert.ok(peak - baseline < RSS_LIMIT, `the agent's RSS grew by ${((peak - baseline) / 2 ** 20).toFixed(1)} MiB during the flood`);
    assert.equal((await echo(good, 'during the flood', rounds)).n, rounds);
    rounds++;
    // Well under the agent's 100 messages per second per client.
    await sleep(25);
  }
  const cutAfterMs = performance.now() - started;
  const reason = closedLine.exec(backend.proc.stdout)?.[1] ?? '';
  assert.match(reason, /outbound queue over 1048576 bytes/, 'cut off for not reading');
  const end = await backend.proc.waitForStdout(new RegExp(`^flood-end ${slowRef.replace(/[#/]/g, '\\$&')} sent=(\\d+) stop=(\\S+)$`, 'm'), 5000);
  assert.equal(end[2], 'client-closed', 'the flood stopped because the client was gone');
  const sent = Number(end[1]);
  assert.ok(sent > MAX_OUTBOUND, `the backend pushed ${sent} bytes before it heard the client was gone`);
  clearInterval(sampler);
  const growth = peak - baseline;
  assert.ok(growth < RSS_LIMIT, `the agent's RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB (from ${(baseline / 2 ** 20).toFixed(1)} MiB)`);

  // The socket really is closed: once the client reads again it gets what was queued, then the end.
  slow.socket.resume();
  await within(slow.closed, 5000, 'the slow client to see its connection closed');
  assert.ok(slow.received < sent, `the slow client got ${slow.received} of the ${sent} bytes pushed`);

  // The other client never noticed.
  const pushed = await good.request(GW.PushReq, GW.EchoResp, { text: 'after', count: 3, broadcast: true });
  assert.equal(pushed.n, 3);
  await waitFor(() => notices.length === 3, 2000, 'the broadcasts after the flood');
  assert.equal(good.state, 'open');
  assert.deepEqual(goodEv.closes, []);
  assert.deepEqual(goodEv.errors, []);
  assert.equal(agent.proc.running, true);
  t.diagnostic(`slow client cut off after ${cutAfterMs.toFixed(0)} ms, ${(sent / 2 ** 20).toFixed(1)} MiB pushed; agent RSS ${(baseline / 2 ** 20).toFixed(1)} -> peak ${(peak / 2 ** 20).toFixed(1)} MiB; ${rounds} echoes meanwhile`);
});

test('oversized and malformed frames close only the client that sent them', { timeout: 30_000 }, async (t) => {
  const MAX_FRAME = 8192;
  const { agent, backend } = await startCluster(t, { agentArgs: ['--max-frame', String(MAX_FRAME)] });
  const good = (['tcp', 'ws'] as const).map((kind) => makeClient(t, agent, kind));
  await Promise.all(good.map(({ client }) => client.connect()));
  for (const { client } of good) await reachable(client);
  const stillFine = async (what: string) => {
    for (const { client } of good) assert.equal((await echo(client, `after ${what}`)).text, `after ${what}`, `${what}: the other clients still work`);
  };

  // Raw TCP clients, each handshaken, then one bad frame.
  const header = (length: number) => {
    const b = Buffer.alloc(10);
    b.writeUInt32BE(length, 0);
    b.writeUInt16BE(GW.EchoReq.id, 4);
    b.writeUInt32BE(7, 6);
    return b;
  };
  const tcpCases: Array<[string, Uint8Array]> = [
    // Declared larger than --max-frame: refused from its length alone, before the body is buffered.
    ['a frame over --max-frame', header(MAX_FRAME + 1)],
    ['a length below the 6-byte header', header(3)],
    ['garbage (an HTTP request)', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
  ];
  for (const [what, bytes] of tcpCases) {
    const raw = await RawTcpClient.connect(agent.host, agent.tcpPort);
    t.after(() => raw.destroy());
    await raw.handshake();
    raw.write(bytes);
    await within(raw.closed, 3000, `the agent to close the client that sent ${what}`);
    await stillFine(what);
  }

  // A frame exactly at the limit is fine, on both transports: the limit is on
  // the length field (msgId + seq + body), which is also a WebSocket message's size.
  const big = 'x'.repeat(MAX_FRAME - 6 - 3); // 3: the text field's tag and 2-byte length
  assert.equal(GW.EchoReq.encode({ text: big }).length + 6, MAX_FRAME);
  for (const { client } of good) assert.equal((await echo(client, big)).text.length, big.length);

  // A first frame that is not a Handshake, or an undecodable Handshake: Kick 7.
  for (const [what, msgId, body] of [
    ['a game message before the handshake', GW.EchoReq.id, GW.EchoReq.encode({ text: 'hi' })],
    ['an undecodable Handshake', ClientMessages.Handshake.id, Uint8Array.from([0x0a, 0xff, 0xff])],
  ] as const) {
    const raw = await RawTcpClient.connect(agent.host, agent.tcpPort);
    t.after(() => raw.destroy());
    raw.send(msgId, 1, body);
    await within(raw.closed, 3000, `the agent to close the client that sent ${what}`);
    const kick = raw.frames.find((f) => f.msgId === ClientMessages.Kick.id);
    assert.ok(kick, `${what}: a Kick before the close`);
    assert.equal(ClientMessages.Kick.decode(kick.body).code, KickCode.BAD_HANDSHAKE);
    await stillFine(what);
  }

  // WebSocket: a text message, a message shorter than the header, one over --max-frame.
  const wsCases: Array<[string, string | Buffer]> = [
    ['a text message', 'hello agent'],
    ['a 3-byte binary message', Buffer.from([0, 1, 2])],
    ['a binary message over --max-frame', Buffer.alloc(MAX_FRAME + 1)],
  ];
  for (const [what, data] of wsCases) {
    const ws = new WebSocket(agent.wsUrl);
    t.after(() => ws.terminate());
    ws.on('error', () => {});
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    const frames: number[] = [];
    ws.on('message', (d: Buffer) => frames.push(d.readUInt16BE(0)));
    await within(
      new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      }),
      3000,
      'a WebSocket connection',
    );
    const hs = ClientMessages.Handshake.encode({ version: 1, token: '', client: 'raw-ws' });
    const msg = Buffer.alloc(6 + hs.length);
    msg.writeUInt16BE(ClientMessages.Handshake.id, 0);
    msg.writeUInt32BE(1, 2);
    msg.set(hs, 6);
    ws.send(msg);
    await waitFor(() => frames.includes(ClientMessages.HandshakeAck.id), 3000, 'the HandshakeAck over WebSocket');
    ws.send(data, { binary: typeof data !== 'string' });
    await within(closed, 3000, `the agent to close the WebSocket client that sent ${what}`);
    await stillFine(what);
  }

  // A well-framed message whose body the backend cannot decode is answered, not a reason to close.
  const garbled = { ...GW.EchoReq, encode: () => Uint8Array.from([0x0a, 0xff, 0xff]) };
  for (const { client } of good) await expectClientError(client.request(garbled, GW.EchoResp, {}), 'bad_request', /undecodable gwtest\.EchoReq/);
  await stillFine('an undecodable body');

  for (const { client, events } of good) {
    assert.equal(client.state, 'open');
    assert.deepEqual(events.closes, []);
    assert.deepEqual(events.kicks, []);
    assert.deepEqual(events.errors, []);
  }
  assert.equal(backend.proc.running, true);
});

test('the heartbeat period is reloaded from config/agent/heartbeat_sec while clients are connected; silent clients are closed', { timeout: 30_000 }, async (t) => {
  const { sdaddr, agent } = await startCluster(t);
  const sdk = (['tcp', 'ws'] as const).map((kind) => makeClient(t, agent, kind));
  const infos = await Promise.all(sdk.map(({ client }) => client.connect()));
  for (const info of infos) assert.equal(info.heartbeatSec, 20, 'the --heartbeat-sec default until the KV says otherwise');
  // A client that handshook under the old period and then says nothing.
  const early = await RawTcpClient.connect(agent.host, agent.tcpPort);
  t.after(() => early.destroy());
  assert.equal((await early.handshake()).heartbeat_sec, 20);
  // The agent wrote its default back to the KV for operators to see.
  await waitFor(async () => (await runCli(['sd', 'getvalue', 'config/agent/heartbeat_sec', '--addr', sdaddr])).stdout === '20', 3000, 'the default in the KV');

  const set = await runCli(['sd', 'setvalue', 'config/agent/heartbeat_sec', '1', '--addr', sdaddr]);
  assert.equal(set.code, 0, set.stderr);
  // Every connected client is told (HandshakeAck, seq 0); the SDK adopts the new period.
  await waitFor(() => sdk.every(({ client }) => client.info?.heartbeatSec === 1), 3000, 'the SDK clients to get heartbeat_sec 1');
  for (const { client } of sdk) assert.equal(client.rttMs, undefined, 'no Ping yet: the old period was 20 s');
  const notice = await early.waitFrame((f) => f.msgId === ClientMessages.HandshakeAck.id && f.seq === 0, 3000, 'the new period at the raw client');
  assert.equal(ClientMessages.HandshakeAck.decode(notice.body).heartbeat_sec, 1);

  // A client connecting now gets the new period, and is closed after 2 x 1 + 1 s of silence.
  const silent = await RawTcpClient.connect(agent.host, agent.tcpPort);
  t.after(() => silent.destroy());
  assert.equal((await silent.handshake()).heartbeat_sec, 1);
  const since = performance.now();
  await within(silent.closed, 8000, 'the silent client to be closed');
  const silentFor = (silent.closedAt as number) - since;
  assert.ok(silentFor >= 2500 && silentFor <= 7000, `closed after ${silentFor.toFixed(0)} ms of silence (limit 3000 ms, checked every 1500 ms)`);

  // The SDK clients ping every second now, so they outlive the silent one.
  for (const { client, events } of sdk) {
    assert.equal(client.state, 'open');
    assert.ok(client.rttMs !== undefined, 'the SDK has been sending Pings at the new period');
    assert.deepEqual(events.closes, []);
    assert.deepEqual(events.errors, []);
    assert.equal((await echo(client, 'alive')).text, 'alive');
  }
  // One that handshook under the old period keeps the longer window of the two (2 x 20 + 1 s).
  assert.equal(early.isClosed, false);
});

test("each agent reports its online count to discovery (registration meta 'online')", { timeout: 30_000 }, async (t) => {
  const { sdaddr, agent } = await startCluster(t);
  const disco = await connectClient(t, { addr: sdaddr });
  const online = async () => (await disco.listServices('agent')).find((d) => d.id === agent.id)?.meta['online'];
  assert.equal(await online(), '0');

  const clients = [makeClient(t, agent, 'tcp'), makeClient(t, agent, 'tcp'), makeClient(t, agent, 'ws')];
  await Promise.all(clients.map(({ client }) => client.connect()));
  const t0 = performance.now();
  await waitFor(async () => (await online()) === '3', 3000, "meta online '3'");
  const upMs = performance.now() - t0;

  clients[0]?.client.close();
  clients[2]?.client.close();
  await waitFor(async () => (await online()) === '1', 3000, "meta online '1'");
  // The same, as an operator sees it.
  const view = await runCli(['sd', 'viewsvc', '--addr', sdaddr]);
  assert.equal(view.code, 0, view.stderr);
  const line = view.stdout.split('\n').find((l) => l.startsWith(`agent\t${agent.id}\t`));
  assert.ok(line, view.stdout);
  const meta = JSON.parse(line.split('\t')[3] ?? '{}') as Record<string, string>;
  assert.equal(meta['online'], '1');
  assert.equal(meta['tcp'], `${agent.host}:${agent.tcpPort}`);
  assert.equal(meta['ws'], agent.wsUrl);
  t.diagnostic(`online count reported ${upMs.toFixed(0)} ms after the connects`);
});
