import type { Session } from '../net/session.js';
import { C } from './messages.js';
import type { KickCodeValue } from './kick.js';

/**
 * The agent's state for one connected client. Maps are created on first
 * use: most of 10,000 idle clients never need them, and memory per client
 * is a target.
 */
export class ClientConn {
  handshaken = false;
  handshakeTimer: NodeJS.Timeout | undefined;
  /** Service name -> backend id, set by a backend's Bind. */
  bound: Map<string, string> | undefined;
  /** Service name -> backend id chosen for "pass" messages (sticky). */
  sticky: Map<string, string> | undefined;
  session: Record<string, string> = {};
  private tokens: number;
  private refilledAt: number;

  constructor(
    readonly id: number,
    readonly conn: Session,
    private readonly ratePerSec: number,
  ) {
    this.tokens = ratePerSec;
    this.refilledAt = Date.now();
  }

  /** Token bucket: up to ratePerSec messages, refilled continuously. */
  take(now: number): boolean {
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.ratePerSec, this.tokens + (elapsed * this.ratePerSec) / 1000);
      this.refilledAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  bind(service: string, backendId: string, data: Readonly<Record<string, string>>): void {
    (this.bound ??= new Map()).set(service, backendId);
    if (Object.keys(data).length > 0) this.session = { ...this.session, ...data };
  }

  /** Every backend this client has talked to or is bound to. */
  backends(): Set<string> {
    const out = new Set<string>();
    for (const id of this.bound?.values() ?? []) out.add(id);
    for (const id of this.sticky?.values() ?? []) out.add(id);
    return out;
  }

  error(seq: number, code: string, message: string): void {
    this.conn.send(C.Error.id, seq, C.Error.encode({ code, message }));
  }

  kick(code: KickCodeValue, reason: string): void {
    if (this.conn.closed) return;
    this.conn.send(C.Kick.id, 0, C.Kick.encode({ code, reason }));
    this.conn.close(`kicked (${code}): ${reason}`);
  }
}
