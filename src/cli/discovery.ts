import { parseAddr } from '../discovery/client.js';
import { DiscoveryServer } from '../discovery/server.js';
import { createLogger } from '../log/index.js';
import { AdminServer } from '../service/admin.js';
import { memoryStatus } from '../service/node-admin.js';
import { intOption, parse, UsageError } from './args.js';

export async function main(argv: string[]): Promise<number> {
  let server: DiscoveryServer;
  let datafile: string | undefined;
  let admin: string | undefined;
  let token: string | undefined;
  try {
    const { values, positionals } = parse(argv, {
      addr: { type: 'string', default: '127.0.0.1:8900' },
      datafile: { type: 'string' },
      token: { type: 'string' },
      'grace-ms': { type: 'string' },
      'no-fsync': { type: 'boolean', default: false },
      admin: { type: 'string' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    const { host, port } = parseAddr(String(values['addr']));
    datafile = values['datafile'] as string | undefined;
    admin = (values['admin'] as string | undefined) ?? (process.env['GAMEMESH_ADMIN'] || undefined);
    token = (values['token'] as string | undefined) ?? process.env['GAMEMESH_TOKEN'];
    server = new DiscoveryServer({
      host,
      port,
      datafile,
      token,
      graceMs: intOption(values['grace-ms'], 'grace-ms', 3000),
      fsync: !values['no-fsync'],
    });
  } catch (err) {
    process.stderr.write(`gamemesh discovery: ${(err as Error).message}\n`);
    return 2;
  }
  const log = createLogger('discovery');
  let adminServer: AdminServer | undefined;
  try {
    if (admin) adminServer = await AdminServer.start({ listen: admin, token, logger: log });
  } catch (err) {
    process.stderr.write(`gamemesh discovery: --admin: ${(err as Error).message}\n`);
    return 2;
  }
  await server.start();
  const { host, port } = server.address;
  adminServer?.route('GET', '/status', () => ({
    json: { id: `discovery@${host}:${port}`, name: 'discovery', address: `${host}:${port}`, serverId: server.serverId, state: 'running', revision: server.revision, sessions: server.clientCount, watchers: server.watchCount, services: server.serviceCount, memory: memoryStatus(), pid: process.pid },
  }));
  if (!datafile) log.warn('no --datafile: data is kept in memory only and lost on exit');
  if (adminServer) process.stdout.write(`discovery admin port on ${adminServer.url}\n`);
  process.stdout.write(`discovery listening on ${host}:${port}\n`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      void adminServer?.close();
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
