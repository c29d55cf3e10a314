/**
 * Cross-cluster RPC through two harbors, beside a direct call in the same run.
 *
 * Processes: three idle discovery servers (cluster 1, cluster 2, the
 * harbors' center), two `gamemesh harbor` processes (1.255.0 and 2.255.0),
 * and the echo callee (bench/fixtures/echo-callee.ts) in cluster 2. The bench
 * process holds two callers:
 *   - direct: a ServiceNode of cluster 2, linked to the callee;
 *   - through harbors: a ServiceNode of cluster 1 calling the callee's
 *     logical address, so every call goes caller → harbor 1 → harbor 2 →
 *     callee and back.
 * No tokens: the links' HMAC handshake is once per link, not per call.
 * Each is measured serial (1 call in flight) and pipelined (1,000 in flight).
 * Harbor CPU per forwarded frame: both harbors' user+system CPU over the
 * pipelined case, divided by the frames they forwarded (a request and a
 * response per call, per harbor).
 */
import path from 'node:path';
import { pino } from 'pino';
import { ServiceNode } from '../src/service/node.js';
import { MessageRegistry } from '../src/wire/registry.js';
import { CpuLoad, cpuMs, drive, driveNote, FIXTURES, loadNote, ROOT, startNode, type Child, type LoadResult } from './harness.js';
import { fmtInt, fmtNum, fmtRatio, isMain, printTable } from './lib.js';

interface EchoReq {
  text: string;
  n: number;
}
interface EchoResp {
  text: string;
  n: number;
  server: string;
}

const PIPELINE = 1000;
const registry = new MessageRegistry().load(path.join(ROOT, 'examples', 'echo', 'echo.proto'));
const Req = registry.type<EchoReq>('echo.EchoReq');
const Resp = registry.type<EchoResp>('echo.EchoResp');
const BIN = path.join(ROOT, 'bin', 'gamemesh.js');

async function discovery(children: Child[]): Promise<string> {
  const sd = await startNode([BIN, 'discovery', '--addr', '127.0.0.1:0'], /^discovery listening on (.+):(\d+)$/);
  children.push(sd);
  return `${sd.ready[1]}:${sd.ready[2]}`;
}

interface Row {
  name: string;
  serial: LoadResult;
  pipelined: LoadResult;
  harborUs?: number;
}

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const children: Child[] = [];
  const nodes: ServiceNode[] = [];
  try {
    const [sd1, sd2, center] = [await discovery(children), await discovery(children), await discovery(children)];
    const harbors: Child[] = [];
    for (const [cluster, sd] of [[1, sd1], [2, sd2]] as const) {
      const h = await startNode([BIN, 'harbor', '--sdaddr', sd, '--cluster', String(cluster), '--center', center, '--loglevel', 'warn'], /^harbor \S+ listening/);
      children.push(h);
      harbors.push(h);
    }
    const callee = await startNode([`${FIXTURES}echo-callee.js`, '--sdaddr', sd2, '--cluster', '2'], /^addr (\S+)$/);
    children.push(callee);
    const addr = callee.ready[1] as string;
    const mk = async (cluster: number, sd: string): Promise<ServiceNode> => {
      const n = new ServiceNode({ name: `bench-caller-${cluster}`, type: 40, config: { sdaddr: sd, cluster, listen: '127.0.0.1:0' }, logger: pino({ level: 'silent' }) });
      nodes.push(n);
      return n.start();
    };
    const direct = await mk(2, sd2);
    const remote = await mk(1, sd1);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await remote.call({ addr }, Req, Resp, { text: 'warm', n: 1 });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await direct.call({ addr }, Req, Resp, { text: 'warm', n: 1 });
    const rows: Row[] = [];
    for (const [name, node] of [['direct (same cluster)', direct], ['through 2 harbors', remote]] as const) {
      const call = (i: number) => node.call({ addr }, Req, Resp, { text: 'hello', n: i });
      const serial = await drive(call, 1);
      const h0 = harbors.reduce((a, h) => a + cpuMs(h.proc.pid), 0);
      const pipelined = await drive(call, PIPELINE);
      const hMs = harbors.reduce((a, h) => a + cpuMs(h.proc.pid), 0) - h0;
      // Warm-up calls count too (drive's total): 2 frames per call per harbor.
      rows.push({ name, serial, pipelined, harborUs: node === remote ? (hMs * 1000) / (pipelined.total * 2 * harbors.length) : undefined });
    }
    const base = rows[0] as Row;
    const table: string[][] = [];
    for (const mode of ['serial', 'pipelined'] as const) {
      for (const r of rows) {
        const res = r[mode];
        table.push([
          `${r.name}, ${mode === 'serial' ? 'serial (1 in flight)' : `pipelined (${fmtInt(PIPELINE)} in flight)`}`,
          fmtInt(res.ops),
          fmtNum(res.p50 * 1000, 0),
          fmtNum(res.p99 * 1000, 0),
          fmtRatio(res.ops / base[mode].ops),
          mode === 'pipelined' && r.harborUs !== undefined ? fmtNum(r.harborUs, 1) : '',
        ]);
      }
    }
    printTable('harbor: cross-cluster RPC through two harbors vs a direct call (loopback)', ['case', 'calls/s', 'p50 µs', 'p99 µs', 'vs direct', 'harbor CPU µs/frame'], table);
    const ratio = (rows[1] as Row).pipelined.ops / base.pipelined.ops;
    console.log(
      [
        '- caller(s) in the bench process; the echo callee, two harbors and three discovery servers each in their own process.',
        `- ${driveNote()}.`,
        '- harbor CPU µs/frame: user+system CPU of both harbor processes over the pipelined case (warm-up included), per frame forwarded by one harbor.',
        `- ${loadNote(cpu)}.`,
        `- target: pipelined through harbors ≥ 0.40x direct: ${fmtRatio(ratio)}, ${ratio >= 0.4 ? 'met' : 'MISSED'}.`,
        '',
      ].join('\n'),
    );
  } finally {
    for (const n of nodes) await n.stop();
    for (const c of children.reverse()) await c.stop();
  }
}

if (isMain(import.meta.url)) {
  await run();
}
