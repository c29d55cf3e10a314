/** How the terminal client shows things: one line each, no colors, so it reads the same in a pipe. */
import type { BackendStatus, Kick } from '../../src/client/index.js';
import { ClientError } from '../../src/client/index.js';
import { levelCost } from '../game/rules.js';
import type { ChatMsg, Player } from '../gen/index.js';

/**
 * Text from other players goes to a terminal, where control characters
 * (ESC, and the C1 range with its one-byte CSI) could move the cursor, clear
 * the screen or retitle the window. The social service strips C0 already;
 * the client does not rely on that.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, ' ');
}

function clock(ms: number): string {
  const d = ms > 0 ? new Date(ms) : new Date();
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

export function chatLine(msg: ChatMsg, me: string): string {
  const from = printable(msg.from);
  const text = printable(msg.text);
  const time = clock(Number(msg.time_ms));
  if (msg.channel === 'whisper') return `${time} [whisper from ${from}] ${text}`;
  return `${time} [${printable(msg.channel) || 'world'}] ${from === me ? `${from} (you)` : from}: ${text}`;
}

export function statsLine(p: Player): string {
  return `${p.name}: level ${p.level}, ${p.gold} gold; level ${p.level + 1} costs ${levelCost(p.level)} gold`;
}

export function earnedLine(p: Player, earned: number): string {
  return `+${earned} gold: you have ${p.gold} gold (level ${p.level})`;
}

export function levelLine(p: Player, cost: number): string {
  return `level up! you are level ${p.level} now (paid ${cost} gold, ${p.gold} left)`;
}

export function whoLine(names: readonly string[]): string {
  return `in chat (${names.length}): ${names.map(printable).join(', ')}`;
}

export function backendLine(status: BackendStatus): string {
  const service = printable(status.service);
  return status.up ? `* ${service} is back` : `* ${service} is down, retrying…`;
}

export function kickLine(kick: Kick): string {
  return `* kicked by the server (code ${kick.code}): ${printable(kick.reason)}`;
}

/** A failed request, in words: what was tried, and what to do about it where there is something. */
export function errorLine(what: string, err: unknown): string {
  if (!(err instanceof ClientError)) return `! ${what} failed: ${(err as Error).message}`;
  const message = printable(err.message);
  switch (err.code) {
    case 'application':
      return `! ${what}: ${message}`;
    case 'unavailable':
      return `! ${what}: the server is unavailable right now (${message}); try again in a moment`;
    case 'timeout':
      return `! ${what}: no answer in time (${message})`;
    case 'closed':
      return `! ${what}: not connected (${message})`;
    case 'unauthenticated':
      return `! ${what}: not in the game (${message})`;
    default:
      return `! ${what} failed (${err.code}): ${message}`;
  }
}
