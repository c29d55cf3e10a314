/**
 * Service-runtime RPC between two processes, beside its ceiling and gRPC.
 *
 * The callee always runs in its own process and the caller in the bench
 * process, over loopback:
 *   - gamemesh: ServiceNode "echo" (bench/fixtures/echo-callee.ts) serving
 *     echo.EchoReq -> echo.EchoResp from examples/echo/echo.proto; the caller
 *     is a ServiceNode with `dependencies: ['echo']` calling
 *     `node.call('echo', EchoReq, EchoResp, {text, n})`. A discovery server
 *     (`gamemesh discovery`, in memory) runs in a third process; it is idle
 *     while calls are measured.
 *   - raw framed echo: node:net + the same frame format (src/wire/frame.ts),
 *     no protobuf, no framework (bench/fixtures/frame-echo.ts); the body is
 *     the encoded EchoReq, echoed back. This is the ceiling.
 *   - grpc-js: @grpc/grpc-js unary `Echo.Say` with the same messages, loaded
 *     with @grpc/proto-loader (bench/fixtures/grpc-echo.ts); one channel.
 *
 * Each system is measured serial (1 call in flight) and pipelined (1,000 in
 * flight, closed loop: 1,000 workers each awaiting its call back to back).
 * Every call is a promise in all three (grpc-js's callback is wrapped).
 */
import path from 'node:path';
import { pino } from 'pino';
import { ServiceNode } from '../src/service/node.js';
import { MessageRegistry } from '../src/wire/registry.js';
import { echoClient, type EchoResp as GrpcEchoResp } from './grpc-echo-def.js';
import { CpuLoad, drive, driveNote, FIXTURES, loadNote, profArgs, RawEchoClient, ROOT, startFrameEcho, startNode, withCpu, type Child, type LoadResult } from './harness.js';
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
const TEXT = 'hello';

const registry = new MessageRegistry().load(path.join(ROOT, 'examples', 'echo', 'echo.proto'));
const Req = registry.type<EchoReq>('echo.EchoReq');
const Resp = registry.type<EchoResp>('echo.EchoResp');

export interface Running {
  readonly where: string;
  /** The callee process, for its CPU time. */
  readonly calleePid: number | undefined;
  call(i: number): Promise<unknown>;
  stop(): Promise<void>;
}

export interface System {
  readonly name: string;
  start(): Promise<Running>;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`bad echo answer: ${what}`);
}

const rawEcho: System = {
  name: 'raw framed echo',
  async start() {
    const { port, child } = await startFrameEcho('rpc-raw-echo');
    const client = await RawEchoClient.connect(port);
    const body = Req.encode({ text: TEXT, n: 123_456 });
    check((await client.request(Req.id, body)).equals(body), 'raw echo');
    return {
      where: `${body.length}-byte body (an encoded EchoReq) echoed back`,
      calleePid: child.proc.pid,
      call: () => client.request(Req.id, body),
      async stop() {
        client.close();
        await child.stop();
      },
    };
  },
};

const gamemesh: System = {
  name: 'gamemesh',
  async start() {
    const children: Child[] = [];
    let caller: ServiceNode | undefined;
    const stop = async (): Promise<void> => {
      await caller?.stop();
      for (const c of children.reverse()) await c.stop();
    };
    try {
      const sd = await startNode([path.join(ROOT, 'bin', 'gamemesh.js'), 'discovery', '--addr', '127.0.0.1:0'], /^discovery listening on (.+):(\d+)$/);
      children.push(sd);
      const sdaddr = `${sd.ready[1]}:${sd.ready[2]}`;
      const callee = await startNode([`${FIXTURES}echo-callee.js`, '--sdaddr', sdaddr], /^ready (\S+) (\d+)$/, { execArgv: profArgs('rpc-callee') });
      children.push(callee);
      const node = new ServiceNode({ name: 'bench-caller', config: { sdaddr, listen: '127.0.0.1:0' }, dependencies: ['echo'], logger: pino({ level: 'silent' }) });
      caller = node;
      await node.start();
      await node.whenReady();
      const first = await node.call('echo', Req, Resp, { text: TEXT, n: 7 });
      check(first.text === TEXT && first.n === 7 && first.server !== '', JSON.stringify(first));
      return {
        where: 'ServiceNode caller in the bench process, ServiceNode callee in its own process, discovery in a third',
        calleePid: callee.proc.pid,
        call: (i) => node.call('echo', Req, Resp, { text: TEXT, n: i }),
        stop,
      };
    } catch (err) {
      await stop();
      throw err;
    }
  },
};

