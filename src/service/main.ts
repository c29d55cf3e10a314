import { RegistrationConflict } from '../discovery/types.js';
import { closeLogs, createLogger, setupLogging } from '../log/index.js';
import { ConfigError, helpText, loadConfig, type FlagSpecs, type LoadedConfig, type ServiceConfig } from './config.js';
import { onExitRequest } from './lifecycle.js';

/** Beyond --stop-timeout: deregistering (up to 2 s) and closing ports. Past both, the process exits anyway. */
const STOP_MARGIN_MS = 4000;
/** After a stop, how long something left running (a stuck handler's timer) may keep the process alive. */
const LINGER_MS = 1000;

/** What a service's run() returns: something serviceMain stops on SIGTERM or SIGINT. */
export interface Stoppable {
  stop(): Promise<void>;
}

/** Options of serviceMain: the program's name, its own flags, and the run function. */
export interface ServiceMainOptions<F extends FlagSpecs> {
  program: string;
  summary: string;
  flags?: F;
  defaults?: Partial<ServiceConfig>;
  argv?: readonly string[];
  /** Starts the service; what it returns is stopped on SIGTERM or SIGINT. */
  run(loaded: LoadedConfig<F>): Promise<Stoppable>;
}

/**
 * The standard life of a service process: configuration from flags, env
 * and flagfile; logging set up from it; start; a graceful stop on SIGTERM or
 * SIGINT (or when the service retires, or POST /stop on its admin port);
 * logs flushed before exit. Resolves with the exit code. A stop that takes
 * longer than --stop-timeout plus a margin (a handler that never returns,
 * a hook that ignores its deadline) ends the process with code 1; one that
 * finished exits even if a timer is left running.
 */
export async function serviceMain<const F extends FlagSpecs>(options: ServiceMainOptions<F>): Promise<number> {
  let loaded: LoadedConfig<F>;
  try {
    loaded = loadConfig({ argv: options.argv, flags: options.flags, defaults: options.defaults });
    if (loaded.help) {
      process.stdout.write(helpText({ program: options.program, summary: options.summary, flags: options.flags, defaults: options.defaults }));
      return 0;
    }
    setupLogging(loaded.config);
  } catch (err) {
    if (!(err instanceof ConfigError) && !(err instanceof RangeError) && !(err instanceof TypeError)) throw err;
    process.stderr.write(`${options.program}: ${err.message}\n`);
    return 2;
  }
  const log = createLogger(options.program);
  let service: Stoppable;
  try {
    service = await options.run(loaded);
  } catch (err) {
    // A refused registration is an operator's mistake, not a crash: its one line says it all (on stderr, unless logs go to a file).
    if (!(err instanceof RegistrationConflict) || loaded.config.logfile) log.fatal({ err }, 'start failed');
    process.stderr.write(`${options.program}: ${(err as Error).message}\n`);
    await closeLogs();
    return 1;
  }
  const stopTimeoutMs = (loaded.config['stop-timeout'] ?? 8) * 1000;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string, okCode = 0) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping');
      const hard = setTimeout(() => {
        log.fatal({ stopTimeoutSec: stopTimeoutMs / 1000 }, 'the stop did not finish in time; exiting anyway');
        process.stderr.write(`${options.program}: the stop did not finish within ${(stopTimeoutMs + STOP_MARGIN_MS) / 1000} s; exiting anyway\n`);
        void closeLogs().finally(() => process.exit(1));
      }, stopTimeoutMs + STOP_MARGIN_MS);
      hard.unref();
      service
        .stop()
        .then(
          () => okCode,
          (err: Error) => {
            log.error({ err }, 'stop failed');
            return 1;
          },
        )
        .then(async (code) => {
          clearTimeout(hard);
          offExit();
          await closeLogs();
          // Only fires if something (a handler cut off by the stop timeout) still keeps the event loop alive.
          setTimeout(() => process.exit(code), LINGER_MS).unref();
          resolve(code);
        });
    };
    const offExit = onExitRequest((code, reason) => stop(reason, code));
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
