/**
 * Helpers for the networked benches (discovery, rpc): a closed-loop load
 * driver with latency percentiles, child processes that are always stopped,
 * a raw framed echo client (the ceiling the frameworks are compared with),
 * and a CPU-load probe for the run notes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { encodeFrame, FrameDecoder } from '../src/wire/frame.js';
import { DEFAULT_MS } from './lib.js';

/** The package root (this file runs as dist/bench/harness.js). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Compiled bench fixtures (bench/fixtures/*.ts). */
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** Measured time of one load case; `BENCH_MS` scales it like the other benches (default 1000 -> 2 s). */
export const LOAD_MS = Math.round(DEFAULT_MS * 2);

export interface LoadResult {
  /** Completed calls per second in the measured window. */
  readonly ops: number;
  readonly calls: number;
  /** Every call completed, warm-up included (for CPU per call). */
  readonly total: number;
  /** Latency percentiles in milliseconds. */
  readonly p50: number;
  readonly p99: number;
}

/** Sorted-array percentile (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function sortedCopy(values: readonly number[]): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * Closed-loop load: `inflight` workers each await `issue()` back to back.
 *
 * Warm-up lasts at least `warmMs` and until 2 x `inflight` calls have
 * completed, so JIT, connection set-up and the first burst are left out; a
 * system that answers a deep pipeline in bursts (grpc-js completes its 1,000
 * streams in batches) is thus measured from one burst to a later one. The
 * measured window then lasts at least `ms` and until 3 x `inflight` calls
 * have completed in it (both phases give up waiting for calls after
 * MAX_PHASE_MS). The rate and the latencies count only calls that complete
 * inside the window.
 */
