/**
 * The gateway (agent) under client load, every part in its own process
 * (2 cores: the processes share them; CPU time per message is reported for
 * each so a saturated load generator would show):
 *
 *   discovery   `gamemesh discovery` (in memory), shared by every part; the
 *               route table (echo.EchoReq 1001 -> service "echo", rule
 *               "pass") is put in its KV before any agent starts;
 *   agent       `gamemesh agent --tcp-port 0 --max-msgs-per-sec 1000000000
 *               --heartbeat-sec 60 --loglevel warn`;
 *   backend     bench/fixtures/gateway-backend.ts: a ServiceNode "echo" with
 *               a GatewayBackend that echoes EchoReq as EchoResp (same bytes)
 *               and broadcasts on command;
 *   load gen    bench/fixtures/gateway-load.ts: raw sockets speaking the
 *               client protocol (src/wire/frame.ts framing, or a minimal
 *               WebSocket client), one process for all the connections.
 *
 * (a) End to end: 100, 1,000 and 5,000 connections, each with 1 request in
 *     flight (closed loop): msgs/s and latency at the load generator. In the
 *     same run and with the same load generator, the ceiling: a raw node:net
 *     proxy (bench/fixtures/raw-proxy.ts) in front of the raw framed echo
 *     server (bench/fixtures/frame-echo.ts), multiplexed over one upstream
 *     socket (the gateway's shape). A second shape, one upstream socket per
 *     client with plain pipe(), is opt-in (BENCH_GATEWAY_CEILING=mux,pipe):
 *     it was slower than mux at every client count, so it is not the
 *     ceiling, and it would add a third of the bench's time. The systems
 *     take turns, round by round, at each connection count.
 * (b) Broadcast: with the 5,000 connections of (a), the backend broadcasts
 *     one EchoResp to all (GatewayBackend.broadcast), 100 times in sequence
 *     (each round starts when every client got the previous one) and 100
 *     times back to back; deliveries counted as frames received by clients.
 * (c) Memory: a fresh agent (`node --expose-gc`, with bench/fixtures/mem-probe.ts
 *     preloaded to run gc() and report process.memoryUsage() on request),
 *     10,000 connections handshaken and idle, TCP and WebSocket in turn.
 *
 * `BENCH_GATEWAY_PARTS=e2e,broadcast,memory` picks parts;
 * `BENCH_GATEWAY_CEILING=mux,pipe` picks ceilings (default mux; `none`: gamemesh alone);
 * `BENCH_GATEWAY_CLIENTS=5000` and `BENCH_GATEWAY_ROUNDS=5` change the
 * client counts of (a) (the last one is used by (b)) and its rounds; `BENCH_CPU_PROF=<dir>`
 * writes a CPU profile of the agent (and the other children);
 * `BENCH_GATEWAY_HEAP_SNAPSHOT=<dir>` a heap snapshot of each memory agent.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DiscoveryClient } from '../src/discovery/client.js';
import { ROUTES_KEY } from '../src/gateway/routes.js';
import { cpuMs, CpuLoad, FIXTURES, LOAD_MS, loadNote, profArgs, ROOT, startFrameEcho, startNode, type Child } from './harness.js';
import { fmtInt, fmtNum, isMain, printTable } from './lib.js';

const CLIENT_COUNTS: readonly number[] = envInts('BENCH_GATEWAY_CLIENTS') ?? [100, 1000, 5000];
/** Rounds per system and client count; each is a warm-up and a measured window. */
const ROUNDS = envInts('BENCH_GATEWAY_ROUNDS')?.[0] ?? 4;
const WARM_MS = Math.max(300, Math.round(LOAD_MS / 4));
const WINDOW_MS = Math.max(300, Math.round(LOAD_MS / 2));
const BROADCAST_ROUNDS = 100;
const BROADCAST_WARM = 5;
const BURST = 100;
const MEM_CLIENTS = 10_000;
const TARGET_RATIO = 0.4;
const TARGET_BYTES = 16 * 1024;
const GAMEMESH = 'gamemesh';

const ROUTES = { version: 1, routes: [{ msgId: 1001, name: 'echo.EchoReq', service: 'echo', rule: 'pass' }] };

