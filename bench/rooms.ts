/**
 * Groups and matchmaking under load, every part in its own process
 * (`gamemesh discovery`, two `gamemesh agent`s, bench/fixtures/rooms-backend.ts
 * backends, the gateway bench's load generator bench/fixtures/gateway-load.ts):
 *
 * (a) Group broadcast to 5,000 members spread over 2 agents (2,500 each):
 *     one backend broadcasts one EchoResp to the group (one GroupSend per
 *     agent, the agents fan out), the next round starting when all 5,000
 *     have it; beside it, in the same run and interleaved, the same message
 *     to the same 5,000 as a `sendMany` list (one ToClients per agent with
 *     2,500 ids). Deliveries/s, and the time until the last member has it
 *     (p50/p99 over the rounds), counted at the clients.
 *     Beside, in the same run: a Colyseus room's `broadcast` (@colyseus/core
 *     with @colyseus/ws-transport, one process: bench/fixtures/colyseus-room.ts)
 *     to the same number of WebSocket clients (bench/fixtures/colyseus-load.ts,
 *     the `ws` package speaking Colyseus' protocol), same rounds and burst.
 * (b) Matchmaking: 1,000 SDK clients (this process, TCP, over both agents)
 *     call `joinOrCreate` at once against two room backends (rooms of 8);
 *     then they all leave; three rounds. Calls/s, and per-call p50/p99.
 *
 * `BENCH_ROOMS_PARTS=group,colyseus,match` picks parts; `BENCH_ROOMS_MEMBERS=5000`,
 * `BENCH_ROOMS_CLIENTS=1000` change the sizes.
 */
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GameClient, tcpTransport } from '../src/client-node/index.js';
import { bin, envInts, LoadGen, numberOf, pushRoutes, startDiscovery } from './gateway.js';
import { cpuMs, CpuLoad, FIXTURES, loadNote, percentile, profArgs, startNode, type Child } from './harness.js';
import { fmtInt, fmtNum, isMain, printTable } from './lib.js';

const MEMBERS = envInts('BENCH_ROOMS_MEMBERS')?.[0] ?? 5000;
const CLIENTS = envInts('BENCH_ROOMS_CLIENTS')?.[0] ?? 1000;
const ROUNDS = 4;
const PER_ROUND = 50;
const WARM = 5;
const BURST = 100;
const COLYSEUS_ROUNDS = 100;
// The load generator's clients send nothing while broadcasts run: a long heartbeat keeps the agents from closing them as idle.
const AGENT_READY = /^agent (\S+) listening tcp=(\S+) ws=(\S+)$/;

async function startAgents(sdaddr: string, children: Child[]): Promise<number[]> {
  const ports: number[] = [];
  for (const i of [0, 1]) {
    const agent = await startNode(
      [bin(), 'agent', '--sdaddr', sdaddr, '--svcindex', String(i), '--tcp-port', '0', '--ws-port', '-1', '--max-msgs-per-sec', '1000000000', '--heartbeat-sec', '3600', '--loglevel', 'warn'],
      AGENT_READY,
    );
    children.push(agent);
    ports.push(Number(/:(\d+)$/.exec(agent.ready[2] ?? '')?.[1]));
  }
  return ports;
}

async function startBackends(sdaddr: string, n: number, children: Child[]): Promise<Child[]> {
  const out: Child[] = [];
  for (let i = 0; i < n; i++) {
    const b = await startNode([`${FIXTURES}rooms-backend.js`, '--sdaddr', sdaddr, '--svcindex', String(i)], /^ready (\S+)$/, { execArgv: profArgs(`rooms-backend-${i}`) });
    children.push(b);
    out.push(b);
  }
  return out;
}

const sum = (pids: readonly (number | undefined)[]): number => pids.reduce((a: number, p) => a + cpuMs(p), 0);

// ---- (a) group broadcast vs sendMany --------------------------------------------

interface Sample {
  perSec: number[];
  p50: number[];
  p99: number[];
  agentUs: number;
  backendUs: number;
  deliveries: number;
}

