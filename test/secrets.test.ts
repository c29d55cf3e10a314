/**
 * "Secrets stay secret" in discovery: secret keys (config/login/jwt_secret,
 * secret/...) go only to clients that proved they hold the cluster token,
 * so a server without a token neither serves nor stores them, even when its
 * data file holds some; and the journal and snapshot are 0600 in a 0700
 * folder, also when an older version left them 0644.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { DiscoveryClient } from '../src/discovery/client.js';
import { isSecretKey } from '../src/discovery/secrets.js';
import { DiscoveryServer } from '../src/discovery/server.js';
import { DiscoveryError } from '../src/discovery/types.js';
import { asString } from '../src/discovery/values.js';
import { startLogin } from '../src/login/server.js';
import { JWT_SECRET_KEY } from '../src/login/tokens.js';
import { cleanupStack, startNode } from './helpers/mesh.js';
import { waitFor } from './helpers/proc.js';

delete process.env['GAMEMESH_JWT_SECRET'];
const TOKEN = 'secrets-test-cluster-token';

function dataDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gm-secrets-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(t: TestContext, datafile: string, token?: string, extra: { compactBytes?: number; warn?: string[] } = {}): Promise<{ server: DiscoveryServer; client: DiscoveryClient }> {
  const warn = extra.warn;
  const logger = pino({ level: 'warn' }, { write: (line: string) => warn?.push(String(JSON.parse(line).msg)) });
  const server = await new DiscoveryServer({ port: 0, datafile, token, logger, compactBytes: extra.compactBytes }).start();
  const client = await DiscoveryClient.connect({ addr: `127.0.0.1:${server.address.port}`, token });
  t.after(async () => {
    await client.close();
    await server.stop();
  });
  return { server, client };
}

const unauthorized = (e: unknown) => e instanceof DiscoveryError && e.code === 'unauthorized' && /is a secret, and this discovery server has no cluster token/.test(e.message);

test('which keys are secrets', () => {
  for (const key of ['config/login/jwt_secret', 'secret/payments/key', 'config/secrets/x', 'secrets', 'game/api-secret', 'a/b.secret']) assert.ok(isSecretKey(key), key);
  for (const key of ['config/login/jwt', 'secretary/x', 'config/secretive', 'login/accounts/secret_agent', 'config/types']) assert.ok(!isSecretKey(key), key);
});

test('a server without a token keeps no secrets: not stored, not served, not listed, not watched; with a token they are served', async (t) => {
  const dir = dataDir(t);
  const datafile = path.join(dir, 'discovery.db');
  // With a token, the secret is stored and read as any key.
  const withToken = await serve(t, datafile, TOKEN);
  await withToken.client.put(JWT_SECRET_KEY, 'the-jwt-secret-of-this-cluster-0123456789');
  await withToken.client.put('secret/api', 'k');
  await withToken.client.put('config/plain', 'p');
  assert.equal(asString((await withToken.client.get(JWT_SECRET_KEY))!), 'the-jwt-secret-of-this-cluster-0123456789');
  await withToken.client.close();
  await withToken.server.stop();

  // The same data file, served without a token.
  const open = await serve(t, datafile);
  const c = open.client;
  await assert.rejects(c.get(JWT_SECRET_KEY), unauthorized);
  await assert.rejects(c.get('secret/api'), unauthorized);
  await assert.rejects(c.put('secret/new', 'x'), unauthorized);
  await assert.rejects(c.txn([], [{ type: 'put', key: 'config/x/jwt_secret', value: 'x' }]), unauthorized);
  await assert.rejects(c.txn([{ key: JWT_SECRET_KEY, modRev: 0 }], [{ type: 'put', key: 'config/ok', value: 'x' }]), unauthorized, 'a compare would tell whether it exists');
  assert.deepEqual((await c.list('')).map((kv) => kv.key), ['config/plain'], 'listing hides them');
  const events: string[] = [];
  const w = await c.watch('', { onEvent: (ev) => events.push(ev.type === 'put' ? ev.kv.key : ev.key) });
  t.after(() => w.stop());
  assert.deepEqual(w.list().map((kv) => kv.key), ['config/plain'], 'a watch snapshot hides them');
  assert.equal(await c.delete('secret/api'), 1, 'deleting one reveals nothing and is allowed');
  await c.put('config/after', '1');
  await waitFor(() => events.includes('config/after'), 2000, 'the watch event');
  assert.deepEqual(events, ['config/after'], 'the delete of a secret is not an event either');
  assert.equal(asString((await c.get('config/plain'))!), 'p', 'other keys are served as usual');

  // Login, which keeps its JWT secret in the KV, says what to do instead of starting without one.
  const defer = cleanupStack(t);
  const node = await startNode(defer, `127.0.0.1:${open.server.address.port}`, { name: 'login' });
  await assert.rejects(startLogin({ node, host: '127.0.0.1', port: 0 }), unauthorized);
});

test('journal and snapshot are 0600 in a 0700 folder; files an older version left 0644 are fixed at open', async (t) => {
  const dir = dataDir(t);
  const folder = path.join(dir, 'new', 'data');
  const datafile = path.join(folder, 'discovery.db');
  const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
  const first = await serve(t, datafile, TOKEN, { compactBytes: 4096 });
  for (let i = 0; i < 100; i++) await first.client.put(`k/${i}`, 'x'.repeat(100));
  await waitFor(() => fs.existsSync(datafile), 5000, 'a compaction to write the snapshot');
  assert.equal(mode(folder), '700', 'the folder it made');
  assert.equal(mode(path.join(dir, 'new')), '700', 'and its parent, also made by it');
  assert.equal(mode(datafile), '600', 'snapshot');
  assert.equal(mode(`${datafile}.journal`), '600', 'journal');
  await first.client.close();
  await first.server.stop();

  fs.chmodSync(datafile, 0o644);
  fs.chmodSync(`${datafile}.journal`, 0o644);
  fs.chmodSync(folder, 0o755);
  const warnings: string[] = [];
  const again = await serve(t, datafile, TOKEN, { warn: warnings });
  assert.equal(mode(datafile), '600');
  assert.equal(mode(`${datafile}.journal`), '600');
  assert.ok(warnings.some((w) => w.includes(`${folder} is open to other users (mode 755)`)), warnings.join('\n'));
  assert.equal((await again.client.list('k/')).length, 100, 'the data is intact');
});
