/**
 * `gamemesh up <cluster.json>`: the whole cluster on this machine, one
 * process per service (src/up/, docs/cluster-file.md). Ctrl+C stops it in
 * reverse order; a second Ctrl+C kills everything at once.
 */
import { parseArgs } from 'node:util';
import { ClusterFileError, ClusterStartError, startCluster, type Cluster } from '../up/supervisor.js';
import { intOption, UsageError } from './args.js';
import { listenControl, requestRoll } from '../up/roll.js';

const HELP = `usage: gamemesh up <cluster.json> [--sdaddr ADDR] [--http HOST:PORT] [--var NAME=VALUE ...]
                   [--timeout SECONDS] [--raw-logs]
       gamemesh up <cluster.json> --roll SERVICE [--roll SERVICE ...]

Runs every service of the cluster file as a child process, in file order, each
once the previous one is ready; restarts a service that dies; Ctrl+C stops
them all (twice: kills them). Paths in the file are relative to the current
directory. See docs/cluster-file.md.

  --sdaddr ADDR      discovery address (default from the file, else 127.0.0.1:8900);
                     etcd://host:2379 skips the built-in discovery service
  --http HOST:PORT   the login service and web page (default from the file, else 127.0.0.1:8080)
  --var NAME=VALUE   set any variable of the file; may be repeated
  --timeout SECONDS  how long each service may take to be ready (default 30)
  --raw-logs         show JSON log lines as they are instead of shortened
  --roll SERVICE     rolling upgrade of a service of the cluster that a gamemesh up
                     already runs from this file: a new instance (next --svcversion,
                     another --svcindex) starts and must be ready, then the old one
                     retires and exits once its last client is gone (docs/operations.md)
`;

export async function main(argv: string[]): Promise<number> {
  let cluster: Cluster;
  let file = '';
  try {
    const { values, positionals } = parseOptions(argv);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `one cluster file expected, got ${positionals.join(' ')}` : 'which cluster file? e.g. gamemesh up demo/cluster.json');
    if (values.roll?.length) return await roll(positionals[0] as string, values.roll);
    const vars: Record<string, string> = {};
    for (const kv of values.var ?? []) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new UsageError(`--var wants NAME=VALUE, got ${JSON.stringify(kv)}`);
      vars[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    if (values.sdaddr !== undefined) vars['sdaddr'] = values.sdaddr;
    if (values.http !== undefined) vars['http'] = values.http;
    const timeout = intOption(values.timeout, 'timeout', 30);
    if (timeout < 1) throw new UsageError('--timeout must be at least 1 (seconds)');
    cluster = startCluster(positionals[0] as string, { vars, startTimeoutMs: timeout * 1000, rawLogs: values['raw-logs'] });
    file = positionals[0] as string;
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof ClusterFileError)) throw err;
    process.stderr.write(`gamemesh up: ${err.message}\n${err instanceof UsageError ? HELP : ''}`);
    return 2;
  }
  return supervise(cluster, file);
}

async function roll(file: string, names: readonly string[]): Promise<number> {
  try {
    await requestRoll(file, names, (line) => process.stdout.write(`${line}\n`));
    process.stdout.write(`rolled ${names.join(', ')}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`gamemesh up --roll: ${(err as Error).message}\n`);
    return 1;
  }
}

async function supervise(cluster: Cluster, file: string): Promise<number> {
  // `gamemesh up FILE --roll NAME` reaches this supervisor through it.
  let closeControl: () => void = () => {};
  try {
    closeControl = await listenControl(file, (names, note) => cluster.roll(names, note));
  } catch (err) {
    process.stderr.write(`gamemesh up: rolling upgrades are off: ${(err as Error).message}\n`);
  }
  try {
    return await superviseCluster(cluster);
  } finally {
    closeControl();
  }
}

async function superviseCluster(cluster: Cluster): Promise<number> {
  let signals = 0;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`\ngamemesh up: ${signal}: stopping cluster ${cluster.name} (Ctrl+C again kills everything)\n`);
      void cluster.stop().then(() => finish(0));
    } else if (signals === 2) {
      process.stderr.write(`gamemesh up: ${signal} again: killing every service\n`);
      cluster.kill();
      finish(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await cluster.ready;
  } catch (err) {
    // Stopped by a signal during the start: that is the answer the user asked for, not an error.
    if (signals === 0 || !(err instanceof ClusterStartError) || err.service !== '') {
      process.stderr.write(`gamemesh up: ${(err as Error).message}\n`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      return 1;
    }
  }
  const code = await finished;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}

function parseOptions(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        sdaddr: { type: 'string' },
        http: { type: 'string' },
        var: { type: 'string', multiple: true },
        timeout: { type: 'string' },
        'raw-logs': { type: 'boolean', default: false },
        roll: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