async function groupPart(): Promise<void> {
  const children: Child[] = [];
  const cpu = new CpuLoad();
  try {
    const disco = await startDiscovery();
    children.push(disco.child);
    await pushRoutes(disco.addr);
    const ports = await startAgents(disco.addr, children);
    const [backend] = await startBackends(disco.addr, 1, children);
    const gen = await LoadGen.start('rooms');
    children.push(gen.child);
    // Until both agents route to the backend: short loops through each.
    for (const [i, port] of ports.entries()) {
      await gen.cmd({ cmd: 'connect', port, total: i + 1, transport: 'tcp' });
    }
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await gen.cmd({ cmd: 'run', clients: 2, warmMs: 0, ms: 100 });
      if (numberOf(r, 'responses') > 2 && numberOf(r, 'errors') === 0) break;
      if (Date.now() > deadline) throw new Error('the agents did not route to the backend within 15 s');
    }
    await gen.cmd({ cmd: 'connect', port: ports[0], total: MEMBERS / 2 + 1, transport: 'tcp' });
    await gen.cmd({ cmd: 'connect', port: ports[1], total: MEMBERS, transport: 'tcp' });
    // Every connection sends echoes: each one joins the group (and the sendMany list) with its first.
    await gen.cmd({ cmd: 'run', clients: MEMBERS, warmMs: 0, ms: 1500 });
    const agentPids = children.slice(1, 3).map((c) => c.proc.pid);
    const results: Record<string, Sample> = {};
    for (const text of ['!group', '!sendmany']) results[text] = { perSec: [], p50: [], p99: [], agentUs: 0, backendUs: 0, deliveries: 0 };
    await gen.cmd({ cmd: 'broadcast', rounds: WARM, expect: MEMBERS, text: '!group' });
    await gen.cmd({ cmd: 'broadcast', rounds: WARM, expect: MEMBERS, text: '!sendmany' });
    for (let round = 0; round < ROUNDS; round++) {
      for (const text of round % 2 === 0 ? ['!group', '!sendmany'] : ['!sendmany', '!group']) {
        const s = results[text] as Sample;
        const a0 = sum(agentPids);
        const b0 = cpuMs(backend?.proc.pid);
        const r = await gen.cmd({ cmd: 'broadcast', rounds: PER_ROUND, expect: MEMBERS, text });
        s.agentUs += (sum(agentPids) - a0) * 1000;
        s.backendUs += (cpuMs(backend?.proc.pid) - b0) * 1000;
        s.deliveries += numberOf(r, 'deliveries');
        s.perSec.push(numberOf(r, 'perSec'));
        s.p50.push(numberOf(r, 'p50'));
        s.p99.push(numberOf(r, 'p99'));
      }
    }
    // Back to back: 100 broadcasts from one request, so the agents' writes of one turn coalesce.
    const bursts: Record<string, number[]> = { '!group': [], '!sendmany': [] };
    const burstCpu: Record<string, number> = { '!group': 0, '!sendmany': 0 };
    for (let round = 0; round < ROUNDS; round++) {
      for (const text of round % 2 === 0 ? ['!group', '!sendmany'] : ['!sendmany', '!group']) {
        const a0 = sum(agentPids);
        const r = await gen.cmd({ cmd: 'burst', count: BURST, expect: MEMBERS, text: `${text}-burst` });
        burstCpu[text] = (burstCpu[text] ?? 0) + ((sum(agentPids) - a0) * 1000) / numberOf(r, 'deliveries') / ROUNDS;
        bursts[text]?.push(numberOf(r, 'perSec'));
      }
    }
    const med = (xs: number[]) => percentile(Float64Array.from(xs).sort(), 50);
    const row = (name: string, s: Sample, target: string) => [
      name,
      `${fmtInt(med(s.perSec))} (${fmtInt(Math.min(...s.perSec))}-${fmtInt(Math.max(...s.perSec))})`,
      fmtNum(med(s.p50), 2),
      fmtNum(med(s.p99), 2),
      fmtNum(s.agentUs / s.deliveries, 3),
      fmtNum(s.backendUs / s.deliveries, 3),
      target,
    ];
    printTable(
      `rooms: one message to ${fmtInt(MEMBERS)} members over 2 agents, ${ROUNDS} x ${PER_ROUND} broadcasts one at a time, interleaved; counted at the clients`,
      ['case', 'deliveries/s median (range)', 'last member p50 ms', 'last member p99 ms', 'agents CPU µs/delivery', 'backend CPU µs/delivery', 'target'],
      [row('group.broadcast (one GroupSend per agent)', results['!group'] as Sample, 'p99 < 20 ms'), row('sendMany to the same list (one ToClients per agent)', results['!sendmany'] as Sample, 'baseline')],
    );
    const brow = (name: string, text: string, target: string) => {
      const xs = bursts[text] ?? [];
      return [name, `${fmtInt(med(xs))} (${fmtInt(Math.min(...xs))}-${fmtInt(Math.max(...xs))})`, fmtNum(burstCpu[text] ?? NaN, 3), target];
    };
    printTable(
      `rooms: ${BURST} broadcasts back to back to ${fmtInt(MEMBERS)} members over 2 agents, ${ROUNDS} rounds interleaved; counted at the clients`,
      ['case', 'deliveries/s median (range)', 'agents CPU µs/delivery', 'target'],
      [brow('group.broadcast', '!group', '>= 1 M/s'), brow('sendMany', '!sendmany', 'baseline')],
    );
    console.log(loadNote(cpu));
  } finally {
    for (const c of children.reverse()) await c.stop();
  }
}

// ---- (a') the same broadcast from a Colyseus room --------------------------------

function colyseusVersion(): string {
  return (createRequire(import.meta.url)('@colyseus/core/package.json') as { version: string }).version;
}

