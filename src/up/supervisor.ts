/**
 * A whole cluster on one machine: the services of a cluster file started in
 * file order, each only once the one before it is ready, restarted when they
 * die, and stopped in reverse order. `gamemesh up` is a thin shell around
 * startCluster; tests and the demo's end-to-end test use it directly.
 */
import { loadClusterFile, type ClusterFile } from './config.js';
import { Printer, useColor } from './logs.js';
import { resolveCluster } from './resolve.js';
import { keepSecrets, secretLines } from './secrets.js';
import { ManagedService, type ServiceInfo, type Timing } from './service.js';
import { cannotRoll, rolledSpec, versionOf, type RollNote } from './roll.js';

export { ClusterFileError, loadClusterFile, parseClusterFile, type ClusterFile, type ServiceDef } from './config.js';
export type { ServiceInfo, ServiceState } from './service.js';

/** Options of startCluster: variable overrides, working directory, timings and output. */
export interface StartOptions {
  /** Variable overrides (`--sdaddr`, `--http`, `--var k=v`). */
  vars?: Readonly<Record<string, string>>;
  /** Working directory of the services; relative paths in the file are relative to it. Default: process.cwd(). */
  cwd?: string;
  /** Environment the services' own variables are added to. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Per service. Default 30 s. */
  startTimeoutMs?: number;
  /** From SIGTERM to SIGKILL. Default 10 s. */
  stopTimeoutMs?: number;
  /** First restart delay, doubled on each restart. Default 1 s. */
  restartDelayMs?: number;
  /** Default 30 s. */
  maxRestartDelayMs?: number;
  /** Up this long, a service's restart delay starts over. Default 60 s. */
  stableAfterMs?: number;
  /** Where the prefixed output goes. Default: process.stdout. */
  write?: (text: string) => void;
  /** Default: by useColor (TTY, FORCE_COLOR, NO_COLOR) for process.stdout. */
  color?: boolean;
  /** Show pino JSON lines as they are instead of shortened. */
  rawLogs?: boolean;
}

/** A running cluster from startCluster. */
export interface Cluster {
  readonly name: string;
  /** After substitution. */
  readonly urls: readonly string[];
  readonly vars: Readonly<Record<string, string>>;
  /** In file order, skipped ones included. */
  readonly services: readonly ServiceInfo[];
  /** Resolves once every service is ready (the banner is printed then); rejects with ClusterStartError after stopping what started. */
  readonly ready: Promise<void>;
  /** Stops every service in reverse order; resolves once all have exited. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL to every service at once. */
  kill(): void;
  /**
   * A rolling upgrade of these services (file names), once the cluster is
   * ready: for each, an instance of the next version starts and must be
   * ready; then the old ones retire and the roll waits for them to exit.
   */
  roll(names: readonly string[], note?: RollNote): Promise<void>;
}

/** The cluster did not start: `service` names the one that failed ('' when the start was stopped). */
export class ClusterStartError extends Error {
  override name = 'ClusterStartError';
  constructor(
    message: string,
    /** The service that failed; '' when the start was stopped. */
    readonly service: string,
  ) {
    super(message);
  }
}

