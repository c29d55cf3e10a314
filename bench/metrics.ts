/**
 * What observability costs: RPC and gateway throughput with metrics on
 * against off, in the same run, on the same machine, taking turns.
 *
 *   off  the processes as they run by default: no --admin, so no admin
 *        port, no default process metrics, no latency timing (the counters
 *        the code keeps anyway still count);
 *   on   every process with --admin 127.0.0.1:0 (metrics on: prom-client's
 *        default metrics, the latency histograms timing every call and
 *        every client request), and /metrics of each scraped once a second
 *        during its rounds (Prometheus' default interval is 15 s).
 *
 * (a) RPC: a caller process (bench/fixtures/rpc-caller.ts) calling an echo
 *     callee process (bench/fixtures/echo-callee.ts), serial (1 in flight)
 *     and pipelined (1,000 in flight); an "off" pair and an "on" pair in
 *     service groups of their own, sharing one discovery server.
 * (b) Gateway: 1,000 clients (bench/fixtures/gateway-load.ts), 1 request in
 *     flight each, through `gamemesh agent` to the GatewayBackend echo
 *     process; an "off" stack and an "on" stack, likewise.
 * Each case runs ROUNDS rounds per mode, the modes alternating (order
 * rotated each round); the verdict is the median of the rounds' on/off ratios.
 * (c) Tracing with no SDK registered: the cost of the check the hot paths make.
 *
 * `BENCH_METRICS_ROUNDS=6`, `BENCH_METRICS_CLIENTS=1000`; `BENCH_METRICS_AA=1` runs both modes
 * without --admin, an A/A run that shows how much of a difference is noise.
 */
import { DiscoveryClient } from '../src/discovery/client.js';
import { tracingOn } from '../src/observe/tracing.js';
import { Lines, measureRound, median, pushRoutes, startDiscovery, startGamemesh, type Round, type Running } from './gateway.js';
import { cpuMs, CpuLoad, FIXTURES, LOAD_MS, loadNote, startNode, type Child } from './harness.js';
import { fmtInt, fmtNum, isMain, measure, printTable } from './lib.js';

const ROUNDS = Number(process.env['BENCH_METRICS_ROUNDS'] ?? 6);
const CLIENTS = Number(process.env['BENCH_METRICS_CLIENTS'] ?? 1000);
const TARGET = 0.95;
/** BENCH_METRICS_AA=1 runs both modes without --admin: an A/A run that shows the bench's own noise. */
const ADMIN = process.env['BENCH_METRICS_AA'] === '1' ? [] : ['--admin', '127.0.0.1:0'];

type Mode = 'off' | 'on';

/** Scrapes every admin port of a service group once a second while started. */
class Scraper {
  private timer: NodeJS.Timeout | undefined;
  scrapes = 0;
  bytes = 0;
  constructor(
    private readonly sdaddr: string,
    private readonly group: string,
  ) {}

