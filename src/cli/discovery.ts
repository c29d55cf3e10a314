import { parseAddr } from '../discovery/client.js';
import { DiscoveryServer } from '../discovery/server.js';
import { createLogger } from '../log/index.js';
import { intOption, parse, UsageError } from './args.js';

export async function main(argv: string[]): Promise<number> {
  let server: DiscoveryServer;
  let datafile: string | undefined;
  try {
    const { values, positionals } = parse(argv, {
      addr: { type: 'string', default: '127.0.0.1:8900' },
      datafile: { type: 'string' },
      token: { type: 'string' },
      'grace-ms': { type: 'string' },
      'no-fsync': { type: 'boolean', default: false },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    const { host, port } = parseAddr(String(values['addr']));
    datafile = values['datafile'] as string | undefined;
    server = new DiscoveryServer({
      host,
      port,
      datafile,
      token: (values['token'] as string | undefined) ?? process.env['GAMEMESH_TOKEN'],
      graceMs: intOption(values['grace-ms'], 'grace-ms', 3000),
      fsync: !values['no-fsync'],
    });
  } catch (err) {
    process.stderr.write(`gamemesh discovery: ${(err as Error).message}\n`);
    return 2;
  }
  const log = createLogger('discovery');
  await server.start();
  const { host, port } = server.address;
  if (!datafile) log.warn('no --datafile: data is kept in memory only and lost on exit');
  process.stdout.write(`discovery listening on ${host}:${port}\n`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      server.stop().then(
        () => resolve(0),
        (err: Error) => {
          log.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    server.once('fatal', () => {
      stopping = true;
      void server.stop().finally(() => resolve(1));
    });
  });
}
