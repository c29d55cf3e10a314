/**
 * The dashboard's server (src/dashboard) without a browser: who may look
 * and who may write (loopback open, the token required beyond it or when
 * asked, edits always with a bearer token, from the page's origin, never
 * to registrations), hostile edit bodies, the KV listing with secrets
 * masked, node flags read defensively, the registry log, and the load read
 * from a service's admin port.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startDashboard } from '../src/dashboard/server.js';
import { listKv, isSecretKey } from '../src/dashboard/kv.js';
import { DiscoveryClient } from '../src/discovery/client.js';
import { DiscoveryServer } from '../src/discovery/server.js';
import { cleanupStack, silent, startNode } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

const TOKEN = 'dashboard-test-token';

interface View {
  id: string;
  version: string;
  available: boolean;
  load?: { rss?: number; links: string[]; error?: string };
}
interface StateJson {
  services: View[];
  log: { kind: string; id: string; text: string }[];
  routes: unknown[];
  routesError?: string;
}

async function setup(t: Parameters<typeof cleanupStack>[0], opts: { requireToken?: boolean; token?: string | undefined; dashToken?: string | undefined } = {}) {
  const defer = cleanupStack(t);
  const token = 'token' in opts ? opts.token : TOKEN;
  const server = await new DiscoveryServer({ host: '127.0.0.1', port: 0, logger: silent, graceMs: 300, token }).start();
  defer(() => server.stop());
  const sdaddr = `127.0.0.1:${server.address.port}`;
  const sd = await DiscoveryClient.connect({ addr: sdaddr, token, name: 'dash-test' });
  defer(() => sd.close());
  const dash = await startDashboard({ discovery: sd, sdaddr, host: '127.0.0.1', port: 0, token: 'dashToken' in opts ? opts.dashToken : token, logger: silent, pollMs: 200, requireToken: opts.requireToken });
  defer(() => dash.stop());
  return { defer, sd, sdaddr, dash, url: dash.url };
}

const bearer = (t = TOKEN) => ({ authorization: `Bearer ${t}` });
const basic = (t = TOKEN) => ({ authorization: `Basic ${Buffer.from(`operator:${t}`).toString('base64')}` });

async function state(url: string, headers: Record<string, string> = {}): Promise<StateJson> {
  const res = await fetch(`${url}api/state`, { headers });
  assert.equal(res.status, 200);
  return (await res.json()) as StateJson;
}

test('dashboard refuses to listen beyond loopback without a token', async () => {
  const sd = { connected: true } as never;
  await assert.rejects(startDashboard({ discovery: sd, sdaddr: 'x', host: '0.0.0.0', port: 0, token: undefined, logger: silent }), /only with the cluster token/);
  await assert.rejects(startDashboard({ discovery: sd, sdaddr: 'x', host: '127.0.0.1', port: 0, token: undefined, logger: silent, requireToken: true }), /only with the cluster token/);
});

test('dashboard with --require-token: nothing without the token, Basic or Bearer with it', async (t) => {
  const { url } = await setup(t, { requireToken: true });
  for (const path of ['', 'app.js', 'api/state', 'api/events', 'api/kv?prefix=']) {
    const res = await fetch(`${url}${path}`);
    assert.equal(res.status, 401, `/${path}`);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    await res.body?.cancel();
  }
  assert.equal((await fetch(`${url}api/state`, { headers: basic('wrong') })).status, 401);
  assert.equal((await fetch(`${url}api/state`, { headers: bearer('wrong') })).status, 401);
  const page = await fetch(url, { headers: basic() });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /gamemesh dashboard/);
  await state(url, bearer());
  // The event stream: the state comes at once.
  const ac = new AbortController();
  const events = await fetch(`${url}api/events`, { headers: basic(), signal: ac.signal });
  assert.match(events.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = (events.body as ReadableStream<Uint8Array>).getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /^retry: 1000\nevent: state\ndata: \{/);
  ac.abort();
});

test('dashboard edits: bearer token only, same origin only, JSON only, never registrations', async (t) => {
  const { url, sd } = await setup(t);
  // On loopback, looking needs no token.
  await state(url);
  const put = (body: unknown, headers: Record<string, string> = bearer(), raw?: string) =>
    fetch(`${url}api/kv`, { method: 'PUT', headers: { 'content-type': 'application/json', ...headers }, body: raw ?? JSON.stringify(body) });
  assert.equal((await put({ key: 'config/x', value: '1' }, {})).status, 401);
  assert.equal((await put({ key: 'config/x', value: '1' }, bearer('nope'))).status, 401);
  assert.equal((await put({ key: 'config/x', value: '1' }, basic())).status, 401, 'Basic credentials, which a browser sends by itself, do not edit');
  assert.equal((await put({ key: 'config/x', value: '1' }, { ...bearer(), 'sec-fetch-site': 'cross-site' })).status, 403);
  assert.equal((await fetch(`${url}api/kv`, { method: 'PUT', headers: { ...bearer(), 'content-type': 'application/x-www-form-urlencoded' }, body: 'key=config/x&value=1' })).status, 400);
  assert.equal((await put(undefined, bearer(), '{"key":')).status, 400);
  assert.equal((await put({ key: '', value: '1' })).status, 400);
  assert.equal((await put({ key: 'config/x', value: 1 })).status, 400);
  assert.equal((await put({ key: '_svc/agent/agent#9@dev', value: '{}' })).status, 400);
  assert.equal((await put(undefined, bearer(), JSON.stringify({ key: 'config/x', value: 'x'.repeat(2 * 1024 * 1024) }))).status, 413);
  assert.equal((await fetch(`${url}api/kv`, { method: 'DELETE', headers: bearer() })).status, 405);
  assert.equal(await sd.get('config/x'), undefined, 'nothing refused was written');
  const ok = await put({ key: 'config/x', value: 'hello' });
  assert.equal(ok.status, 200);
  const { revision } = (await ok.json()) as { revision: number };
  assert.ok(revision > 0);
  assert.equal(Buffer.from((await sd.get('config/x'))?.value ?? []).toString(), 'hello');
  // The listing follows.
  await waitFor(async () => {
    const l = (await (await fetch(`${url}api/kv?prefix=config/`)).json()) as { keys: { key: string; value: string }[] };
    return l.keys.some((k) => k.key === 'config/x' && k.value === 'hello');
  }, 3000, 'the edited value in the listing');
});

test('a cluster without a token: the dashboard shows, but does not edit', async (t) => {
  const { url } = await setup(t, { token: undefined });
  await state(url);
  const res = await fetch(`${url}api/kv`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: 'config/x', value: '1' }) });
  assert.equal(res.status, 403);
});

test('KV listing: folders, values, secrets masked, binary values, a cap on leaves', () => {
  const kv = (key: string, value: string | Uint8Array) => ({ key, value: typeof value === 'string' ? Buffer.from(value) : value, createRev: 1, modRev: 2 });
  const all = [
    kv('config/agent/heartbeat_sec', '20'),
    kv('config/login/jwt_secret', 'super-secret-value-0123456789abcdef'),
    kv('config/game/api_token', 'tok'),
    kv('config/db/password', 'pw'),
    kv('login/accounts/bob', '{"hash":"scrypt$..."}'),
    kv('config/blob', new Uint8Array([0xff, 0xfe, 0x00])),
    kv('config/plain', 'text'),
  ];
  const root = listKv(all, '');
  assert.deepEqual(root.folders.map((f) => [f.name, f.keys]), [['config', 6], ['login', 1]]);
  assert.deepEqual(root.keys, []);
  const config = listKv(all, 'config/');
  assert.deepEqual(config.folders.map((f) => f.prefix), ['config/agent/', 'config/db/', 'config/game/', 'config/login/']);
  assert.deepEqual(config.keys.map((k) => [k.name, k.value, k.binary]), [['blob', '', true], ['plain', 'text', false]]);
  for (const [prefix, name] of [['config/login/', 'jwt_secret'], ['config/game/', 'api_token'], ['config/db/', 'password'], ['login/accounts/', 'bob']] as const) {
    const leaf = listKv(all, prefix).keys.find((k) => k.name === name);
    assert.ok(leaf?.secret, `${prefix}${name} is a secret`);
    assert.equal(leaf.value, '');
    assert.ok(leaf.size > 0);
  }
  assert.equal(isSecretKey('config/agent/heartbeat_sec'), false);
  const many = Array.from({ length: 600 }, (_, i) => kv(`big/k${String(i).padStart(3, '0')}`, 'v'));
  const big = listKv(many, 'big/');
  assert.equal(big.keys.length, 500);
  assert.equal(big.more, 100);
});

test('services: load from the admin port, node flags read defensively, and the registry log', async (t) => {
  const { url, sd, sdaddr, defer } = await setup(t);
  const node = await startNode(defer, sdaddr, { name: 'game', config: { admin: '127.0.0.1:0', token: TOKEN } });
  await waitFor(async () => {
    const s = (await state(url)).services.find((x) => x.id === node.id);
    return (s?.load?.rss ?? 0) > 0;
  }, 5000, 'the node\'s memory from its admin port');
  let s = await state(url);
  assert.ok(s.log.some((e) => e.kind === 'join' && e.id === node.id));
  // Prometheus HTTP service discovery lists the admin port.
  const targets = (await (await fetch(`${url}api/targets`)).json()) as Array<{ targets: string[]; labels: Record<string, string> }>;
  assert.deepEqual(targets, [{ targets: [node.admin?.address], labels: { gamemesh_service: 'game', gamemesh_id: node.id, gamemesh_group: 'dev' } }]);
  // config/nodes/<id>, read as the runtime reads it (src/discovery/node-state.ts): only a JSON object's available: false disables.
  assert.equal((await state(url)).services.find((x) => x.id === node.id)?.available, true, 'available by default');
  const flag = async (value: string, want: boolean) => {
    await sd.put(`config/nodes/${node.id}`, value);
    await waitFor(async () => (await state(url)).services.find((x) => x.id === node.id)?.available === want, 3000, `available ${String(want)} for ${value}`);
  };
  await flag('{"available": false, "other": 1}', false);
  await flag('false', true);
  await flag('{"available": false}', false);
  await flag('not json', true);
  s = await state(url);
  assert.ok(s.log.some((e) => e.kind === 'change' && e.id === node.id && e.text.endsWith('available true -> false')), JSON.stringify(s.log));
  assert.ok(s.log.some((e) => e.kind === 'change' && e.id === node.id && e.text.endsWith('available false -> true')), JSON.stringify(s.log));
  // Versions (--svcversion) are shown, and a new version's arrival is logged with it.
  assert.equal((await state(url)).services.find((x) => x.id === node.id)?.version, '1');
  const next = await startNode(defer, sdaddr, { name: 'chat', config: { svcversion: 2, token: TOKEN } });
  await waitFor(async () => (await state(url)).log.some((e) => e.kind === 'join' && e.id === next.id && /\(version 2\)$/.test(e.text)), 3000, 'the new version in the log');
  assert.equal((await state(url)).services.find((x) => x.id === next.id)?.version, '2');
  await next.stop();
  // A bad route table is reported, not thrown.
  await sd.put('config/gateway/routes', '{"version": 9}');
  await waitFor(async () => /version 9/.test((await state(url)).routesError ?? ''), 3000, 'the route table error');
  // It leaves.
  await node.stop();
  await waitFor(async () => (await state(url)).log.some((e) => e.kind === 'leave' && e.id === node.id), 5000, 'the leave in the log');
});

test('a dashboard with the wrong token says so for each service it cannot read', async (t) => {
  const { url, sdaddr, defer } = await setup(t, { dashToken: 'not-the-cluster-token' });
  const node = await startNode(defer, sdaddr, { name: 'game', config: { admin: '127.0.0.1:0', token: TOKEN } });
  await waitFor(async () => /HTTP 401/.test((await state(url)).services.find((x) => x.id === node.id)?.load?.error ?? ''), 5000, 'a 401 from the admin port');
});
