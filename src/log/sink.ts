import type { EventEmitter } from 'node:events';

/** What the sink forwards to: a SonicBoom (stderr) or a transport's ThreadStream. */
export interface Destination extends Pick<EventEmitter, 'on' | 'once'> {
  write(chunk: string): unknown;
  end(): void;
  flush?(cb: (err?: Error) => void): void;
}

/** How long flushing or closing one destination may take before we give up on it. */
const SETTLE_MS = 5000;

/**
 * The one stream every pino logger writes into. Child loggers are bound to
 * their parent's stream for life, so switching output (stderr, pretty, a
 * rotated file) means switching what this sink forwards to, not the loggers.
 */
export class Sink {
  private target: Destination | undefined;
  private readonly closing = new Set<Promise<void>>();

  constructor(private readonly fallback: () => Destination) {}

  write(chunk: string): void {
    // Created on first write so a process that configures a file before logging never opens stderr's writer.
    (this.target ??= this.fallback()).write(chunk);
  }

  /** Later writes go to `next` (undefined: the fallback); the old destination is ended in the background. */
  replace(next: Destination | undefined): void {
    const old = this.target;
    this.target = next;
    if (!old) return;
    const done = endDestination(old).finally(() => this.closing.delete(done));
    this.closing.add(done);
  }

  /** Forgets a destination that failed, without ending it; later writes go to the fallback. */
  abandon(dest: Destination): void {
    if (this.target === dest) this.target = undefined;
  }

  /** pino's `logger.flush(cb)` lands here. */
  flush(cb?: (err?: Error) => void): void {
    this.flushed().then(() => cb?.(), cb);
  }

  /** Resolves once everything written so far reached the destinations, including ones being closed. */
  async flushed(): Promise<void> {
    const current = this.target ? flushDestination(this.target) : Promise.resolve();
    await Promise.all([...this.closing, current]);
  }

  /** Ends the current destination and waits until every destination has closed. */
  async close(): Promise<void> {
    this.replace(undefined);
    await Promise.all([...this.closing]);
  }
}

function flushDestination(dest: Destination): Promise<void> {
  const { flush } = dest;
  if (!flush) return Promise.resolve();
  return settle((done) => flush.call(dest, () => done()));
}

function endDestination(dest: Destination): Promise<void> {
  return settle((done) => {
    dest.once('close', done);
    dest.end();
  });
}

/**
 * Resolves when `start` reports done or after SETTLE_MS, whichever is first:
 * a wedged writer must not hang shutdown. The timer stays ref'd on purpose: a
 * transport unrefs its worker once ready, and without it the process could
 * exit, or an awaiting caller stall, before the worker reports back.
 */
function settle(start: (done: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, SETTLE_MS);
    try {
      start(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}
