/**
 * gamemesh beside its peers on the same machine, in the same run:
 * `npm run bench:peers` (or `node dist/bench/peers.js`). Systems take turns
 * round by round (A, B, C, A, B, C, ...; the order rotates), so a burst of
 * other work on the shared machine hits one round of one system; every
 * figure is the median over rounds with the range, and ratios are medians
 * of per-round ratios (rounds of two systems ran back to back).
 *
 * Client path (1,000 WebSocket clients, one load-generator process,
 * bench/fixtures/gateway-load.ts):
 *   - gamemesh: `gamemesh agent` (WebSocket port) -> service link ->
 *     GatewayBackend echo (bench/fixtures/gateway-backend.ts); clients speak
 *     the client protocol with a minimal hand-written WebSocket client;
 *   - Colyseus 0.18: @colyseus/core + @colyseus/ws-transport, one room
 *     holding every client (bench/fixtures/colyseus-server.ts); clients are
 *     @colyseus/sdk rooms (its SDK: msgpack payloads, its own protocol);
 *   - raw ws ceiling: a `ws` server answering every message with the bytes
 *     it got (bench/fixtures/ws-ceiling.ts), the least a Node WebSocket
 *     server can do; same client as gamemesh.
 *   (a) round trips: each client in a closed loop, one request in flight;
 *   (b) one broadcast at a time to all 1,000 (the next starts when every
 *       client got the previous one): deliveries/s and last-client latency;
 *   (c) room-style ticks: every 50 ms a client's message makes the room
 *       send k broadcasts to all 1,000; latency from the trigger to its
 *       last delivery. k = 4 in rounds, then k rises until the tick p99
 *       passes 50 ms: the deliveries/s at the last k under it is the figure;
 *   (d) 5,000 idle clients on a fresh server: RSS per client (after gc)
 *       and connects/s (200 connecting at a time).
 * Server CPU (all server processes: agent + backend for gamemesh) is read
 * from /proc over each measured window.
 *
 * RPC (caller in this process, callee in its own): the raw framed echo,
 * gamemesh, grpc-js (bench/rpc.ts), Moleculer over TCP and over NATS (when
 * /usr/sbin/nats-server exists), and pinus-rpc; serial and 1,000 pipelined.
 *
 * `BENCH_PEERS_PARTS=client,memory,rpc` picks parts, `BENCH_PEERS_CLIENT=rt,broadcast,ticks,sweep`
 * the client-path cases; `BENCH_PEERS_ROUNDS=3`; `BENCH_CPU_PROF=<dir>` profiles the
 * gamemesh agent and backend (and the load generators).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ServiceBroker } from 'moleculer';
import { cpuMs, CpuLoad, drive, FIXTURES, freePort, loadNote, profArgs, startExternal, startNode, type Child, type LoadResult } from './harness.js';
import { fmtInt, fmtNum, fmtRatio, isMain, printTable } from './lib.js';
import { envInts, LoadGen, Lines, median, numberOf, pushRoutes, readMem, startAgent, startDiscovery } from './gateway.js';
import { loadPinusRpc } from './fixtures/pinus-load.js';
import { SYSTEMS as RPC_BASE, type Running as RpcRunning, type System as RpcSystem } from './rpc.js';

const ROUNDS = envInts('BENCH_PEERS_ROUNDS')?.[0] ?? 3;
const CLIENTS = 1000;
const MEM_CLIENTS = 5000;
const BROADCASTS = 30;
const TICKS = 30;
const K_ROUNDS = 4;
const K_LADDER = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64];
const TICK_P99_MS = 50;
const WARM_MS = 400;
const WINDOW_MS = 1000;
const RPC_MS = 700;
const PIPELINE = 1000;
const NATS_SERVER = '/usr/sbin/nats-server';
/**
 * `npm run bench:peers` must finish within 5 minutes: on a loaded machine the
 * rise of k stops early and RPC rounds are cut, each said in the output.
 */
