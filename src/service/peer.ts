import type { ServiceDesc } from '../discovery/types.js';
import type { Link } from './link.js';
import type { PeerInfo } from './rpc.js';

interface Waiter {
  readonly resolve: (link: Link) => void;
  readonly reject: (err: Error) => void;
  readonly deadline: number;
}

/** What this process knows of one other service instance. */
export class Peer implements PeerInfo {
  desc: ServiceDesc | undefined;
  link: Link | undefined;
  load = 0;
  draining = false;
  /** Found through a dependency watch (redialed until removed), not lazily. */
  watched = false;
  /** Sends and calls waiting for the link, in order. */
  waiters: Waiter[] = [];
  dialing = false;
  attempt = 0;
  retryTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    public name: string,
    public addr: number,
  ) {}

  get connected(): boolean {
    return this.link !== undefined && !this.link.session.closed;
  }

  get group(): string {
    return this.desc?.meta['group'] ?? '';
  }

  /** Resolves every waiter with the new link, in arrival order. */
  linkUp(link: Link): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve(link);
  }

  failWaiters(err: Error, now = Infinity): void {
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.deadline <= now) w.reject(err);
      else keep.push(w);
    }
    this.waiters = keep;
  }
}
