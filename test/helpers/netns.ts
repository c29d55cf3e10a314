/**
 * Hosts for multi-host tests: network namespaces joined by a bridge, each
 * with one address in 198.18.0.0/15 (the range set aside for network tests),
 * no default route and no NAT, so nothing they send leaves them. The
 * bridge sits in a namespace of its own: the test's own namespace gets no
 * address, no interface and no route to them. Made and removed here; a
 * process exit removes them too.
 *
 * Added latency goes through user-space relays (bench/fixtures/lossy-link.c),
 * not `tc netem`, which this kernel and CI's lack: see delay().
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildLossyLink, LossyLink } from './lossy-link.js';
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

export class Hosts {
  private readonly procs: Proc[] = [];
  private relays: LossyLink[] = [];
  private relayBin: Promise<string> | undefined;
  private relayDir: string | undefined;

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

  /**
   * Adds `ms` of one-way delay between every pair of hosts (0 removes it),
   * as netem on each host's eth0 would. Each host gets a TUN pair, one end
   * in the host and one in the switch namespace, joined by a relay that
   * holds every packet ms/2; /32 routes in the host send its traffic for
   * the others through it, and the switch routes between the TUN ends, so
   * a packet crosses two relays. Open connections keep going: only the
   * route changes. Closing the relays removes the devices and their routes,
   * and the traffic is back on the bridge.
   */
  async delay(ms: number): Promise<void> {
    await this.undelay();
    if (ms <= 0) return;
    if (!fs.existsSync('/dev/net/tun')) throw new Error('added latency needs TUN devices, and there is no /dev/net/tun (modprobe tun)');
    if (!this.relayBin) {
      this.relayDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gamemesh-netns-relay-'));
      this.relayBin = buildLossyLink(this.relayDir);
    }
    const bin = await this.relayBin;
    const sw = this.sw;
    execFileSync('ip', ['netns', 'exec', sw, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward'], { stdio: 'pipe' });
    for (let i = 1; i <= this.count; i++) {
      const [onHost, onSwitch] = [`${this.tag}d${i}h`, `${this.tag}d${i}s`];
      // Made inside the switch namespace (the relay runs there), so no device appears in the test's own.
      const link = new LossyLink(spawn('ip', ['netns', 'exec', sw, bin, onHost, onSwitch, String(i)], { stdio: ['pipe', 'pipe', 'inherit'] }));
      this.relays.push(link);
      await link.next('ready');
      await link.cmd(`delay ${ms / 2}`, 'ok delay');
      ip('-n', sw, 'link', 'set', onHost, 'netns', this.ns(i));
      ip('-n', sw, 'link', 'set', onSwitch, 'up');
      ip('-n', sw, 'route', 'add', `${this.addr(i)}/32`, 'dev', onSwitch);
      ip('-n', this.ns(i), 'link', 'set', onHost, 'up');
    }
    // The hosts' routes last, once every relay and switch route is there.
    for (let i = 1; i <= this.count; i++) {
      for (let j = 1; j <= this.count; j++) {
        if (j !== i) ip('-n', this.ns(i), 'route', 'add', `${this.addr(j)}/32`, 'dev', `${this.tag}d${i}h`, 'src', this.addr(i));
      }
    }
  }

  private async undelay(): Promise<void> {
    const relays = this.relays;
    this.relays = [];
    await Promise.all(relays.map((r) => r.close()));
  }

  async stop(): Promise<void> {
    await this.undelay();
    if (this.relayDir) fs.rmSync(this.relayDir, { recursive: true, force: true });
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
