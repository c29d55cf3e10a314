import { pino, type Logger } from 'pino';

export type { Logger };

let root: Logger | undefined;

/**
 * The process-wide root logger (JSON lines on stderr, so stdout stays free
 * for command output). `configureLogging` replaces it before first use.
 */
export function rootLogger(): Logger {
  root ??= pino({ level: process.env['GAMEMESH_LOG_LEVEL'] ?? 'info', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
  return root;
}

export function configureLogging(logger: Logger): void {
  root = logger;
}

export function createLogger(name: string): Logger {
  return rootLogger().child({ name });
}
