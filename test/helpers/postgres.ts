/**
 * A throwaway PostgreSQL cluster for tests: initdb in a temp dir, postgres
 * on 127.0.0.1 with a free port (TCP only: no unix socket), a
 * password-protected role; kill -9 and restart on the same data; stop and
 * remove. As root it runs as the `postgres` user (postgres refuses root).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, Proc } from './proc.js';

export const PG_BIN = process.env['GAMEMESH_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresMissing(): string | undefined {
  try {
    for (const b of ['initdb', 'postgres']) fs.accessSync(path.join(PG_BIN, b), fs.constants.X_OK);
  } catch {
    return `PostgreSQL 15 is not installed in ${PG_BIN} (apt-get install -y postgresql, or set GAMEMESH_PG_BIN)`;
  }
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    } catch {
      return 'running as root, and there is no postgres user to run PostgreSQL as';
    }
  }
  return undefined;
}

const live = new Set<PgCluster>();
process.once('exit', () => {
  for (const c of live) c.killSync();
});

/** As root: the same command as the postgres user. */
function asOwner(bin: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

export class PgCluster {
  proc: Proc | undefined;
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly user: string,
    readonly password: string,
    readonly host: string,
    private readonly netns: string | undefined,
  ) {}

  /** `host`/`port`: where it listens (default 127.0.0.1, a free port); `netns`: the network namespace it runs in. */
  static async start(options: { host?: string; port?: number; netns?: string } = {}): Promise<PgCluster> {
    const missing = postgresMissing();
    if (missing) throw new Error(missing);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gm-pg-'));
    const data = path.join(dir, 'data');
    const pwfile = path.join(dir, 'pw');
    const password = `pw-${Math.random().toString(36).slice(2)}`;
    fs.writeFileSync(pwfile, password);
    if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres', dir]);
    const [cmd, args] = asOwner(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'gamemesh', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--no-sync']);
    execFileSync(cmd, args, { stdio: 'pipe' });
    // initdb allows loopback only; a server on a test network also takes clients of its own subnet (with the password).
    fs.appendFileSync(path.join(data, 'pg_hba.conf'), 'host all all samenet scram-sha-256\n');
    const cluster = new PgCluster(dir, options.port ?? (await freePort()), 'gamemesh', password, options.host ?? '127.0.0.1', options.netns);
    live.add(cluster);
    try {
      await cluster.startServer();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** postgres://gamemesh@127.0.0.1:port/postgres (the password is in `password`, for PGPASSWORD). */
  get url(): string {
    return `postgres://${this.user}:${encodeURIComponent(this.password)}@${this.host}:${this.port}/postgres`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  async startServer(timeoutMs = 20_000): Promise<void> {
    const args = ['-D', path.join(this.dir, 'data'), '-h', this.host, '-p', String(this.port), '-c', 'unix_socket_directories=', '-c', 'fsync=on', '-c', 'synchronous_commit=on', '-c', 'max_connections=40'];
    const [cmd, full] = asOwner(path.join(PG_BIN, 'postgres'), args);
    this.proc = this.netns ? new Proc('postgres', 'ip', ['netns', 'exec', this.netns, cmd, ...full]) : new Proc('postgres', cmd, full);
    const deadline = Date.now() + timeoutMs;
    while (!/ready to accept connections/.test(this.proc.stderr)) {
      if (!this.proc.running) throw new Error(`postgres exited: ${this.proc.stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`postgres not ready within ${timeoutMs} ms: ${this.proc.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** kill -9 of the postmaster and its backends (runuser passes the signal on). */
  /** The postmaster's own pid (under runuser, the child of the process we spawned). */
  private postmaster(): number {
    const pidFile = path.join(this.dir, 'data', 'postmaster.pid');
    return fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]) : 0;
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.postmaster();
    try {
      if (pid > 0) process.kill(pid, sig);
    } catch {
      // gone
    }
  }

  async kill9(): Promise<void> {
    this.signal('SIGKILL');
    await this.proc?.kill('SIGKILL');
    // Under runuser the dead postmaster is nobody's child here, and a container's init may never reap it:
    // its pid would look alive to the next start. It is dead, so its lock file goes.
    fs.rmSync(path.join(this.dir, 'data', 'postmaster.pid'), { force: true });
    // Backends notice the postmaster is gone and exit; the next start waits for their shared memory.
    await new Promise((r) => setTimeout(r, 300));
  }

  async stop(): Promise<void> {
    if (this.proc?.running) {
      // SIGINT: fast shutdown; the spawned runuser exits with it.
      this.signal('SIGINT');
      const exited = await Promise.race([this.proc.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
      if (!exited) {
        this.signal('SIGKILL');
        await this.proc.kill('SIGKILL');
      }
    }
    live.delete(this);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  killSync(): void {
    this.signal('SIGKILL');
    try {
      if (this.proc?.running) this.proc.child.kill('SIGKILL');
    } catch {
      // gone
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
