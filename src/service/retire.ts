/**
 * Retiring (DOMI's versioned rollout): a node that a newer version of its
 * service replaces, or that an operator drains, takes no new work
 * (admission skips it everywhere: its registration says `state: retiring`),
 * keeps serving what it has (bound and sticky clients, calls in flight),
 * and exits with code 0 once nothing holds it, or, after --drain-max, kicks
 * what is left with "reconnect" and exits all the same.
 */
import { canTakeOver, RETIRING, STATE_META, versionOf, versionScope } from '../discovery/admission.js';
import { updateNodeState } from '../discovery/node-state.js';
import type { Discovery, ServiceDesc, ServiceWatch } from '../discovery/types.js';
import type { Logger } from '../log/index.js';
import type { AdminServer } from './admin.js';
import { requestExit } from './lifecycle.js';

/** How often a retiring node counts what still holds it. */
const POLL_MS = 200;
/** After the drain-max kicks, time for them to reach the clients before the links close. */
const KICK_FLUSH_MS = 300;
/**
 * Between telling the peers "draining" and stopping: a call a peer sent
 * before it heard (it had no other instance linked yet) still arrives, and
 * is answered rather than cut off by the close.
 */
const HANDOVER_MS = 500;

export interface RetireHost {
  readonly id: string;
  readonly name: string;
  /** versionScope of its own registration: the service, group and cluster a newer version must share to retire it. */
  scope(): string;
  readonly version: number;
  readonly drainMaxMs: number;
  readonly log: Logger;
  discovery(): Discovery;
  available(id: string): boolean;
  /** Registers again with these meta fields merged. */
  setMeta(meta: Readonly<Record<string, string>>): void;
  /** What still holds the node: clients, bindings, calls in flight. */
  busy(): number;
  /** Tells every linked peer to pick it no more (L.Draining). */
  announceDraining(): void;
  /** Events on the node. */
  retiring(reason: string): void;
  drainTimeout(): void;
  retired(): void;
  stop(): Promise<void>;
}

export class Retirement {
  private active = false;
  private reason = '';
  private since = 0;
  private watch: ServiceWatch | undefined;
  private poll: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(private readonly host: RetireHost) {}

  get retiring(): boolean {
    return this.active;
  }

  /** Why it retires, and for how long, for GET /status. */
  status(): { reason: string; sinceMs: number } | undefined {
    return this.active ? { reason: this.reason, sinceMs: Date.now() - this.since } : undefined;
  }

  /** Watches its own service for newer versions (after the node registered). */
  async open(): Promise<void> {
    this.watch = await this.host.discovery().watchServices(this.host.name, { onEvent: (ev) => ev.type !== 'remove' && this.check(ev.desc) });
    for (const desc of this.watch.list()) this.check(desc);
  }

  private check(desc: ServiceDesc): void {
    if (this.active || desc.id === this.host.id || versionScope(desc) !== this.host.scope()) return;
    const version = versionOf(desc);
    if (version <= this.host.version || !canTakeOver(desc, (id) => this.host.available(id))) return;
    this.start(`version ${version} of ${this.host.name} is live (${desc.id})`);
  }

  /** The node's own config/nodes record changed: `drain: true` is a request to retire, cleared as it is taken. */
  ownState(drain: boolean): void {
    if (!drain) return;
    updateNodeState(this.host.discovery(), this.host.id, { drain: false }).catch((err: Error) => this.host.log.warn({ err: err.message }, 'cannot clear the drain request'));
    this.start('drain requested in config/nodes');
  }

  /** Starts retiring; a second call changes nothing. Returns false if it was retiring already. */
  start(reason: string): boolean {
    if (this.active || this.finished) return false;
    this.active = true;
    this.reason = reason;
    this.since = Date.now();
    this.host.log.info({ reason, drainMaxSec: this.host.drainMaxMs / 1000, holding: this.host.busy() }, 'retiring: no new work; exiting once the last client is gone');
    this.host.setMeta({ [STATE_META]: RETIRING });
    this.host.retiring(reason);
    this.poll = setInterval(() => {
      if (this.host.busy() === 0) this.finish('the last client is gone');
    }, POLL_MS);
    this.deadline = setTimeout(() => this.force(), this.host.drainMaxMs);
    this.deadline.unref();
    return true;
  }

  private force(): void {
    if (this.finished) return;
    this.host.log.warn({ holding: this.host.busy(), drainMaxSec: this.host.drainMaxMs / 1000 }, 'drain-max reached: kicking the clients that are left to reconnect elsewhere');
    this.host.drainTimeout();
    setTimeout(() => this.finish('drain-max reached'), KICK_FLUSH_MS).unref();
  }

  private finish(why: string): void {
    if (this.finished) return;
    this.finished = true;
    this.clearTimers();
    this.host.log.info({ why, retiredInSec: Math.round((Date.now() - this.since) / 100) / 10 }, 'retired');
    this.host.announceDraining();
    setTimeout(() => {
      this.host.retired();
      if (!requestExit(0, `retired: ${why}`)) void this.host.stop();
    }, HANDOVER_MS);
  }

  private clearTimers(): void {
    clearInterval(this.poll);
    clearTimeout(this.deadline);
  }

  close(): void {
    this.clearTimers();
    this.watch?.stop();
  }
}

export interface RolloutRoutesHost {
  /** Starts retiring; false if it was already. */
  retire(reason: string): boolean;
  stop(): Promise<void>;
  status(): unknown;
}

/** POST /drain and POST /stop on the node's admin port (GET /status is the node's own). */
export function addRolloutRoutes(admin: AdminServer, node: RolloutRoutesHost, log: Logger): void {
  admin.route('POST', '/drain', () => {
    const started = node.retire('POST /drain on the admin port');
    return { status: started ? 202 : 200, json: { retiring: true, started, status: node.status() } };
  });
  admin.route('POST', '/stop', () => {
    log.info('POST /stop on the admin port: stopping');
    // After the answer is on its way: the stop closes this server.
    setImmediate(() => {
      if (!requestExit(0, 'POST /stop')) void node.stop();
    });
    return { status: 202, json: { stopping: true } };
  });
}