/** Throws ClusterFileError (synchronously) on a bad file or override; everything later is reported through `ready`. */
export function startCluster(file: string | ClusterFile, options: StartOptions = {}): Cluster {
  const cluster = resolveCluster(typeof file === 'string' ? loadClusterFile(file) : file, options.vars);
  const timing: Timing = {
    restartDelayMs: options.restartDelayMs ?? 1000,
    maxRestartDelayMs: options.maxRestartDelayMs ?? 30_000,
    stableAfterMs: options.stableAfterMs ?? 60_000,
    stopTimeoutMs: options.stopTimeoutMs ?? 10_000,
  };
  const color = options.color ?? useColor(process.stdout);
  const printer = new Printer(
    cluster.services.map((s) => s.name),
    options.write ?? ((text) => process.stdout.write(text)),
    color,
    options.rawLogs,
  );
  const cwd = options.cwd ?? process.cwd();
  const kept = keepSecrets(cluster.secrets, cwd, cluster.source);
  // Under the file's env (they never share a name) and over the inherited environment.
  const secretEnv = Object.fromEntries(kept.map((s) => [s.env, s.value]));
  const services = cluster.services.map((spec) => new ManagedService({ ...spec, env: { ...secretEnv, ...spec.env } }, printer, timing, options.env ?? process.env, cwd));
  /** Instances replaced by a roll that have not exited yet. */
  const retiring = new Set<ManagedService>();

  // The services have process groups of their own, so nothing else takes them down with this process.
  const killAll = () => [...services, ...retiring].forEach((s) => s.kill());
  process.on('exit', killAll);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      services.forEach((s) => s.beginStop());
      await Promise.all([...retiring].map((s) => s.stop()));
      for (const s of [...services].reverse()) await s.stop();
      process.off('exit', killAll);
    })());

  const ready = (async () => {
    const stopped = () => new ClusterStartError(`cluster ${cluster.name} was stopped before it was ready`, '');
    for (const s of services) {
      if (s.spec.skip) {
        printer.note(s.name, `skipped: ${s.spec.skip}`);
        continue;
      }
      if (stopping) throw stopped();
      printer.note(s.name, `starting: ${s.spec.run.join(' ')}`);
      try {
        await s.start(options.startTimeoutMs ?? 30_000);
      } catch (err) {
        if (stopping) throw stopped();
        const tail = s.lastLines().slice(-10);
        const output = tail.length ? `last output of ${s.name}:\n${tail.map((l) => `  ${l}`).join('\n')}` : `${s.name} printed nothing`;
        await stop();
        throw new ClusterStartError(`cluster ${cluster.name} did not start: ${s.spec.oneshot ? 'oneshot ' : ''}service ${s.name} ${(err as Error).message}\n${output}\n(the services already started were stopped)`, s.name);
      }
    }
    printer.banner(bannerLines(cluster.name, cluster.urls, secretLines(kept)));
  })();
  // Whoever starts a cluster may only ever call stop(); that is no reason for an unhandled rejection.
  ready.catch(() => {});

  const roll = async (names: readonly string[], note: RollNote = () => {}): Promise<void> => {
    await ready;
    const picked = names.map((name) => {
      const i = services.findIndex((s) => s.name === name);
      if (i < 0) throw new Error(`no service ${JSON.stringify(name)} in cluster ${cluster.name} (it has: ${services.map((s) => s.name).join(', ')})`);
      const why = cannotRoll((services[i] as ManagedService).spec);
      if (why) throw new Error(`cannot roll ${name}: ${why}`);
      return name;
    });
    const old: ManagedService[] = [];
    for (const name of picked) {
      if (stopping) throw new Error('the cluster is stopping');
      const i = services.findIndex((s) => s.name === name);
      const current = services[i] as ManagedService;
      const spec = rolledSpec(current.spec);
      const next = new ManagedService(spec, printer, timing, options.env ?? process.env, cwd);
      const line = `rolling: starting version ${versionOf(spec)}: ${spec.args.slice(-4).join(' ')}`;
      printer.note(name, line);
      note(`${name}: ${line}`);
      try {
        await next.start(options.startTimeoutMs ?? 30_000);
      } catch (err) {
        await next.stop();
        throw new Error(`${name}: the new instance ${(err as Error).message}; the old one keeps running\n${next.lastLines().slice(-10).join('\n')}`);
      }
      services[i] = next;
      note(`${name}: version ${versionOf(spec)} is ready; the old instance retires`);
      if (current.state === 'ready' || current.state === 'starting') {
        retiring.add(current);
        current.retire();
        old.push(current);
      } else {
        // It retired already: an earlier new instance of the same service took over from it.
        note(`${name}: the old instance had stopped already (${current.lastExit ?? current.state})`);
      }
    }
    await Promise.all(
      old.map(async (s) => {
        await s.whenExited();
        retiring.delete(s);
        note(`${s.name}: the old instance ${s.lastExit ?? 'exited'}`);
      }),
    );
  };

  return {
    name: cluster.name,
    urls: cluster.urls,
    vars: cluster.vars,
    get services() {
      return services;
    },
    ready,
    stop,
    kill: killAll,
    roll,
  };
}

function bannerLines(name: string, urls: readonly string[], extra: readonly string[]): string[] {
  const lines = urls.length === 1 ? [`cluster ${name} is up: open ${urls[0]}`] : [`cluster ${name} is up${urls.length ? '; open:' : ''}`, ...urls.map((u) => `  ${u}`)];
  return [...lines, ...extra, 'Ctrl+C stops it'];
}
