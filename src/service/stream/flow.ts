/**
 * Credit-based flow control, used twice: per stream, and for the link as a
 * whole (all streams on it together). The receiver grants credit in bytes;
 * the sender never sends more than it holds; the receiver gives credit back
 * as the application consumes (or drops) what arrived. So what a receiver
 * can be made to buffer is bounded by the window it chose.
 */

/** The most credit a sender may hold: grants beyond it are a protocol violation. */
export const MAX_CREDIT = 0x7fffffff;

/** What the peer lets us send. */
export class SendCredit {
  private held = 0;

  get available(): number {
    return this.held;
  }

  /** Adds a grant; false (nothing added) if it would exceed MAX_CREDIT or is not a positive integer. */
  grant(delta: number): boolean {
    if (!Number.isInteger(delta) || delta <= 0 || this.held + delta > MAX_CREDIT) return false;
    this.held += delta;
    return true;
  }

  take(n: number): void {
    this.held -= n;
  }
}

/**
 * What we let the peer send: `window` bytes in flight or unread at most.
 * Consumed bytes are handed back in batches of at least a quarter of the
 * window, so a steady transfer costs one small grant per quarter window.
 */
export class RecvWindow {
  /** Credit the peer still holds. */
  private open: number;
  /** Consumed (or dropped) bytes not yet granted back. */
  private owed = 0;
  private readonly threshold: number;

  /** The whole window is granted up front (in StreamOpen, StreamAccept, or the link's first StreamWindow). */
  constructor(readonly window: number) {
    this.open = window;
    this.threshold = Math.max(1, Math.floor(window / 4));
  }

  /** Credit the peer still holds. */
  get remaining(): number {
    return this.open;
  }

  /** Bytes in flight or unread: what the peer's sending has committed of our memory. */
  get outstanding(): number {
    return this.window - this.open - this.owed;
  }

  /** Accounts for `n` arriving bytes; false if the peer had no credit for them. */
  receive(n: number): boolean {
    if (n > this.open) return false;
    this.open -= n;
    return true;
  }

  /** `n` bytes were consumed or dropped; returns the grant to send now (0: not yet). */
  release(n: number): number {
    this.owed += n;
    if (this.owed < this.threshold) return 0;
    const delta = this.owed;
    this.owed = 0;
    this.open += delta;
    return delta;
  }
}
