import type { Session } from '../net/session.js';

interface Outgoing {
  readonly rev: number;
  readonly session: Session;
  readonly msgId: number;
  readonly seq: number;
  readonly body: Uint8Array;
}

/**
 * Holds every frame that reflects the store at some revision until that
 * revision is durable, so no client can see a write that a crash could
 * still take back. Frames leave in the order they were produced: revisions
 * only grow, so the queue is always sorted and a release pops a prefix.
 */
export class DurableOutbox {
  private queue: Outgoing[] = [];

  /** @param durable the highest revision on disk */
  constructor(private durable: number) {}

  get durableRevision(): number {
    return this.durable;
  }

  /** Sends now if `rev` is durable (and nothing older waits), else queues it. */
  send(rev: number, session: Session, msgId: number, seq: number, body: Uint8Array): void {
    if (rev <= this.durable) session.send(msgId, seq, body);
    else this.queue.push({ rev, session, msgId, seq, body });
  }

  /** Forgets what still waits: those revisions never became durable, so their frames must never leave. */
  drop(): void {
    this.queue = [];
  }

  /** Everything up to `rev` is on disk: release what waited for it. */
  release(rev: number): void {
    if (rev > this.durable) this.durable = rev;
    let i = 0;
    for (; i < this.queue.length; i++) {
      const o = this.queue[i] as Outgoing;
      if (o.rev > this.durable) break;
      o.session.send(o.msgId, o.seq, o.body);
    }
    if (i > 0) this.queue = this.queue.slice(i);
  }
}
