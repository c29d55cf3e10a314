/**
 * One service of a cluster as a child process: started, watched for its
 * ready line, restarted with backoff when it dies, stopped with SIGTERM and
 * then SIGKILL.
 *
 * Each child gets a process group of its own (detached), for two reasons: a
 * Ctrl+C in the terminal then reaches the supervisor only, which stops the
 * services in reverse order instead of all at once; and a signal to the
 * group also reaches whatever the service itself started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { formatLogLine, LineSplitter, type Printer } from './logs.js';
import type { ResolvedService } from './resolve.js';

/** Where a service of a running cluster is: pending, starting, ready, done (a oneshot), backoff, failed, stopped or skipped. */
export type ServiceState =
  | 'pending' // not started yet
  | 'starting' // running, ready line not seen yet
  | 'ready'
  | 'done' // a oneshot that exited 0
  | 'backoff' // died; restarting after a delay
  | 'failed' // failed to start; the cluster start is aborted
  | 'stopped'
  | 'skipped'; // not run in this configuration (discovery on etcd, the hub on NATS)

export interface Timing {
  readonly restartDelayMs: number;
  readonly maxRestartDelayMs: number;
  /** Up this long, a service has recovered: its next restart waits restartDelayMs again. */
  readonly stableAfterMs: number;
  readonly stopTimeoutMs: number;
}

/** What callers may look at. */
export interface ServiceInfo {
  readonly name: string;
  readonly state: ServiceState;
  /** Of the current (or last) process. */
  readonly pid: number | undefined;
  readonly restarts: number;
  /** The last lines of its output, stdout and stderr mixed. */
  lastLines(): string[];
}

const GROUPS = process.platform !== 'win32';
const TAIL = 20;
/** After 'exit', how long to wait for the output pipes to close (a grandchild may hold them). */
const CLOSE_GRACE_MS = 500;

export class ManagedService implements ServiceInfo {
  state: ServiceState;
  pid: number | undefined;
  restarts = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private spawnedAt = 0;
  private nextDelay: number;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly tail: string[] = [];
  private waiter: { resolve(): void; reject(err: Error): void } | undefined;

  constructor(
    readonly spec: ResolvedService,
    private readonly printer: Printer,
    private readonly timing: Timing,
    private readonly baseEnv: NodeJS.ProcessEnv,
    private readonly cwd: string,
  ) {
    this.state = spec.skip ? 'skipped' : 'pending';
    this.nextDelay = timing.restartDelayMs;
  }

  get name(): string {
    return this.spec.name;
  }

  lastLines(): string[] {
    return this.tail.map((line) => formatLogLine(line));
  }