const BUDGET_S = 220;
const SWEEP_BUDGET_S = 100;
const STARTED = Date.now();
const elapsedS = (): number => (Date.now() - STARTED) / 1000;
const GAMEMESH = 'gamemesh';
const COLYSEUS = 'Colyseus';
const CEILING = 'raw ws';

function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const MEM_PROBE = (): string[] => ['--expose-gc', '--import', pathToFileURL(`${FIXTURES}mem-probe.js`).href];

// ---- client-path systems ---------------------------------------------------------

interface ClientSystem {
  readonly name: string;
  readonly where: string;
  readonly port: number;
  readonly transport: 'ws' | 'colyseus';
  /** Server processes, for CPU time. */
  readonly pids: readonly number[];
  /** The process holding the clients, for memory (with mem-probe when asked). */
  readonly holder: Child;
  readonly gen: LoadGen;
  stop(): Promise<void>;
}

async function withChildren<T>(build: (add: (c: Child) => Child) => Promise<T>, children: Child[]): Promise<T> {
  try {
    return await build((c) => {
      children.push(c);
      return c;
    });
  } catch (err) {
    for (const c of children.reverse()) await c.stop();
    throw err;
  }
}

/** `BENCH_PEERS_BASELINE=<dir of another built checkout>` adds its agent and backend as one more system (an A/B of a change). */
const BASELINE = process.env['BENCH_PEERS_BASELINE'];

async function startGamemeshWs(tag: string, probe: boolean, withBackend = true, root?: string): Promise<ClientSystem> {
  const children: Child[] = [];
  return withChildren(async (add) => {
    const sd = add((await startDiscovery()).child);
    const sdaddr = `${sd.ready[1]}:${sd.ready[2]}`;
    await pushRoutes(sdaddr);
    const agent = await startAgent(sdaddr, 'ws', `peers-${tag}${root ? '-baseline' : ''}`, probe, [], root);
    add(agent.child);
    const pids = [agent.child.proc.pid ?? -1];
    if (withBackend) {
      const fixtures = root ? path.join(root, 'dist', 'bench', 'fixtures') + path.sep : FIXTURES;
      const backend = add(await startNode([`${fixtures}gateway-backend.js`, '--sdaddr', sdaddr], /^ready (\S+)$/, { execArgv: profArgs('peers-backend') }));
      pids.push(backend.proc.pid ?? -1);
    }
    const gen = await LoadGen.start(`peers-${tag}`);
    add(gen.child);
    if (withBackend) await waitForRoute(gen, agent.wsPort);
    return {
      name: root ? `${GAMEMESH} @ baseline` : GAMEMESH,
      where: root ? `the same, built from ${root}` : '`gamemesh agent` (WebSocket) -> service link -> GatewayBackend echo process (and a discovery process, idle)',
      port: agent.wsPort,
      transport: 'ws',
      pids,
      holder: agent.child,
      gen,
      stop: async () => {
        for (const c of children.reverse()) await c.stop();
      },
    };
  }, children);
}

