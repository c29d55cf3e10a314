/**
 * The demo cluster (demo/cluster.json, as `npm start` runs it) for tests:
 * only the ports (free ones) and the data directory (a temp dir) differ.
 * Stopped and removed after the test.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, type Cluster, type ServiceInfo } from '../../src/up/supervisor.js';
import type { Defer } from './mesh.js';
import { freePort, ROOT } from './proc.js';

export interface Demo {
  readonly cluster: Cluster;
  /** The login's base URL. */
  readonly url: string;
  /** The data directory: discovery's files and the game's SQLite are in `${dir}/demo/`. */
  readonly dir: string;
  service(name: string): ServiceInfo;
  /** Everything the services printed so far. */
  output(): string;
}

export async function startDemo(defer: Defer, options: { env?: NodeJS.ProcessEnv; vars?: Readonly<Record<string, string>> } = {}): Promise<Demo> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gamemesh-demo-${process.pid}-`));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [sdPort, httpPort] = [await freePort(), await freePort()];
  let output = '';
  const cluster = startCluster(path.join(ROOT, 'demo', 'cluster.json'), {
    cwd: ROOT,
    vars: { sdaddr: `127.0.0.1:${sdPort}`, http: `127.0.0.1:${httpPort}`, dashboard: `127.0.0.1:${await freePort()}`, data: dir, ...options.vars },
    env: options.env,
    color: false,
    write: (s) => (output += s),
    restartDelayMs: 200,
    stopTimeoutMs: 5000,
  });
  defer(() => cluster.stop());
  await cluster.ready.catch((err: Error) => assert.fail(`${err.message}\n${output.slice(-3000)}`));
  return {
    cluster,
    url: `http://127.0.0.1:${httpPort}`,
    dir,
    service: (name) => cluster.services.find((s) => s.name === name) ?? assert.fail(`no service ${name}`),
    output: () => output,
  };
}
