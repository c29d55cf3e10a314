/**
 * Shared by the rollout tests: the rollout-service fixture as a process,
 * requests to an admin port, and counting which instance answered.
 */
import path from 'node:path';
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
