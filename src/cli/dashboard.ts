/**
 * `gamemesh dashboard [--http 127.0.0.1:8090] [--sdaddr ADDR] [--token T]`:
 * the live web page of the cluster (src/dashboard).
 */
import { parseAddr } from '../discovery/client.js';
import { connectDiscovery } from '../discovery/connect.js';
import { createLogger } from '../log/index.js';
import { startDashboard } from '../dashboard/server.js';
import { intOption, parse, UsageError } from './args.js';

const HELP = `usage: gamemesh dashboard [--http 127.0.0.1:8090] [--sdaddr 127.0.0.1:8900] [--token T] [--poll-ms 2000] [--require-token]

Serves a live page of the cluster: every registered service and its links,
load per service (read from their --admin ports), the KV (editable with the
cluster token), the route table and the latest registry changes.

  --http HOST:PORT   where the page listens (port 0: the OS picks). Beyond
                     127.0.0.1 every request needs the cluster token.
  --sdaddr ADDR      discovery (default GAMEMESH_SDADDR, else 127.0.0.1:8900)
  --token T          the cluster token (default GAMEMESH_TOKEN): reads the
                     admin ports and guards KV edits
  --poll-ms N        how often the admin ports are read (default 2000)
  --require-token    ask for the token on 127.0.0.1 too
`;

export async function main(argv: string[]): Promise<number> {
  let http: { host: string; port: number };
  let sdaddr: string;
  let token: string | undefined;
  let pollMs: number;
  let requireToken = false;
  try {
    const { values, positionals } = parse(argv, {
      http: { type: 'string', default: '127.0.0.1:8090' },
      sdaddr: { type: 'string' },
      token: { type: 'string' },
      'poll-ms': { type: 'string' },
      'require-token': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    });
    if (values['help']) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    http = parseAddr(String(values['http']));
    sdaddr = (values['sdaddr'] as string | undefined) ?? (process.env['GAMEMESH_SDADDR'] || '127.0.0.1:8900');
    token = (values['token'] as string | undefined) ?? (process.env['GAMEMESH_TOKEN'] || undefined);
    pollMs = intOption(values['poll-ms'], 'poll-ms', 2000);
    requireToken = values['require-token'] === true;
    if (pollMs < 100) throw new UsageError('--poll-ms must be at least 100');
  } catch (err) {
    process.stderr.write(`gamemesh dashboard: ${(err as Error).message}\n${HELP}`);
    return 2;
  }
  const log = createLogger('dashboard');
  let discovery;
  try {
    discovery = await connectDiscovery(sdaddr, { token, name: 'dashboard', connectTimeoutMs: 10_000 });
  } catch (err) {
    process.stderr.write(`gamemesh dashboard: cannot reach discovery at ${sdaddr}: ${(err as Error).message}\n`);
    return 1;
  }
  let dashboard;
  try {
    dashboard = await startDashboard({ discovery, sdaddr, host: http.host, port: http.port, token, logger: log, pollMs, requireToken });
  } catch (err) {
    await discovery.close();
    process.stderr.write(`gamemesh dashboard: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`dashboard listening on ${dashboard.url}\n`);
  return new Promise<number>((resolve) => {
    const stop = () => {
      void dashboard.stop().then(() => discovery.close()).then(() => resolve(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
