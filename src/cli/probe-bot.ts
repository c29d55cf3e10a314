/** `gamemesh bot --proto DIR --send pkg.Req`: load bots sending a project's own request (see probe.ts). */
import { parseArgs } from 'node:util';
import { UsageError } from './args.js';
import { connectPlayer, jsonBody, loadProtoDir, requestPair, type Player } from './probe.js';

const HELP = `usage: gamemesh bot --login URL --proto DIR --send PKG.MSG [--json '{...}'] [--expect PKG.MSG]
                    [--clients 10] [--duration 10] [--rate 1] [--user-prefix bot] [--tcp]

Logs in --clients players (bot1, bot2, ...), each connected to the gateway
login picked, and has each send the request --rate times a second for
--duration seconds. Then prints the latency percentiles and the errors by
message; exit code 1 when any request or login failed.
`;

export async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        login: { type: 'string' },
        proto: { type: 'string' },
        send: { type: 'string' },
        json: { type: 'string' },
        expect: { type: 'string' },
        clients: { type: 'string', default: '10' },
        duration: { type: 'string', default: '10' },
        rate: { type: 'string', default: '1' },
        'user-prefix': { type: 'string', default: 'bot' },
        password: { type: 'string' },
        tcp: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    for (const need of ['login', 'proto', 'send'] as const) if (!values[need]) throw new UsageError(`--${need} is required`);
    const num = (name: 'clients' | 'duration' | 'rate', min: number, max: number) => {
      const n = Number(values[name]);
      if (!(n >= min && n <= max)) throw new UsageError(`--${name} must be ${min}..${max}, got ${values[name]}`);
      return n;
    };
    const reg = loadProtoDir(values.proto as string);
    opts = {
      url: values.login as string,
      pair: requestPair(reg, values.send as string, values.expect),
      body: jsonBody(values.json),
      clients: Math.floor(num('clients', 1, 100_000)),
      durationMs: num('duration', 0.1, 86_400) * 1000,
      rate: num('rate', 0.01, 1000),
      prefix: values['user-prefix'],
      password: values.password ?? process.env['GAMEMESH_PASSWORD'] ?? 'password',
      transport: values.tcp ? ('tcp' as const) : ('ws' as const),
    };
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof TypeError) && !(err instanceof Error && err.name === 'RegistryError')) throw err;
    process.stderr.write(`gamemesh bot: ${err.message}\n${HELP}`);
    return 2;
  }
  const [req, res] = opts.pair;
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const fail = (err: unknown) => {
    const key = (err as Error).message.slice(0, 120);
    errors.set(key, (errors.get(key) ?? 0) + 1);
  };
  process.stdout.write(`gamemesh bot: ${opts.clients} clients sending ${req.name} ${opts.rate}/s each for ${opts.durationMs / 1000} s\n`);
  const players = (await Promise.all(Array.from({ length: opts.clients }, (_, i) => connectPlayer(opts.url, `${opts.prefix}${i + 1}`, opts.password, opts.transport).catch((err: unknown) => void fail(err))))).filter(
    (p): p is Player => p !== undefined,
  );
  const end = performance.now() + opts.durationMs;
  const period = 1000 / opts.rate;
  await Promise.all(
    players.map(async ({ client }, i) => {
      // Spread the clients over one period, so they do not all send in the same tick.
      await new Promise((resolve) => setTimeout(resolve, (period * i) / players.length));
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await client.request(req, res, opts.body);
          latencies.push(performance.now() - t0);
        } catch (err) {
          fail(err);
        }
        const wait = Math.min(t0 + period, end) - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      client.close();
    }),
  );
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? (latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] as number).toFixed(1) : '-');
  const failed = [...errors.values()].reduce((a, b) => a + b, 0);
  process.stdout.write(`${players.length}/${opts.clients} logged in; ${latencies.length} answers, ${failed} errors; latency ms p50 ${pct(50)} p95 ${pct(95)} p99 ${pct(99)} max ${pct(100)}\n`);
  for (const [message, count] of errors) process.stdout.write(`  ${count} x ${message}\n`);
  return failed > 0 ? 1 : 0;
}
