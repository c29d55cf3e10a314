/**
 * Drives KCP engines. One interval timer serves every session that has
 * something in flight (idle ones cost nothing), and one setImmediate per
 * tick flushes the sessions that sent or received in it: frames written in
 * one tick leave packed in as few datagrams as they fit, and acks leave at
 * once instead of at the next timed flush.
 */
export interface Pumped {
  /** Timer work: ikcp_update. */
  pump(): void;
  /** Send what is owed now: ikcp_flush. */
  flushNow(): void;
  /** Still needs the timer. */
  readonly busy: boolean;
}

export class KcpDriver {
  private readonly active = new Set<Pumped>();
  private readonly dirty = new Set<Pumped>();
  private timer: NodeJS.Timeout | undefined;
  private flushQueued = false;

  constructor(private readonly tickMs = 10) {}

  /** Keeps `s` on the timer until it is no longer busy. */
  wake(s: Pumped): void {
    this.active.add(s);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  /** Flushes `s` before the next tick of the event loop. */
  dirtied(s: Pumped): void {
    this.dirty.add(s);
    this.wake(s);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flushDirty());
  }

  forget(s: Pumped): void {
    this.active.delete(s);
    this.dirty.delete(s);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.active.clear();
    this.dirty.clear();
  }

  private flushDirty(): void {
    this.flushQueued = false;
    const list = [...this.dirty];
    this.dirty.clear();
    for (const s of list) s.flushNow();
  }

  private tick(): void {
    for (const s of this.active) {
      s.pump();
      if (!s.busy) this.active.delete(s);
    }
    if (this.active.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
