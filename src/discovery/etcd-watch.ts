import type { IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { backoffMs, oneLine } from './etcd-support.js';
import type { KeyValue, KvEvent, WatchOptions } from './types.js';
import { WatchState } from './watch-state.js';

/** What a prefix watch needs from the etcd backend. */
export interface WatchHost {
  /** Every key under the prefix at one revision, and that revision. */
  snapshot(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }>;
  /** An etcd watcher on the prefix, delivering events from `fromRevision` on. */
  openWatcher(prefix: string, fromRevision: number): Watcher;
  toKeyValue(kv: IKeyValue): KeyValue;
  userKey(key: Buffer): string;
  /** The watch stream broke: etcd is unreachable, or the member went away. */
  onDown(reason: string): void;
  onUp(): void;
}

/**
 * One prefix watch on etcd. It starts at a snapshot's revision + 1, so no
 * change falls between the snapshot and the first event. When the stream
 * breaks it does not let etcd3 resume it (its resume point can skip events
 * announced but not yet delivered); it drops the watcher, takes a new
 * snapshot once etcd answers again, lets WatchState emit exactly the changes
 * missed in between, and watches on from that snapshot's revision + 1.
 */
export class EtcdPrefixWatch {
  readonly state: WatchState;
  private watcher: Watcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private disposed = false;

  constructor(
    private readonly host: WatchHost,
    prefix: string,
    options: WatchOptions<KvEvent>,
    onStop: (w: EtcdPrefixWatch) => void,
  ) {
    this.state = new WatchState(prefix, options, () => {
      this.dispose();
      onStop(this);
    });
  }

  get prefix(): string {
    return this.state.prefix;
  }

  /** Resolves once the snapshot is cached; rejects (and stops) if etcd cannot give one. */
  async start(): Promise<void> {
    try {
      const snap = await this.host.snapshot(this.prefix);
      if (this.disposed) return;
      this.state.applySnapshot(snap.kvs, snap.revision, true);
      this.follow(snap.revision + 1);
    } catch (err) {
      this.state.stop();
      throw err;
    }
  }

  private follow(fromRevision: number): void {
    const w = this.host.openWatcher(this.prefix, fromRevision);
    this.watcher = w;
    w.on('data', (res: IWatchResponse) => {
      if (this.watcher !== w) return;
      for (const ev of res.events) {
        if (String(ev.type).toUpperCase() === 'DELETE') this.state.applyDelete(this.host.userKey(ev.kv.key), Number(ev.kv.mod_revision));
        else this.state.applyPut(this.host.toKeyValue(ev.kv));
      }
    });
    w.on('connected', () => {
      if (this.watcher === w) this.host.onUp();
    });
    w.on('disconnected', (err: Error) => this.lost(w, `watch stream lost: ${oneLine(err.message)}`));
    // Cancelled by etcd (e.g. the start revision was compacted away): same remedy.
    w.on('error', (err: Error) => this.lost(w, `watch cancelled: ${oneLine(err.message)}`));
  }

  private lost(w: Watcher, reason: string): void {
    if (this.watcher !== w || this.disposed) return;
    this.watcher = undefined;
    w.cancel().catch(() => {});
    this.host.onDown(reason);
    this.schedule();
  }

  private schedule(): void {
    if (this.disposed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.resync();
    }, backoffMs(this.attempt++));
    this.timer.unref();
  }

  /** Runs a pending resync now instead of after its backoff. */
  kick(): void {
    if (!this.timer || this.disposed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    void this.resync();
  }

  private async resync(): Promise<void> {
    try {
      const snap = await this.host.snapshot(this.prefix);
      if (this.disposed) return;
      this.state.applySnapshot(snap.kvs, snap.revision, false);
      this.follow(snap.revision + 1);
      this.attempt = 0;
    } catch {
      // Still unreachable: try again later. Errors surface through the client's 'disconnected'.
      this.schedule();
    }
  }

  /** Stops following; for the owner's close(). Resolves once etcd confirmed the cancel, or soon. */
  dispose(): Promise<void> {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    return w ? w.cancel().catch(() => {}) : Promise.resolve();
  }
}
