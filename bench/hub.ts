/**
 * Hub bench: one publisher, 100 subscribers in 10 processes, on the hub
 * service and on NATS (nats-server, when installed), in the same run.
 * The publisher offers a fixed rate; the table gives the deliveries per
 * second that arrived, the share delivered, and latency publish -> handler.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { createHub } from '../src/hub/open.js';
import type { PubSub } from '../src/hub/api.js';
import { ServiceNode } from '../src/service/node.js';
import { CpuLoad, FIXTURES, freePort, loadNote, ROOT, startExternal, startNode, type Child } from './harness.js';
import { DEFAULT_MS, fmtInt, fmtNum, printTable } from './lib.js';

const NATS_SERVER = '/usr/sbin/nats-server';
const PROCS = 10;
const PER_PROC = 10;
/** The first is a warm-up (links, JIT), left out of the table. */
const RATES = [500, 500, 2000];

interface Row {
  backend: string;
  rate: number;
  perSec: number;
  share: number;
  p50: number;
  p99: number;
}

async function report(children: Child[]): Promise<{ received: number; lat: Array<[number, number]> }> {
  const all = await Promise.all(
    children.map(
      (c) =>
        new Promise<{ received: number; lat: Array<[number, number]> }>((resolve) => {
          let out = '';
          const on = (d: Buffer) => {
            out += d.toString();
            const m = /^report (.*)\n/m.exec(out);
            if (m) {
              c.proc.stdout?.off('data', on);
              resolve(JSON.parse(m[1] as string) as { received: number; lat: Array<[number, number]> });
            }
          };
          c.proc.stdout?.on('data', on);
          c.proc.stdin?.write('report\n');
        }),
    ),
  );
  return { received: all.reduce((s, r) => s + r.received, 0), lat: all.flatMap((r) => r.lat) };
}

/** The p-th percentile (ms) of merged [tenths of ms, count] buckets. */
function histPercentile(buckets: Array<[number, number]>, p: number): number {
  const merged = new Map<number, number>();
  for (const [b, n] of buckets) merged.set(b, (merged.get(b) ?? 0) + n);
  const sorted = [...merged].sort((x, y) => x[0] - y[0]);
  const total = sorted.reduce((s, [, n]) => s + n, 0);
  let seen = 0;
  for (const [b, n] of sorted) {
    seen += n;
    if (seen >= (p / 100) * total) return b / 10;
  }
  return NaN;
}

async function runBackend(name: string, hubUrl: string, sdaddr: string, rows: Row[]): Promise<void> {
  const subs: Child[] = [];
  const pubNode = new ServiceNode({ name: 'bench-pub', config: { sdaddr, listen: '127.0.0.1:0', hub: hubUrl }, logger: pino({ level: 'silent' }) });
  try {
    for (let p = 0; p < PROCS; p++) {
      const args = [`${FIXTURES}hub-subscribers.js`, '--sdaddr', sdaddr, '--base', String(p * PER_PROC), '--count', String(PER_PROC), ...(hubUrl ? ['--hub', hubUrl] : [])];
      subs.push(await startNode(args, /^ready$/, { timeoutMs: 60_000 }));
    }
    const pub: PubSub = createHub(pubNode, { maxQueued: 100_000, maxQueuedBytes: 64 * 1024 * 1024 });
    await pubNode.start();
    await pub.whenSynced();
    const body = Buffer.alloc(64);
    let warm = true;
    for (const rate of RATES) {
      await report(subs); // clears
      const ms = Math.max(1000, DEFAULT_MS * 2);
      const started = performance.now();
      let sent = 0;
      // Publishes paced in 1 ms ticks at the offered rate.
      while (performance.now() - started < ms) {
        const due = Math.floor(((performance.now() - started) / 1000) * rate);
        for (; sent < due; sent++) {
          body.writeDoubleLE(performance.timeOrigin + performance.now(), 0);
          pub.publishRaw('bench', 1, body);
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await new Promise((r) => setTimeout(r, 1500)); // stragglers
      const r = await report(subs);
      if (warm) {
        warm = false;
        continue;
      }
      rows.push({ backend: name, rate, perSec: r.received / (ms / 1000), share: r.received / (sent * PROCS * PER_PROC), p50: histPercentile(r.lat, 50), p99: histPercentile(r.lat, 99) });
    }
  } finally {
    await pubNode.stop();
    for (const c of subs) await c.stop();
  }
}

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const rows: Row[] = [];
  const sd = await startNode([path.join(ROOT, 'bin', 'gamemesh.js'), 'discovery', '--addr', '127.0.0.1:0'], /^discovery listening on (.+):(\d+)$/);
  const sdaddr = `${sd.ready[1]}:${sd.ready[2]}`;
  try {
    const hub = await startNode([path.join(ROOT, 'bin', 'gamemesh.js'), 'hub', '--sdaddr', sdaddr], /listening/);
    try {
      await runBackend('hub service', '', sdaddr, rows);
    } finally {
      await hub.stop();
    }
    if (existsSync(NATS_SERVER)) {
      const port = await freePort();
      const nats = await startExternal(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port)], 'Server is ready');
      try {
        await runBackend('NATS (nats-server)', `nats://127.0.0.1:${port}`, sdaddr, rows);
      } finally {
        await nats.stop();
      }
    }
  } finally {
    await sd.stop();
  }
  printTable(
    `hub: 1 publisher -> ${PROCS * PER_PROC} subscribers in ${PROCS} processes, 64-byte bodies, offered rate for ${Math.max(1000, DEFAULT_MS * 2)} ms`,
    ['backend', 'offered msgs/s', 'deliveries/s', 'delivered', 'p50 ms', 'p99 ms'],
    rows.map((r) => [r.backend, fmtInt(r.rate), fmtInt(r.perSec), `${fmtNum(r.share * 100)}%`, fmtNum(r.p50, 2), fmtNum(r.p99, 2)]),
  );
  console.log(loadNote(cpu));
}
