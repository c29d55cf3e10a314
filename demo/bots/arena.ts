/**
 * Arena bots: each joins an arena room (joinOrCreate, the login token in
 * the options) and random-walks, turning every 0.3-1 s. What they measure:
 * the rate of room states each receives (the tick rate as a client sees it),
 * the gaps between states, and the latency from an input to the first state
 * that acknowledges it (its seq as the player's ack). `gamemesh bot --arena`
 * (runArenaBots below) and the arena bench (bench/arena.ts) use it.
 */
import { ClientError, GameClient, type Room } from '../../src/client/index.js';
import { ArenaInput, ArenaState } from '../gen/index.js';
import { login, LoginError } from '../play/login.js';
import { agentTransport, type TransportKind } from '../play/player.js';
import { Limit } from './limit.js';
import { percentile } from './stats.js';

export class ArenaStats {
  /** Samples are kept only while measuring (after every bot is in). */
  measuring = false;
  states = 0;
  inputs = 0;
  joined = 0;
  readonly rooms = new Set<string>();
  readonly latencies: number[] = [];
  readonly gaps: number[] = [];
  readonly errors = new Map<string, { count: number; example: string }>();
  errorCount = 0;

  error(code: string, message: string): void {
    this.errorCount++;
    const e = this.errors.get(code);
    if (e) e.count++;
    else this.errors.set(code, { count: 1, example: message });
  }
}

export interface ArenaBotPlan {
  readonly token: string;
  readonly stats: ArenaStats;
  /** performance.now() when the bot leaves; Infinity until known. */
  readonly clock: { endAt: number };
  readonly random: () => number;
  readonly timeoutMs: number;
  /** Called once the bot is in its room (or failed to get there). */
  readonly onIn: () => void;
}

/** Joins and walks until the clock ends; never rejects (failures go to stats). */
export async function arenaBot(client: GameClient, plan: ArenaBotPlan): Promise<void> {
  const { stats } = plan;
  let room: Room;
  try {
    room = await client.joinOrCreate('arena', { token: plan.token }, { service: 'arena', timeoutMs: plan.timeoutMs });
  } catch (err) {
    stats.error(err instanceof ClientError ? `join_${err.code}` : 'join_failed', (err as Error).message);
    plan.onIn();
    return;
  }
  stats.joined++;
  stats.rooms.add(room.id);
  plan.onIn();
  let pending: { seq: number; at: number; measured: boolean } | undefined;
  let lastState = 0;
  room.onMessage(ArenaState, (s) => {
    const now = performance.now();
    if (stats.measuring) {
      stats.states++;
      if (lastState > 0) stats.gaps.push(now - lastState);
    }
    lastState = now;
    if (!pending) return;
    const me = s.players.find((p) => p.seat === room.seat);
    if (me && me.ack >= pending.seq) {
      // Only inputs sent inside the window count, so the timed ones are a subset of those counted as sent.
      if (stats.measuring && pending.measured) stats.latencies.push(now - pending.at);
      pending = undefined;
    }
  });
  let left = false;
  room.onLeave((info) => {
    left = true;
    if (info.code !== 'left') stats.error(`room_${info.code}`, info.reason);
  });
  let seq = 0;
  while (!left && performance.now() < plan.clock.endAt) {
    const dx = Math.floor(plan.random() * 3) - 1;
    const dy = Math.floor(plan.random() * 3) - 1;
    // One input in flight is timed at a time: a turn while one is unacknowledged is sent but not timed.
    if (room.send(ArenaInput, { dx, dy, seq: ++seq })) {
      if (stats.measuring) stats.inputs++;
      pending ??= { seq, at: performance.now(), measured: stats.measuring };
    }
    await sleep(Math.min(300 + plan.random() * 700, plan.clock.endAt - performance.now()));
  }
  if (!left) await room.leave({ timeoutMs: plan.timeoutMs }).catch((err: unknown) => stats.error('leave_failed', (err as Error).message));
}

export interface ArenaRunOptions {
  url: URL;
  clients: number;
  durationSec: number;
  rampSec: number;
  transport: TransportKind;
  timeoutSec: number;
  password: string;
}

