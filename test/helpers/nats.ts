/**
 * Throwaway nats-server processes for tests: one server or a cluster of
 * several joined by routes, all on 127.0.0.1 with free ports, optional
 * token or user/password auth; kill -9, restart, stop. Every process started
 * here is killed when the test process exits, whatever happened.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Proc, uniqueFreePort } from './proc.js';

export const NATS_BIN = process.env['GAMEMESH_NATS_BIN'] ?? '/usr/sbin/nats-server';

/** Why NATS tests cannot run here, or undefined when they can. */
export function natsMissing(): string | undefined {
  try {
    fs.accessSync(NATS_BIN, fs.constants.X_OK);
    return undefined;
  } catch {
    return `nats-server is not installed at ${NATS_BIN} (apt-get install -y nats-server, or set GAMEMESH_NATS_BIN)`;
  }
}

export interface NatsOptions {
  token?: string;
  user?: string;
  pass?: string;
  readyTimeoutMs?: number;
  /** Client port of the first server (default: a free one). */
  port?: number;
}

const clusters = new Set<NatsCluster>();
process.once('exit', () => {
  for (const c of clusters) c.killSync();
});

export class NatsServer {
  proc: Proc | undefined;
  constructor(
    readonly name: string,
    readonly port: number,
    readonly clusterPort: number,
    private readonly args: readonly string[],
  ) {}

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  async start(timeoutMs: number): Promise<void> {
    this.proc = new Proc(`nats ${this.name}`, NATS_BIN, this.args);
    const deadline = Date.now() + timeoutMs;
    while (!/Server is ready/.test(this.proc.stderr)) {
      if (!this.proc.running) throw new Error(`nats-server ${this.name} exited: ${this.proc.stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`nats-server ${this.name} not ready within ${timeoutMs} ms: ${this.proc.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async kill9(): Promise<void> {
    await this.proc?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (!this.proc?.running) return;
    try {
      await this.proc.kill('SIGTERM', 3000);
    } catch {
      // escalated to SIGKILL
    }
  }
}

/** One server (size 1) or a full mesh of routed servers, all on 127.0.0.1. */
export class NatsCluster {
  private constructor(
    readonly servers: NatsServer[],
    readonly dir: string,
    private readonly readyTimeoutMs: number,
  ) {}

  static async start(size = 1, options: NatsOptions = {}): Promise<NatsCluster> {
    const missing = natsMissing();
    if (missing) throw new Error(missing);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gm-nats-'));
    const ports: { client: number; cluster: number }[] = [];
    for (let i = 0; i < size; i++) ports.push({ client: i === 0 && options.port ? options.port : await uniqueFreePort(), cluster: await uniqueFreePort() });
    const auth = options.token ? ['--auth', options.token] : options.user ? ['--user', options.user, '--pass', options.pass ?? ''] : [];
    const servers = ports.map((p, i) => {
      const routes = ports.filter((_, j) => j !== i).map((q) => `nats://127.0.0.1:${q.cluster}`).join(',');
      const clusterArgs = size > 1 ? ['--cluster_name', 'gm', '--cluster', `nats://127.0.0.1:${p.cluster}`, '--routes', routes] : [];
      const args = ['-a', '127.0.0.1', '-p', String(p.client), '--server_name', `n${i}`, '-P', path.join(dir, `n${i}.pid`), ...auth, ...clusterArgs];
      return new NatsServer(`n${i}`, p.client, p.cluster, args);
    });
    const cluster = new NatsCluster(servers, dir, options.readyTimeoutMs ?? 15_000);
    clusters.add(cluster);
    try {
      await Promise.all(servers.map((s) => s.start(cluster.readyTimeoutMs)));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** `nats://a,b,c`, as --hub takes it. */
  get url(): string {
    return `nats://${this.servers.map((s) => s.endpoint).join(',')}`;
  }

  server(i: number): NatsServer {
    const s = this.servers[i];
    if (!s) throw new Error(`no server ${i}`);
    return s;
  }

  /** kill -9, then start again on the same ports. */
  async restart(i = 0, downMs = 0): Promise<void> {
    const s = this.server(i);
    await s.kill9();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await s.start(this.readyTimeoutMs);
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
    clusters.delete(this);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  killSync(): void {
    for (const s of this.servers) {
      try {
        if (s.running) s.proc?.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