/** A comma-separated list of positive integers from the environment, if set. */
export function envInts(name: string): number[] | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const out = raw.split(',').map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`${name} must be positive integers separated by commas, got ${raw}`);
  return out;
}

// ---- child stdout as JSON lines ------------------------------------------------

/** Lines a child writes to stdout after its ready line, handed out in order. */
export class Lines {
  private partial = '';
  private readonly queued: string[] = [];
  private waiter: ((line: string) => void) | undefined;

  constructor(
    private readonly child: Child,
    private readonly what: string,
  ) {
    child.proc.stdout?.on('data', (d: Buffer) => {
      const parts = (this.partial + d.toString()).split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) {
        if (line.trim() === '') continue;
        const w = this.waiter;
        if (w) {
          this.waiter = undefined;
          w(line);
        } else this.queued.push(line);
      }
    });
  }

  next(timeoutMs: number): Promise<string> {
    const line = this.queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`${this.what}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const onExit = (): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        reject(new Error(`${this.what} exited`));
      };
      this.child.proc.once('exit', onExit);
      this.waiter = (l) => {
        clearTimeout(timer);
        this.child.proc.off('exit', onExit);
        resolve(l);
      };
    });
  }

  send(line: string): void {
    this.child.proc.stdin?.write(line + '\n');
  }
}

type Reply = Record<string, unknown>;

/** One load-generator process (bench/fixtures/gateway-load.ts). */
export class LoadGen {
  private constructor(
    readonly child: Child,
    private readonly lines: Lines,
  ) {}

  static async start(tag: string): Promise<LoadGen> {
    const child = await startNode([`${FIXTURES}gateway-load.js`], /"event":"ready"/, { execArgv: profArgs(`gateway-load-${tag}`) });
    return new LoadGen(child, new Lines(child, `load generator (${tag})`));
  }

  get pid(): number | undefined {
    return this.child.proc.pid;
  }

  /** Sends a command; `onEvent` sees the `{"event":...}` lines before the answer. */
  async cmd(command: Reply, timeoutMs = 60_000, onEvent?: (event: string) => void): Promise<Reply> {
    this.lines.send(JSON.stringify(command));
    for (;;) {
      const msg = JSON.parse(await this.lines.next(timeoutMs)) as Reply;
      if (typeof msg['event'] === 'string') {
        onEvent?.(msg['event']);
        continue;
      }
      if (msg['ok'] !== true) throw new Error(`load generator: ${String(msg['command'] ?? command['cmd'])}: ${String(msg['error'])}`);
      return msg;
    }
  }

  stop(): Promise<void> {
    return this.child.stop();
  }
}

export function numberOf(reply: Reply, key: string): number {
  const v = reply[key];
  return typeof v === 'number' ? v : NaN;
}

// ---- the systems under load ----------------------------------------------------

export interface Running {
  readonly name: string;
  readonly where: string;
  readonly port: number;
  /** The front (agent or proxy) and back (backend or echo server) processes, for CPU time. */
  readonly front: ChildProcess;
  readonly back: ChildProcess;
  readonly gen: LoadGen;
  stop(): Promise<void>;
}

export function bin(): string {
  return path.join(ROOT, 'bin', 'gamemesh.js');
}

export async function startDiscovery(): Promise<{ child: Child; addr: string }> {
  const child = await startNode([bin(), 'discovery', '--addr', '127.0.0.1:0'], /^discovery listening on (.+):(\d+)$/);
  return { child, addr: `${child.ready[1]}:${child.ready[2]}` };
}

export async function pushRoutes(sdaddr: string): Promise<void> {
  const sd = await DiscoveryClient.connect({ addr: sdaddr, name: 'gateway-bench' });
  try {
    await sd.put(`config/${ROUTES_KEY}`, JSON.stringify(ROUTES));
  } finally {
    await sd.close();
  }
}

interface AgentProc {
  readonly child: Child;
  readonly tcpPort: number;
  readonly wsPort: number;
}

const AGENT_READY = /^agent (\S+) listening tcp=(\S+) ws=(\S+)$/;

/** `root`: another checkout's build (an A/B against it); default this one. */
export async function startAgent(sdaddr: string, transport: 'tcp' | 'ws', tag: string, probe: boolean, extra: readonly string[] = [], root = ROOT): Promise<AgentProc> {
  const args = [path.join(root, 'bin', 'gamemesh.js'), 'agent', '--sdaddr', sdaddr, '--tcp-port', transport === 'tcp' ? '0' : '-1', '--ws-port', transport === 'ws' ? '0' : '-1', ...extra];
  args.push('--max-msgs-per-sec', '1000000000', '--heartbeat-sec', '60', '--loglevel', 'warn');
  const execArgv = [...(probe ? ['--expose-gc', '--import', pathToFileURL(`${FIXTURES}mem-probe.js`).href] : []), ...profArgs(`gateway-agent-${tag}`)];
  const child = await startNode(args, AGENT_READY, { execArgv });
  const port = (s: string | undefined): number => Number(/:(\d+)\/?$/.exec(s ?? '')?.[1] ?? NaN);
  return { child, tcpPort: port(child.ready[2]), wsPort: port(child.ready[3]) };
}

/** Another stack beside the default one: its own service group (so its agent links only to its backend), extra flags for both. */
export interface StackOptions {
  readonly name: string;
  readonly group: string;
  /** Its nodes' --svcindex: every node needs its own logical address, whatever its group. */
  readonly index: number;
  readonly extraArgs: readonly string[];
}

export async function startGamemesh(sdaddr: string, stack?: StackOptions): Promise<Running> {
  const extra = stack ? ['--svcgroup', stack.group, '--svcindex', String(stack.index), ...stack.extraArgs] : [];
  const children: Child[] = [];
  const stop = async (): Promise<void> => {
    for (const c of children.reverse()) await c.stop();
  };
  try {
    const agent = await startAgent(sdaddr, 'tcp', stack ? `e2e-${stack.group}` : 'e2e', false, extra);
    children.push(agent.child);
    const backend = await startNode([`${FIXTURES}gateway-backend.js`, '--sdaddr', sdaddr, ...extra], /^ready (\S+)$/, { execArgv: profArgs('gateway-backend') });
    children.push(backend);
    const gen = await LoadGen.start(stack?.group ?? GAMEMESH);
    children.push(gen.child);
    // The agent learns the route table and the backend from discovery: wait until a request goes through.
    await waitForEcho(gen, agent.tcpPort);
    return {
      name: stack?.name ?? GAMEMESH,
      where: '`gamemesh agent` (TCP) -> service link -> GatewayBackend echo process',
      port: agent.tcpPort,
      front: agent.child.proc,
      back: backend.proc,
      gen,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Connects one client and runs short loops until echoes come back without errors (10 s at most). */
async function waitForEcho(gen: LoadGen, port: number): Promise<void> {
  await gen.cmd({ cmd: 'connect', port, total: 1, transport: 'tcp' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await gen.cmd({ cmd: 'run', clients: 1, warmMs: 0, ms: 50 });
    if (numberOf(r, 'responses') > 0 && numberOf(r, 'errors') === 0) return;
    if (Date.now() > deadline) throw new Error('the agent did not route echo requests within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function startCeiling(mode: 'mux' | 'pipe'): Promise<Running> {
  const children: Child[] = [];
  const stop = async (): Promise<void> => {
    for (const c of children.reverse()) await c.stop();
  };
  try {
    const echo = await startFrameEcho(`gateway-echo-${mode}`);
    children.push(echo.child);
    const proxy = await startNode([`${FIXTURES}raw-proxy.js`, '--mode', mode, '--upstream', String(echo.port)], /^ready (\d+)$/, { execArgv: profArgs(`gateway-proxy-${mode}`) });
    children.push(proxy);
    const gen = await LoadGen.start(mode);
    children.push(gen.child);
    return {
      name: `raw proxy, ${mode}`,
      where:
        mode === 'mux'
          ? 'node:net proxy, client frames decoded and multiplexed over one upstream socket (client id prepended), frames of one turn in one write -> raw framed echo process'
          : 'node:net proxy, one upstream socket per client, client.pipe(upstream) and upstream.pipe(client), no parsing -> raw framed echo process',
      port: Number(proxy.ready[1]),
      front: proxy.proc,
      back: echo.child.proc,
      gen,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- (a) end to end --------------------------------------------------------------

/** One warm-up + window of the closed loop on one system. */
export interface Round {
  readonly perSec: number;
  readonly responses: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU ms over the window: load generator, front (agent/proxy), back (backend/echo). */
  readonly genMs: number;
  readonly frontMs: number;
  readonly backMs: number;
}

export interface E2eResult {
  readonly system: string;
  readonly clients: number;
  /** Median over the rounds, and the range. */
  readonly perSec: number;
  readonly minPerSec: number;
  readonly maxPerSec: number;
  /** Every round's msgs/s, in round order (round r of each system ran next to round r of the others). */
  readonly rates: readonly number[];
  /** Medians over the rounds of each round's percentiles (ms). */
  readonly p50: number;
  readonly p99: number;
  /** CPU µs per message over all rounds: load generator, front (agent/proxy), back (backend/echo). */
  readonly genUs: number;
  readonly frontUs: number;
  readonly backUs: number;
}

export async function measureRound(sys: Running, clients: number): Promise<Round> {
  let front0 = NaN;
  let back0 = NaN;
  let frontMs = NaN;
  let backMs = NaN;
  const r = await sys.gen.cmd({ cmd: 'run', clients, warmMs: WARM_MS, ms: WINDOW_MS }, 60_000, (event) => {
    if (event === 'window-start') {
      front0 = cpuMs(sys.front.pid);
      back0 = cpuMs(sys.back.pid);
    } else if (event === 'window-end') {
      frontMs = cpuMs(sys.front.pid) - front0;
      backMs = cpuMs(sys.back.pid) - back0;
    }
  });
  if (numberOf(r, 'errors') > 0) throw new Error(`${sys.name}, ${clients} clients: ${numberOf(r, 'errors')} error answers`);
  if (numberOf(r, 'stuck') > 0) console.log(`  note: ${sys.name}, ${clients} clients: ${numberOf(r, 'stuck')} requests still unanswered 5 s after the window`);
  const round: Round = {
    perSec: numberOf(r, 'perSec'),
    responses: numberOf(r, 'responses'),
    p50: numberOf(r, 'p50'),
    p99: numberOf(r, 'p99'),
    genMs: numberOf(r, 'cpuMs'),
    frontMs,
    backMs,
  };
  if (process.env['BENCH_VERBOSE'] === '1') console.log(`  ${sys.name}, ${clients} clients: ${fmtInt(round.perSec)} msgs/s, p50 ${fmtNum(round.p50, 2)} ms`);
  return round;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarize(system: string, clients: number, rounds: readonly Round[]): E2eResult {
  const responses = rounds.reduce((a, r) => a + r.responses, 0);
  const us = (pick: (r: Round) => number): number => (rounds.reduce((a, r) => a + pick(r), 0) * 1000) / responses;
  const rates = rounds.map((r) => r.perSec);
  return {
    system,
    clients,
    perSec: median(rates),
    minPerSec: Math.min(...rates),
    maxPerSec: Math.max(...rates),
    rates,
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    genUs: us((r) => r.genMs),
    frontUs: us((r) => r.frontMs),
    backUs: us((r) => r.backMs),
  };
}

/**
 * At each client count: every system gets its connections, then ROUNDS
 * rounds run the systems in turn (rotating the order), so a burst of other
 * work on the machine hits one round of one system, not a whole case.
 */
async function measureE2e(systems: readonly Running[]): Promise<E2eResult[]> {
  const results: E2eResult[] = [];
  for (const clients of CLIENT_COUNTS) {
    for (const sys of systems) await sys.gen.cmd({ cmd: 'connect', port: sys.port, total: clients, transport: 'tcp' });
    const rounds = systems.map((): Round[] => []);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < systems.length; k++) {
        const i = (k + r) % systems.length;
        (rounds[i] as Round[]).push(await measureRound(systems[i] as Running, clients));
      }
    }
    systems.forEach((sys, i) => results.push(summarize(sys.name, clients, rounds[i] as Round[])));
  }
  return results;
}

/**
 * The median, over rounds, of a's msgs/s over b's in the same round: rounds
 * of the two ran back to back, so a burst of other work on the machine
 * mostly hits both or shows up as one outlying ratio.
 */
export function pairedRatio(a: E2eResult, b: E2eResult): number {
  const n = Math.min(a.rates.length, b.rates.length);
  return median(Array.from({ length: n }, (_, i) => (a.rates[i] as number) / (b.rates[i] as number)));
}

function printE2e(results: readonly E2eResult[]): void {
  const rows: string[][] = [];
  const verdicts: string[] = [];
  const totalUs = (r: E2eResult): number => r.genUs + r.frontUs + r.backUs;
  for (const n of CLIENT_COUNTS) {
    const at = results.filter((r) => r.clients === n);
    const ceilings = at.filter((r) => r.system !== GAMEMESH);
    const best = ceilings.reduce<E2eResult | undefined>((b, r) => (b === undefined || r.perSec > b.perSec ? r : b), undefined);
    const gm = at.find((r) => r.system === GAMEMESH);
    for (const r of at) {
      const ratio = best ? pairedRatio(r, best) : NaN;
      rows.push([
        fmtInt(n),
        r.system,
        fmtInt(r.perSec),
        `${fmtInt(r.minPerSec)}-${fmtInt(r.maxPerSec)}`,
        fmtNum(r.p50, 2),
        fmtNum(r.p99, 2),
        best ? `${Math.round(ratio * 100)} %` : '—',
        fmtNum(r.genUs, 1),
        fmtNum(r.frontUs, 1),
        fmtNum(r.backUs, 1),
        fmtNum(totalUs(r), 1),
        r.system === GAMEMESH ? `≥ ${Math.round(TARGET_RATIO * 100)} %: ${best ? (ratio >= TARGET_RATIO ? 'met' : 'MISSED') : '—'}` : r === best ? '(ceiling)' : '',
      ]);
    }
    if (gm && best) {
      const ratio = pairedRatio(gm, best);
      verdicts.push(
        `- target at ${fmtInt(n)} clients: gamemesh ≥ ${Math.round(TARGET_RATIO * 100)} % of the ceiling (${best.system}): ${Math.round(ratio * 100)} % (median of the rounds' ratios; medians ${fmtInt(gm.perSec)} / ${fmtInt(best.perSec)} msgs/s), ${ratio >= TARGET_RATIO ? 'met' : 'MISSED'};` +
          ` CPU per message, all three processes: ${fmtNum(totalUs(gm), 1)} vs ${fmtNum(totalUs(best), 1)} µs (the ceiling costs ${Math.round((totalUs(best) / totalUs(gm)) * 100)} % of gamemesh's).`,
      );
    }
  }
  printTable(
    'gateway end to end: N clients, 1 request in flight each, echoed by a backend',
    ['clients', 'system', 'msgs/s', 'range', 'p50 ms', 'p99 ms', 'vs ceiling', 'CPU µs/msg: load gen', 'agent/proxy', 'backend/echo', 'total', 'target'],
    rows,
  );
  console.log(verdicts.join('\n'));
}

