/**
 * examples/clusters with real processes (`npm run example:clusters`): three
 * clusters with their own discoveries, cluster 2's on etcd; four harbor
 * processes and a center, also on etcd; game clients of clusters 1 and 2,
 * each on its cluster's agent, meet in the exported battle of cluster 3; a
 * whisper crosses clusters through the harbors and reaches the other
 * player as a push; one of cluster 1's two harbors is killed with SIGKILL
 * and the next whisper goes through the other within a second.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { EtcdCluster, etcdMissing } from './helpers/etcd.js';
import { cleanupStack } from './helpers/mesh.js';
import { ROOT } from './helpers/proc.js';

const missing = etcdMissing();

if (missing && process.env['CI']) {
  test('etcd is installed (required when CI is set)', () => assert.fail(missing));
} else {
  test('the clusters example: exported battle found by type from two clusters, whispers through harbors, kill -9 of a harbor', { timeout: 90_000, skip: missing }, async (t) => {
    const defer = cleanupStack(t);
    const etcd = await EtcdCluster.start(1);
    defer(() => etcd.stop());
    const endpoint = (etcd.endpoints[0] as string).replace(/^https?:\/\//, '');
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [path.join(ROOT, 'dist', 'examples', 'clusters', 'run.js'), '--etcd', endpoint], { cwd: ROOT, timeout: 80_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
      defer(() => child.kill('SIGKILL'));
    });
    assert.equal(code, 0, `the example exits 0\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`);
    assert.match(stdout, /cluster 2's discovery: etcd:\/\/\S+; the harbors' center: etcd:\/\//);
    assert.match(stdout, /ok: both players are in the exported battle 3\.20\.1/);
    assert.match(stdout, /ok: they meet: the roster is alice, bob/);
    assert.match(stdout, /ok: alice \(cluster 1\) -> game 1\.10\.1 -> harbors -> game 2\.10\.1 -> bob \(cluster 2\): alice: hello from cluster 1/);
    const m = /killed with SIGKILL; the next whisper went through the other harbor in (\d+) ms/.exec(stdout);
    assert.ok(m && Number(m[1]) < 1000, 'failover within 1 s');
    assert.match(stdout, /clusters example: done/);
  });
}
