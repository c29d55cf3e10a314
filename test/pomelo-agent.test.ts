/**
 * The agent's pomelo ports, in process over real sockets, with clients built
 * on the peer's codec (pomelo-protocol): the handshake (dict, heartbeat,
 * protos), requests and notifies with JSON bodies converted by the schema,
 * error responses for what the schema refuses, the route rules, rate and
 * size limits exactly as on the native port, pushes of every kind, kicks,
 * the heartbeat timeout, and a native client and a pomelo client on the
 * same broadcast.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Protocol from 'pomelo-protocol';
import pomeloProtobuf from 'pomelo-protobuf';
import { GameClient } from '../src/client/index.js';
import { tcpTransport } from '../src/client-node/index.js';
import { C } from '../src/gateway/messages.js';
import { PomeloTable } from '../src/gateway/pomelo/table.js';
import { PomeloTcpSession } from '../src/gateway/pomelo/transports.js';
import { listenTcp } from '../src/net/tcp.js';
import { cleanupStack } from './helpers/mesh.js';
import { PM, pmRoutes, startPomeloMesh, type PomeloMesh } from './helpers/pomelo-mesh.js';
import { PomeloTestClient, type Json } from './helpers/pomelo-client.js';
import { waitFor } from './helpers/proc.js';

async function connect(mesh: PomeloMesh, transport: 'tcp' | 'ws' = 'tcp'): Promise<PomeloTestClient> {
  const address = transport === 'tcp' ? mesh.agent.pomeloTcpAddress : mesh.agent.pomeloWsUrl;
  assert.ok(address, `the agent has a pomelo ${transport} port`);
  return PomeloTestClient.connect(address);
}

async function ready(mesh: PomeloMesh, transport: 'tcp' | 'ws' = 'tcp', user: Json = {}): Promise<PomeloTestClient> {
  const c = await connect(mesh, transport);
  const reply = await c.handshake(user);
  assert.equal(reply.code, 200);
  return c;
}

const FULL_ECHO = {
  text: 'héllo ✓',
  i32: -123456,
  u32: 4_000_000_000,
  i64: -9_007_199_254_740_991,
  u64: 9_007_199_254_740_991,
  flag: true,
  d: 0.5,
  f: 1.5,
  color: 'BLUE',
  at: { x: -7, y: 8 },
  path: [{ x: 1, y: 2 }, { x: -3, y: -4 }],
  nums: [1, -2, 300000],
  tags: ['a', 'b'],
  sleep_ms: 0,
};

for (const transport of ['tcp', 'ws'] as const) {
  test(`pomelo ${transport}: handshake, dictionary, JSON request/response by id, notify, compressed routes`, async (t) => {
    const defer = cleanupStack(t);
    const mesh = await startPomeloMesh(defer);
    const c = await connect(mesh, transport);
    defer(() => c.destroy());
    const reply = await c.handshake({ token: 'tok-1' }, {}, { ack: false });
    assert.equal(reply.code, 200);
    assert.equal(reply.sys?.heartbeat, 1, 'the agent heartbeat period');
    assert.equal(reply.sys?.useDict, true);
    const dict = reply.sys?.dict ?? {};
    assert.ok(dict['pm.echo.echo'] && dict['onNotice'] && dict['pm.admin.grant'], `requests and named pushes are in the dictionary: ${JSON.stringify(dict)}`);
    assert.equal(dict['pmtest.Plain'], undefined, 'a push without a route of its own is not');
    assert.deepEqual(reply.sys?.routeToCode, dict);
    assert.equal(reply.sys?.codeToRoute?.[String(dict['pm.echo.echo'])], 'pm.echo.echo');
    assert.equal(reply.sys?.protos, undefined, 'no protos unless the port offers them');
    // Data before the handshake ack is ignored, as pomelo does; the ack starts the heartbeat.
    c.send('pm.echo.echo', { text: 'early' });
    c.sendPackage(Protocol.Package.TYPE_HANDSHAKE_ACK);
    await waitFor(() => c.heartbeats === 1, 2000, 'the first heartbeat after the ack');
    assert.equal(mesh.calls.length, 0);

    const res = await c.request('pm.echo.echo', FULL_ECHO);
    assert.deepEqual(res['echo'], FULL_ECHO, 'every field survives JSON -> protobuf -> JSON');
    assert.equal(res['server'], mesh.backendNode.id);
    assert.equal(mesh.calls.at(-1)?.name, 'EchoReq');

    // Defaults are present in answers, as a JSON client expects.
    const empty = await c.request('pm.echo.echo', {});
    assert.deepEqual(empty['echo'], { text: '', i32: 0, u32: 0, i64: 0, u64: 0, flag: false, d: 0, f: 0, color: 'COLOR_NONE', at: null, path: [], nums: [], tags: [], sleep_ms: 0 });

    // Responses match their request ids even when they come back out of order.
    const slow = c.send('pm.echo.echo', { text: 'slow', sleep_ms: 150 });
    const fast = c.send('pm.echo.echo', { text: 'fast' });
    assert.equal(((await c.response(fast))['echo'] as Json)['text'], 'fast');
    assert.equal(c.responses.has(slow), false);
    assert.equal(((await c.response(slow))['echo'] as Json)['text'], 'slow');

    // A dictionary code instead of the route string.
    const viaCode = await c.request('pm.echo.echo', { text: 'by code' }, { compress: true });
    assert.equal((viaCode['echo'] as Json)['text'], 'by code');

    // bytes as base64, maps, oneofs.
    // (JSON text, so that "__proto__" is a plain key, as it is for a real client's JSON.)
    const blob = await c.request('pm.echo.blob', Buffer.from(`{"data": "${Buffer.from([0, 1, 254, 255]).toString('base64')}", "counts": {"x": 1, "__proto__": 2}, "b": 7}`));
    assert.deepEqual(blob, JSON.parse('{"data": "AAH+/w==", "counts": {"x": 1, "__proto__": 2}, "picked": "7"}'));
    assert.deepEqual(await c.request('pm.echo.blob', { a: 'x' }), { data: '', counts: {}, picked: 'x' });

    // A notify reaches the backend with seq 0 and gets no response.
    const before = c.responses.size;
    c.notify('pm.echo.echo', { text: 'notified' });
    await waitFor(() => mesh.calls.some((x) => (x.req as Json)['text'] === 'notified'), 2000, 'the notify at the backend');
    assert.equal(mesh.calls.find((x) => (x.req as Json)['text'] === 'notified')?.seq, 0);
    assert.equal(c.responses.size, before);

    assert.equal(c.isClosed, false);
  });
}

test('pomelo ports: off by default, OS-picked with 0, registered in the agent\'s meta', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer);
  const [desc] = (await mesh.agent.node.discovery.listServices('agent')).filter((d) => d.id === mesh.agent.node.id);
  assert.ok(desc);
  assert.equal(desc.meta['pomelo_ws'], mesh.agent.pomeloWsUrl);
  assert.equal(desc.meta['pomelo_tcp'], mesh.agent.pomeloTcpAddress);
  assert.match(mesh.agent.pomeloTcpAddress ?? '', /^127\.0\.0\.1:[1-9]\d*$/);
  const plain = await startPomeloMesh(defer, { pomeloWsPort: undefined, pomeloTcpPort: null });
  assert.equal(plain.agent.pomeloWsUrl, undefined);
  assert.equal(plain.agent.pomeloTcpAddress, undefined);
  const [plainDesc] = (await plain.agent.node.discovery.listServices('agent')).filter((d) => d.id === plain.agent.node.id);
  assert.equal(plainDesc?.meta['pomelo_ws'], undefined);
  assert.equal(plainDesc?.meta['pomelo_tcp'], undefined);
  assert.ok(plainDesc?.meta['tcp'], 'the native ports are there as before');
});

test('pomelo: what the schema refuses gets pomelo\'s error response, and the connection stays up', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer);
  const c = await ready(mesh);
  defer(() => c.destroy());
  const refused = async (body: unknown, pattern: RegExp, route = 'pm.echo.echo'): Promise<void> => {
    const res = await c.request(route, body);
    assert.equal(res['code'], 500, `${String(body instanceof Uint8Array ? body : JSON.stringify(body)).slice(0, 60)} is refused`);
    assert.equal(res['error'], 'bad_request');
    assert.match(String(res['message']), pattern);
  };
  await refused({ text: 'x', bogus: 1 }, /unknown field bogus/);
  await refused({ text: 5 }, /text must be a string/);
  await refused({ i32: 2 ** 31 }, /i32 must be an integer in -2\^31/);
  await refused({ u32: -1 }, /u32 must be an integer in 0\.\.2\^32-1/);
  await refused({ u64: 2 ** 60 }, /u64 must be a non-negative integer within/);
  await refused({ i32: 1.5 }, /i32 must be an integer/);
  await refused({ flag: 'yes' }, /flag must be true or false/);
  await refused({ color: 'GREEN' }, /color must be one of COLOR_NONE, RED, BLUE/);
  await refused({ at: [1, 2] }, /at must be an object/);
  await refused({ at: { x: 1, z: 2 } }, /unknown field at\.z/);
  await refused({ path: [{ x: 1 }, 'no'] }, /path\[1\] must be an object/);
  await refused({ nums: 5 }, /nums must be an array/);
  await refused([1, 2], /the body must be a JSON object/);
  await refused(Buffer.from('{"__proto__": {"text": "x"}}'), /unknown field __proto__/);
  await refused({ data: 'not base64!' }, /data must be base64/, 'pm.echo.blob');
  await refused({ a: 'x', b: 1 }, /only one field of oneof pick/, 'pm.echo.blob');
  await refused({ counts: { x: -1 } }, /counts\["x"\] must be an integer in 0\.\.2\^32-1/, 'pm.echo.blob');
  // Not JSON at all: the route stays JSON-only (pomelo-protobuf cannot carry bytes or maps).
  const id = c.send('pm.echo.blob', Buffer.from('{"data": '));
  const res = await c.response(id);
  assert.equal(res['code'], 500);
  assert.match(String(res['message']), /not JSON/);
  // A refused notify is dropped without an answer; the connection stays.
  c.notify('pm.echo.echo', { bogus: true });
  assert.equal(mesh.calls.length, 0, 'nothing refused reached the backend');
  const ok = await c.request('pm.echo.echo', { text: 'still here' });
  assert.equal((ok['echo'] as Json)['text'], 'still here');
  assert.equal(mesh.calls.length, 1);
  // Backend errors come back the same way.
  const none = await c.request('pm.echo.nohandler', {});
  assert.equal(none['code'], 500);
  assert.equal(none['error'], 'unknown_method');
  assert.equal(c.isClosed, false);
});

test('pomelo: blocked, auth and pass rules, unknown routes, and the agent stats, as on the native port', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer);
  const c = await ready(mesh);
  defer(() => c.destroy());
  // auth before a backend bound the client.
  const early = await c.request('pm.auth.secret', { text: 'psst' });
  assert.deepEqual([early['code'], early['error']], [500, 'unauthenticated']);
  assert.equal(mesh.agent.stats.unauthenticated, 1);
  assert.deepEqual(await c.request('pm.auth.login', { user: 'ann' }), { user: 'ann' });
  assert.deepEqual(await c.request('pm.auth.secret', { text: 'psst' }), { user: 'ann', text: 'psst' });
  // blocked: dropped and counted, never at the backend, no answer.
  const blocked = c.send('pm.admin.grant', { amount: 1000 });
  await waitFor(() => mesh.agent.stats.blocked === 1, 2000, 'the blocked message counted');
  assert.equal(c.responses.has(blocked), false);
  assert.equal(mesh.calls.some((x) => x.name === 'GrantReq'), false);
  // A route no table names: the agent's unknown-message policy (kick by default).
  c.send('pm.no.such.route', {});
  await c.closed;
  assert.deepEqual(c.kicks, [{ reason: 'route pm.no.such.route is not routed', code: 6 }]);
  assert.equal(mesh.agent.stats.unknown, 1);

  // With unknownMessage "drop", an unknown route (or an unknown dictionary code) is dropped and the client stays.
  const dropMesh = await startPomeloMesh(defer, { unknownMessage: 'drop' });
  const d = await ready(dropMesh);
  defer(() => d.destroy());
  d.send('pm.nope', {});
  d.write(Protocol.Package.encode(Protocol.Package.TYPE_DATA, Protocol.Message.encode(99, Protocol.Message.TYPE_REQUEST, 1, 65000, Protocol.strencode('{}'))));
  await waitFor(() => dropMesh.agent.stats.unknown === 2, 2000, 'two unknown routes counted');
  assert.equal(((await d.request('pm.echo.echo', { text: 'ok' }))['echo'] as Json)['text'], 'ok');
});

test('pomelo: the rate limit counts every request, refused ones too, and kicks like the native port', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer, { maxMsgsPerSec: 20 });
  const c = await ready(mesh);
  defer(() => c.destroy());
  for (let i = 0; i < 40; i++) c.send('pm.echo.echo', { bogus: i });
  await c.closed;
  assert.equal(c.kicks.length, 1);
  assert.equal(c.kicks[0]?.['code'], 3);
  assert.match(String(c.kicks[0]?.['reason']), /over 20 messages per second/);
  assert.ok(mesh.agent.stats.rateLimited >= 1);
  assert.equal(mesh.calls.length, 0);
});

test('pomelo: a package over the size limit closes only that connection, before its body is read', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer, { maxFrame: 1024 });
  const good = await ready(mesh);
  const bad = await ready(mesh);
  const badWs = await ready(mesh, 'ws');
  defer(() => good.destroy());
  defer(() => bad.destroy());
  defer(() => badWs.destroy());
  // Only the head of a 10 MB package: the agent must not wait for (or buffer) the body.
  bad.write(Buffer.from([4, 0x98, 0x96, 0x80]));
  await bad.closed;
  badWs.send('pm.echo.echo', { text: 'x'.repeat(2000) });
  await badWs.closed;
  assert.equal(bad.kicks.length + badWs.kicks.length, 0, 'closed at once, without a kick, as the native port does');
  assert.equal(((await good.request('pm.echo.echo', { text: 'fine' }))['echo'] as Json)['text'], 'fine');
});

test('pomelo: pushes by route (send, sendMany, broadcast, named or not), kicks from backends', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer);
  const a = await ready(mesh);
  const b = await ready(mesh, 'ws');
  defer(() => a.destroy());
  defer(() => b.destroy());
  assert.deepEqual(await a.request('pm.echo.push', { text: 'one', count: 2 }), { sent: 2 });
  await waitFor(() => a.pushes.length === 2, 2000, 'two pushes');
  const code = a.dict['onNotice'];
  assert.deepEqual(a.pushes, [
    { route: code, compressed: true, body: { text: 'one', n: 0 } },
    { route: code, compressed: true, body: { text: 'one', n: 1 } },
  ]);
  await b.request('pm.echo.push', { text: 'register', count: 0 });
  await a.request('pm.echo.push', { text: 'to many', count: 1, to: 'many' });
  await b.waitPush('onNotice', (m) => m['text'] === 'to many');
  await a.waitPush('onNotice', (m) => m['text'] === 'to many');
  // A native client sees the same broadcast.
  const [host = '', port = ''] = (mesh.agent.tcpAddress ?? '').split(':');
  const native = new GameClient({ transport: () => tcpTransport(host, Number(port)), reconnect: false });
  defer(() => native.close());
  await native.connect();
  const nativeGot: unknown[] = [];
  native.on(PM.Notice, (m) => nativeGot.push(m));
  await b.request('pm.echo.push', { text: 'everyone', count: 1, to: 'all' });
  await a.waitPush('onNotice', (m) => m['text'] === 'everyone');
  await b.waitPush('onNotice', (m) => m['text'] === 'everyone');
  await waitFor(() => nativeGot.length === 1, 2000, 'the broadcast at the native client');
  assert.deepEqual(nativeGot.map((m) => ({ ...PM.Notice.decode(PM.Notice.encode(m as { text: string })) })), [{ text: 'everyone' }]);
  // A message without (gamemesh.pomelo) is pushed under its full name, uncompressed.
  await a.request('pm.echo.push', { text: 'plain', count: 1, to: 'plain' });
  assert.deepEqual(await a.waitPush('pmtest.Plain'), { text: 'plain' });
  assert.equal(a.pushes.find((p) => p.route === 'pmtest.Plain')?.compressed, false);
  // A backend kick is a pomelo kick package with the reason, then the close.
  const k = a.send('pm.echo.push', { text: 'logged in elsewhere', kick: true });
  await a.closed;
  assert.deepEqual(a.kicks, [{ reason: 'logged in elsewhere', code: 9 }]);
  assert.equal(a.responses.has(k), false);
  assert.equal(b.isClosed, false);
});

test('pomelo: heartbeats are answered, and a silent client is disconnected after its window', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer);
  const live = await ready(mesh);
  const silentClient = await ready(mesh);
  defer(() => live.destroy());
  defer(() => silentClient.destroy());
  await waitFor(() => live.heartbeats === 1, 2000, 'the first server heartbeat');
  const started = performance.now();
  // The live client heartbeats every 500 ms, as a client with heartbeat 1 s would at worst.
  const timer = setInterval(() => live.heartbeat(), 500);
  defer(() => clearInterval(timer));
  await silentClient.closed;
  const ms = performance.now() - started;
  assert.ok(ms > 2000 && ms < 6000, `the silent client was cut after ${Math.round(ms)} ms (window 2 x 1 s + 1 s)`);
  assert.ok(live.heartbeats >= 3, `heartbeats answered: ${live.heartbeats}`);
  assert.equal(live.isClosed, false);
  // A flood of heartbeats gets at most one answer per 100 ms.
  const before = live.heartbeats;
  for (let i = 0; i < 200; i++) live.heartbeat();
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(live.heartbeats - before <= 5, `${live.heartbeats - before} answers to 200 heartbeats`);
});

test('pomelo: bad handshakes get {code: 500} and a close; no handshake is kicked at the deadline', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer, { handshakeTimeoutMs: 500 });
  for (const body of ['not json', '[]', '{"user": {}}', '{"sys": 5}']) {
    const c = await connect(mesh);
    defer(() => c.destroy());
    c.sendPackage(Protocol.Package.TYPE_HANDSHAKE, Buffer.from(body));
    await c.closed;
    assert.deepEqual(c.handshakes, [{ code: 500 }], `handshake ${body}`);
  }
  const mute = await connect(mesh);
  defer(() => mute.destroy());
  await mute.closed;
  // The handshake deadline (a kick, code 7) or the idle timeout of the same length (a close): whichever fires first.
  assert.ok(mute.kicks.length === 0 || mute.kicks[0]?.['code'] === 7, JSON.stringify(mute.kicks));
  // Package types outside 1..5, or a kick from a client, break the protocol: closed at once.
  for (const bytes of [Buffer.from([9, 0, 0, 0]), Buffer.from([0, 0, 0, 0]), Protocol.Package.encode(Protocol.Package.TYPE_KICK, Buffer.from('{}'))]) {
    const c = await ready(mesh);
    defer(() => c.destroy());
    c.write(bytes);
    await c.closed;
  }
  // Still serving.
  const ok = await ready(mesh);
  defer(() => ok.destroy());
  assert.equal(((await ok.request('pm.echo.echo', { text: 'ok' }))['echo'] as Json)['text'], 'ok');
});

test('pomelo: protos in the handshake, and pomelo-protobuf bodies from the peer\'s own encoder', async (t) => {
  const defer = cleanupStack(t);
  const mesh = await startPomeloMesh(defer, { pomeloProtobuf: true });
  const c = await connect(mesh);
  defer(() => c.destroy());
  const reply = await c.handshake();
  const protos = reply.sys?.protos;
  assert.ok(protos, 'protos offered');
  assert.equal(reply.sys?.useProto, true);
  assert.ok(protos.client['pm.echo.echo'], 'a request pomelo-protobuf can carry');
  assert.equal(protos.client['pm.echo.blob'], undefined, 'bytes and maps: not offered, stays JSON');
  assert.equal(protos.client['pm.admin.grant'], undefined, 'blocked routes are not offered');
  assert.ok(protos.client['message .pmtest.Point'], 'nested messages as global entries');
  assert.deepEqual(protos.server, {});
  // A client that already has this version is not sent it again.
  const again = await ready(mesh);
  defer(() => again.destroy());
  const cached = await (await connect(mesh)).handshake({}, { protoVersion: protos.version, dictVersion: reply.sys?.dictVersion });
  assert.equal(cached.sys?.protos, undefined);
  assert.equal(cached.sys?.dict, undefined);
  assert.equal(cached.sys?.dictVersion, reply.sys?.dictVersion);

  pomeloProtobuf.init({ encoderProtos: protos.client, decoderProtos: {} });
  // pomelo-protobuf has no bool: it writes numbers; 64-bit values travel as its varints.
  const msg = { ...FULL_ECHO, flag: 1, color: 2, u64: 2 ** 40, i64: -(2 ** 40) };
  const bytes = pomeloProtobuf.encode('pm.echo.echo', msg);
  assert.ok(bytes && bytes[0] !== 0x7b);
  const res = await c.request('pm.echo.echo', bytes);
  assert.deepEqual(res['echo'], { ...FULL_ECHO, u64: 2 ** 40, i64: -(2 ** 40) });
  // The same route still takes JSON (clients without pomelo-protobuf).
  assert.equal(((await c.request('pm.echo.echo', { text: 'json' }))['echo'] as Json)['text'], 'json');
  // Garbage that is not JSON is read as pomelo-protobuf and refused.
  for (const junk of [Buffer.from([0x0a, 0xff]), Buffer.from([0x08, 0x80, 0x80]), Buffer.from([0xf8, 0x07, 0x01]), Buffer.from([0x30, 0x05])]) {
    const r = await c.request('pm.echo.echo', junk);
    assert.equal(r['code'], 500, `refused: ${junk.toString('hex')}`);
  }
  assert.equal(c.isClosed, false);
});

test('pomelo: a later, shorter heartbeat window never cuts a pomelo client below the period of its handshake', async (t) => {
  // The session alone, on a real socket, with the agent's side played by the test.
  const port = { table: new PomeloTable(pmRoutes()), protobuf: false };
  const sessions: PomeloTcpSession[] = [];
  const listener = await listenTcp<PomeloTcpSession>({ idleTimeoutMs: 5000, heartbeatMs: 0 }, (s) => {
    sessions.push(s);
    s.on('frame', (msgId) => {
      if (msgId !== C.Handshake.id) return;
      s.setTimeouts({ idleTimeoutMs: 1500 });
      s.send(C.HandshakeAck.id, 1, C.HandshakeAck.encode({ version: 1, heartbeat_sec: 1, session_id: 'x', server_time_ms: 0 }));
    });
  }, (socket, opts) => new PomeloTcpSession(socket, opts, port));
  t.after(() => listener.close());
  const c = await PomeloTestClient.tcp(listener.host, listener.port);
  t.after(() => c.destroy());
  assert.equal((await c.handshake()).sys?.heartbeat, 1);
  const s = sessions[0] as PomeloTcpSession;
  // As the agent does when the period drops: the client was told 1 s and keeps to it.
  s.setTimeouts({ idleTimeoutMs: 200 });
  const silentSince = performance.now();
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(c.isClosed, false, 'not cut at the new, shorter window');
  await c.closed;
  const ms = performance.now() - silentSince;
  assert.ok(ms >= 1400 && ms < 4000, `cut after ${Math.round(ms)} ms of silence (the handshake's window is 1.5 s)`);
});