async function colyseusPart(): Promise<void> {
  const children: Child[] = [];
  const cpu = new CpuLoad();
  const file = path.join(tmpdir(), `gamemesh-colyseus-seats-${process.pid}.json`);
  try {
    const server = await startNode([`${FIXTURES}colyseus-room.js`, '--seats', String(MEMBERS), '--file', file], /^ready (\d+)$/, { timeoutMs: 60_000 });
    children.push(server);
    const s0 = cpuMs(server.proc.pid);
    const load = await startNode(
      [`${FIXTURES}colyseus-load.js`, '--port', String(server.ready[1]), '--file', file, '--rounds', String(COLYSEUS_ROUNDS), '--burst', String(BURST)],
      /^(\{.*\})$/,
      { timeoutMs: 400_000 },
    );
    children.push(load);
    const serverUs = (cpuMs(server.proc.pid) - s0) * 1000;
    const r = JSON.parse(load.ready[1] ?? '{}') as Record<string, number>;
    const deliveries = (COLYSEUS_ROUNDS + BURST + 5) * MEMBERS;
    printTable(
      `rooms: a Colyseus room's broadcast to ${fmtInt(MEMBERS)} WebSocket clients (one server process), ${COLYSEUS_ROUNDS} one at a time, then ${BURST} back to back`,
      ['case', 'deliveries/s one at a time', 'last member p50 ms', 'last member p99 ms', `deliveries/s, ${BURST} back to back`, 'server CPU µs/delivery (whole run)'],
      [[`Colyseus ${colyseusVersion()} room.broadcast`, fmtInt(r['perSec'] ?? NaN), fmtNum(r['p50'] ?? NaN, 2), fmtNum(r['p99'] ?? NaN, 2), fmtInt(r['burstPerSec'] ?? NaN), fmtNum(serverUs / deliveries, 3)]],
    );
    console.log(loadNote(cpu));
  } finally {
    for (const c of children.reverse()) await c.stop();
    rmSync(file, { force: true });
  }
}

// ---- (b) matchmaking ---------------------------------------------------------------

async function matchPart(): Promise<void> {
  const children: Child[] = [];
  const clients: GameClient[] = [];
  const cpu = new CpuLoad();
  try {
    const disco = await startDiscovery();
    children.push(disco.child);
    await pushRoutes(disco.addr);
    const ports = await startAgents(disco.addr, children);
    const backends = await startBackends(disco.addr, 2, children);
    for (let i = 0; i < CLIENTS; i++) {
      const port = ports[i % 2] as number;
      clients.push(new GameClient({ transport: () => tcpTransport('127.0.0.1', port), reconnect: false, requestTimeoutMs: 30_000, heartbeat: false }));
    }
    for (let i = 0; i < clients.length; i += 200) await Promise.all(clients.slice(i, i + 200).map((c) => c.connect()));
    // Both agents linked to both backends: one join and leave through each agent.
    const deadline = Date.now() + 15_000;
    for (const c of clients.slice(0, 2)) {
      for (;;) {
        try {
          await (await c.joinOrCreate('match', {}, { service: 'echo', timeoutMs: 2000 })).leave();
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
    const rows: string[][] = [];
    for (let round = 0; round < 3; round++) {
      const lat: number[] = [];
      const b0 = sum(backends.map((b) => b.proc.pid));
      const a0 = sum(children.slice(1, 3).map((c) => c.proc.pid));
      const t0 = performance.now();
      const rooms = await Promise.all(
        clients.map(async (c) => {
          const s = performance.now();
          const room = await c.joinOrCreate('match', { mode: 'bench' }, { service: 'echo' });
          lat.push(performance.now() - s);
          return room;
        }),
      );
      const ms = performance.now() - t0;
      const backendMs = sum(backends.map((b) => b.proc.pid)) - b0;
      const agentMs = sum(children.slice(1, 3).map((c) => c.proc.pid)) - a0;
      const perRoom = new Map<string, number>();
      for (const r of rooms) perRoom.set(r.id, (perRoom.get(r.id) ?? 0) + 1);
      const sorted = Float64Array.from(lat).sort();
      rows.push([
        String(round + 1),
        fmtInt((CLIENTS * 1000) / ms),
        fmtNum(percentile(sorted, 50), 1),
        fmtNum(percentile(sorted, 99), 1),
        `${perRoom.size} (max ${Math.max(...perRoom.values())} seated)`,
        fmtNum((backendMs * 1000) / CLIENTS, 0),
        fmtNum((agentMs * 1000) / CLIENTS, 0),
      ]);
      for (let i = 0; i < rooms.length; i += 200) await Promise.all(rooms.slice(i, i + 200).map((r) => r.leave()));
      await new Promise((r) => setTimeout(r, 300));
    }
    printTable(
      `rooms: ${fmtInt(CLIENTS)} SDK clients over 2 agents call joinOrCreate at once, 2 room backends, rooms of 8`,
      ['round', 'joins/s', 'p50 ms', 'p99 ms', 'rooms', 'backends CPU µs/join', 'agents CPU µs/join'],
      rows,
    );
    console.log(loadNote(cpu));
  } finally {
    for (const c of clients) c.close();
    for (const c of children.reverse()) await c.stop();
  }
}

export async function run(): Promise<void> {
  const parts = new Set((process.env['BENCH_ROOMS_PARTS'] ?? 'group,colyseus,match').split(','));
  if (parts.has('group')) await groupPart();
  if (parts.has('colyseus')) await colyseusPart();
  if (parts.has('match')) await matchPart();
}

if (isMain(import.meta.url)) await run();
