/**
 * Shared by the rollout tests: the rollout-service fixture as a process,
 * requests to an admin port, the instances of a service and what holds
 * them, and demo players the test drives itself.
 */
import path from 'node:path';
import type { GameClient } from '../../src/client/index.js';
import type { Discovery } from '../../src/discovery/types.js';
import { EarnGoldReq, EarnGoldResp, StatsReq, StatsResp, type Player as DemoPlayer } from '../../demo/gen/index.js';
import { login } from '../../demo/play/login.js';
import { enterWorld, playerClient, playerOf } from '../../demo/play/player.js';
import type { Defer } from './mesh.js';
import { BIN, FIXTURES, Proc, type Cleanup } from './proc.js';

export const ROLL_TOKEN = 'rollout-test-token-0123456789';

export interface RollProc extends Proc {
  id: string;
  /** host:port of its admin port, '' without one. */
  admin: string;
}

/** Spawns the rollout-service fixture and waits for its ready line. */
export async function spawnRollService(t: Cleanup, sdaddr: string, args: readonly string[], label = 'roll'): Promise<RollProc> {
  const env = { ...process.env };
  delete env['GAMEMESH_TOKEN'];
  delete env['GAMEMESH_ADMIN'];
  const proc = new Proc(label, process.execPath, [path.join(FIXTURES, 'rollout-service.js'), '--sdaddr', sdaddr, '--token', ROLL_TOKEN, ...args], env) as RollProc;
  t.after(() => proc.stop());
  const m = await proc.waitForStdout(/ready (\S+) admin=(\S+)\n/, 20_000);
  proc.id = m[1] as string;
  proc.admin = m[2] === '-' ? '' : (m[2] as string);
  return proc;
}

export interface AdminAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** A request to an admin port, with the token unless `token` is null. */
export async function adminRequest(admin: string, method: 'GET' | 'POST', route: string, token: string | null = ROLL_TOKEN): Promise<AdminAnswer> {
  const res = await fetch(`http://${admin}${route}`, { method, headers: token === null ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** `gamemesh <args>` to completion, with its output. */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = new Proc(`gamemesh ${args[0] ?? ''}`, process.execPath, [BIN, ...args], env);
  const timer = setTimeout(() => void proc.stop(), timeoutMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  return { code: exit.code, stdout: proc.stdout, stderr: proc.stderr };
}

/** Milliseconds until `p` settles. */
export async function timeOf(p: Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await p.catch(() => {});
  return performance.now() - t0;
}

export interface Instance {
  id: string;
  version: number;
  admin: string;
  state: string;
}

/** The registered instances of a service, with their version, admin port and state. */
export async function instancesOf(sd: Discovery, name: string): Promise<Instance[]> {
  return (await sd.listServices(name)).map((d) => ({ id: d.id, version: Number(d.meta['version'] ?? 1), admin: d.meta['admin'] ?? '', state: d.meta['state'] ?? 'running' }));
}

/** What holds an instance (its clients), from GET /status on its admin port. */
export async function holdingOf(admin: string, token: string): Promise<number> {
  const r = await adminRequest(admin, 'GET', '/status', token);
  if (r.status !== 200) throw new Error(`GET /status on ${admin}: ${r.status} ${JSON.stringify(r.body)}`);
  return Number(r.body['holding']);
}

export interface Player {
  readonly name: string;
  readonly client: GameClient;
  /** What the server acknowledged last. */
  state: DemoPlayer;
  readonly kicks: number[];
  reentered: number;
}

/** A demo player the test drives: logged in, in the game and the chat, re-entering by itself after a reconnect. */
export async function joinPlayer(defer: Defer, url: string, name: string): Promise<Player> {
  const account = await login(url, name, 'rollout-password');
  const kicks: number[] = [];
  const p: Player = { name, client: undefined as unknown as GameClient, state: { name, level: 0, gold: 0 }, kicks, reentered: 0 };
  const client = playerClient(account, 'ws', {
    requestTimeoutMs: 5000,
    relogin: () => login(url, name, 'rollout-password'),
    onReentered: (e) => {
      p.reentered++;
      p.state = e.player;
    },
  });
  (p as { client: GameClient }).client = client;
  defer(() => client.close());
  client.onKick((k) => kicks.push(k.code));
  await client.connect();
  p.state = (await enterWorld(client, account.token)).player;
  return p;
}

/** Earns gold once; the answer is the acknowledged state. */
export async function earn(p: Player): Promise<DemoPlayer> {
  const r = await p.client.request(EarnGoldReq, EarnGoldResp, {});
  p.state = playerOf(r.player, p.name);
  return p.state;
}

export async function statsOf(p: Player): Promise<DemoPlayer> {
  return playerOf((await p.client.request(StatsReq, StatsResp, {})).player, p.name);
}
