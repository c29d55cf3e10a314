/**
 * `gamemesh up FILE --roll NAME`: a rolling upgrade of one service of a
 * running cluster (docs/operations.md). The supervisor that runs the cluster
 * starts a new instance with the next --svcversion and another --svcindex,
 * waits for its ready line, and then lets the old one retire: a newer live
 * version makes it take no new work and exit 0 once its last client is gone
 * (or after its --drain-max), and the supervisor does not restart it.
 *
 * A second `gamemesh up FILE --roll NAME` reaches the running supervisor on
 * a Unix socket (mode 0600) named after the cluster file: one JSON line
 * asks, JSON lines of progress answer.
 */
import { createHash } from 'node:crypto';
import { chmodSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ResolvedService } from './resolve.js';

/** Indexes of a rolled service alternate between N and N + 512, so the new instance's id and address differ from the old one's. */
const INDEX_FLIP = 512;
const MAX_INDEX = 1023;

/** The --svcindex a service's command line (or env) gives it; 0 when none. */
export function indexOf(spec: Pick<ResolvedService, 'args' | 'env'>): number {
  return Number(lastFlag(spec.args, 'svcindex') ?? spec.env['GAMEMESH_SVCINDEX'] ?? 0) || 0;
}

/** The --svcversion it runs; 1 when none. */
export function versionOf(spec: Pick<ResolvedService, 'args' | 'env'>): number {
  return Number(lastFlag(spec.args, 'svcversion') ?? spec.env['GAMEMESH_SVCVERSION'] ?? 1) || 1;
}

function lastFlag(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === `--${name}` || a === `-${name}`) value = args[i + 1];
    else if (a.startsWith(`--${name}=`) || a.startsWith(`-${name}=`)) value = a.slice(a.indexOf('=') + 1);
  }
  return value;
}

/** The next instance of a service: its flags appended, so they win over the file's (the last of a repeated flag counts). */
export function rolledSpec(spec: ResolvedService): ResolvedService {
  const index = indexOf(spec);
  const next = index + INDEX_FLIP <= MAX_INDEX && index < INDEX_FLIP ? index + INDEX_FLIP : index - INDEX_FLIP;
  if (next < 0) throw new Error(`cannot roll ${spec.name}: its --svcindex ${index} leaves no room for another instance (use one under ${INDEX_FLIP})`);
  return { ...spec, args: [...spec.args, '--svcversion', String(versionOf(spec) + 1), '--svcindex', String(next)] };
}

/** Why a service cannot be rolled, or undefined. */
export function cannotRoll(spec: ResolvedService): string | undefined {
  if (spec.oneshot) return 'it is a oneshot';
  if (spec.role === 'discovery') return 'it is the discovery service (restart it instead: services reconnect by themselves)';
  if (spec.skip) return `it is not run here (${spec.skip})`;
  return undefined;
}

/** The control socket of the supervisor running this cluster file. */
export function controlPath(file: string): string {
  const id = createHash('sha256').update(path.resolve(file)).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `gamemesh-up-${id}.sock`);
}

export type RollNote = (line: string) => void;
export type RollHandler = (names: readonly string[], note: RollNote) => Promise<void>;

/** Listens for roll requests; resolves with a close function. A stale socket of a dead supervisor is replaced. */
export async function listenControl(file: string, handle: RollHandler): Promise<() => void> {
  const where = controlPath(file);
  if (await answers(where)) throw new Error(`another gamemesh up runs this cluster file already (${where})`);
  try {
    unlinkSync(where);
  } catch {
    // none
  }
  let busy = false;
  const server = net.createServer((sock) => {
    sock.setEncoding('utf8');
    let buf = '';
    const send = (msg: Record<string, unknown>) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(msg)}\n`);
    };
    sock.on('error', () => {});
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 64 * 1024) return void sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let names: unknown;
      try {
        names = (JSON.parse(buf.slice(0, nl)) as { roll?: unknown }).roll;
      } catch {
        names = undefined;
      }
      sock.removeAllListeners('data');
      if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) return void sock.end(`${JSON.stringify({ error: 'expected {"roll": ["service", ...]}' })}\n`);
      if (busy) return void sock.end(`${JSON.stringify({ error: 'a roll is already under way' })}\n`);
      busy = true;
      handle(names as string[], (line) => send({ note: line })).then(
        () => sock.end(`${JSON.stringify({ done: true })}\n`),
        (err: Error) => sock.end(`${JSON.stringify({ error: err.message })}\n`),
      ).finally(() => (busy = false));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => resolve());
  });
  server.on('error', () => {});
  chmodSync(where, 0o600);
  return () => {
    server.close();
    try {
      unlinkSync(where);
    } catch {
      // gone
    }
  };
}

function answers(where: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(where);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Asks the supervisor running `file` to roll these services; progress goes to `note`. Rejects with the supervisor's error. */
export function requestRoll(file: string, names: readonly string[], note: RollNote): Promise<void> {
  const where = controlPath(file);
  return new Promise((resolve, reject) => {
    const sock = net.connect(where);
    let buf = '';
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify({ roll: names })}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: { note?: string; done?: boolean; error?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue;
        }
        if (msg.note !== undefined) note(msg.note);
        if (msg.error !== undefined) return settle(new Error(msg.error));
        if (msg.done) return settle();
      }
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      settle(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? new Error(`no gamemesh up is running ${file} (start it first: gamemesh up ${file})`) : err);
    });
    sock.once('close', () => settle(new Error('the supervisor closed the connection before the roll finished')));
  });
}
