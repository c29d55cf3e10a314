import { pino, type Logger } from 'pino';
import { levelFor, parseLevelSpec, type LevelSpec } from './levels.js';
import { Sink } from './sink.js';

/** Where every logger writes; stderr until setupLogging says otherwise. */
export const sink = new Sink(() => pino.destination({ fd: 2, sync: false }));

let spec: LevelSpec = initialSpec();
let root: Logger | undefined;
let custom: Logger | undefined;
// One logger per name, so a new level spec can reach loggers made before it.
const named = new Map<string, Logger>();

function initialSpec(): LevelSpec {
  try {
    return parseLevelSpec(process.env['GAMEMESH_LOG_LEVEL'] ?? 'info');
  } catch {
    return parseLevelSpec('info');
  }
}

/** The process-wide root logger: JSON lines on stderr (stdout stays free for command output) until setupLogging. */
export function rootLogger(): Logger {
  if (custom) return custom;
  root ??= pino({ level: spec.defaultLevel, base: { pid: process.pid } }, sink);
  return root;
}

/**
 * Hands logging to a logger of the caller's own (tests pass a silent one):
 * later createLogger calls return its children, and their levels are its
 * business. setupLogging takes logging back.
 */
export function configureLogging(logger: Logger): void {
  custom = logger;
  named.clear();
}

/**
 * The logger for one part of the program. Names are a fixed set (module or
 * service names, matched by `--loglevel` rules); per-object context belongs
 * in `.child({...})` of the named logger, not in new names.
 */
export function createLogger(name: string): Logger {
  if (custom) return custom.child({ name });
  let log = named.get(name);
  if (!log) {
    log = rootLogger().child({ name });
    log.level = levelFor(spec, name);
    named.set(name, log);
  }
  return log;
}

/** Sets every logger's level from `next`, including loggers created before. */
export function applyLevels(next: LevelSpec): void {
  custom = undefined;
  spec = next;
  if (root) root.level = spec.defaultLevel;
  for (const [name, log] of named) log.level = levelFor(spec, name);
}
