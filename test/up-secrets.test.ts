/**
 * `"secrets"` in a cluster file: `gamemesh up` generates each secret on the
 * first start (0600, in a folder it makes 0700), reads it back on later
 * starts, gives it to every service, and says where it is; a file that
 * cannot serve is an error naming the field.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ClusterFileError, parseClusterFile, startCluster } from '../src/up/supervisor.js';
import { ROOT, tempDir, within } from './helpers/proc.js';

const SVC = 'dist/test/fixtures/up/svc.js';

test('a secret is made once, kept private, handed to every service and announced', { timeout: 20_000 }, async (t) => {
  const dir = tempDir(t, 'gamemesh-up-secrets-');
  const log = path.join(dir, 'events.log');
  const file = path.join(dir, 'cluster.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      name: 'sec',
      vars: { data: path.join(dir, 'data') },
      secrets: { GAMEMESH_TOKEN: '${data}/${name}/cluster.token' },
      services: [{ name: 'echo', run: ['node', SVC, '--name', 'echo', '--log', log, '--echo'], ready: 'is ready' }],
    }),
  );
  const tokenFile = path.join(dir, 'data', 'sec', 'cluster.token');
  const runOnce = async (): Promise<string> => {
    let out = '';
    const env = { ...process.env };
    delete env['GAMEMESH_TOKEN'];
    const cluster = startCluster(file, { cwd: ROOT, color: false, env, write: (s) => (out += s) });
    try {
      await within(cluster.ready, 10_000, 'the cluster to be ready');
    } finally {
      await cluster.stop();
    }
    return out;
  };

  const first = await runOnce();
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.equal((fs.statSync(tokenFile).mode & 0o777).toString(8), '600');
  assert.equal((fs.statSync(path.dirname(tokenFile)).mode & 0o777).toString(8), '700');
  assert.match(first, new RegExp(`^echo +\\| args=\\[\\] sdaddr=127\\.0\\.0\\.1:8900 token=${token} own=$`, 'm'), 'the service got it');
  assert.ok(first.includes(`cluster token: ${tokenFile} (new); gamemesh sd run from here finds it, elsewhere pass --tokenfile ${tokenFile}`), first);

  // Left readable by someone: made private again; the value is kept.
  fs.chmodSync(tokenFile, 0o644);
  const second = await runOnce();
  assert.equal(fs.readFileSync(tokenFile, 'utf8').trim(), token, 'the same token on the next start');
  assert.ok(second.includes(`cluster token: ${tokenFile};`) && !second.includes('(new)'), second);
  assert.equal((fs.statSync(tokenFile).mode & 0o777).toString(8), '600');

  fs.writeFileSync(tokenFile, '\n');
  assert.throws(() => startCluster(file, { cwd: ROOT, write: () => {} }), (e: unknown) => e instanceof ClusterFileError && /secrets\.GAMEMESH_TOKEN: cannot keep the secret in .*: the file is empty; delete it/.test(e.message));
});

test('secrets: bad names, a clash with env and an empty path are errors naming the field', () => {
  const base = { name: 'x', services: [{ name: 'a', run: ['true'] }] };
  const bad = (secrets: unknown, env: unknown, re: RegExp) =>
    assert.throws(() => parseClusterFile(JSON.stringify({ ...base, secrets, env })), (e: unknown) => e instanceof ClusterFileError && re.test(e.message), JSON.stringify(secrets));
  bad({ '1X': 'f' }, undefined, /secrets\.1X: an environment variable name/);
  bad({ T: 'f' }, { T: 'v' }, /secrets\.T: is also set in env/);
  bad({ T: '' }, undefined, /secrets\.T: must be the path/);
  bad(['f'], undefined, /secrets: must be an object of strings/);
});