/** `gamemesh bot --arena`: logs N bots in, each joins an arena and walks; prints a table; 1 if anything failed. */
export async function runArenaBots(opts: ArenaRunOptions): Promise<number> {
  const stats = new ArenaStats();
  const runId = Date.now().toString(36).slice(-5);
  const clock = { endAt: Infinity };
  const logins = new Limit(8);
  let inCount = 0;
  let steadyAt = 0;
  const onIn = () => {
    if (++inCount < opts.clients) return;
    steadyAt = performance.now();
    clock.endAt = steadyAt + opts.durationSec * 1000;
    stats.measuring = true;
  };
  const t0 = performance.now();
  process.stderr.write(`gamemesh bot --arena: ${opts.clients} bots log in at ${opts.url.origin} as arena-${runId}-*, join arenas, then walk for ${opts.durationSec} s\n`);
  const progress = setInterval(() => {
    const phase = clock.endAt === Infinity ? `joining (${stats.joined}/${opts.clients})` : `${Math.max(0, Math.ceil((clock.endAt - performance.now()) / 1000))} s left`;
    process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(0)} s  ${phase}  rooms ${stats.rooms.size}  errors ${stats.errorCount}\n`);
  }, 1000);
  const one = async (i: number): Promise<void> => {
    let called = false;
    const once = () => {
      if (!called) onIn();
      called = true;
    };
    await sleep(t0 + (opts.rampSec * 1000 * i) / opts.clients - performance.now());
    let client: GameClient | undefined;
    try {
      const account = await logins.run(() => login(opts.url, `arena-${runId}-${i}`, opts.password, 30_000));
      client = new GameClient({ transport: agentTransport(account.agent, opts.transport), clientName: 'gamemesh-bot-arena', requestTimeoutMs: opts.timeoutSec * 1000, reconnect: false });
      await client.connect();
      await arenaBot(client, { token: account.token, stats, clock, random: Math.random, timeoutMs: opts.timeoutSec * 1000, onIn: once });
    } catch (err) {
      stats.error(err instanceof LoginError ? err.code : err instanceof ClientError ? `connect_${err.code}` : 'connect_failed', (err as Error).message);
    } finally {
      once();
      client?.close();
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.clients }, (_, i) => one(i)));
  } finally {
    clearInterval(progress);
  }
  const steadySec = steadyAt > 0 ? (performance.now() - steadyAt) / 1000 : 0;
  process.stdout.write(arenaSummary(stats, opts.clients, steadySec));
  return stats.errorCount > 0 || stats.joined < opts.clients ? 1 : 0;
}

/** The figures of a run, as rows: also used by the bench. */
export function arenaFigures(stats: ArenaStats, bots: number, steadySec: number): { statesPerBotSec: number; gapP50: number; gapP99: number; latP50: number; latP99: number } {
  const gaps = stats.gaps.slice().sort((a, b) => a - b);
  const lat = stats.latencies.slice().sort((a, b) => a - b);
  return {
    statesPerBotSec: steadySec > 0 && bots > 0 ? stats.states / bots / steadySec : 0,
    gapP50: percentile(gaps, 50),
    gapP99: percentile(gaps, 99),
    latP50: percentile(lat, 50),
    latP99: percentile(lat, 99),
  };
}

export function arenaSummary(stats: ArenaStats, bots: number, steadySec: number): string {
  const f = arenaFigures(stats, bots, steadySec);
  const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
  const lines = [
    `arena bots: ${stats.joined}/${bots} joined, ${stats.rooms.size} rooms, ${steadySec.toFixed(1)} s measured`,
    `  states received     ${f.statesPerBotSec.toFixed(1)} /s per bot (the rooms' tick rate as clients see it)`,
    `  gap between states  p50 ${ms(f.gapP50)} ms  p99 ${ms(f.gapP99)} ms`,
    `  input -> ack        p50 ${ms(f.latP50)} ms  p99 ${ms(f.latP99)} ms  (${stats.latencies.length} inputs timed of ${stats.inputs})`,
    `  errors              ${stats.errorCount}`,
    ...[...stats.errors].map(([code, e]) => `    ${code} x${e.count}: ${e.example}`),
  ];
  return `${lines.join('\n')}\n`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}
