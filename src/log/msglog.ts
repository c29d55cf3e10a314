import { pino, type Logger } from 'pino';

/** Whether a logged message was sent or received. */
export type MessageDirection = 'send' | 'recv';

const DEBUG = pino.levels.values['debug'] ?? 20;
let muted: ReadonlySet<string> = new Set();
/** Name -> muted, so a short-name match is computed once per name (names are a small, fixed set). */
let decided = new Map<string, boolean>();
const MAX_DECIDED = 100_000;

/** Splits `--mutemsglog`: names separated by '|' or ','. */
export function parseMessageNames(names: string | readonly string[]): string[] {
  const parts = typeof names === 'string' ? names.split(/[|,]/) : names;
  return parts.map((s) => s.trim()).filter((s) => s !== '');
}

/** Mutes the message logs of these message names (--mutemsglog). */
export function setMutedMessages(names: string | readonly string[]): void {
  muted = new Set(parseMessageNames(names));
  decided = new Map();
}

/** By full name (`demo.EarnGoldReq`) or by the name without its package (`EarnGoldReq`). */
export function isMessageMuted(msgName: string): boolean {
  if (muted.size === 0) return false;
  const known = decided.get(msgName);
  if (known !== undefined) return known;
  const dot = msgName.lastIndexOf('.');
  const answer = muted.has(msgName) || (dot >= 0 && muted.has(msgName.slice(dot + 1)));
  if (decided.size < MAX_DECIDED) decided.set(msgName, answer);
  return answer;
}

/**
 * Whether message logs of this logger are on (debug or lower). Call sites on
 * a hot path check this before building a peer label, so that with debug
 * off a message costs one getter and one comparison.
 */
export function messageLogOn(logger: Logger): boolean {
  return logger.levelVal <= DEBUG;
}

/**
 * Logs one message sent or received, at debug: its name, body size and
 * peer. This runs for every message, so both checks come before anything is
 * allocated: with debug off or the name muted it costs a comparison and a
 * set lookup.
 */
export function logMessage(logger: Logger, dir: MessageDirection, msgName: string, peer: string, size: number, body?: unknown): void {
  if (logger.levelVal > DEBUG || isMessageMuted(msgName)) return;
  if (body === undefined) logger.debug({ dir, msgName, size, peer }, `${dir} ${msgName}`);
  else logger.debug({ dir, msgName, size, peer, body }, `${dir} ${msgName}`);
}
