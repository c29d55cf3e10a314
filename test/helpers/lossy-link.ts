/**
 * The delaying, lossy IP relay (bench/fixtures/lossy-link.c, compiled at run
 * time with the machine's C compiler) and its stdin/stdout line protocol.
 * Used by the KCP bench and by the multi-host test's added latency: this
 * kernel has no `tc netem`, and a TUN relay delays real IP packets, so TCP
 * and the cluster see a slow link, not a user-space proxy's stream.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { findCompiler } from './kcp.js';
import { ROOT } from './proc.js';

const run = promisify(execFile);

/** Compiles the relay into `dir`; returns the binary's path. */
export async function buildLossyLink(dir: string): Promise<string> {
  const cc = await findCompiler();
  if (!cc) throw new Error('no C compiler (cc or gcc) to build bench/fixtures/lossy-link.c; .ci/run installs gcc');
  const out = path.join(dir, 'lossy-link');
  await run(cc, ['-O2', '-o', out, path.join(ROOT, 'bench', 'fixtures', 'lossy-link.c')]);
  return out;
}

/** A running relay (`lossy-link DEV_A DEV_B SEED`) and its line protocol. */
export class LossyLink {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  readonly exited: Promise<void>;

  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      this.lines.push(l);
      this.waiter?.();
    });
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  }

  /** The next output line starting with `prefix` (taken), within the deadline. */
  async next(prefix: string, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return this.lines.splice(i, 1)[0] as string;
      if (Date.now() > deadline || this.proc.exitCode !== null) throw new Error(`lossy-link: no "${prefix}" line (${this.lines.join(' | ')})`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  async cmd(line: string, answer: string): Promise<string> {
    this.proc.stdin?.write(`${line}\n`);
    return this.next(answer);
  }

  /** [packets, bytes, dropped] each way since the last reset: first device to second, second to first. */
  async stats(): Promise<{ cs: [number, number, number]; sc: [number, number, number] }> {
    const f = (await this.cmd('stats', 'stats ')).split(' ').slice(1).map(Number);
    return { cs: [f[0] ?? 0, f[1] ?? 0, f[2] ?? 0], sc: [f[3] ?? 0, f[4] ?? 0, f[5] ?? 0] };
  }

  /** Closes stdin (the relay exits and its devices go with it); SIGKILL if it lingers. */
  async close(timeoutMs = 3000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.stdin?.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}