/** The agent learns routes and the backend from discovery: a request must go through first. */
async function waitForRoute(gen: LoadGen, port: number): Promise<void> {
  await gen.cmd({ cmd: 'connect', port, total: 1, transport: 'ws' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await gen.cmd({ cmd: 'run', clients: 1, warmMs: 0, ms: 50 });
    if (numberOf(r, 'responses') > 0 && numberOf(r, 'errors') === 0) return;
    if (Date.now() > deadline) throw new Error('the agent did not route echo requests within 10 s');
    await sleep(100);
  }
}

async function startSingle(name: string, fixture: string, transport: 'ws' | 'colyseus', where: string, tag: string, probe: boolean): Promise<ClientSystem> {
  const children: Child[] = [];
  return withChildren(async (add) => {
    const server = add(await startNode([`${FIXTURES}${fixture}`], /^ready (\d+)$/, { execArgv: probe ? MEM_PROBE() : [] }));
    const gen = await LoadGen.start(`peers-${tag}`);
    add(gen.child);
    const port = Number(server.ready[1]);
    // The first client creates the room; the others join it.
    await gen.cmd({ cmd: 'connect', port, total: 1, transport });
    return {
      name,
      where,
      port,
      transport,
      pids: [server.proc.pid ?? -1],
      holder: server,
      gen,
      stop: async () => {
        for (const c of children.reverse()) await c.stop();
      },
    };
  }, children);
}

const startColyseus = (tag: string, probe: boolean): Promise<ClientSystem> =>
  startSingle(COLYSEUS, 'colyseus-server.js', 'colyseus', 'Colyseus 0.18 (@colyseus/core, @colyseus/ws-transport), one room; clients: @colyseus/sdk', tag, probe);
const startCeiling = (tag: string, probe: boolean): Promise<ClientSystem> =>
  startSingle(CEILING, 'ws-ceiling.js', 'ws', '`ws` server answering each message with the bytes it got; broadcasts with ws.send per client', tag, probe);

function serverCpu(sys: ClientSystem): number {
  return sys.pids.reduce((a, pid) => a + cpuMs(pid), 0);
}

// ---- client-path measurements --------------------------------------------------

interface Sample {
  /** The figure of the round (msgs/s or deliveries/s). */
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  /** Server CPU µs per message or delivery; load-generator CPU µs likewise. */
  readonly serverUs: number;
  readonly genUs: number;
}

async function roundTrip(sys: ClientSystem): Promise<Sample> {
  let cpu0 = NaN;
  let cpu = NaN;
  const r = await sys.gen.cmd({ cmd: 'run', clients: CLIENTS, warmMs: WARM_MS, ms: WINDOW_MS }, 60_000, (event) => {
    if (event === 'window-start') cpu0 = serverCpu(sys);
    else if (event === 'window-end') cpu = serverCpu(sys) - cpu0;
  });
  if (numberOf(r, 'errors') > 0) throw new Error(`${sys.name}: ${numberOf(r, 'errors')} error answers`);
  const n = numberOf(r, 'responses');
  return { rate: numberOf(r, 'perSec'), p50: numberOf(r, 'p50'), p99: numberOf(r, 'p99'), serverUs: (cpu * 1000) / n, genUs: (numberOf(r, 'cpuMs') * 1000) / n };
}

async function broadcastOne(sys: ClientSystem): Promise<Sample> {
  const cpu0 = serverCpu(sys);
  const r = await sys.gen.cmd({ cmd: 'broadcast', rounds: BROADCASTS, expect: CLIENTS });
  const n = numberOf(r, 'deliveries');
  return { rate: numberOf(r, 'perSec'), p50: numberOf(r, 'p50'), p99: numberOf(r, 'p99'), serverUs: ((serverCpu(sys) - cpu0) * 1000) / n, genUs: (numberOf(r, 'cpuMs') * 1000) / n };
}

async function ticks(sys: ClientSystem, k: number): Promise<Sample | undefined> {
  const cpu0 = serverCpu(sys);
  const r = await sys.gen.cmd({ cmd: 'ticks', k, ticks: TICKS, expect: CLIENTS }, 60_000);
  if (r['complete'] !== true) return undefined;
  const n = numberOf(r, 'deliveries');
  return { rate: numberOf(r, 'perSec'), p50: numberOf(r, 'p50'), p99: numberOf(r, 'p99'), serverUs: ((serverCpu(sys) - cpu0) * 1000) / n, genUs: (numberOf(r, 'cpuMs') * 1000) / n };
}

/** ROUNDS rounds of `fn` on every system, in turn, the order rotating each round. */
async function interleave<T>(systems: readonly { name: string }[], rounds: number, fn: (i: number) => Promise<T>, more: () => boolean = () => true): Promise<T[][]> {
  const out = systems.map((): T[] => []);
  for (let r = 0; r < rounds; r++) {
    if (r > 0 && !more()) {
      console.log(`- rounds cut to ${r} of ${rounds}: the bench's time budget (${BUDGET_S} s) is spent (a loaded machine).`);
      break;
    }
    for (let j = 0; j < systems.length; j++) {
      const i = (j + r) % systems.length;
      (out[i] as T[]).push(await fn(i));
    }
  }
  return out;
}

/** The highest k of the ladder whose tick p99 stays within 50 ms, with its figures. */
async function sweep(sys: ClientSystem): Promise<{ k: number; sample: Sample | undefined; failedAt: string }> {
  let best: { k: number; sample: Sample | undefined } = { k: 0, sample: undefined };
  for (const k of K_LADDER) {
    if (elapsedS() > SWEEP_BUDGET_S) return { ...best, failedAt: `k = ${k} not tried: past ${SWEEP_BUDGET_S} s of the bench's time budget (a loaded machine)` };
    // A second try at a failing k: on a shared machine one descheduled load generator makes a p99.
    let s = await ticks(sys, k);
    if ((!s || s.p99 > TICK_P99_MS) && elapsedS() < SWEEP_BUDGET_S) {
      const again = await ticks(sys, k);
      if (again && (!s || again.p99 < s.p99)) s = again;
    }
    if (!s) return { ...best, failedAt: `k = ${k}: not every delivery within 20 s` };
    if (s.p99 > TICK_P99_MS) return { ...best, failedAt: `k = ${k}: p99 ${fmtNum(s.p99, 1)} ms (better of 2 tries)` };
    best = { k, sample: s };
  }
  return { ...best, failedAt: `the ladder ends at k = ${K_LADDER[K_LADDER.length - 1]}` };
}

const range = (v: readonly number[], f: (n: number) => string): string => `${f(median(v))} (${f(Math.min(...v))}–${f(Math.max(...v))})`;
const ratios = (a: readonly Sample[], b: readonly Sample[], pick: (s: Sample) => number = (s) => s.rate): number[] => a.map((s, i) => pick(s) / pick(b[i] as Sample));
const ratioCell = (r: readonly number[]): string => (r.length === 0 ? '—' : `${fmtRatio(median(r))} (${fmtRatio(Math.min(...r))}–${fmtRatio(Math.max(...r))})`);

function printSamples(title: string, unit: string, systems: readonly ClientSystem[], samples: readonly Sample[][], perWhat: string): void {
  const col = (name: string): Sample[] => samples[systems.findIndex((s) => s.name === name)] ?? [];
  const cy = col(COLYSEUS);
  const ceil = col(CEILING);
  const rows = systems.map((sys, i) => {
    const s = samples[i] as Sample[];
    return [
      sys.name,
      range(s.map((x) => x.rate), fmtInt),
      sys.name === COLYSEUS ? '1.00x' : ratioCell(ratios(s, cy)),
      sys.name === CEILING ? '1.00x' : ratioCell(ratios(s, ceil)),
      fmtNum(median(s.map((x) => x.p50)), 2),
      fmtNum(median(s.map((x) => x.p99)), 2),
      range(s.map((x) => x.serverUs), (n) => fmtNum(n, 1)),
      sys.name === COLYSEUS ? '1.00x' : ratioCell(ratios(s, cy, (x) => x.serverUs)),
      fmtNum(median(s.map((x) => x.genUs)), 1),
    ];
  });
  printTable(`${title} — loadavg ${loadavg()}`, ['system', unit, 'vs Colyseus', 'vs raw ws', 'p50 ms', 'p99 ms', `server CPU µs/${perWhat}`, 'CPU vs Colyseus', `load-gen CPU µs/${perWhat}`], rows);
}

async function clientPath(): Promise<void> {
  const cpu = new CpuLoad();
  const systems: ClientSystem[] = [];
  try {
    systems.push(await startGamemeshWs('client', false), await startColyseus('client', false), await startCeiling('client', false));
    if (BASELINE) systems.push(await startGamemeshWs('client', false, true, path.resolve(BASELINE)));
    for (const sys of systems) await sys.gen.cmd({ cmd: 'connect', port: sys.port, total: CLIENTS, transport: sys.transport }, 120_000);
    // Warm-up of every path before the rounds.
    for (const sys of systems) {
      await sys.gen.cmd({ cmd: 'run', clients: CLIENTS, warmMs: 200, ms: 300 });
      await sys.gen.cmd({ cmd: 'broadcast', rounds: 5, expect: CLIENTS });
      await sys.gen.cmd({ cmd: 'ticks', k: 2, ticks: 5, expect: CLIENTS });
    }
    const only = new Set((process.env['BENCH_PEERS_CLIENT'] ?? 'rt,broadcast,ticks,sweep').split(','));
    if (only.has('rt')) {
    const rt = await interleave(systems, ROUNDS, (i) => roundTrip(systems[i] as ClientSystem));
    printSamples(`client round trips, ${fmtInt(CLIENTS)} WebSocket clients, 1 request in flight each`, 'round trips/s', systems, rt, 'msg');
    }
    if (only.has('broadcast')) {
    const bc = await interleave(systems, ROUNDS, (i) => broadcastOne(systems[i] as ClientSystem));
    printSamples(`one broadcast at a time to ${fmtInt(CLIENTS)} clients (${BROADCASTS} per round; latency: to the last client)`, 'deliveries/s', systems, bc, 'delivery');
    }
    if (only.has('ticks')) {
    const k4 = await interleave(systems, ROUNDS, async (i) => (await ticks(systems[i] as ClientSystem, K_ROUNDS)) ?? { rate: NaN, p50: NaN, p99: NaN, serverUs: NaN, genUs: NaN });
    printSamples(`room ticks: k = ${K_ROUNDS} broadcasts to ${fmtInt(CLIENTS)} clients per 50 ms tick (${TICKS} ticks per round; latency: trigger to the tick's last delivery)`, 'deliveries/s', systems, k4, 'delivery');
    }
    if (only.has('sweep')) {
    const sweeps: Awaited<ReturnType<typeof sweep>>[] = [];
    for (const sys of systems) sweeps.push(await sweep(sys));
    const cyK = sweeps[systems.findIndex((s) => s.name === COLYSEUS)];
    printTable(
      `room ticks: k raised until the tick p99 passes ${TICK_P99_MS} ms (one pass per system) — loadavg ${loadavg()}`,
      ['system', 'highest k within 50 ms', 'deliveries/s there', 'p99 ms there', 'server CPU µs/delivery there', 'vs Colyseus', 'stopped at'],
      systems.map((sys, i) => {
        const s = sweeps[i] as Awaited<ReturnType<typeof sweep>>;
        const vs = s.sample && cyK?.sample ? fmtRatio(s.sample.rate / cyK.sample.rate) : '—';
        return [sys.name, String(s.k), s.sample ? fmtInt(s.sample.rate) : '—', s.sample ? fmtNum(s.sample.p99, 1) : '—', s.sample ? fmtNum(s.sample.serverUs, 2) : '—', vs, s.failedAt];
      }),
    );
    }
  } finally {
    for (const sys of systems) await sys.stop();
  }
  // After the stops: CpuLoad counts a child's CPU once it has been stopped.
  console.log([...systems.map((s) => `- ${s.name}: ${s.where}.`), `- ${loadNote(cpu)}.`, ''].join('\n'));
}

// ---- memory and connects ------------------------------------------------------------

async function memory(): Promise<void> {
  const rows: string[][] = [];
  const results: { name: string; perClient: number; connectsPerSec: number }[] = [];
  const starts: Array<(tag: string, probe: boolean) => Promise<ClientSystem>> = [(t, p) => startGamemeshWs(t, p, false), startColyseus, startCeiling];
  for (const start of starts) {
    const sys = await start('mem', true);
    try {
      const lines = new Lines(sys.holder, `${sys.name} memory probe`);
      await sleep(300);
      const before = await readMem(lines);
      const t0 = performance.now();
      await sys.gen.cmd({ cmd: 'connect', port: sys.port, total: MEM_CLIENTS, transport: sys.transport }, 180_000);
      const ms = performance.now() - t0;
      await sleep(1000);
      const after = await readMem(lines);
      const perClient = (after.rss - before.rss) / MEM_CLIENTS;
      const connectsPerSec = ((MEM_CLIENTS - 1) * 1000) / ms;
      results.push({ name: sys.name, perClient, connectsPerSec });
      rows.push([sys.name, `${fmtNum(before.rss / 2 ** 20, 1)} → ${fmtNum(after.rss / 2 ** 20, 1)}`, fmtNum(perClient / 1024, 2), fmtNum((after.heapUsed - before.heapUsed) / MEM_CLIENTS / 1024, 2), fmtInt(connectsPerSec)]);
    } finally {
      await sys.stop();
    }
  }
  const cy = results.find((r) => r.name === COLYSEUS);
  for (const [i, r] of results.entries()) (rows[i] as string[]).push(cy ? fmtRatio(r.perClient / cy.perClient) : '—', cy ? fmtRatio(r.connectsPerSec / cy.connectsPerSec) : '—');
  printTable(`${fmtInt(MEM_CLIENTS)} idle WebSocket clients on a fresh server (after gc) — loadavg ${loadavg()}`, ['system', 'RSS MiB', 'RSS KiB/client', 'heap KiB/client', 'connects/s', 'RSS vs Colyseus', 'connects vs Colyseus'], rows);
  console.log('- gamemesh: the agent process alone (it holds the clients); connects/s: upgrade + handshake (Colyseus: matchmaking HTTP request + upgrade + join), 200 at a time from one process.\n');
}

// ---- RPC peers ----------------------------------------------------------------------

const TEXT = 'hello';

function moleculer(kind: 'tcp' | 'nats'): RpcSystem {
  return {
    name: kind === 'tcp' ? 'Moleculer, TCP' : 'Moleculer, NATS',
    async start() {
      const children: Child[] = [];
      let broker: ServiceBroker | undefined;
      const stop = async (): Promise<void> => {
        await broker?.stop();
        for (const c of children.reverse()) await c.stop();
      };
      try {
        let transporter: ConstructorParameters<typeof ServiceBroker>[0] extends infer O ? (O extends { transporter?: infer T } ? T : never) : never;
        let calleeArgs: string[];
        if (kind === 'tcp') {
          const [calleePort, callerPort] = [await freePort(), await freePort()];
          calleeArgs = ['tcp', String(calleePort), String(callerPort)];
          transporter = { type: 'TCP', options: { udpDiscovery: false, port: callerPort, urls: `127.0.0.1:${calleePort}/callee` } };
        } else {
          const port = await freePort();
          children.push(await startNats(port));
          calleeArgs = ['nats', `nats://127.0.0.1:${port}`];
          transporter = { type: 'NATS', options: { url: `nats://127.0.0.1:${port}` } };
        }
        const callee = await startNode([`${FIXTURES}moleculer-echo.js`, ...calleeArgs], /^ready$/);
        children.push(callee);
        broker = new ServiceBroker({ nodeID: 'caller', transporter, logger: false });
        await broker.start();
        await broker.waitForServices('echo', 10_000);
        const b = broker;
        const first = (await b.call('echo.say', { text: TEXT, n: 7 })) as { n: number };
        if (first.n !== 7) throw new Error('bad Moleculer echo');
        return {
          where: kind === 'tcp' ? 'ServiceBroker caller here, callee process, TCP transporter (static addresses)' : 'ServiceBroker caller here, callee process, NATS transporter through nats-server',
          calleePid: callee.proc.pid,
          call: (i: number) => b.call('echo.say', { text: TEXT, n: i }),
          stop,
        };
      } catch (err) {
        await stop();
        throw err;
      }
    },
  };
}

function startNats(port: number): Promise<Child> {
  return startExternal(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port)], 'Server is ready');
}

