/**
 * Throwaway etcd processes for tests: one member or a three-member cluster on
 * 127.0.0.1 with free client and peer ports and a temp data dir, started and
 * waited on until healthy; kill -9 and restart on the same data (or a wiped
 * one); stop. Every process started here is killed when the test process
 * exits, also after a failed test or on SIGINT/SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Proc, uniqueFreePort } from './proc.js';

export const ETCD_BIN = process.env['GAMEMESH_ETCD_BIN'] ?? '/usr/bin/etcd';

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdMissing(): string | undefined {
  try {
    fs.accessSync(ETCD_BIN, fs.constants.X_OK);
    return undefined;
  } catch {
    return `etcd is not installed at ${ETCD_BIN} (apt-get install -y etcd-server, or set GAMEMESH_ETCD_BIN)`;
  }
}

const clusters = new Set<EtcdCluster>();
function killAllNow(): void {
  for (const c of clusters) c.killSync();
}
process.once('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAllNow();
    process.kill(process.pid, sig);
  });
}

export interface EtcdOptions {
  /** Raft heartbeat and election timeout (ms): short, so restarts and failovers take well under a second. */
  heartbeatMs?: number;
  electionMs?: number;
  /** Extra flags for every member (e.g. TLS). */
  extraArgs?: readonly string[];
  /** Scheme of the client URLs (`https` with TLS flags). */
  clientScheme?: 'http' | 'https';
  readyTimeoutMs?: number;
}

export class EtcdMember {
  proc: Proc | undefined;

  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly metricsPort: number,
    readonly dataDir: string,
    private readonly args: readonly string[],
    private readonly scheme: 'http' | 'https',
  ) {}

  /** `127.0.0.1:port`, as EtcdDiscovery takes it. */
  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get clientUrl(): string {
    return `${this.scheme}://${this.endpoint}`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  spawn(): void {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_')) env[k] = v;
    this.proc = new Proc(`etcd ${this.name}`, ETCD_BIN, this.args, env);
  }

  async kill9(): Promise<void> {
    await this.proc?.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.proc?.running) return;
    try {
      await this.proc.kill('SIGTERM', graceMs);
    } catch {
      // escalated to SIGKILL by Proc.kill
    }
  }

  wipe(): void {
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Polls /health (on the plain-HTTP metrics listener, also under TLS) until etcd has a leader and no alarm. */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`etcd ${this.name} exited (${JSON.stringify(this.proc?.exit)})\n${tail(this.proc?.stderr ?? '')}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.metricsPort}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
        last = JSON.stringify(body);
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`etcd ${this.name} not healthy within ${timeoutMs} ms (last: ${last})\n${tail(this.proc?.stderr ?? '')}`);
  }

  /** This member's id and the leader's id as it sees them (grpc-gateway JSON; plain HTTP only). */
  async status(): Promise<{ memberId: string; leader: string }> {
    const res = await fetch(`${this.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
    return { memberId: body.header?.member_id ?? '', leader: body.leader ?? '' };
  }
}

/** One etcd member (size 1) or a cluster of several, all on 127.0.0.1. */
export class EtcdCluster {
  private constructor(
    readonly members: EtcdMember[],
    readonly dir: string,
    private readonly readyTimeoutMs: number,
  ) {}

  static async start(size = 1, options: EtcdOptions = {}): Promise<EtcdCluster> {
    const missing = etcdMissing();
    if (missing) throw new Error(missing);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gm-etcd-'));
    const scheme = options.clientScheme ?? 'http';
    const ports: { client: number; peer: number; metrics: number }[] = [];
    for (let i = 0; i < size; i++) ports.push({ client: await uniqueFreePort(), peer: await uniqueFreePort(), metrics: await uniqueFreePort() });
    const initialCluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
    const token = `gm-${randomBytes(4).toString('hex')}`;
    const members = ports.map((p, i) => {
      const dataDir = path.join(dir, `m${i}`);
      const args = [
        '--name', `m${i}`,
        '--data-dir', dataDir,
        '--listen-client-urls', `${scheme}://127.0.0.1:${p.client}`,
        '--advertise-client-urls', `${scheme}://127.0.0.1:${p.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${p.peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
        '--listen-metrics-urls', `http://127.0.0.1:${p.metrics}`,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        '--heartbeat-interval', String(options.heartbeatMs ?? 50),
        '--election-timeout', String(options.electionMs ?? 500),
        '--logger', 'zap',
        '--log-level', 'error',
        '--log-outputs', 'stderr',
        ...(options.extraArgs ?? []),
      ];
      return new EtcdMember(`m${i}`, p.client, p.peer, p.metrics, dataDir, args, scheme);
    });
    const cluster = new EtcdCluster(members, dir, options.readyTimeoutMs ?? 15_000);
    clusters.add(cluster);
    try {
      for (const m of members) m.spawn();
      await Promise.all(members.map((m) => m.waitHealthy(cluster.readyTimeoutMs)));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  member(i: number): EtcdMember {
    const m = this.members[i];
    if (!m) throw new Error(`no member ${i}`);
    return m;
  }

  /** kill -9, then start again on the same data dir (or a wiped one), and wait until healthy. */
  async restart(i = 0, opts: { wipe?: boolean; downMs?: number } = {}): Promise<void> {
    const m = this.member(i);
    await m.kill9();
    if (opts.wipe) m.wipe();
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    await this.startMember(i);
  }

  async startMember(i: number): Promise<void> {
    const m = this.member(i);
    m.spawn();
    await m.waitHealthy(this.readyTimeoutMs);
  }

  /** Index of the current leader, asked of the running members. */
  async leaderIndex(): Promise<number> {
    const all = await Promise.all(this.members.map((m) => (m.running ? m.status().catch(() => undefined) : undefined)));
    const leader = all.find((s) => s && s.leader && s.leader !== '0')?.leader;
    const idx = all.findIndex((s) => s !== undefined && s.memberId === leader);
    if (idx < 0) throw new Error(`no running member knows a leader (${JSON.stringify(all)})`);
    return idx;
  }

  /** Waits until every running member reports healthy (a leader exists). */
  async waitHealthy(timeoutMs = this.readyTimeoutMs): Promise<void> {
    await Promise.all(this.members.filter((m) => m.running).map((m) => m.waitHealthy(timeoutMs)));
  }

  async stop(): Promise<void> {
    // A leader stopped while its followers run first tries to hand leadership over (seconds, when they are
    // stopping too): stop the followers, then the leader.
    const leader = this.members.filter((m) => m.running).length > 1 ? await this.leaderIndex().catch(() => -1) : -1;
    await Promise.all(this.members.filter((_, i) => i !== leader).map((m) => m.stop(leader >= 0 ? 5000 : 1500)));
    if (leader >= 0) await this.member(leader).stop();
    clusters.delete(this);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** For the exit hook: no waiting. */
  killSync(): void {
    for (const m of this.members) {
      try {
        if (m.running) m.proc?.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function tail(s: string, lines = 15): string {
  return s.split('\n').slice(-lines).join('\n');
}
