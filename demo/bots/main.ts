/**
 * `gamemesh bot`: N scripted players against a running cluster, for load
 * and for catching errors. Prints a progress line a second on stderr and a
 * table on stdout at the end; exits 1 if anything failed. Loaded by
 * src/cli/bot.ts.
 */
import { accessSync, constants, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loginEndpoint } from '../play/login.js';
import type { TransportKind } from '../play/player.js';
import { runArenaBots } from './arena.js';
import { runBot, type BotPlan, type RunClock } from './bot.js';
import { Limit } from './limit.js';
import { jsonReport, progressLine, summary, type RunInfo } from './report.js';
import { Recorder } from './stats.js';

/**
 * Password hashing makes a login cost the login service tens of ms of CPU.
 * More in flight at once would not log in faster, only make every login
 * wait for nearly all of them: the login's hashing and its token signing
 * share libuv's thread pool, first come first served.
 */
const LOGINS_IN_FLIGHT = 8;

const HELP = `usage: gamemesh bot --login URL [--clients N] [--duration S] [--ramp S] [--tcp | --kcp]
                    [--timeout S] [--password P] [--json FILE] [--arena]

Logs in N players named bot-<run>-<i>; each enters the game and the chat
and plays at once: one request at a time with a pause of 100-300 ms after
each answer, mostly earning gold, a level up when it can pay for one, now and
then stats, whispers, /who and a world chat line. Once all are in, they play
on together for the duration. Prints progress every second and a table of
latencies (p50, p95, p99) at the end. Exits 1 if there were errors.

  --login URL     the login service, e.g. http://127.0.0.1:8080
  --clients N     players (default 10)
  --duration S    seconds all play together once the last one is in (default 20)
  --ramp S        the logins start spread over this many seconds, at most
                  ${LOGINS_IN_FLIGHT} at a time (default: clients/50, at most 30)
  --tcp           connect to the agents over TCP instead of WebSocket
  --kcp           connect to the agents over KCP (UDP) instead of WebSocket
  --timeout S     seconds a request may take before it counts as an error (default 10)
  --password P    the bots' password (default "bot-password")
  --arena         play the arena instead: each bot joins an arena room
                  (joinOrCreate, 8 players a room) and random-walks; reports
                  the rate of room states per bot, the gaps between them and
                  the input -> ack latency (--json does not apply)
  --json FILE     also write the latency histogram per request kind as JSON
                  (format gamemesh-bot/1; for comparing runs in CI)

Every bot comes from this machine's address, so the login's per-IP rate
limit (gamemesh login --rate-burst/--rate-per-sec) must allow N logins
within the ramp; demo/cluster.json does.
`;

interface Options {
  url: URL;
  clients: number;
  durationSec: number;
  rampSec: number;
  transport: TransportKind;
  timeoutSec: number;
  password: string;
  json: string | undefined;
  arena: boolean;
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`gamemesh bot: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  return run(opts);
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      login: { type: 'string' },
      clients: { type: 'string' },
      duration: { type: 'string' },
      ramp: { type: 'string' },
      tcp: { type: 'boolean' },
      kcp: { type: 'boolean' },
      timeout: { type: 'string' },
      password: { type: 'string' },
      json: { type: 'string' },
      arena: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (!values.login) throw new Error('--login URL is required (e.g. http://127.0.0.1:8080)');
  if (values.tcp && values.kcp) throw new Error('--tcp and --kcp exclude each other');
  if (values.arena && values.json !== undefined) throw new Error('--json does not apply to --arena');
  const clients = number(values.clients, 'clients', 10, 1, 100_000, true);
  const durationSec = number(values.duration, 'duration', 20, 1, 86_400, false);
  const rampSec = number(values.ramp, 'ramp', Math.min(clients / 50, 30), 0, 3600, false);
  return {
    url: loginEndpoint(values.login),
    clients,
    durationSec,
    rampSec,
    transport: values.tcp ? 'tcp' : values.kcp ? 'kcp' : 'ws',
    timeoutSec: number(values.timeout, 'timeout', 10, 0.1, 600, false),
    password: values.password ?? 'bot-password',
    json: values.json === undefined ? undefined : checkJsonPath(values.json),
    arena: values.arena ?? false,
  };
}

/** Fails at once, not after the run, when the file cannot be written. */
function checkJsonPath(file: string): string {
  if (file === '') throw new Error('--json needs a file name');
  try {
    accessSync(path.dirname(path.resolve(file)), constants.W_OK);
  } catch {
    throw new Error(`--json ${file}: its directory does not exist or cannot be written`);
  }
  return file;
}

function number(text: string | undefined, name: string, fallback: number, min: number, max: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}


async function run(opts: Options): Promise<number> {
  if (opts.arena) return runArenaBots(opts);
  const rec = new Recorder();
  const runId = Date.now().toString(36).slice(-5);
  const names = Array.from({ length: opts.clients }, (_, i) => `bot-${runId}-${i}`);
  const t0 = performance.now();
  const clock: RunClock = { endAt: Infinity };
  let steady = { at: 0, messages: 0 };
  let inCount = 0;
  const onIn = () => {
    if (++inCount < opts.clients) return;
    const now = performance.now();
    clock.endAt = now + opts.durationSec * 1000;
    steady = { at: now, messages: rec.messages };
  };
  const logins = new Limit(LOGINS_IN_FLIGHT);
  const plans: BotPlan[] = names.map((name, i) => ({
    name,
    password: opts.password,
    loginUrl: opts.url,
    transport: opts.transport,
    startAt: t0 + (opts.rampSec * 1000 * i) / opts.clients,
    clock,
    logins,
    onIn,
    requestTimeoutMs: opts.timeoutSec * 1000,
    loginTimeoutMs: 30_000,
    pauseMs: { min: 100, spread: 200 },
    peers: names,
    random: Math.random,
  }));
  process.stderr.write(`gamemesh bot: ${opts.clients} clients log in at ${opts.url.origin} as bot-${runId}-* (ramp ${opts.rampSec} s), then all play for ${opts.durationSec} s\n`);
  let last = { at: t0, messages: 0 };
  const progress = setInterval(() => {
    const now = performance.now();
    const phase = clock.endAt === Infinity ? 'logging in' : `${Math.max(0, Math.ceil((clock.endAt - now) / 1000))} s left`;
    process.stderr.write(`${progressLine((now - t0) / 1000, phase, opts.clients, rec, ((rec.messages - last.messages) * 1000) / (now - last.at))}\n`);
    last = { at: now, messages: rec.messages };
  }, 1000);
  try {
    await Promise.all(plans.map((plan) => runBot(plan, rec)));
  } finally {
    clearInterval(progress);
  }
  const end = performance.now();
  const info: RunInfo = {
    clients: opts.clients,
    transport: opts.transport,
    rampSec: opts.rampSec,
    run: runId,
    loginPhaseSec: (steady.at - t0) / 1000,
    steadySec: (end - steady.at) / 1000,
    steadyMessages: rec.messages - steady.messages,
  };
  process.stdout.write(summary(info, rec));
  const missing = opts.clients - rec.loggedIn;
  if (opts.json) {
    try {
      writeFileSync(opts.json, `${JSON.stringify(jsonReport(info, rec), null, 2)}\n`);
    } catch (err) {
      process.stderr.write(`gamemesh bot: cannot write --json ${opts.json}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  return rec.errorCount > 0 || missing > 0 ? 1 : 0;
}