  /**
   * Runs it; resolves once it is ready (its ready line; exit 0 for a
   * oneshot; at once without a ready pattern). Rejects with the reason if it
   * exits first or takes longer than timeoutMs, leaving it to the caller to
   * stop it.
   */
  start(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (fn: () => void) => {
        clearTimeout(timer);
        this.waiter = undefined;
        fn();
      };
      const what = this.spec.oneshot ? 'did not finish' : `was not ready${this.spec.ready ? ` (no stdout line matching ${this.spec.ready})` : ''}`;
      const timer = setTimeout(() => settle(() => reject(new Error(`${what} within ${seconds(timeoutMs)}`))), timeoutMs);
      this.waiter = { resolve: () => settle(resolve), reject: (err) => settle(() => reject(err)) };
      this.spawnChild();
    });
  }

  /** How the last process ended (`exited with code 0`), once it has. */
  lastExit: string | undefined;

  /** Resolves once the current process has exited. */
  whenExited(): Promise<void> {
    return this.exited;
  }

  /** A newer instance took over: no restart when this one exits by itself (it retires). */
  retire(): void {
    this.beginStop();
    this.printer.note(this.name, 'retiring: exits once its last client is gone (or after its --drain-max)');
  }

  /** No restarts from now on: the cluster is going down. */
  beginStop(): void {
    this.stopping = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state === 'backoff') this.state = 'stopped';
    this.waiter?.reject(new Error('stopped'));
  }

  /** SIGTERM to its process group, SIGKILL after stopTimeoutMs; resolves once it has exited. */
  async stop(): Promise<void> {
    this.beginStop();
    if (!this.child) return this.exited;
    this.printer.note(this.name, 'stopping');
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.timing.stopTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      this.printer.note(this.name, `did not stop within ${seconds(this.timing.stopTimeoutMs)} of SIGTERM; killing it`);
      this.signal('SIGKILL');
    }
    return this.exited;
  }

  /** SIGKILL now, without waiting. */
  kill(): void {
    this.beginStop();
    if (this.child) this.signal('SIGKILL');
  }

  private signal(sig: NodeJS.Signals): void {
    const child = this.child;
    if (!child?.pid) return;
    try {
      if (GROUPS) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch {
      // The group is gone already (or never formed): the process itself is all there is to signal.
      try {
        child.kill(sig);
      } catch {
        // gone
      }
    }
  }

  private spawnChild(): void {
    this.state = 'starting';
    this.spawnedAt = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(this.spec.command, this.spec.args, {
        cwd: this.cwd,
        env: { ...this.baseEnv, ...this.spec.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: GROUPS,
      });
    } catch (err) {
      // Bad arguments (a NUL byte, say) throw instead of failing like a missing program; handle both the same way.
      this.child = undefined;
      this.pid = undefined;
      this.exited = Promise.resolve();
      queueMicrotask(() => this.onExit(`could not be started: ${(err as Error).message}`, null, true));
      return;
    }
    this.child = child;
    this.pid = child.pid;
    const out = new LineSplitter((line) => this.onLine(line, true));
    const err = new LineSplitter((line) => this.onLine(line, false));
    child.stdout?.setEncoding('utf8').on('data', (s: string) => out.push(s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => err.push(s));
    child.once('spawn', () => {
      if (!this.spec.ready && !this.spec.oneshot && this.state === 'starting') this.becomeReady();
    });
    this.exited = new Promise((resolve) => {
      let code: number | null = null;
      let sig: NodeJS.Signals | null = null;
      let grace: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (failure?: string) => {
        if (done) return;
        done = true;
        clearTimeout(grace);
        out.end();
        err.end();
        if (this.child === child) this.child = undefined;
        this.onExit(failure ?? describeExit(code, sig), code, failure !== undefined);
        resolve();
      };
      child.once('error', (e) => {
        // Errors of a running child (a failed kill) change nothing; a spawn that failed never exits.
        if (child.pid === undefined) finish(`could not be started: ${e.message}`);
      });
      child.once('exit', (c, s) => {
        code = c;
        sig = s;
        grace = setTimeout(() => finish(), CLOSE_GRACE_MS);
      });
      child.once('close', () => finish());
    });
  }

  private onLine(line: string, stdout: boolean): void {
    this.tail.push(line);
    if (this.tail.length > TAIL) this.tail.shift();
    this.printer.line(this.name, line);
    if (stdout && this.state === 'starting' && this.spec.ready?.test(line)) this.becomeReady();
  }

  private becomeReady(): void {
    this.state = 'ready';
    if (this.waiter) this.printer.note(this.name, `ready in ${seconds(Date.now() - this.spawnedAt)}`);
    else this.printer.note(this.name, 'ready again');
    this.waiter?.resolve();
  }

  private onExit(how: string, code: number | null, neverRan: boolean): void {
    this.lastExit = how;
    if (this.stopping) {
      if (this.state !== 'done' && this.state !== 'failed') this.state = 'stopped';
      this.printer.note(this.name, `stopped (${how})`);
      return;
    }
    if (this.spec.oneshot && code === 0) {
      this.state = 'done';
      this.printer.note(this.name, `done in ${seconds(Date.now() - this.spawnedAt)}`);
      this.waiter?.resolve();
      return;
    }
    if (code === 0 && !this.waiter && !this.spec.oneshot) {
      // A service that ends cleanly by itself was told to (it retired, or POST /stop on its admin port): bringing it back would undo that.
      this.state = 'stopped';
      this.printer.note(this.name, `${how} by itself (retired, or stopped over its admin port); not restarted`);
      return;
    }
    if (this.waiter || this.spec.oneshot) {
      // During the cluster's start a failure is reported, not retried: it is most likely a mistake to fix.
      this.state = 'failed';
      this.waiter?.reject(new Error(this.spec.oneshot || neverRan ? how : `${how} before it was ready`));
      return;
    }
    if (Date.now() - this.spawnedAt >= this.timing.stableAfterMs) this.nextDelay = this.timing.restartDelayMs;
    const delay = this.nextDelay;
    this.nextDelay = Math.min(this.nextDelay * 2, this.timing.maxRestartDelayMs);
    this.state = 'backoff';
    this.printer.note(this.name, `${how}; restarting in ${seconds(delay)}`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.restarts++;
      this.spawnChild();
    }, delay);
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${String(code)}`;
}

/** `1s`, `0.3s`, `12.5s`: the resolution people read in logs. */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}
