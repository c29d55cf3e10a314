import type { KvEvent, ServiceDesc, Watch, WatchOptions } from './types.js';

export interface GuardHost {
  watch(prefix: string, options: WatchOptions<KvEvent>): Promise<Watch>;
  /** The description this client still means to have registered under `key`, if any. */
  registered(key: string): ServiceDesc | undefined;
  register(desc: ServiceDesc): Promise<void>;
  onError(err: Error, desc: ServiceDesc): void;
}

/**
 * Puts an etcd client's registrations back when someone else deletes them
 * (an operator's `gamemesh sd clearsvc`, a stray `deletevalue`): one watch
 * per registration key, and a new registration as soon as the delete is
 * seen. Without it a live service would stay unregistered until its lease
 * is lost. (The built-in server tells a registration's owner itself: the
 * registry notice, docs/protocol.md.)
 */
export class RegistrationGuard {
  private readonly watches = new Map<string, Promise<Watch | undefined>>();
  private closed = false;

  constructor(private readonly host: GuardHost) {}

  follow(key: string): void {
    if (this.closed || this.watches.has(key)) return;
    const onEvent = (ev: KvEvent) => {
      if (ev.type === 'delete' && ev.key === key) this.lost(key);
    };
    const watching = this.host.watch(key, { onEvent }).then(
      (w) => {
        if (this.watches.get(key) !== watching) {
          w.stop();
          return undefined;
        }
        // Deleted between the registration and this watch's snapshot.
        if (!w.get(key)) this.lost(key);
        return w;
      },
      () => {
        // No watch (client closing, or unreachable for longer than a request): the next reconnect re-registers anyway.
        if (this.watches.get(key) === watching) this.watches.delete(key);
        return undefined;
      },
    );
    this.watches.set(key, watching);
  }

  unfollow(key: string): void {
    const w = this.watches.get(key);
    this.watches.delete(key);
    void w?.then((watch) => watch?.stop());
  }

  close(): void {
    this.closed = true;
    for (const key of [...this.watches.keys()]) this.unfollow(key);
  }

  private lost(key: string): void {
    const desc = this.host.registered(key);
    if (!desc || this.closed) return;
    this.host.register(desc).catch((err: Error) => this.host.onError(err, desc));
  }
}
