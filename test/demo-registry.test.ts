/**
 * The demo cluster as `npm start` runs it (demo/cluster.json through
 * startCluster; only ports and the data folder differ) seen by an operator:
 * every node at its own logical address in `gamemesh sd viewsvc`, a cluster
 * token generated on the first start and kept 0600 (which `gamemesh sd`
 * finds by itself), data files 0600 in a 0700 folder, `clearsvc` on the
 * live cluster followed by full re-registration within a second, and a
 * kill -9 of the hub followed by its restart under its own id.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { DiscoveryClient } from '../src/discovery/client.js';
import { DiscoveryError, type ServiceDesc } from '../src/discovery/types.js';
import { startDemo } from './helpers/demo.js';
import { cleanupStack } from './helpers/mesh.js';
import { BIN, waitFor } from './helpers/proc.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `gamemesh sd ...` run from `cwd`, without a token in its environment. */
function sdFrom(cwd: string, args: readonly string[]): Promise<Run> {
  const env = { ...process.env };
  delete env['GAMEMESH_TOKEN'];
  delete env['GAMEMESH_TOKEN_FILE'];
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'sd', ...args], { cwd, env, timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const NODES = ['agent#0@dev', 'agent#1@dev', 'arena#0@dev', 'game#0@dev', 'hub#0@dev', 'login#0@dev', 'social#0@dev'];

test('the demo cluster: distinct addresses, a generated token, private files, clearsvc and a hub crash survived', { timeout: 120_000 }, async (t: TestContext) => {
  const defer = cleanupStack(t);
  const env = { ...process.env };
  delete env['GAMEMESH_TOKEN'];
  const { cluster, url, dir: data, service, output } = await startDemo(defer, { env });
  const sdaddr = cluster.vars['sdaddr'] as string;
  // A folder to run `gamemesh sd` from, where data/ is the cluster's data folder, as in the package root after `npm start`.
  const top = fs.mkdtempSync(path.join(os.tmpdir(), `gamemesh-demo-registry-${process.pid}-`));
  defer(() => fs.rmSync(top, { recursive: true, force: true }));
  fs.symlinkSync(data, path.join(top, 'data'));

  // The token: generated, private, announced, and the only way in.
  const tokenFile = path.join(data, 'demo', 'cluster.token');
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  assert.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes');
  assert.equal(mode(tokenFile), '600');
  assert.match(output(), new RegExp(`cluster token: ${tokenFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(new\\)`));
  for (const wrong of ['demo-cluster-secret-change-me', undefined]) {
    await assert.rejects(DiscoveryClient.connect({ addr: sdaddr, token: wrong, connectTimeoutMs: 3000 }), (e: unknown) => e instanceof DiscoveryError && e.code === 'unauthorized', `token ${String(wrong)}`);
  }

  // Data files: 0600 in a 0700 folder.
  assert.equal(mode(path.join(data, 'demo')), '700');
  for (const f of ['discovery.db.journal', 'game.sqlite', 'game.sqlite-wal']) {
    const file = path.join(data, 'demo', f);
    if (f !== 'game.sqlite-wal' || fs.existsSync(file)) assert.equal(mode(file), '600', f);
  }

  // `gamemesh sd` run where the cluster was started finds the token; elsewhere it says where to look.
  const view = await sdFrom(top, ['--addr', sdaddr, 'viewsvc']);
  assert.equal(view.code, 0, view.stderr);
  assert.equal(view.stderr, 'gamemesh sd: using the cluster token in data/demo/cluster.token\n');
  const rows = view.stdout.trim().split('\n').map((line) => line.split('\t'));
  const addrs = new Map(rows.map((r) => [r[1] as string, (JSON.parse(r[3] as string) as Record<string, string>)['addr'] as string]));
  assert.deepEqual([...addrs.keys()].sort(), NODES);
  assert.equal(new Set(addrs.values()).size, NODES.length, `every node has its own logical address: ${JSON.stringify(Object.fromEntries(addrs))}`);
  assert.deepEqual(['agent#0@dev', 'agent#1@dev', 'hub#0@dev', 'login#0@dev'].map((id) => addrs.get(id)), ['1.1.0', '1.1.1', '1.2.0', '1.3.0'], 'the well-known types');
  for (const id of ['arena#0@dev', 'game#0@dev', 'social#0@dev']) assert.ok(Number(addrs.get(id)?.split('.')[1]) >= 16, `${id}: ${addrs.get(id)}`);
  const lost = await sdFrom(os.tmpdir(), ['--addr', sdaddr, 'viewsvc']);
  assert.equal(lost.code, 2);
  assert.match(lost.stderr, /^gamemesh sd: this server requires a token: pass --token, set GAMEMESH_TOKEN, or --tokenfile FILE; gamemesh up keeps a generated token in the cluster's data folder, e.g. data\/demo\/cluster.token\n$/);

  // clearsvc on the live cluster: everything registers again within a second, and login works at once.
  const d = await DiscoveryClient.connect({ addr: sdaddr, token });
  defer(() => d.close());
  const removed = new Set<string>();
  const sw = await d.watchServices(undefined, { onEvent: (e) => e.type === 'remove' && removed.add(e.desc.id) });
  defer(() => sw.stop());
  const cleared = await sdFrom(top, ['--addr', sdaddr, 'clearsvc']);
  assert.equal(cleared.code, 0, cleared.stderr);
  assert.equal(cleared.stdout, `deleted ${NODES.length} service(s); live ones register again by themselves\n`);
  const t0 = Date.now();
  await waitFor(() => removed.size === NODES.length && sw.list().length === NODES.length, 1000, 'every node removed, then registered again within 1 s', 5);
  t.diagnostic(`all ${NODES.length} nodes registered again ${Date.now() - t0} ms after clearsvc returned`);
  const res = await fetch(`${url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account: 'after-clear', password: 'test-password' }) });
  assert.equal(res.status, 200, await res.text());

  // kill -9 of the hub: gamemesh up restarts it, and it takes its id and address back once the old registration expires.
  const hub = service('hub');
  const before = sw.get('hub#0@dev') as ServiceDesc;
  process.kill(hub.pid as number, 'SIGKILL');
  await waitFor(() => hub.restarts === 1 && hub.state === 'ready', 20_000, 'the supervisor to restart the hub');
  await waitFor(() => sw.get('hub#0@dev')?.port !== before.port && sw.get('hub#0@dev') !== undefined, 10_000, 'the new hub registered');
  assert.equal(sw.get('hub#0@dev')?.meta['addr'], '1.2.0');
  assert.ok(cluster.services.every((s) => s.name === 'hub' || s.restarts === 0), 'nothing else restarted');
});
