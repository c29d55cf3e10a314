/**
 * The login service against an in-process discovery server, with fake
 * agents registered straight into discovery: accounts (demo registration,
 * passwords, the first-login race), the agent choice, the JWTs and their
 * forgeries, bad HTTP input, static files, and the `gamemesh login` process.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { SignJWT } from 'jose';
import { DiscoveryClient } from '../src/discovery/client.js';
import { getJSON } from '../src/discovery/values.js';
import { AccountStore, accountKey, type AccountRecord } from '../src/login/accounts.js';
import { pickAgent } from '../src/login/agents.js';
import { startLogin, NO_AGENT_MESSAGE, type LoginOptions, type LoginServer } from '../src/login/server.js';
import { issueToken, JWT_SECRET_KEY, keyFromSecret, loadJwtKey, MAX_TTL_SEC, TokenError, verifyToken } from '../src/login/tokens.js';
import type { ServiceNode } from '../src/service/node.js';
import { cleanupStack, SECRET as MESH_SECRET, startDiscoveryServer, startNode, type Defer } from './helpers/mesh.js';
import { BIN, Proc, tempDir, waitFor } from './helpers/proc.js';

delete process.env['GAMEMESH_JWT_SECRET'];

const SECRET = 'login-test-secret-that-is-long-enough-0123456789';
const KEY = keyFromSecret(SECRET);
const PASSWORD = 'correct horse';

interface Setup {
  addr: string;
  node: ServiceNode;
  login: LoginServer;
  agents: DiscoveryClient;
  defer: Defer;
}

async function setup(t: Parameters<typeof cleanupStack>[0], options: Partial<LoginOptions> = {}): Promise<Setup> {
  const defer = cleanupStack(t);
  // With the cluster token: only then does discovery keep secrets (config/login/jwt_secret).
  const { addr } = await startDiscoveryServer(defer, 500, MESH_SECRET);
  const node = await startNode(defer, addr, { name: 'login' });
  const login = await startLogin({ node, host: '127.0.0.1', port: 0, demo: true, jwtSecret: SECRET, rateLimit: { burst: 1000, perSec: 1000 }, ...options });
  defer(() => login.stop());
  const agents = await DiscoveryClient.connect({ addr, name: 'fake-agents', token: MESH_SECRET });
  defer(() => agents.close());
  return { addr, node, login, agents, defer };
}

/** Registers (or updates) a fake agent the way src/gateway/agent.ts does. */
function fakeAgent(d: DiscoveryClient, i: number, meta: { online: number; capacity?: number; wan?: string; pomelo?: boolean }): Promise<void> {
  return d.register({
    name: 'agent',
    id: `agent#${i}@dev`,
    host: '127.0.0.1',
    port: 7000 + i,
    meta: {
      group: 'dev',
      tcp: `127.0.0.1:${7100 + i}`,
      ws: `ws://127.0.0.1:${7200 + i}/`,
      online: String(meta.online),
      capacity: String(meta.capacity ?? 100),
      ...(meta.wan ? { wan: meta.wan } : {}),
      ...(meta.pomelo ? { pomelo_ws: `ws://127.0.0.1:${7300 + i}/`, pomelo_tcp: `127.0.0.1:${7400 + i}` } : {}),
    },
  });
}

async function health(login: LoginServer): Promise<{ agents: number; available: number }> {
  const res = await fetch(new URL('/api/health', login.url));
  assert.equal(res.status, 200);
  return (await res.json()) as { agents: number; available: number };
}