// ---- (b) broadcast -----------------------------------------------------------------

interface BroadcastResult {
  readonly sequential: Reply;
  readonly burst: Reply;
  readonly agentUsSeq: number;
  readonly agentUsBurst: number;
}

async function measureBroadcast(sys: Running, clients: number): Promise<BroadcastResult> {
  await sys.gen.cmd({ cmd: 'connect', port: sys.port, total: clients, transport: 'tcp' });
  // Warm-up: a few rounds, not recorded.
  await sys.gen.cmd({ cmd: 'broadcast', rounds: BROADCAST_WARM, expect: clients });
  let a0 = cpuMs(sys.front.pid);
  const sequential = await sys.gen.cmd({ cmd: 'broadcast', rounds: BROADCAST_ROUNDS, expect: clients });
  const agentUsSeq = ((cpuMs(sys.front.pid) - a0) * 1000) / numberOf(sequential, 'deliveries');
  a0 = cpuMs(sys.front.pid);
  const burst = await sys.gen.cmd({ cmd: 'burst', count: BURST, expect: clients });
  const agentUsBurst = ((cpuMs(sys.front.pid) - a0) * 1000) / numberOf(burst, 'deliveries');
  return { sequential, burst, agentUsSeq, agentUsBurst };
}

function printBroadcast(b: BroadcastResult, clients: number): void {
  const row = (name: string, r: Reply, agentUs: number, perRound: string): string[] => [
    name,
    fmtInt(numberOf(r, 'deliveries')),
    fmtNum(numberOf(r, 'ms'), 0),
    fmtInt(numberOf(r, 'perSec')),
    perRound,
    fmtNum((numberOf(r, 'cpuMs') * 1000) / numberOf(r, 'deliveries'), 2),
    fmtNum(agentUs, 2),
    '(none set)',
  ];
  const seq = b.sequential;
  printTable(
    `gateway broadcast: one message to ${fmtInt(clients)} clients, counted at the clients`,
    ['case', 'deliveries', 'ms', 'deliveries/s', 'per broadcast p50 / p99 ms', 'load gen CPU µs/delivery', 'agent CPU µs/delivery', 'target'],
    [
      row(`${BROADCAST_ROUNDS} broadcasts, one at a time`, seq, b.agentUsSeq, `${fmtNum(numberOf(seq, 'p50'), 1)} / ${fmtNum(numberOf(seq, 'p99'), 1)}`),
      row(`${BURST} broadcasts back to back`, b.burst, b.agentUsBurst, '—'),
    ],
  );
}

