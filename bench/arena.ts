/**
 * The demo arena under load, every server part in its own process
 * (`gamemesh discovery`, two `gamemesh agent`s, `node dist/demo/arena.js`):
 * 500 bots (this process, SDK clients over TCP, half on each agent) join
 * with joinOrCreate, which packs them into 63 rooms of 8 (the last one
 * holds 4), and random-walk (demo/bots/arena.ts) while every room ticks 20
 * times a second and broadcasts its state. Measured over a window once all
 * are in: the arena backend's and the agents' CPU, the arena's tick jitter
 * (|interval - 50 ms| of every room's tick, p50/p99/max, from its /status),
 * and at the bots: states/s per bot, the gap between states and the input ->
 * ack latency. Beside it, in the same window: the tick jitter of 63 bare
 * 20 Hz setIntervals in an otherwise idle node process (the machine's timer
 * noise, the floor the arena's figure is to be read against).
 *
 * `BENCH_ARENA_BOTS=500`, `BENCH_ARENA_SEC=10` change the size and the window.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GameClient, tcpTransport } from '../src/client-node/index.js';
import { DiscoveryClient } from '../src/discovery/client.js';
import { RouteTable, ROUTES_KEY } from '../src/gateway/routes.js';
import { issueToken, JWT_SECRET_ENV, keyFromSecret } from '../src/login/index.js';
import { arenaBot, arenaFigures, ArenaStats } from '../demo/bots/arena.js';
import { bin, envInts, startDiscovery } from './gateway.js';
import { cpuMs, CpuLoad, loadNote, ROOT, startNode, type Child } from './harness.js';
import { fmtInt, fmtNum, isMain, printTable } from './lib.js';

const BOTS = envInts('BENCH_ARENA_BOTS')?.[0] ?? 500;
const WINDOW_SEC = envInts('BENCH_ARENA_SEC')?.[0] ?? 10;
const TICK_HZ = 20;
const JOINS_IN_FLIGHT = 50;
const AGENT_READY = /^agent (\S+) listening tcp=(\S+) ws=(\S+)$/;

/** The floor: N bare setIntervals at the tick rate in a node process of their own, for `sec` seconds; prints its jitter as JSON. */
const TIMER_BASELINE = `
const period = 1000 / ${TICK_HZ}, dev = [], end = performance.now() + Number(process.argv[1]) * 1000;
for (let i = 0; i < Number(process.argv[2]); i++) { let last = performance.now(); const t = setInterval(() => { const now = performance.now(); dev.push(Math.abs(now - last - period)); last = now; if (now > end) clearInterval(t); }, period); }
setTimeout(() => { dev.sort((a, b) => a - b); const p = (q) => dev[Math.min(dev.length - 1, Math.ceil(q * dev.length) - 1)]; console.log(JSON.stringify({ ticks: dev.length, p50Ms: p(0.5), p99Ms: p(0.99), maxMs: dev[dev.length - 1] })); }, Number(process.argv[1]) * 1000 + 200);
`;

