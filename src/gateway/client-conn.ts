import type { Session } from '../net/session.js';
import { C } from './messages.js';
import type { KickCodeValue } from './kick.js';

const MAX_TRACKED = 64;

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
  /** seq -> backend id of requests forwarded and not yet answered, so a backend's crash answers them at once. */
  inflight: Map<number, string> | undefined;
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

  /** Remembers a forwarded request; the oldest are forgotten past a cap (handlers may never reply). */
  forwarded(seq: number, backend: string): void {
    const map = (this.inflight ??= new Map());
    map.set(seq, backend);
    if (map.size > MAX_TRACKED) map.delete(map.keys().next().value as number);
  }

  answered(seq: number): void {
    this.inflight?.delete(seq);
  }

  /** Answers with `unavailable` every request still waiting on that backend. */
  failInflight(backend: string, message: string): void {
    if (!this.inflight) return;
    for (const [seq, b] of this.inflight) {
      if (b !== backend) continue;
      this.inflight.delete(seq);
      this.error(seq, 'unavailable', message);
    }
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