// ---- (c) memory ------------------------------------------------------------------------

export interface Mem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  gc: boolean;
}

interface MemResult {
  readonly transport: 'tcp' | 'ws';
  readonly before: Mem;
  readonly after: Mem;
  readonly connectMs: number;
}

export async function readMem(lines: Lines): Promise<Mem> {
  lines.send('mem');
  for (;;) {
    const line = await lines.next(10_000);
    if (line.startsWith('mem ')) return JSON.parse(line.slice(4)) as Mem;
  }
}

async function measureMemory(sdaddr: string, transport: 'tcp' | 'ws'): Promise<MemResult> {
  const agent = await startAgent(sdaddr, transport, `mem-${transport}`, true);
  let gen: LoadGen | undefined;
  try {
    const lines = new Lines(agent.child, 'agent memory probe');
    gen = await LoadGen.start(`mem-${transport}`);
    await sleep(500);
    const before = await readMem(lines);
    const t0 = performance.now();
    await gen.cmd({ cmd: 'connect', port: transport === 'tcp' ? agent.tcpPort : agent.wsPort, total: MEM_CLIENTS, transport }, 120_000);
    const connectMs = performance.now() - t0;
    await sleep(1000);
    const after = await readMem(lines);
    const snapDir = process.env['BENCH_GATEWAY_HEAP_SNAPSHOT'];
    if (snapDir) {
      lines.send(`snapshot ${path.join(snapDir, `gateway-agent-${transport}-${Date.now()}.heapsnapshot`)}`);
      for (;;) if ((await lines.next(120_000)).startsWith('snapshot ')) break;
    }
    return { transport, before, after, connectMs };
  } finally {
    await gen?.stop();
    await agent.child.stop();
  }
}

