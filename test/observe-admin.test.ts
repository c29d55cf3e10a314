/**
 * The admin HTTP port (src/service/admin.ts) and what ServiceNode puts on it:
 * the bearer token (missing, wrong, right), the refusal to listen beyond
 * loopback without a token, routing errors (404, 405), hostile bodies and
 * garbage on the socket, a failing handler; then two nodes with --admin
 * making calls, their /metrics parsed and the counters checked to move, and
 * /status and the `admin` registration meta.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { AdminServer, AdminError } from '../src/service/admin.js';
import { loadConfig } from '../src/service/config.js';
import { RpcError } from '../src/service/errors.js';
import { EchoReq, EchoResp } from './helpers/echo.js';
import { cleanupStack, silent, startDiscoveryServer, startNode } from './helpers/mesh.js';
import { parsePrometheus } from './helpers/prom.js';
import { waitFor } from './helpers/proc.js';

const TOKEN = 'admin-test-token';

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, init);
  return { status: res.status, text: await res.text(), headers: res.headers };
}

const auth = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

test('admin server: bearer token, routes, hostile input', async (t) => {
  const defer = cleanupStack(t);
  await assert.rejects(AdminServer.start({ listen: '0.0.0.0:0', token: undefined, logger: silent }), /only with a cluster token/);
  await assert.rejects(AdminServer.start({ listen: 'nonsense', token: TOKEN, logger: silent }), /expected HOST:PORT/);

  const admin = await AdminServer.start({ listen: '127.0.0.1:0', token: TOKEN, logger: silent, maxBody: 1024 });
  defer(() => admin.close());
  assert.match(admin.address, /^127\.0\.0\.1:\d+$/);
  const url = admin.url;

  // The token: missing, wrong (also of another length), right.
  const none = await get(`${url}metrics`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
  assert.match(JSON.parse(none.text).error, /needs the cluster token/);
  assert.equal((await get(`${url}metrics`, { headers: auth('admin-test-tokeN') })).status, 401);
  assert.equal((await get(`${url}metrics`, { headers: auth('x') })).status, 401);
  assert.equal((await get(`${url}metrics`, { headers: { authorization: `Basic ${Buffer.from(`a:${TOKEN}`).toString('base64')}` } })).status, 401);
  const ok = await get(`${url}metrics`, { headers: auth() });
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('content-type') ?? '', /^text\/plain/);
  parsePrometheus(ok.text);
  // An unauthenticated request learns nothing of the routes.
  assert.equal((await get(`${url}nowhere`)).status, 401);

  // Routing.
  const missing = await get(`${url}nowhere`, { headers: auth() });
  assert.equal(missing.status, 404);
  assert.match(JSON.parse(missing.text).error, /\/metrics/);
  const wrongMethod = await get(`${url}metrics`, { method: 'POST', headers: auth() });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get('allow'), 'GET');
  assert.throws(() => admin.route('GET', '/metrics', () => ({ json: {} })), /already registered/);
  assert.throws(() => admin.route('GET', 'status', () => ({ json: {} })), /must start with/);

  // A JSON route: good, oversized, malformed, of the wrong type; a handler that throws.
  admin.route('POST', '/echo', async (req) => ({ json: { got: await req.json() } }));
  admin.route('GET', '/boom', () => {
    throw new Error('handler bug');
  });
  admin.route('GET', '/teapot', () => {
    throw new AdminError(418, 'short and stout');
  });
  const post = (body: string, type = 'application/json') => get(`${url}echo`, { method: 'POST', headers: { ...auth(), 'content-type': type }, body });
  assert.deepEqual(JSON.parse((await post('{"a":1}')).text), { got: { a: 1 } });
  assert.equal((await post(JSON.stringify({ big: 'x'.repeat(2000) }))).status, 413);
  assert.equal((await post('{"a":')).status, 400);
  assert.equal((await post('a=1', 'application/x-www-form-urlencoded')).status, 400);
  const boom = await get(`${url}boom`, { headers: auth() });
  assert.equal(boom.status, 500);
  assert.equal((await get(`${url}teapot`, { headers: auth() })).status, 418);

  // Garbage on a raw socket gets a 400 and a close; the server carries on.
  const reply = await new Promise<string>((resolve) => {
    const s = net.connect(admin.port, '127.0.0.1', () => s.write('\x00\x01garbage\r\n\r\n'));
    let text = '';
    s.on('data', (d) => (text += d.toString()));
    s.on('close', () => resolve(text));
    s.on('error', () => resolve(text));
  });
  assert.match(reply, /^HTTP\/1\.1 400/);
  assert.equal((await get(`${url}metrics`, { headers: auth() })).status, 200);
});

test('admin server without a cluster token: loopback only, and open there', async (t) => {
  const defer = cleanupStack(t);
  const admin = await AdminServer.start({ listen: ':0', token: '', logger: silent });
  defer(() => admin.close());
  assert.match(admin.address, /^127\.0\.0\.1:/);
  assert.equal((await get(`${admin.url}metrics`)).status, 200);
});

test('--admin on two nodes: meta, /status, and RPC counters that move with the calls', async (t) => {
  const defer = cleanupStack(t);
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  // The flag as a service reads it.
  const { config } = loadConfig({ argv: ['--admin', '127.0.0.1:0', '--token', TOKEN], env: {} });
  assert.equal(config.admin, '127.0.0.1:0');
  const callee = await startNode(defer, sdaddr, { name: 'echo', config: { admin: config.admin, token: TOKEN } }, (node) => {
    node.handle(EchoReq, EchoResp, (req) => {
      if (req.text === 'fail') throw new RpcError('application', 'no');
      return { text: req.text, n: req.n, server: node.id };
    });
  });
  const caller = await startNode(defer, sdaddr, { name: 'caller', dependencies: ['echo'], config: { admin: '127.0.0.1:0', token: TOKEN } });
  await caller.whenReady();

  const reg = (await caller.discovery.listServices('echo'))[0];
  assert.ok(reg?.meta['admin'], 'the admin address is in the registration');
  assert.equal(reg.meta['admin'], callee.admin?.address);
  const scrape = async (node: typeof caller) => {
    const res = await get(`http://${node.admin?.address}/metrics`, { headers: auth() });
    assert.equal(res.status, 200);
    return parsePrometheus(res.text);
  };

  const before = await scrape(caller);
  const okBefore = before.value('gamemesh_rpc_client_calls_total', { method: 'echo.EchoReq', code: 'ok' }) ?? 0;
  for (let i = 0; i < 20; i++) await caller.call('echo', EchoReq, EchoResp, { text: 'hi', n: i });
  await assert.rejects(caller.call('echo', EchoReq, EchoResp, { text: 'fail', n: 0 }), /no/);
  const after = await scrape(caller);
  assert.equal(after.value('gamemesh_rpc_client_calls_total', { method: 'echo.EchoReq', code: 'ok' }), okBefore + 20);
  assert.ok((after.value('gamemesh_rpc_client_calls_total', { method: 'echo.EchoReq', code: 'application' }) ?? 0) >= 1);
  assert.equal(after.types.get('gamemesh_rpc_client_duration_seconds'), 'histogram');
  assert.ok((after.value('gamemesh_rpc_client_duration_seconds_count', { method: 'echo.EchoReq' }) ?? 0) >= 21, 'every call was timed');
  assert.ok((after.sum('gamemesh_rpc_server_calls_total', { method: 'echo.EchoReq', code: 'ok' })) >= 20, 'served calls (same process registry)');
  assert.ok((after.value('gamemesh_links_up', { peer_service: 'echo' }) ?? 0) >= 1);
  assert.ok(after.value('process_cpu_user_seconds_total') !== undefined, 'default process metrics are on');
  assert.ok(after.value('nodejs_eventloop_lag_seconds') !== undefined);

  const status = await get(`http://${callee.admin?.address}/status`, { headers: auth() });
  assert.equal(status.status, 200);
  const s = JSON.parse(status.text) as { id: string; state: string; links: { id: string }[]; memory: { rss: number } };
  assert.equal(s.id, callee.id);
  assert.equal(s.state, 'running');
  assert.ok(s.memory.rss > 0);
  await waitFor(async () => {
    const st = JSON.parse((await get(`http://${callee.admin?.address}/status`, { headers: auth() })).text) as { links: { id: string }[] };
    return st.links.some((l) => l.id === caller.id);
  }, 5000, 'the caller in the callee\'s links');
  assert.equal((await get(`http://${callee.admin?.address}/status`)).status, 401);

  // A stopped node closes its admin port (an OS-picked port may be reused at once by another process: anything but our 200).
  const addr = callee.admin?.address;
  await callee.stop();
  const after2 = await fetch(`http://${addr}/metrics`, { headers: auth() }).catch(() => undefined);
  assert.ok(after2 === undefined || after2.status !== 200, 'the admin port is closed');
});
