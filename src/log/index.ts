/**
 * Logging: named pino loggers whose levels and output are set once per
 * process by setupLogging (from the service's --loglevel, --logfile, ...
 * flags), loggers created earlier included.
 *
 * Flushing on exit: pino flushes its outputs synchronously when the process
 * exits, best effort. A graceful shutdown should `await closeLogs()` last, so
 * a log file holds every line before process.exit(); `await flushLogs()`
 * makes logs current without closing anything.
 */
export type { Logger } from 'pino';
export { rootLogger, configureLogging, createLogger } from './registry.js';
export { setupLogging, flushLogs, closeLogs, DEFAULT_LOG_FILE_SIZE, type LoggingOptions } from './setup.js';
export { logMessage, messageLogOn, setMutedMessages, isMessageMuted, parseMessageNames, type MessageDirection } from './msglog.js';
export { parseLevelSpec, parseLevel, levelFor, LEVELS, LogLevelError, type LevelName, type LevelRule, type LevelSpec } from './levels.js';
export { parseSize } from './size.js';