async function waitAvailable(login: LoginServer, n: number): Promise<void> {
  await waitFor(async () => (await health(login)).available === n, 5000, `${n} agents with room`);
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function post(login: LoginServer, body: unknown, contentType = 'application/json', pathname = '/api/login'): Promise<Reply> {
  const res = await fetch(new URL(pathname, login.url), { method: 'POST', headers: { 'content-type': contentType }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

function loginAs(login: LoginServer, account: string, password = PASSWORD): Promise<Reply> {
  return post(login, { account, password });
}

/** A GET with the path sent exactly as given (fetch would normalize "/../"). */
function rawGet(login: LoginServer, pathname: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: login.port, path: pathname, method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('demo mode: the first login registers the account; then the right password works and a wrong one gets 401', async (t) => {
  const { login, node, agents } = await setup(t);
  await fakeAgent(agents, 1, { online: 0 });
  await waitAvailable(login, 1);

  const first = await loginAs(login, 'alice');
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body['account'], 'alice');
  assert.equal(first.body['created'], true);
  assert.deepEqual(first.body['agent'], { tcp: '127.0.0.1:7101', ws: 'ws://127.0.0.1:7201/' });
  const expiresAt = first.body['expiresAt'] as number;
  assert.ok(Math.abs(expiresAt - (Date.now() + 3600_000)) < 10_000, `expiresAt ${expiresAt} is about an hour away`);

  const claims = await verifyToken(first.body['token'] as string, KEY);
  assert.equal(claims.sub, 'alice');
  assert.equal(claims.name, 'alice');
  assert.equal(claims.exp * 1000, expiresAt);

  const record = await getJSON<AccountRecord>(node.discovery, accountKey('alice'));
  assert.ok(record, 'the account is stored');
  assert.equal(record.name, 'alice');
  assert.equal(Buffer.from(record.hash, 'base64').length, 64);
  assert.deepEqual(record.kdf, { alg: 'scrypt', N: 16384, r: 8, p: 1 });
  assert.ok(!JSON.stringify(record).includes(PASSWORD), 'the password itself is not stored');

  const again = await loginAs(login, 'alice');
  assert.equal(again.status, 200);
  assert.equal(again.body['created'], false);
  assert.equal((await verifyToken(again.body['token'] as string, KEY)).sub, 'alice');

  const wrong = await loginAs(login, 'alice', 'wrong password');
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body['error'], 'wrong account or password');
  assert.equal(wrong.body['token'], undefined);
});

test('without demo mode an unknown account gets 401, and a registered one logs in', async (t) => {
  const { login, node, agents } = await setup(t, { demo: false });
  await fakeAgent(agents, 1, { online: 0 });
  await waitAvailable(login, 1);
  const unknown = await loginAs(login, 'bob');
  assert.equal(unknown.status, 401);
  assert.equal(unknown.body['error'], 'wrong account or password', 'the same answer as a wrong password');
  assert.equal(await node.discovery.get(accountKey('bob')), undefined, 'nothing was registered');

  assert.equal(await new AccountStore(node.discovery, { demo: false }).register('bob', PASSWORD), true);
  const ok = await loginAs(login, 'bob');
  assert.equal(ok.status, 200);
  assert.equal(ok.body['created'], false);
});

test('simultaneous first logins create exactly one account', async (t) => {
  const { login, node, agents } = await setup(t);
  await fakeAgent(agents, 1, { online: 0 });
  await waitAvailable(login, 1);

  const same = await Promise.all(Array.from({ length: 6 }, () => loginAs(login, 'carol')));
  assert.deepEqual(
    same.map((r) => r.status),
    [200, 200, 200, 200, 200, 200],
  );
  assert.equal(same.filter((r) => r.body['created'] === true).length, 1, 'one of them created it');
  assert.equal((await node.discovery.list('login/accounts/')).length, 1);

  // Different passwords: the account goes to one of them, and the other is a wrong password.
  const split = await Promise.all([loginAs(login, 'dave', 'password-one'), loginAs(login, 'dave', 'password-two')]);
  assert.deepEqual(split.map((r) => r.status).sort(), [200, 401]);

  const store = new AccountStore(node.discovery, { demo: true });
  const created = await Promise.all(Array.from({ length: 5 }, () => store.register('erin', PASSWORD)));
  assert.equal(created.filter(Boolean).length, 1, 'register() succeeds once');
});

test('the least-loaded agent is chosen, by its WAN address; agents at capacity are skipped; none left means 503', async (t) => {
  const { login, agents } = await setup(t);
  await fakeAgent(agents, 1, { online: 50 });
  await fakeAgent(agents, 2, { online: 10, wan: '203.0.113.7', pomelo: true });
  await fakeAgent(agents, 3, { online: 30 });
  await waitAvailable(login, 3);

  const first = await loginAs(login, 'frank');
  assert.equal(first.status, 200);
  const pomelo = { pomelo_ws: 'ws://203.0.113.7:7302/', pomelo_tcp: '203.0.113.7:7402' };
  assert.deepEqual(first.body['agent'], { tcp: '203.0.113.7:7102', ws: 'ws://203.0.113.7:7202/', ...pomelo }, 'agent 2, by its WAN address, pomelo ports too');

  await fakeAgent(agents, 2, { online: 100, wan: '203.0.113.7' });
  await waitAvailable(login, 2);
  const second = await loginAs(login, 'frank');
  assert.deepEqual(second.body['agent'], { tcp: '127.0.0.1:7103', ws: 'ws://127.0.0.1:7203/' }, 'agent 2 is full; agent 3 is next');

  await fakeAgent(agents, 1, { online: 100 });
  await fakeAgent(agents, 3, { online: 120 });
  await waitAvailable(login, 0);
  const none = await loginAs(login, 'frank');
  assert.equal(none.status, 503);
  assert.deepEqual(none.body, { error: NO_AGENT_MESSAGE });

  await agents.deregister('agent', 'agent#1@dev');
  await agents.deregister('agent', 'agent#2@dev');
  await agents.deregister('agent', 'agent#3@dev');
  await waitFor(async () => (await health(login)).agents === 0, 5000, 'no agents');
  const gone = await loginAs(login, 'frank');
  assert.equal(gone.status, 503);
  assert.deepEqual(gone.body, { error: NO_AGENT_MESSAGE });
});

test('a burst of logins is spread over equally loaded agents, before they report', async (t) => {
  const { login, agents } = await setup(t);
  await fakeAgent(agents, 1, { online: 0 });
  await fakeAgent(agents, 2, { online: 0 });
  await waitAvailable(login, 2);
  const counts = new Map<string, number>();
  for (let i = 0; i < 6; i++) {
    const r = await loginAs(login, `burst${i}`);
    const tcp = (r.body['agent'] as { tcp: string }).tcp;
    counts.set(tcp, (counts.get(tcp) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()], [3, 3]);
});

test('pickAgent: ties are broken at random; bad meta and agents without ports are skipped', () => {
  const desc = (id: string, meta: Record<string, string>) => ({ name: 'agent', id, host: 'h', port: 1, meta: { tcp: 'h:1', ...meta } });
  const list = [desc('a', { online: '5', capacity: '10' }), desc('b', { online: '50', capacity: '100' }), desc('c', { online: 'x' }), desc('d', { tcp: '', online: '0' })];
  assert.equal(pickAgent(list, { random: () => 0 })?.id, 'a');
  assert.equal(pickAgent(list, { random: () => 0.999 })?.id, 'b');
  assert.equal(pickAgent([desc('e', { online: '1', capacity: '1' })]), undefined);
  assert.equal(pickAgent([desc('ipv6', { wan: '2001:db8::1', ws: 'ws://h:9/x' })])?.ws, 'ws://[2001:db8::1]:9/x');
  assert.equal(pickAgent([desc('ipv6', { wan: '2001:db8::1' })])?.tcp, '[2001:db8::1]:1');
});

test('verifyToken refuses forged, expired, tampered and algorithm-swapped tokens', async () => {
  const claims = { sub: 'grace', name: 'grace' };
  const good = (await issueToken(claims, KEY, { ttlSec: 60 })).token;
  assert.deepEqual({ ...(await verifyToken(good, KEY)), iat: 0, exp: 0 }, { ...claims, iat: 0, exp: 0 });

  const refused = async (token: string, code: 'expired' | 'invalid', what: string) => {
    await assert.rejects(verifyToken(token, KEY), (err: unknown) => err instanceof TokenError && err.code === code, what);
  };
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const payload = { ...claims, iss: 'gamemesh', aud: 'gamemesh', iat: now, exp: now + 60 };

  await refused((await issueToken(claims, keyFromSecret('another-secret-that-is-32-bytes-or-more!'), { ttlSec: 60 })).token, 'invalid', 'signed with another key');
  await refused((await issueToken(claims, KEY, { ttlSec: 3600, now: Date.now() - 2 * 3600_000 })).token, 'expired', 'expired an hour ago');
  await refused(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`, 'invalid', 'alg none');
  await refused(await new SignJWT(payload).setProtectedHeader({ alg: 'HS512' }).sign(KEY), 'invalid', 'HS512 with the right key');
  const rsHeader = b64({ alg: 'RS256', typ: 'JWT' });
  const rsSig = createHmac('sha256', KEY).update(`${rsHeader}.${b64(payload)}`).digest('base64url');
  await refused(`${rsHeader}.${b64(payload)}.${rsSig}`, 'invalid', 'RS256 header over an HMAC signature');
  const [h, , s] = good.split('.');
  await refused(`${h}.${b64({ ...payload, name: 'admin' })}.${s}`, 'invalid', 'a tampered payload');
  await refused(await new SignJWT({ ...payload, iss: 'someone-else' }).setProtectedHeader({ alg: 'HS256' }).sign(KEY), 'invalid', 'another issuer');
  await refused(await new SignJWT({ name: 'grace', sub: 'grace', iss: 'gamemesh', aud: 'gamemesh', iat: now }).setProtectedHeader({ alg: 'HS256' }).sign(KEY), 'invalid', 'no expiry');
  await refused('not.a.jwt', 'invalid', 'garbage');
  // Genuinely signed, but no login would issue them: lifetimes past the 30-day maximum.
  const exp2100 = Math.floor(Date.UTC(2100, 0, 1) / 1000);
  await refused(await new SignJWT({ ...payload, exp: exp2100 }).setProtectedHeader({ alg: 'HS256' }).sign(KEY), 'invalid', 'exp in 2100, iat now');
  await refused(await new SignJWT({ ...payload, iat: exp2100 - 60, exp: exp2100 }).setProtectedHeader({ alg: 'HS256' }).sign(KEY), 'invalid', 'iat and exp in 2100');
  await refused(await new SignJWT({ ...payload, iat: now - 40 * 86400, exp: now + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(KEY), 'expired', 'issued 40 days ago');
  await refused(await new SignJWT({ ...payload, iat: now, exp: now + MAX_TTL_SEC + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(KEY), 'invalid', 'a minute over the maximum');
  // The longest lifetime issuing allows still verifies.
  const longest = (await issueToken(claims, KEY, { ttlSec: MAX_TTL_SEC })).token;
  assert.equal((await verifyToken(longest, KEY)).sub, 'grace');
  await assert.rejects(verifyToken(good, new Uint8Array(16)), RangeError, 'a short key is refused');
  assert.throws(() => keyFromSecret('too short'), RangeError);
});

test('the KV secret is made once and shared: another login and the game service verify its tokens', async (t) => {
  const { login: a, node, agents, defer } = await setup(t, { jwtSecret: undefined });
  const b = await startLogin({ node, host: '127.0.0.1', port: 0, demo: true });
  defer(() => b.stop());
  const stored = await node.discovery.get(JWT_SECRET_KEY);
  assert.ok(stored && stored.value.length >= 32, 'a secret of 32+ bytes is in the KV');
  await fakeAgent(agents, 1, { online: 0 });
  await waitAvailable(a, 1);
  await waitAvailable(b, 1);
  const fromA = await loginAs(a, 'heidi');
  const fromB = await loginAs(b, 'heidi');
  const gameKey = await loadJwtKey(node.discovery, { env: {} });
  assert.equal((await verifyToken(fromA.body['token'] as string, gameKey)).sub, 'heidi');
  assert.equal((await verifyToken(fromB.body['token'] as string, gameKey)).sub, 'heidi');
  await assert.rejects(startLogin({ node, host: '127.0.0.1', port: 0, jwtSecret: 'short' }), RangeError);

  // Instances starting at once on an empty KV still agree on one secret.
  await node.discovery.delete(JWT_SECRET_KEY);
  const keys = await Promise.all(Array.from({ length: 4 }, () => loadJwtKey(node.discovery, { env: {} })));
  for (const k of keys) assert.deepEqual(k, keys[0]);
  assert.notDeepEqual(keys[0], gameKey, 'a new secret was made');
  assert.deepEqual(await loadJwtKey(node.discovery, { env: { GAMEMESH_JWT_SECRET: SECRET } }), KEY, 'the variable comes before the KV');
});

test('bad requests get clear 4xx answers and the server keeps serving', async (t) => {
  const dir = tempDir(t, 'gm-login-static-');
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>demo</title>');
  fs.writeFileSync(path.join(dir, 'app.js'), 'console.log(1);');
  fs.writeFileSync(path.join(dir, 'style.css'), 'body{}');
  fs.writeFileSync(path.join(dir, 'logo.svg'), '<svg/>');
  fs.writeFileSync(path.join(dir, '.env'), 'SECRET=1');
  fs.symlinkSync(path.resolve('package.json'), path.join(dir, 'escape.json'));
  const { login, agents } = await setup(t, { staticDir: dir });
  await fakeAgent(agents, 1, { online: 0 });
  await waitAvailable(login, 1);

  const big = await post(login, { account: 'ivan', password: 'x'.repeat(9 * 1024) });
  assert.equal(big.status, 413);
  assert.match(String(big.body['error']), /at most 8192 bytes/);
  const cases: Array<[unknown, string, number, RegExp]> = [
    ['{"account": "ivan",', 'application/json', 400, /not valid JSON/],
    [{ account: 'ivan', password: PASSWORD }, 'text/plain', 400, /content-type: application\/json/],
    ['[1,2]', 'application/json', 400, /JSON object/],
    ['null', 'application/json', 400, /JSON object/],
    [{ account: '../etc', password: PASSWORD }, 'application/json', 400, /account must be/],
    [{ account: 'x'.repeat(33), password: PASSWORD }, 'application/json', 400, /account must be/],
    [{ account: 'ivan', password: 'abc' }, 'application/json', 400, /password must be/],
    [{ account: 'ivan', password: 12345678 }, 'application/json', 400, /password must be a string/],
  ];
  for (const [body, type, status, error] of cases) {
    const r = await post(login, body, type);
    assert.equal(r.status, status, `${JSON.stringify(body)} as ${type}: ${JSON.stringify(r.body)}`);
    assert.match(String(r.body['error']), error);
  }
  const get = await fetch(new URL('/api/login', login.url));
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  assert.equal((await post(login, {}, 'application/json', '/api/nope')).status, 404);
  assert.equal((await post(login, {}, 'application/json', '/index.html')).status, 405);

  for (const p of ['/../package.json', '/%2e%2e/package.json', '/..%2fpackage.json', '/a/../../package.json', '/%zz']) {
    const r = await rawGet(login, p);
    assert.equal(r.status, 400, p);
    assert.match(r.type, /application\/json/, p);
    assert.match(JSON.parse(r.body).error, /\.\.|percent/, p);
  }
  for (const p of ['/.env', '/escape.json', '/missing.js']) assert.equal((await rawGet(login, p)).status, 404, p);

  const index = await rawGet(login, '/');
  assert.equal(index.status, 200);
  assert.equal(index.type, 'text/html; charset=utf-8');
  assert.match(index.body, /<title>demo<\/title>/);
  assert.equal((await rawGet(login, '/app.js?v=1')).type, 'text/javascript; charset=utf-8');
  assert.equal((await rawGet(login, '/style.css')).type, 'text/css; charset=utf-8');
  assert.equal((await rawGet(login, '/logo.svg')).type, 'image/svg+xml');
  const head = await rawGet(login, '/index.html', 'HEAD');
  assert.deepEqual([head.status, head.body], [200, '']);

  const garbage = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(login.port, '127.0.0.1', () => sock.write('THIS IS NOT HTTP\r\n\r\n'));
    let text = '';
    sock.setEncoding('utf8').on('data', (s: string) => (text += s));
    sock.on('end', () => resolve(text));
    sock.on('error', reject);
  });
  assert.match(garbage, /^HTTP\/1\.1 400 /);
  assert.match(garbage, /"error":"malformed HTTP request"/);

  const ok = await loginAs(login, 'ivan');
  assert.equal(ok.status, 200, 'still serving after all that');
});

test('login attempts are rate limited per IP', async (t) => {
  const { login, agents } = await setup(t, { rateLimit: { burst: 2, perSec: 0.01 } });
  await fakeAgent(agents, 1, { online: 0 });
  await waitAvailable(login, 1);
  assert.equal((await loginAs(login, 'judy')).status, 200);
  assert.equal((await loginAs(login, 'judy', 'wrong password')).status, 401);
  const limited = await loginAs(login, 'judy');
  assert.equal(limited.status, 429);
  assert.match(String(limited.body['error']), /too many login attempts/);
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  assert.equal((await health(login)).agents, 1, 'other endpoints are not limited');
});

test('`gamemesh login` as a process: prints its URL, answers a login, stops on SIGTERM', { timeout: 20_000 }, async (t) => {
  const defer = cleanupStack(t);
  const { addr } = await startDiscoveryServer(defer, 500, MESH_SECRET);
  const agents = await DiscoveryClient.connect({ addr, name: 'fake-agents', token: MESH_SECRET });
  defer(() => agents.close());
  await fakeAgent(agents, 1, { online: 0 });

  const env: NodeJS.ProcessEnv = { ...process.env, GAMEMESH_TOKEN: MESH_SECRET };
  delete env['GAMEMESH_JWT_SECRET'];
  const proc = new Proc('login', process.execPath, [BIN, 'login', '--sdaddr', addr, '--http', '127.0.0.1:0', '--demo', '--loglevel', 'warn'], env);
  defer(() => proc.stop());
  const m = await proc.waitForStdout(/login listening on (http:\/\/127\.0\.0\.1:\d+\/)\n/, 10_000);
  const url = m[1] as string;

  const res = await fetch(new URL('/api/login', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account: 'mallory', password: PASSWORD }) });
  const body = (await res.json()) as { token: string; agent: { tcp: string } };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.agent.tcp, '127.0.0.1:7101');
  const key = await loadJwtKey(agents, { env: {} });
  assert.equal((await verifyToken(body.token, key)).name, 'mallory');

  const exit = await proc.kill('SIGTERM', 5000);
  assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr);
});
