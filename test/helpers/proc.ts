/**
 * Helpers for tests that run real processes on real sockets: spawn the
 * discovery server (or any script) and wait for it to be ready, kill it,
 * temp dirs, free ports, polling with a deadline. Every process spawned here
 * is also killed when the test process exits, whatever happened.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DiscoveryClient, type DiscoveryClientOptions } from '../../src/discovery/client.js';

/** The package root (this file runs as dist/test/helpers/proc.js). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'gamemesh.js');
/** Compiled fixture scripts (test/fixtures/x.ts -> dist/test/fixtures/x.js). */
export const FIXTURES = path.join(ROOT, 'dist', 'test', 'fixtures');

/** Anything with t.after: a TestContext, or the suite-level hooks' equivalent. */
export type Cleanup = Pick<TestContext, 'after'>;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned process with its output collected and its exit observable. */
export class Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  private out = '';
  private err = '';
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly label: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.child = spawn(command, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.child);
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      this.out += s;
      this.changed();
    });
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.err += s;
      this.changed();
    });
    // The child may exit before we write to it; that is not a test failure by itself.
    this.child.stdin?.on('error', () => {});
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once('error', (err) => {
        this.err += `\n[spawn error: ${err.message}]`;
        this.exit ??= { code: null, signal: null };
        live.delete(this.child);
        this.changed();
        resolve(this.exit);
      });
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this.child);
        this.changed();
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`${this.label} has no pid (spawn failed): ${this.err}`);
    return pid;
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get running(): boolean {
    return this.exit === undefined && this.child.pid !== undefined;
  }

  private changed(): void {
    for (const fn of [...this.listeners]) fn();
  }

  /**
   * Resolves with the first match of `re` in everything printed on stdout so
   * far; rejects if the process exits first or the deadline passes.
   */
  waitForStdout(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        fn();
      };
      const check = () => {
        const m = re.exec(this.out);
        if (m) return done(() => resolve(m));
        if (this.exit) {
          return done(() => reject(new Error(`${this.label} exited (${describeExit(this.exit as Exit)}) before printing ${re}\nstdout: ${this.out}\nstderr: ${tail(this.err)}`)));
        }
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`${this.label} did not print ${re} within ${timeoutMs} ms\nstdout: ${this.out}\nstderr: ${tail(this.err)}`))),
        timeoutMs,
      );
      this.listeners.add(check);
      check();
    });
  }

  /** Sends `signal` (if still running) and waits for the exit; escalates to SIGKILL after timeoutMs. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 5000): Promise<Exit> {
    if (this.running) this.child.kill(signal);
    if (this.child.pid === undefined) return this.exited;
    let timer: NodeJS.Timeout | undefined;
    const escalated = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (escalated) {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`${this.label} did not exit within ${timeoutMs} ms of ${signal}; killed it\nstderr: ${tail(this.err)}`);
    }
    return this.exited;
  }

  /** Kill without waiting for a verdict: for cleanup hooks. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

function describeExit(e: Exit): string {
  return e.signal ? `signal ${e.signal}` : `code ${String(e.code)}`;
}

function tail(s: string, lines = 20): string {
  return s.split('\n').slice(-lines).join('\n');
}

/** Runs `node script ...args`; the process is killed after the test. */
export function spawnNode(t: Cleanup, script: string, args: readonly string[], label = path.basename(script)): Proc {
  const proc = new Proc(label, process.execPath, [script, ...args]);
  t.after(() => proc.stop());
  return proc;
}

export interface DiscoveryStartOptions {
  /** 0 (default) lets the server pick; the real port is read from its ready line. */
  port?: number;
  datafile?: string;
  token?: string;
  graceMs?: number;
  readyTimeoutMs?: number;
}

export class DiscoveryProc extends Proc {
  host = '';
  port = 0;

  get addr(): string {
    return `${this.host}:${this.port}`;
  }

  /** JSON log lines printed on stderr so far. */
  logs(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line still being written
      }
    }
    return out;
  }
}

/** Spawns `gamemesh discovery` and resolves once it prints its listening line. */
export async function startDiscovery(t: Cleanup, options: DiscoveryStartOptions = {}): Promise<DiscoveryProc> {
  const args = [BIN, 'discovery', '--addr', `127.0.0.1:${options.port ?? 0}`];
  if (options.datafile !== undefined) args.push('--datafile', options.datafile);
  if (options.token !== undefined) args.push('--token', options.token);
  if (options.graceMs !== undefined) args.push('--grace-ms', String(options.graceMs));
  const env = { ...process.env };
  delete env['GAMEMESH_TOKEN'];
  const proc = new DiscoveryProc('discovery', process.execPath, args, env);
  t.after(() => proc.stop());
  try {
    const m = await proc.waitForStdout(/discovery listening on (\S+):(\d+)\n/, options.readyTimeoutMs ?? 10_000);
    proc.host = m[1] as string;
    proc.port = Number(m[2]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

/** A DiscoveryClient closed after the test. */
export async function connectClient(t: Cleanup, options: DiscoveryClientOptions): Promise<DiscoveryClient> {
  const client = await DiscoveryClient.connect({ connectTimeoutMs: 5000, requestTimeoutMs: 5000, ...options });
  t.after(() => client.close());
  return client;
}

/** A fresh directory under the OS temp dir, removed after the test. */
export function tempDir(t: Cleanup, prefix = 'gamemesh-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A port that was free a moment ago (listen on 0, close, reuse the number). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const handedOut = new Set<number>();
/**
 * A free port never handed out before in this process: a server that took one
 * port and closed it again cannot be given the same number for another role.
 */
export async function uniqueFreePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (!handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error('no free port');
}

/** Polls `predicate` until it holds; rejects with `what` after timeoutMs. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what = 'condition', intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (true) {
    try {
      if (await predicate()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Rejects if `p` does not settle within ms. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface CliResult {
  /** Exit code; null when killed (by the timeout or a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/gamemesh.js ...args` to completion (killed after timeoutMs). */
export function runCli(args: readonly string[], timeoutMs = 10_000): Promise<CliResult> {
  const env = { ...process.env };
  delete env['GAMEMESH_TOKEN'];
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (child.pid !== undefined) live.delete(child);
      if (err && typeof err.code !== 'number' && !err.signal) {
        reject(err);
        return;
      }
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, signal: err?.signal ?? null, stdout, stderr });
    });
    live.add(child);
  });
}
