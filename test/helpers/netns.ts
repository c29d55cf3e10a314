/**
 * Hosts for multi-host tests: network namespaces joined by a bridge, each
 * with one address in 198.18.0.0/15 (the range set aside for network tests),
 * no default route and no NAT, so nothing they send leaves them. The
 * bridge sits in a namespace of its own: the test's own namespace gets no
 * address, no interface and no route to them. Made and removed here; a
 * process exit removes them too.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { Proc } from './proc.js';

const made = new Set<string>();
process.once('exit', () => {
  for (const ns of made) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** Why namespaces cannot be made here (no ip, no CAP_NET_ADMIN), or undefined when they can. */
export function netnsMissing(): string | undefined {
  const probe = `gm-probe-${process.pid}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return undefined;
  } catch (err) {
    return `cannot make network namespaces (needs iproute2 and CAP_NET_ADMIN, e.g. root): ${(err as Error).message.split('\n')[0]}`;
  }
}

/** Whether the kernel has the netem qdisc (for added latency); tried in a throwaway namespace. */
export function netemMissing(): string | undefined {
  const probe = `gm-netem-${process.pid}`;
  try {
    ip('netns', 'add', probe);
    ip('-n', probe, 'link', 'set', 'lo', 'up');
    execFileSync('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `the kernel has no netem qdisc (tc qdisc ... netem): ${(err as Error).message.split('\n').slice(0, 2).join(' ')}`;
  } finally {
    try {
      ip('netns', 'del', probe);
    } catch {
      // never made
    }
  }
}

export class Hosts {
  private readonly procs: Proc[] = [];

  private constructor(
    private readonly tag: string,
    readonly count: number,
  ) {}

  /** `count` hosts, 198.18.0.1 .. 198.18.0.<count>, on one bridge. */
  static create(count: number): Hosts {
    const tag = `gm${process.pid % 100000}`;
    const hosts = new Hosts(tag, count);
    const sw = hosts.sw;
    ip('netns', 'add', sw);
    made.add(sw);
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
    for (let i = 1; i <= count; i++) {
      const ns = hosts.ns(i);
      ip('netns', 'add', ns);
      made.add(ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      // Both ends are made inside the host namespace and one end is moved to the switch: no interface appears in the test's own namespace.
      ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `port${i}`);
      ip('-n', ns, 'link', 'set', `port${i}`, 'netns', sw);
      ip('-n', ns, 'addr', 'add', `${hosts.addr(i)}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', sw, 'link', 'set', `port${i}`, 'master', 'br0');
      ip('-n', sw, 'link', 'set', `port${i}`, 'up');
    }
    return hosts;
  }

  get sw(): string {
    return `${this.tag}-sw`;
  }

  ns(i: number): string {
    return `${this.tag}-h${i}`;
  }

  addr(i: number): string {
    return `198.18.0.${i}`;
  }

  /** Runs a command on host i; killed by stop(). */
  spawn(i: number, label: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Proc {
    const proc = new Proc(label, 'ip', ['netns', 'exec', this.ns(i), command, ...args], env);
    this.procs.push(proc);
    return proc;
  }

  /** Output of a short command on host i (it is killed after timeoutMs). */
  async run(i: number, command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 10_000): Promise<string> {
    const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', this.ns(i), command, ...args], { env, timeout: timeoutMs, encoding: 'utf8' });
    return stdout;
  }

  /** Cuts host i off: its switch port goes down, so its own interface stays up and its packets vanish, as in a real partition. */
  cut(i: number): void {
    ip('-n', this.sw, 'link', 'set', `port${i}`, 'down');
  }

  heal(i: number): void {
    ip('-n', this.sw, 'link', 'set', `port${i}`, 'up');
  }

  /** Adds `ms` of delay to everything each host sends to the others (0 removes it). */
  delay(ms: number): void {
    for (let i = 1; i <= this.count; i++) {
      const args = ms > 0 ? ['qdisc', 'replace', 'dev', 'eth0', 'root', 'netem', 'delay', `${ms}ms`] : ['qdisc', 'del', 'dev', 'eth0', 'root'];
      execFileSync('ip', ['netns', 'exec', this.ns(i), 'tc', ...args], { stdio: 'pipe' });
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.kill('SIGTERM', 5000).catch(() => p.kill('SIGKILL'))));
    for (const ns of [...Array.from({ length: this.count }, (_, k) => this.ns(k + 1)), this.sw]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
      made.delete(ns);
    }
  }
}