function printMemory(results: readonly MemResult[]): void {
  const kb = (bytes: number): string => fmtNum(bytes / 1024, 1);
  const mb = (bytes: number): string => fmtNum(bytes / 1024 / 1024, 1);
  const rows = results.map((r) => {
    const per = (k: 'rss' | 'heapUsed' | 'external'): number => (r.after[k] - r.before[k]) / MEM_CLIENTS;
    const rss = per('rss');
    return [
      r.transport === 'tcp' ? 'TCP' : 'WebSocket',
      `${mb(r.before.rss)} → ${mb(r.after.rss)}`,
      `${mb(r.before.heapUsed)} → ${mb(r.after.heapUsed)}`,
      kb(rss),
      kb(per('heapUsed')),
      kb(per('external')),
      fmtInt((MEM_CLIENTS * 1000) / r.connectMs),
      `≤ 16 KB RSS: ${rss <= TARGET_BYTES ? 'met' : 'MISSED'}`,
    ];
  });
  printTable(
    `gateway memory: ${fmtInt(MEM_CLIENTS)} idle, handshaken clients on a fresh agent`,
    ['transport', 'agent RSS MB', 'agent heapUsed MB', 'RSS KB/client', 'heapUsed KB/client', 'external KB/client', 'connects/s', 'target'],
    rows,
  );
  if (results.some((r) => !r.after.gc)) console.log('- note: --expose-gc was not in effect; the figures are without a forced gc');
}

