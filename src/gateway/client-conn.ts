import type { Session } from '../net/session.js';
import { C } from './messages.js';
import type { KickCodeValue } from './kick.js';
import { metricsOn } from '../observe/metrics.js';
import { countKick, roundTripOf } from './metrics.js';

const MAX_TRACKED = 64;
const NO_SESSION: Record<string, string> = Object.freeze({});

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
  /** Replaced, never changed in place: every client starts with the one frozen empty record. */
  session: Record<string, string> = NO_SESSION;
  /** Backends this client sent room messages to (a matchmaker may be none of its bound ones): told when it closes. */
  roomPeers: Set<string> | undefined;
  /** Backend id -> names of that backend's groups this client is a member of (AgentGroups). */
  groups: Map<string, Set<string>> | undefined;
  /** seq -> backend id of requests forwarded and not yet answered, so a backend's crash answers them at once. */
  inflight: Map<number, string> | undefined;
  /** seq -> performance.now() at forwarding, while metrics are on (the backend round-trip histogram). */
  sentAt: Map<number, number> | undefined;
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
    if (metricsOn()) (this.sentAt ??= new Map()).set(seq, performance.now());
    if (map.size > MAX_TRACKED) {
      const oldest = map.keys().next().value as number;
      map.delete(oldest);
      this.sentAt?.delete(oldest);
    }
  }

  answered(seq: number): void {
    if (this.sentAt === undefined) {
      this.inflight?.delete(seq);
      return;
    }
    const backend = this.inflight?.get(seq);
    if (backend === undefined) return;
    this.inflight?.delete(seq);
    const at = this.sentAt.get(seq);
    if (at === undefined) return;
    this.sentAt.delete(seq);
    roundTripOf(backend).observeSince(at);
  }

  /** Answers with `unavailable` every request still waiting on that backend. */
  failInflight(backend: string, message: string): void {
    if (!this.inflight) return;
    for (const [seq, b] of this.inflight) {
      if (b !== backend) continue;
      this.inflight.delete(seq);
      this.sentAt?.delete(seq);
      this.error(seq, 'unavailable', message);
    }
  }

  /** Every backend this client has talked to, is bound to, or is a group member of. */
  backends(): Set<string> {
    const out = new Set<string>();
    for (const id of this.bound?.values() ?? []) out.add(id);
    for (const id of this.sticky?.values() ?? []) out.add(id);
    for (const id of this.roomPeers ?? []) out.add(id);
    // A group member's backend hears of the close too, bound or not: members leave by themselves.
    for (const [id, names] of this.groups ?? []) if (names.size > 0) out.add(id);
    return out;
  }

  error(seq: number, code: string, message: string): void {
    this.conn.send(C.Error.id, seq, C.Error.encode({ code, message }));
  }

  kick(code: KickCodeValue, reason: string): void {
    if (this.conn.closed) return;
    countKick(code);
    this.conn.send(C.Kick.id, 0, C.Kick.encode({ code, reason }));
    this.conn.close(`kicked (${code}): ${reason}`);
  }
}
