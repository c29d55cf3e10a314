import { pino, type Logger } from 'pino';

export type MessageDirection = 'send' | 'recv';

const DEBUG = pino.levels.values['debug'] ?? 20;
let muted: ReadonlySet<string> = new Set();

/** Splits `--mutemsglog`: names separated by '|' or ','. */
export function parseMessageNames(names: string | readonly string[]): string[] {
  const parts = typeof names === 'string' ? names.split(/[|,]/) : names;
  return parts.map((s) => s.trim()).filter((s) => s !== '');
}

export function setMutedMessages(names: string | readonly string[]): void {
  muted = new Set(parseMessageNames(names));
}

export function isMessageMuted(msgName: string): boolean {
  return muted.has(msgName);
}

/**
 * Logs one message sent or received, at debug. This runs for every frame, so
 * both checks come before anything is allocated: with debug off or the name
 * muted it costs a comparison and a set lookup.
 */
export function logMessage(logger: Logger, dir: MessageDirection, msgName: string, peer: string, body?: unknown): void {
  if (logger.levelVal > DEBUG || muted.has(msgName)) return;
  if (body === undefined) logger.debug({ dir, msgName, peer }, `${dir} ${msgName}`);
  else logger.debug({ dir, msgName, peer, body }, `${dir} ${msgName}`);
}