// ---- driver ------------------------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function envList(name: string, all: readonly string[], defaults: readonly string[] = all): Set<string> {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return new Set(defaults);
  const picked = raw.split(',').map((s) => s.trim());
  const unknown = picked.filter((p) => !all.includes(p));
  if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(', ')}; known: ${all.join(', ')}`);
  return new Set(picked);
}

export async function run(): Promise<void> {
  const parts = envList('BENCH_GATEWAY_PARTS', ['e2e', 'broadcast', 'memory']);
  const ceilings = envList('BENCH_GATEWAY_CEILING', ['mux', 'pipe', 'none'], ['mux']);
  const cpu = new CpuLoad();
  const sd = await startDiscovery();
  const notes: string[] = [];
  try {
    await pushRoutes(sd.addr);
    if (parts.has('e2e') || parts.has('broadcast')) {
      const systems: Running[] = [];
      try {
        systems.push(await startGamemesh(sd.addr));
        if (parts.has('e2e')) for (const mode of ['mux', 'pipe'] as const) if (ceilings.has(mode)) systems.push(await startCeiling(mode));
        if (parts.has('e2e')) {
          printE2e(await measureE2e(systems));
          notes.push(...systems.map((s) => `- ${s.name}: ${s.where}.`));
          notes.push(
            `- each case: ${ROUNDS} rounds per system, the systems taking turns (order rotated each round); a round is a ${(WARM_MS / 1000).toFixed(1)} s warm-up (every connection starts its loop) and a ${(WINDOW_MS / 1000).toFixed(1)} s window, then the loop stops and drains.` +
              ' msgs/s = responses received in the window, the median round (range: slowest-fastest round); p50/p99 = medians of the rounds\' percentiles of request written -> response read, at the load generator.',
            '- vs ceiling: msgs/s of each round over the ceiling\'s in the same round (they ran back to back), the median of those ratios; the ceiling is the faster raw proxy measured (by median). CPU µs/msg: CPU time (user+system, from /proc) of each process over the windows divided by the responses in them; "total" adds the three. The machine has 2 cores for all of them.',
          );
        }
        if (parts.has('broadcast')) {
          const gm = systems[0] as Running;
          const clients = CLIENT_COUNTS[CLIENT_COUNTS.length - 1] as number;
          printBroadcast(await measureBroadcast(gm, clients), clients);
          notes.push(
            `- broadcast: "one at a time" = a client sends a one-way "!broadcast" to the backend, which calls GatewayBackend.broadcast once; the next round starts when all ${fmtInt(clients)} clients got the frame (per broadcast = trigger -> last delivery). "back to back" = one "!burst" and the backend calls broadcast ${BURST} times in a loop; time = trigger -> last delivery. ${BROADCAST_WARM} unrecorded rounds first.`,
          );
        }
      } finally {
        for (const s of systems) await s.stop();
      }
    }
    if (parts.has('memory')) {
      const results: MemResult[] = [];
      for (const transport of ['tcp', 'ws'] as const) results.push(await measureMemory(sd.addr, transport));
      printMemory(results);
      notes.push(
        `- memory: agent process.memoryUsage() after two gc() calls (node --expose-gc, probe preloaded with --import), 0.5 s after start and again 1 s after the ${fmtInt(MEM_CLIENTS)}th handshake; per client = (after - before) / ${fmtInt(MEM_CLIENTS)}. RSS also holds heap pages V8 has not returned to the OS; heapUsed is live JS objects; external is Buffers and other off-heap memory V8 knows about. Kernel socket buffers are not in RSS.`,
      );
    }
  } finally {
    await sd.child.stop();
  }
  notes.push(`- ${loadNote(cpu)}.`);
  console.log(notes.join('\n') + '\n');
}

if (isMain(import.meta.url)) {
  await run();
}