interface Jitter {
  ticks: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export async function run(): Promise<void> {
  const children: Child[] = [];
  const clients: GameClient[] = [];
  const secret = 'arena-bench-secret-of-at-least-32-bytes';
  // The arena reads the JWT key from the environment it inherits (loadJwtKey).
  process.env[JWT_SECRET_ENV] = secret;
  try {
    const disco = await startDiscovery();
    children.push(disco.child);
    const sd = await DiscoveryClient.connect({ addr: disco.addr, name: 'arena-bench' });
    try {
      const table = RouteTable.parse(readFileSync(path.join(ROOT, 'demo', 'gen', 'routes.json'), 'utf8'));
      await sd.put(`config/${ROUTES_KEY}`, JSON.stringify(table.toJSON()));
    } finally {
      await sd.close();
    }
    const ports: number[] = [];
    const agents: Child[] = [];
    for (const i of [0, 1]) {
      const agent = await startNode([bin(), 'agent', '--sdaddr', disco.addr, '--svcindex', String(i), '--tcp-port', '0', '--ws-port', '-1', '--loglevel', 'warn'], AGENT_READY);
      children.push(agent);
      agents.push(agent);
      ports.push(Number(/:(\d+)$/.exec(agent.ready[2] ?? '')?.[1]));
    }
    const arena = await startNode([path.join(ROOT, 'dist', 'demo', 'arena.js'), '--sdaddr', disco.addr, '--admin', '127.0.0.1:0', '--tick-hz', String(TICK_HZ), '--loglevel', 'warn'], /^arena (\S+) ready admin=(\S+)$/);
    children.push(arena);
    const admin = arena.ready[2] as string;
    // The agents must see the arena (and it them) before joins can go through.
    await new Promise((r) => setTimeout(r, 1500));

    const key = keyFromSecret(secret);
    const stats = new ArenaStats();
    const clock = { endAt: Infinity };
    let next = 0;
    const joinStarted = performance.now();
    const joining: Array<Promise<void>> = [];
    const walking: Array<Promise<void>> = [];
    // Joins in batches, as players arrive: each waits until its bot is in its room.
    const worker = async (): Promise<void> => {
      while (next < BOTS) {
        const i = next++;
        const { token } = await issueToken({ sub: `bench-${i}`, name: `bench-${i}` }, key, { ttlSec: 600 });
        const c = new GameClient({ transport: () => tcpTransport('127.0.0.1', ports[i % 2] as number), reconnect: false, requestTimeoutMs: 20_000 });
        clients.push(c);
        await c.connect();
        await new Promise<void>((inRoom) => walking.push(arenaBot(c, { token, stats, clock, random: Math.random, timeoutMs: 20_000, onIn: inRoom })));
      }
    };
    for (let w = 0; w < JOINS_IN_FLIGHT; w++) joining.push(worker());
    await Promise.all(joining);
    const joinSec = (performance.now() - joinStarted) / 1000;
    if (stats.joined < BOTS) throw new Error(`only ${stats.joined} of ${BOTS} bots joined: ${[...stats.errors].map(([c, e]) => `${c} x${e.count} (${e.example})`).join('; ')}`);
    // Settle: the joins' burst is not part of the steady state.
    await new Promise((r) => setTimeout(r, 2000));

    const cpu = new CpuLoad();
    const baseline = startNode(['-e', TIMER_BASELINE, String(WINDOW_SEC), String(stats.rooms.size)], /^\{.*\}$/, { timeoutMs: (WINDOW_SEC + 10) * 1000 });
    const pids = { arena: arena.proc.pid, agents: agents.map((a) => a.proc.pid) };
    const cpu0 = { arena: cpuMs(pids.arena), agents: pids.agents.map((p) => cpuMs(p)), self: cpuMs() };
    const t0 = performance.now();
    stats.measuring = true;
    await new Promise((r) => setTimeout(r, WINDOW_SEC * 1000));
    stats.measuring = false;
    const sec = (performance.now() - t0) / 1000;
    const pct = (ms: number) => (ms / 1000 / sec) * 100;
    const arenaPct = pct(cpuMs(pids.arena) - cpu0.arena);
    const agentPct = pids.agents.map((p, i) => pct(cpuMs(p) - (cpu0.agents[i] as number)));
    const selfPct = pct(cpuMs() - cpu0.self);
    const status = (await (await fetch(`http://${admin}/status`)).json()) as { arena?: { rooms: number; players: number; jitter: Jitter } };
    const floor = JSON.parse((await baseline).ready[0]) as Jitter;
    const note = loadNote(cpu);
    clock.endAt = performance.now();
    await Promise.all(walking);

    const j = status.arena?.jitter;
    if (!j) throw new Error('the arena /status has no jitter');
    const f = arenaFigures(stats, BOTS, sec);
    printTable(
      `arena: ${fmtInt(BOTS)} bots in ${stats.rooms.size} rooms of 8 at ${TICK_HZ} ticks/s over 2 agents (TCP), ${fmtNum(sec, 1)} s window; joins took ${fmtNum(joinSec, 1)} s`,
      ['figure', 'arena', 'baseline'],
      [
        ['tick jitter p50 (ms)', fmtNum(j.p50Ms, 2), fmtNum(floor.p50Ms, 2)],
        ['tick jitter p99 (ms)', fmtNum(j.p99Ms, 2), fmtNum(floor.p99Ms, 2)],
        ['tick jitter max (ms)', fmtNum(j.maxMs, 2), fmtNum(floor.maxMs, 2)],
        ['ticks in window', fmtInt(j.ticks), fmtInt(floor.ticks)],
        ['arena backend CPU (% of a core)', fmtNum(arenaPct, 0), '-'],
        ['agent CPU (% of a core, each)', agentPct.map((p) => fmtNum(p, 0)).join(' / '), '-'],
        ['bots process CPU (% of a core)', fmtNum(selfPct, 0), '-'],
        ['states received per bot (/s)', fmtNum(f.statesPerBotSec, 1), String(TICK_HZ)],
        ['gap between states p50 / p99 (ms)', `${fmtNum(f.gapP50, 1)} / ${fmtNum(f.gapP99, 1)}`, String(1000 / TICK_HZ)],
        ['input -> ack p50 / p99 (ms)', `${fmtNum(f.latP50, 1)} / ${fmtNum(f.latP99, 1)}`, '-'],
        ['errors', fmtInt(stats.errorCount), '-'],
      ],
    );
    console.log(
      `- baseline: ${stats.rooms.size} bare ${TICK_HZ} Hz setIntervals in an idle node process, same window. Jitter = |tick interval - ${1000 / TICK_HZ} ms|, every room's every tick (the arena's from its GET /status). Input -> ack: a bot's input to the first room state carrying its seq; at most one timed in flight per bot.`,
    );
    console.log(`- ${note}`);
    if (stats.errorCount > 0) console.log(`- errors: ${[...stats.errors].map(([c, e]) => `${c} x${e.count} (${e.example})`).join('; ')}`);
  } finally {
    for (const c of clients) c.close();
    for (const c of children.reverse()) await c.stop();
    // The benches after this one start their own processes: they must not inherit the key.
    delete process.env[JWT_SECRET_ENV];
  }
}

if (isMain(import.meta.url)) await run();
