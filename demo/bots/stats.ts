/** What a bot run measures: latencies per request kind, errors by code, and counters for the progress line. */

export const KINDS = ['login', 'connect', 'enter game', 'join chat', 'earn gold', 'level up', 'stats', 'chat', 'whisper', 'who'] as const;
export type Kind = (typeof KINDS)[number];

/** Everything but login and connect is a message through the gateway. */
export function isMessage(kind: Kind): boolean {
  return kind !== 'login' && kind !== 'connect';
}

export interface ErrorCount {
  count: number;
  /** The first one's message, to say what went wrong. */
  example: string;
  kinds: Set<Kind>;
}

export class Recorder {
  readonly latencies = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
  readonly errors = new Map<string, ErrorCount>();
  loggedIn = 0;
  playing = 0;
  messages = 0;
  pushes = 0;
  errorCount = 0;
  /** Date.now() of the last error, 0 before any. */
  lastErrorAt = 0;
  notices = { down: 0, up: 0 };
  /** performance.now() of the first login's start and the last one's end. */
  loginSpan = { first: Infinity, last: 0 };

  ok(kind: Kind, startedAt: number): void {
    const now = performance.now();
    (this.latencies.get(kind) as number[]).push(now - startedAt);
    if (isMessage(kind)) this.messages++;
    if (kind === 'login') {
      this.loggedIn++;
      this.loginSpan.first = Math.min(this.loginSpan.first, startedAt);
      this.loginSpan.last = Math.max(this.loginSpan.last, now);
    }
  }

  error(kind: Kind, code: string, message: string): void {
    this.errorCount++;
    this.lastErrorAt = Date.now();
    let e = this.errors.get(code);
    if (!e) this.errors.set(code, (e = { count: 0, example: `${kind}: ${message}`, kinds: new Set() }));
    e.count++;
    e.kinds.add(kind);
  }
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}