  async start(): Promise<void> {
    const sd = await DiscoveryClient.connect({ addr: this.sdaddr, name: 'metrics-bench' });
    const admins = (await sd.listServices()).filter((d) => d.meta['group'] === this.group && d.meta['admin']).map((d) => d.meta['admin'] as string);
    await sd.close();
    if (admins.length === 0 && ADMIN.length > 0) throw new Error(`no admin ports in group ${this.group}`);
    const scrape = () => {
      for (const a of admins) {
        void fetch(`http://${a}/metrics`).then(async (r) => {
          this.bytes += (await r.text()).length;
          this.scrapes++;
        });
      }
    };
    scrape();
    this.timer = setInterval(scrape, 1000);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

// ---- (a) RPC ---------------------------------------------------------------------

interface RpcPair {
  readonly mode: Mode;
  readonly callee: Child;
  readonly caller: Child;
  readonly lines: Lines;
}

async function startPair(sdaddr: string, mode: Mode): Promise<RpcPair> {
  // One logical address per node (cluster.type.index): the two pairs differ by index as well as by group.
  const extra = ['--svcgroup', mode, '--svcindex', mode === 'on' ? '1' : '0', ...(mode === 'on' ? ADMIN : [])];
  const callee = await startNode([`${FIXTURES}echo-callee.js`, '--sdaddr', sdaddr, ...extra], /^ready (\S+) (\d+)$/);
  const caller = await startNode([`${FIXTURES}rpc-caller.js`, '--sdaddr', sdaddr, ...extra], /^ready (\S+)$/);
  return { mode, callee, caller, lines: new Lines(caller, `rpc caller (${mode})`) };
}

interface RpcRound {
  readonly ops: number;
  readonly p50: number;
  readonly cpuUs: number;
}

async function rpcRound(pair: RpcPair, inflight: number): Promise<RpcRound> {
  const callee0 = cpuMs(pair.callee.proc.pid);
  pair.lines.send(JSON.stringify({ cmd: 'run', inflight, ms: LOAD_MS }));
  const r = JSON.parse(await pair.lines.next(60_000)) as { ok: boolean; error?: string; ops: number; p50: number; calls: number; cpuMs: number };
  if (!r.ok) throw new Error(`rpc caller (${pair.mode}): ${r.error}`);
  const calleeMs = cpuMs(pair.callee.proc.pid) - callee0;
  return { ops: r.ops, p50: r.p50, cpuUs: ((r.cpuMs + calleeMs) * 1000) / r.calls };
}

/** ROUNDS rounds of each mode, alternating (rotated), with the on group scraped during its rounds. */
async function alternate<R>(modes: readonly Mode[], scraper: Scraper, round: (mode: Mode) => Promise<R>): Promise<Record<Mode, R[]>> {
  const out: Record<Mode, R[]> = { off: [], on: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[(k + r) % modes.length] as Mode;
      if (mode === 'on') await scraper.start();
      try {
        out[mode].push(await round(mode));
      } finally {
        if (mode === 'on') scraper.stop();
      }
    }
  }
  return out;
}

function pairedRatio(on: readonly number[], off: readonly number[]): number {
  return median(on.map((v, i) => v / (off[i] as number)));
}

function row(name: string, off: readonly number[], on: readonly number[], offUs: number, onUs: number, p50Off: number, p50On: number): string[] {
  const ratio = pairedRatio(on, off);
  return [name, fmtInt(median(off)), fmtInt(median(on)), `${fmtNum(ratio * 100, 1)} %`, fmtNum(p50Off, 2), fmtNum(p50On, 2), fmtNum(offUs, 1), fmtNum(onUs, 1), `≥ ${TARGET * 100} %: ${ratio >= TARGET ? 'met' : 'MISSED'}`];
}

async function benchRpc(sdaddr: string, rows: string[][]): Promise<void> {
  const pairs: Partial<Record<Mode, RpcPair>> = {};
  try {
    pairs.off = await startPair(sdaddr, 'off');
    pairs.on = await startPair(sdaddr, 'on');
    const scraper = new Scraper(sdaddr, 'on');
    for (const inflight of [1, 1000]) {
      const res = await alternate(['off', 'on'], scraper, (mode) => rpcRound(pairs[mode] as RpcPair, inflight));
      const us = (rs: RpcRound[]) => median(rs.map((r) => r.cpuUs));
      const p50 = (rs: RpcRound[]) => median(rs.map((r) => r.p50));
      rows.push(row(`rpc, ${inflight === 1 ? 'serial (1 in flight)' : `pipelined (${fmtInt(inflight)} in flight)`}`, res.off.map((r) => r.ops), res.on.map((r) => r.ops), us(res.off), us(res.on), p50(res.off), p50(res.on)));
    }
  } finally {
    for (const p of [pairs.off, pairs.on]) {
      await p?.caller.stop();
      await p?.callee.stop();
    }
  }
}

// ---- (b) gateway -------------------------------------------------------------------

async function benchGateway(sdaddr: string, rows: string[][]): Promise<void> {
  await pushRoutes(sdaddr);
  const stacks: Partial<Record<Mode, Running>> = {};
  try {
    stacks.off = await startGamemesh(sdaddr, { name: 'gamemesh, metrics off', group: 'off', index: 0, extraArgs: [] });
    stacks.on = await startGamemesh(sdaddr, { name: 'gamemesh, metrics on', group: 'on', index: 1, extraArgs: ADMIN });
    for (const s of [stacks.off, stacks.on]) await s.gen.cmd({ cmd: 'connect', port: s.port, total: CLIENTS, transport: 'tcp' });
    const res = await alternate(['off', 'on'], new Scraper(sdaddr, 'on'), (mode) => measureRound(stacks[mode] as Running, CLIENTS));
    // CPU per message of the agent and the backend (the load generator is the same program in both).
    const us = (rs: Round[]) => (rs.reduce((a, r) => a + r.frontMs + r.backMs, 0) * 1000) / rs.reduce((a, r) => a + r.responses, 0);
    const p50 = (rs: Round[]) => median(rs.map((r) => r.p50));
    rows.push(row(`gateway, ${fmtInt(CLIENTS)} clients (1 request in flight each)`, res.off.map((r) => r.perSec), res.on.map((r) => r.perSec), us(res.off), us(res.on), p50(res.off), p50(res.on)));
  } finally {
    for (const s of [stacks.off, stacks.on]) await s?.stop();
  }
}

export async function run(): Promise<void> {
  const cpu = new CpuLoad();
  const rows: string[][] = [];
  const sd = await startDiscovery();
  try {
    await benchRpc(sd.addr, rows);
    await benchGateway(sd.addr, rows);
  } finally {
    await sd.child.stop();
  }
  printTable('metrics on vs off: the same processes with and without --admin (scraped once a second when on)', ['case', 'off ops/s', 'on ops/s', 'on / off', 'off p50 ms', 'on p50 ms', 'off CPU µs/op', 'on CPU µs/op', 'target'], rows);
  const noop = measure('tracingOn', () => tracingOn());
  console.log(
    [
      `- each case: ${ROUNDS} rounds per mode, alternating (the order rotated each round); ops/s is the median round, "on / off" the median of the rounds' ratios. RPC rounds are bench/harness.ts drive() windows of ${(LOAD_MS / 1000).toFixed(1)} s; gateway rounds as in the gateway bench.`,
      '- CPU µs/op: user+system CPU of the caller and callee (RPC) or the agent and backend (gateway) processes over the rounds, per call or message.',
      `- tracing, no SDK registered: the hot paths' check tracingOn() costs ${fmtNum(1e9 / noop, 1)} ns (${fmtInt(noop)} calls/s in a loop); nothing else of tracing runs.`,
      `- ${loadNote(cpu)}.`,
      '',
    ].join('\n'),
  );
}

if (isMain(import.meta.url)) {
  await run();
}