const grpcJs: System = {
  name: 'grpc-js',
  async start() {
    const child = await startNode([`${FIXTURES}grpc-echo.js`], /^ready (\d+)$/, { execArgv: profArgs('rpc-grpc') });
    const client = echoClient(Number(child.ready[1]));
    const call = (i: number): Promise<GrpcEchoResp> =>
      new Promise((resolve, reject) => {
        client.Say({ text: TEXT, n: i }, (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res)));
      });
    try {
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())));
      const first = await call(7);
      check(first.text === TEXT && first.n === 7, JSON.stringify(first));
    } catch (err) {
      client.close();
      await child.stop();
      throw err;
    }
    return {
      where: 'unary Echo.Say, one channel, insecure, @grpc/proto-loader (keepCase, longs: Number, defaults)',
      calleePid: child.proc.pid,
      call,
      async stop() {
        client.close();
        await child.stop();
      },
    };
  },
};

export const SYSTEMS: readonly System[] = [rawEcho, gamemesh, grpcJs];

/** `BENCH_RPC_ONLY=gamemesh` (comma-separated names) measures a subset, e.g. while profiling. */
function selected(): readonly System[] {
  const only = process.env['BENCH_RPC_ONLY']?.split(',').map((s) => s.trim());
  return only ? SYSTEMS.filter((s) => only.includes(s.name)) : SYSTEMS;
}

interface Case extends LoadResult {
  /** CPU µs per call in the caller (this process) and in the callee process. */
  readonly callerUs: number;
  readonly calleeUs: number;
}

interface Measured {
  name: string;
  where: string;
  serial: Case;
  pipelined: Case;
}

async function measureCase(running: Running, inflight: number): Promise<Case> {
  const { result, selfMs, peerMs } = await withCpu(running.calleePid, () => drive(running.call, inflight));
  return { ...result, callerUs: (selfMs * 1000) / result.total, calleeUs: (peerMs * 1000) / result.total };
}

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const results: Measured[] = [];
  for (const system of selected()) {
    const running = await system.start();
    try {
      const serial = await measureCase(running, 1);
      const pipelined = await measureCase(running, PIPELINE);
      results.push({ name: system.name, where: running.where, serial, pipelined });
    } finally {
      await running.stop();
    }
  }
  const by = (name: string): Measured | undefined => results.find((r) => r.name === name);
  const raw = by(rawEcho.name);
  const grpc = by(grpcJs.name);
  const ratio = (res: LoadResult, base: LoadResult | undefined): string => (base ? fmtRatio(res.ops / base.ops) : '—');
  const rows: string[][] = [];
  for (const mode of ['serial', 'pipelined'] as const) {
    for (const r of results) {
      const res = r[mode];
      const target = r.name === gamemesh.name && mode === 'pipelined' ? '≥ 0.50x raw, ≥ 3x grpc-js' : '';
      rows.push([
        `${r.name}, ${mode === 'serial' ? 'serial (1 in flight)' : `pipelined (${fmtInt(PIPELINE)} in flight)`}`,
        fmtInt(res.ops),
        fmtNum(res.p50 * 1000, 0),
        fmtNum(res.p99 * 1000, 0),
        ratio(res, raw?.[mode]),
        ratio(res, grpc?.[mode]),
        fmtNum(res.callerUs, 1),
        fmtNum(res.calleeUs, 1),
        target,
      ]);
    }
  }
  printTable('rpc: caller in the bench process, callee in its own process (loopback)', ['case', 'calls/s', 'p50 µs', 'p99 µs', 'vs raw echo', 'vs grpc-js', 'caller CPU µs/call', 'callee CPU µs/call', 'target'], rows);
  console.log(
    [
      ...results.map((r) => `- ${r.name}: ${r.where}.`),
      `- ${driveNote()}; latency is per call, from the caller's call() to its promise resolving.`,
      '- CPU µs/call: user+system CPU time of the caller (bench) process and of the callee process over the whole case (warm-up included), divided by the calls completed;' +
        ' it is less sensitive to other load on the machine than calls/s. The caller figure includes the bench\'s own loop and latency bookkeeping.',
      `- ${loadNote(cpu)}.`,
      ...verdicts(by(gamemesh.name), raw, grpc),
      '',
    ].join('\n'),
  );
}

/** One line per target of the issue, met or missed. */
function verdicts(gm: Measured | undefined, raw: Measured | undefined, grpc: Measured | undefined): string[] {
  if (!gm) return [];
  const out: string[] = [];
  const mark = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  if (raw) {
    const r = gm.pipelined.ops / raw.pipelined.ops;
    out.push(`- target: gamemesh pipelined ≥ 0.50x the raw echo ceiling: ${fmtRatio(r)}, ${mark(r >= 0.5)}.`);
  }
  if (grpc) {
    const r = gm.pipelined.ops / grpc.pipelined.ops;
    out.push(`- target: gamemesh pipelined ≥ 3x grpc-js: ${fmtRatio(r)}, ${mark(r >= 3)}.`);
  }
  return out;
}

if (isMain(import.meta.url)) {
  await run();
}
