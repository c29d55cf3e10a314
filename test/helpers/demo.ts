/**
 * The demo cluster as `npm start` runs it (demo/cluster.json through
 * startCluster), on free ports and with its data under `data`: only those
 * differ. Stopped after the test.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { startCluster, type Cluster } from '../../src/up/supervisor.js';
import type { Defer } from './mesh.js';
import { freePort, ROOT } from './proc.js';

export interface Demo {
  readonly cluster: Cluster;
  readonly sdaddr: string;
  readonly httpPort: number;
  /** Everything the supervisor printed so far. */
  output(): string;
}

export async function startDemo(defer: Defer, data: string, env: NodeJS.ProcessEnv = process.env): Promise<Demo> {
  const [sdPort, httpPort] = [await freePort(), await freePort()];
  const sdaddr = `127.0.0.1:${sdPort}`;
  let output = '';
  const cluster = startCluster(path.join(ROOT, 'demo', 'cluster.json'), {
    cwd: ROOT,
    vars: { sdaddr, http: `127.0.0.1:${httpPort}`, data },
    env,
    color: false,
    write: (s) => (output += s),
    restartDelayMs: 200,
    stopTimeoutMs: 5000,
  });
  defer(() => cluster.stop());
  await cluster.ready.catch((err: Error) => assert.fail(`${err.message}\n${output.slice(-3000)}`));
  return { cluster, sdaddr, httpPort, output: () => output };
}
