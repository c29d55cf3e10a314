import { accessSync, constants, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { parseLevelSpec } from './levels.js';
import { parseMessageNames, setMutedMessages } from './msglog.js';
import { applyLevels, sink } from './registry.js';
import type { Destination } from './sink.js';
import { parseSize } from './size.js';

/** Where logs go and at what level: the --loglevel, --logfile, --logfilesize and --logcolor flags. */
export interface LoggingOptions {
  /** A level, or rules `regex|level,...` with a bare level as the default (see levels.ts). Default 'info'. */
  loglevel?: string;
  /** JSON lines to this file, rotated by size; '' (default) means stderr. */
  logfile?: string;
  /** Rotate past this many bytes (or '10k', '10m', '1g'); 0 never rotates. Default 100m. */
  logfilesize?: number | string;
  /** Pretty, colored lines on stderr, for terminals; ignored when logging to a file. */
  logcolor?: boolean;
  /** Message names whose message logs are dropped: '|' or ',' separated, or a list. */
  mutemsglog?: string | readonly string[];
}

/** Default size at which a log file is rotated (100 MiB). */
export const DEFAULT_LOG_FILE_SIZE = 100 * 1024 * 1024;

// Transports run in a worker that loads its target by path; resolving here
// finds the copies this package depends on, wherever the caller lives.
const require = createRequire(import.meta.url);

/**
 * Configures every logger, those already created included. Validates all
 * options before changing anything, so a bad flag leaves logging as it was.
 * The previous output is flushed and closed in the background.
 */
export function setupLogging(options: LoggingOptions = {}): void {
  const spec = parseLevelSpec(options.loglevel ?? 'info');
  const size = typeof options.logfilesize === 'string' ? parseSize(options.logfilesize) : (options.logfilesize ?? DEFAULT_LOG_FILE_SIZE);
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad logfilesize ${size}: expected a byte count`);
  const muted = parseMessageNames(options.mutemsglog ?? []);
  const dest = buildDestination(options.logfile ?? '', size, options.logcolor ?? false);
  setMutedMessages(muted);
  applyLevels(spec);
  sink.replace(dest);
}

/**
 * Resolves once everything logged so far has been handed to the output
 * (for a file: to the transport's writer). Cheap; call it whenever logs
 * must be current, e.g. before reading them back.
 */
export function flushLogs(): Promise<void> {
  return sink.flushed();
}

/**
 * Ends the output and waits until it is closed, so every line is in the
 * file: the last step of a graceful shutdown, before process.exit(). Logs
 * written afterwards go to stderr. Without it pino still flushes
 * synchronously on process exit, best effort.
 */
export function closeLogs(): Promise<void> {
  return sink.close();
}

function buildDestination(logfile: string, size: number, color: boolean): Destination | undefined {
  let dest: Destination;
  if (logfile !== '' && !canWrite(logfile)) return undefined;
  if (logfile !== '') {
    // pino-roll names the files logfile's stem + .N + extension: logs/game.log -> logs/game.1.log, game.2.log, ...
    const options: Record<string, unknown> = { file: logfile, mkdir: true };
    if (size > 0) options['size'] = `${size}b`;
    dest = pino.transport({ target: require.resolve('pino-roll'), options });
  } else if (color) {
    dest = pino.transport({ target: require.resolve('pino-pretty'), options: { colorize: true, destination: 2, translateTime: 'SYS:HH:MM:ss.l' } });
  } else {
    return undefined;
  }
  // An unwritable log file must not crash the service it describes, nor silence it: say so once, then log to stderr.
  let failed = false;
  dest.on('error', (err: Error) => {
    if (failed) return;
    failed = true;
    sink.abandon(dest);
    process.stderr.write(`gamemesh: log output failed, logging to stderr: ${err.message}\n`);
  });
  return dest;
}

/**
 * Checked up front, in this thread: the transport's worker would only fail
 * later and asynchronously, after lines were already sent its way.
 */
function canWrite(logfile: string): boolean {
  const dir = dirname(logfile);
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return true;
  } catch (err) {
    process.stderr.write(`gamemesh: log output failed, logging to stderr: cannot write to ${dir}: ${(err as Error).message}\n`);
    return false;
  }
}