const pinusRpc: RpcSystem = {
  name: 'pinus-rpc',
  async start() {
    const port = await freePort();
    const callee = await startNode([`${FIXTURES}pinus-echo.js`, String(port)], /^ready (.+)$/);
    try {
      const { createClient } = loadPinusRpc();
      const servers = [{ id: 'echo-1', serverType: 'echo', host: '127.0.0.1', port }];
      const client = createClient({ routeContext: servers, router: (_p: unknown, _m: unknown, _c: unknown, cb: (err: Error | null, id: string) => void) => cb(null, 'echo-1'), context: { serverId: 'caller' } });
      await new Promise<void>((resolve, reject) => client.start((err) => (err ? reject(err) : resolve())));
      client.addProxies([{ namespace: 'user', serverType: 'echo', path: callee.ready[1] as string }]);
      client.addServers(servers);
      const say = client.proxies.user.echo.echo.say;
      const first = (await say.toServer('echo-1', TEXT, 7)) as { n: number };
      if (first.n !== 7) throw new Error(`bad pinus-rpc echo: ${JSON.stringify(first)}`);
      return {
        where: 'pinus-rpc client here (default MQTT mailbox), server process',
        calleePid: callee.proc.pid,
        call: (i: number) => say.toServer('echo-1', TEXT, i),
        async stop() {
          client.stop(true);
          await callee.stop();
        },
      };
    } catch (err) {
      await callee.stop();
      throw err;
    }
  },
};

