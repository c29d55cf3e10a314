/**
 * The demo cluster (demo/cluster.json, as `npm start` runs it) on free ports
 * with its data in a directory of the test's. The discovery and login ports
 * are picked (freePort) before the cluster starts, and the cluster's own
 * services then bind a dozen OS-picked ports of their own (agents' client
 * ports, links): one of those can take a picked port before login binds it.
 * That start is retried on fresh ports and a fresh data directory.
 */
import path from 'node:path';
import { startCluster, type Cluster, type StartOptions } from '../../src/up/supervisor.js';
import { freePort, ROOT } from './proc.js';

export interface DemoCluster {
  cluster: Cluster;
  sdPort: number;
  httpPort: number;
}

export async function startDemoCluster(dataDir: string, options: Omit<StartOptions, 'vars' | 'cwd'> = {}, attempts = 3): Promise<DemoCluster> {
  for (let attempt = 1; ; attempt++) {
    const sdPort = await freePort();
    let httpPort = await freePort();
    while (httpPort === sdPort) httpPort = await freePort();
    let dashPort = await freePort();
    while (dashPort === sdPort || dashPort === httpPort) dashPort = await freePort();
    const cluster = startCluster(path.join(ROOT, 'demo', 'cluster.json'), {
      ...options,
      cwd: ROOT,
      vars: { sdaddr: `127.0.0.1:${sdPort}`, http: `127.0.0.1:${httpPort}`, dashboard: `127.0.0.1:${dashPort}`, data: path.join(dataDir, `start-${attempt}`) },
    });
    try {
      await cluster.ready;
      return { cluster, sdPort, httpPort };
    } catch (err) {
      await cluster.stop();
      if (attempt >= attempts || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}