export async function drive(issue: (i: number) => Promise<unknown>, inflight: number, ms: number = LOAD_MS, warmMs: number = Math.max(200, ms / 4)): Promise<LoadResult> {
  const start = performance.now();
  let measureFrom = Infinity;
  let end = Infinity;
  let completed = 0;
  let inWindow = 0;
  const latencies: number[] = [];
  let n = 0;
  const worker = async (): Promise<void> => {
    while (end === Infinity) {
      const t0 = performance.now();
      await issue(n++);
      const t1 = performance.now();
      completed++;
      if (measureFrom === Infinity) {
        if ((t1 - start >= warmMs && completed >= 2 * inflight) || t1 - start >= MAX_PHASE_MS) measureFrom = t1;
        continue;
      }
      if (end !== Infinity) continue;
      latencies.push(t1 - t0);
      inWindow++;
      if ((t1 - measureFrom >= ms && inWindow >= 3 * inflight) || t1 - measureFrom >= MAX_PHASE_MS) end = t1;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const sorted = sortedCopy(latencies);
  return { ops: (inWindow * 1000) / (end - measureFrom), calls: inWindow, total: completed, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** Upper bound on either phase of drive() when calls complete too slowly. */
const MAX_PHASE_MS = 15_000;

/** How drive() windows were chosen, for the notes under a table. */
export function driveNote(ms: number = LOAD_MS): string {
  const s = (v: number): string => (v / 1000).toFixed(1);
  return `each case: a warm-up of at least ${s(Math.max(200, ms / 4))} s and 2 x the calls in flight, then a measured window of at least ${s(ms)} s and 3 x the calls in flight; only calls completing in the window count`;
}

// ---- child processes ------------------------------------------------------

export interface Child {
  readonly proc: ChildProcess;
  /** The regexp match of the line that announced readiness. */
  readonly ready: RegExpMatchArray;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
/** CPU time used by child processes stopped so far (ms). */
let childCpuMs = 0;
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * Starts `node <args>` and resolves when a stdout line matches `readyLine`.
 * stdout and stderr are drained (stderr is kept for error messages).
 * `execArgv` go before the script (e.g. `--cpu-prof`); `prefix` is a command
 * that execs node (e.g. `ip netns exec NAME`). stop() closes stdin,
 * sends SIGTERM, and SIGKILLs after 5 s.
 */
export function startNode(args: readonly string[], readyLine: RegExp, options: { execArgv?: readonly string[]; timeoutMs?: number; prefix?: readonly string[] } = {}): Promise<Child> {
  const nodeArgs = [...(options.execArgv ?? []), ...args];
  // `prefix` runs node through another command that execs it, e.g. `ip netns exec NAME`.
  const [cmd, ...cmdArgs] = options.prefix && options.prefix.length > 0 ? [...options.prefix, process.execPath, ...nodeArgs] : [process.execPath, ...nodeArgs];
  const proc = spawn(cmd as string, cmdArgs, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  void exited.then(() => live.delete(proc));
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    // Its CPU time so far, for loadNote (a process's /proc entry goes when it exits).
    const used = proc.pid === undefined ? NaN : cpuMs(proc.pid);
    if (Number.isFinite(used)) childCpuMs += used;
    proc.stdin?.end();
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  return new Promise<Child>((resolve, reject) => {
    let out = '';
    let done = false;
    const timer = setTimeout(() => fail(new Error(`timed out waiting for ${readyLine}`)), options.timeoutMs ?? 15_000);
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void stop();
      reject(new Error(`node ${args.join(' ')}: ${err.message}\n${stderr}`));
    };
    proc.once('error', fail);
    proc.once('exit', (code, signal) => fail(new Error(`exited early (${code ?? signal})`)));
    proc.stdout?.on('data', (d: Buffer) => {
      if (done) return;
      out += d.toString();
      for (const line of out.split('\n')) {
        const m = readyLine.exec(line);
        if (m) {
          done = true;
          clearTimeout(timer);
          resolve({ proc, ready: m, stop });
          return;
        }
      }
    });
  });
}

/**
 * Starts a program that is not node (nats-server, etcd) as a Child: a small
 * node wrapper spawns it, drains its output, says "ready" once a line of its
 * stdout or stderr matches `readyPattern`, and kills it when stopped or when
 * the bench process goes away (its stdin closes).
 */
export function startExternal(bin: string, args: readonly string[], readyPattern: string, timeoutMs = 15_000): Promise<Child> {
  const script =
    `const c=require('node:child_process').spawn(${JSON.stringify(bin)},${JSON.stringify(args)},{stdio:['ignore','pipe','pipe']});` +
    `let said=false;const re=new RegExp(${JSON.stringify(readyPattern)});` +
    `const on=(d)=>{if(!said&&re.test(String(d))){said=true;console.log('ready')}};c.stdout.on('data',on);c.stderr.on('data',on);` +
    `const stop=()=>{c.kill('SIGTERM');setTimeout(()=>c.kill('SIGKILL'),3000).unref()};` +
    `process.on('SIGTERM',stop);process.stdin.on('end',stop);process.stdin.resume();c.on('exit',(code)=>process.exit(said?0:1));`;
  return startNode(['-e', script], /^ready$/, { timeoutMs });
}

/** A port free on 127.0.0.1 right now (for programs that cannot be told to pick one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** `--cpu-prof` flags for child processes when BENCH_CPU_PROF=<dir> is set. */
export function profArgs(tag: string): string[] {
  const dir = process.env['BENCH_CPU_PROF'];
  return dir ? ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `${tag}-${Date.now()}.cpuprofile`] : [];
}

// ---- raw framed echo client ------------------------------------------------

/**
 * The ceiling: request/response over one node:net socket with the gamemesh
 * frame format, no protobuf and no framework. Requests made in one tick are
 * written with one socket.write (as TcpSession does), and every response
 * resolves its promise by sequence number.
 */
export class RawEchoClient {
  private readonly pending = new Map<number, (body: Buffer) => void>();
  private out: Buffer[] = [];
  private flushQueued = false;
  private seq = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    const decoder = new FrameDecoder((_msgId, seq, body) => {
      const done = this.pending.get(seq);
      if (done === undefined) return;
      this.pending.delete(seq);
      done(body);
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawEchoClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port }, () => {
        socket.off('error', reject);
        resolve(new RawEchoClient(socket));
      });
      socket.once('error', reject);
    });
  }

  request(msgId: number, body: Uint8Array): Promise<Buffer> {
    this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    const seq = this.seq;
    return new Promise<Buffer>((resolve) => {
      this.pending.set(seq, resolve);
      this.out.push(encodeFrame(msgId, seq, body));
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushQueued = false;
    const frames = this.out;
    this.out = [];
    this.socket.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Starts bench/fixtures/frame-echo.js in its own process; resolves with its port. */
export async function startFrameEcho(tag: string): Promise<{ port: number; child: Child }> {
  const child = await startNode([`${FIXTURES}frame-echo.js`], /^ready (\d+)$/, { execArgv: profArgs(tag) });
  return { port: Number(child.ready[1]), child };
}

// ---- CPU time ---------------------------------------------------------------

/** CPU time (user + system, all threads) in ms of this process, or of another one by pid (from /proc). */
export function cpuMs(pid?: number): number {
  if (pid === undefined || pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  try {
    // Fields after the ")" of the command name: state is [0], utime [11], stime [12], in clock ticks.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** USER_HZ; 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/** Runs `fn` and reports the CPU ms this process and `pid` used meanwhile. */
export async function withCpu<T>(pid: number | undefined, fn: () => Promise<T>): Promise<{ result: T; selfMs: number; peerMs: number }> {
  const self0 = cpuMs();
  const peer0 = pid === undefined ? NaN : cpuMs(pid);
  const result = await fn();
  return { result, selfMs: cpuMs() - self0, peerMs: pid === undefined ? NaN : cpuMs(pid) - peer0 };
}

// ---- machine load -----------------------------------------------------------

/**
 * Machine-wide CPU use over an interval, split into this bench (this process
 * and the children it stopped meanwhile) and everything else on the machine.
 */
export class CpuLoad {
  private readonly machine0 = CpuLoad.read();
  private readonly self0 = cpuMs();
  private readonly children0 = childCpuMs;
  private readonly wall0 = performance.now();

  private static read(): { busy: number; total: number } {
    try {
      const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
      const f = line.trim().split(/\s+/).slice(1).map(Number);
      const idle = (f[3] ?? 0) + (f[4] ?? 0);
      const total = f.reduce((a, b) => a + b, 0);
      return { busy: total - idle, total };
    } catch {
      return { busy: 0, total: 0 };
    }
  }

  /** Percent of one core since construction: machine-wide, this bench's processes, and the rest. */
  sample(): { machine: number; bench: number; others: number } {
    const now = CpuLoad.read();
    const total = now.total - this.machine0.total;
    const machine = total > 0 ? ((now.busy - this.machine0.busy) / total) * 100 * availableParallelism() : NaN;
    const wall = performance.now() - this.wall0;
    const bench = ((cpuMs() - this.self0 + childCpuMs - this.children0) / wall) * 100;
    return { machine, bench, others: Math.max(0, machine - bench) };
  }
}

/** A one-line note on machine load during a bench, to tell quiet runs from noisy ones. */
export function loadNote(cpu: CpuLoad): string {
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ')[0] ?? '?';
  const { machine, bench, others } = cpu.sample();
  return `machine CPU during the bench: ${machine.toFixed(0)} % of one core, of which this bench's processes ${bench.toFixed(0)} % and other work ${others.toFixed(0)} %; loadavg ${loadavg}`;
}