interface RpcSample {
  readonly serial: LoadResult;
  readonly pipelined: LoadResult;
}

async function rpc(): Promise<void> {
  const cpu = new CpuLoad();
  const defs: RpcSystem[] = [...RPC_BASE, moleculer('tcp'), ...(existsSync(NATS_SERVER) ? [moleculer('nats')] : []), pinusRpc];
  const names: string[] = [];
  const running: RpcRunning[] = [];
  try {
    for (const d of defs) {
      try {
        running.push(await d.start());
        names.push(d.name);
      } catch (err) {
        console.log(`- ${d.name} left out: it did not start (${(err as Error).message.split('\n')[0]})`);
      }
    }
    const samples = await interleave(names.map((name) => ({ name })), ROUNDS, async (i) => {
      const r = running[i] as RpcRunning;
      const serial = await drive(r.call, 1, RPC_MS, 200);
      const pipelined = await drive(r.call, PIPELINE, RPC_MS, 300);
      return { serial, pipelined } satisfies RpcSample;
    }, () => elapsedS() < BUDGET_S);
    const gm = samples[names.indexOf(GAMEMESH)] ?? [];
    const raw = samples[names.indexOf('raw framed echo')] ?? [];
    const rows: string[][] = [];
    for (const mode of ['serial', 'pipelined'] as const) {
      names.forEach((name, i) => {
        const s = samples[i] as RpcSample[];
        const ops = s.map((x) => x[mode].ops);
        const vsGm = ops.map((o, j) => (gm[j]?.[mode].ops ?? NaN) / o);
        const vsRaw = ops.map((o, j) => o / (raw[j]?.[mode].ops ?? NaN));
        rows.push([`${name}, ${mode === 'serial' ? 'serial' : `${fmtInt(PIPELINE)} pipelined`}`, range(ops, fmtInt), fmtNum(median(s.map((x) => x[mode].p50 * 1000)), 0), ratioCell(vsRaw), name === GAMEMESH ? '—' : ratioCell(vsGm)]);
      });
    }
    printTable(`RPC, caller here, callee in its own process — loadavg ${loadavg()}`, ['system, case', 'calls/s', 'p50 µs', 'vs raw echo', 'gamemesh / this'], rows);
    console.log(names.map((n, i) => `- ${n}: ${(running[i] as RpcRunning).where}.`).join('\n'));
  } finally {
    for (const r of running) await r.stop();
  }
  console.log(`- ${loadNote(cpu)}.\n`);
}

// ---- main ---------------------------------------------------------------------------

export async function run(): Promise<void> {
  const parts = new Set((process.env['BENCH_PEERS_PARTS'] ?? 'client,memory,rpc').split(',').map((s) => s.trim()));
  console.log(`# gamemesh vs peers — node ${process.version}, ${ROUNDS} interleaved rounds, loadavg at start ${loadavg()}\n`);
  const t0 = Date.now();
  if (parts.has('client')) await clientPath();
  if (parts.has('memory')) await memory();
  if (parts.has('rpc')) await rpc();
  console.log(`(bench:peers: ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

if (isMain(import.meta.url)) {
  try {
    await run();
  } catch (err) {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  }
  // Peer libraries (Moleculer, pinus-rpc) may leave handles open.
  process.exit();
}
