/** The automatic reconnect policy: attempts, backoff, and which kick codes still allow one. */
export interface ReconnectOptions {
  /** Attempts after a connection is lost, before giving up. */
  retries: number;
  /** Delay before the first attempt; it doubles with each failure... */
  minDelayMs: number;
  /** ...up to this. */
  maxDelayMs: number;
  /**
   * Kick codes after which reconnecting makes sense. Default [1, 11]: the
   * agent is shutting down or full (1), or the agent or backend holding
   * this client retired in a rolling upgrade (11). Any other kick
   * (a duplicate login, a protocol violation) means the server wants this
   * client gone, and reconnecting would only repeat it.
   */
  kickCodes?: readonly number[];
}

/** The reconnect policy a GameClient uses unless told otherwise. */
export const DEFAULT_RECONNECT: Required<ReconnectOptions> = { retries: 10, minDelayMs: 500, maxDelayMs: 10_000, kickCodes: [1, 11] };

/**
 * Exponential backoff with jitter: after an agent restarts, its thousands of
 * clients must not all come back in the same millisecond.
 */
export function backoffDelay(attempt: number, opts: ReconnectOptions): number {
  const base = Math.min(opts.maxDelayMs, opts.minDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base / 2 + (Math.random() * base) / 2);
}
