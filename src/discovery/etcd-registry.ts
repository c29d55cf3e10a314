import type { Etcd3, Lease } from 'etcd3';
import { randomBytes } from 'node:crypto';
import { deregisterClaimed, registerClaimed, type ClaimsHost } from './etcd-claims.js';
import { backoffMs, isLeaseNotFound, oneLine, toDiscoveryError } from './etcd-support.js';
import { DiscoveryError, RegistrationConflict, serviceKey, type ServiceDesc } from './types.js';

/** What the registry needs from the etcd backend (keys are the caller's, without the etcd prefix). */
export interface RegistryHost {
  readonly claims: ClaimsHost;
  onDown(reason: string): void;
  onUp(): void;
  onError(err: DiscoveryError): void;
  /** A service could not be put back because another process holds its id or address now. */
  onConflict(err: RegistrationConflict, desc: ServiceDesc): void;
}

/**
 * The service registry on etcd: every registration is put, with its claims
 * (etcd-claims.ts), under this client's lease, which etcd3 keeps alive. When the lease is lost (it expired while
 * etcd was unreachable, or etcd lost its data), a new one is granted and
 * every service is put again, by itself, until it succeeds. Closing releases
 * the lease without revoking it: the services go away when it expires, like
 * the built-in server's grace period.
 */
export class LeaseRegistry {
  private readonly services = new Map<string, ServiceDesc>();
  private lease: Lease | undefined;
  private leaseId: Promise<string> | undefined;
  /** Named in this client's claims: it outlives any one lease, so the client takes its own claims back under a new one. */
  private readonly instance = randomBytes(8).toString('hex');
  /** Registry writes run one at a time, so a restore never resurrects a deregistered service. */
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;

  constructor(
    private readonly etcd: Etcd3,
    private readonly ttlSec: number,
    private readonly host: RegistryHost,
  ) {}

  register(desc: ServiceDesc): Promise<void> {
    const key = serviceKey(desc.name, desc.id);
    // Kept even if this write fails: it is written again when etcd is back, as the built-in client does.
    this.services.set(key, desc);
    return this.serial(() => this.put(key, desc)).catch((err: unknown) => {
      // Refused: not ours, so never restored either.
      if (err instanceof RegistrationConflict) {
        if (this.services.get(key) === desc) this.services.delete(key);
        throw err;
      }
      const e = toDiscoveryError(err);
      // Not written (or not known to be) because etcd was out of reach: the restore loop writes it once etcd answers.
      if (e.code === 'unavailable' || e.code === 'timeout') this.schedule();
      throw e;
    });
  }

  deregister(name: string, id: string): Promise<void> {
    const key = serviceKey(name, id);
    this.services.delete(key);
    return this.serial(async () => {
      const leaseId = await this.leaseId?.catch(() => undefined);
      await deregisterClaimed(this.host.claims, name, id, this.instance, leaseId);
    });
  }

  /** The description this client keeps registered under `key`, if any. */
  registered(key: string): ServiceDesc | undefined {
    return this.services.get(key);
  }

  /** Stops the keepalive and the restore loop; the lease is left to expire. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.lease?.release();
    this.lease = undefined;
    this.leaseId = undefined;
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => {});
    return run;
  }

  private async put(key: string, desc: ServiceDesc): Promise<void> {
    const leaseId = this.currentLease();
    const used = this.lease;
    try {
      await registerClaimed(this.host.claims, desc, { instance: this.instance, lease: await leaseId });
    } catch (err) {
      if (!isLeaseNotFound(err)) throw err;
      // etcd no longer knows the lease (expired, or etcd lost its data): grant a new one.
      this.drop(used);
      await registerClaimed(this.host.claims, desc, { instance: this.instance, lease: await this.currentLease() });
    }
  }

  private currentLease(): Promise<string> {
    if (this.closed) return Promise.reject(new DiscoveryError('closed', 'discovery client is closed'));
    if (this.leaseId) return this.leaseId;
    const lease = this.etcd.lease(this.ttlSec);
    this.lease = lease;
    lease.on('lost', (err) => this.onLost(lease, err));
    lease.on('keepaliveSucceeded', () => this.host.onUp());
    lease.on('keepaliveFailed', (err) => this.host.onDown(`lease keepalive failed: ${oneLine((err as unknown as Error).message)}`));
    // grant() rejects when etcd is unreachable; 'lost' has then already fired and scheduled a retry.
    this.leaseId = lease.grant();
    this.leaseId.catch(() => {});
    return this.leaseId;
  }

  private drop(lease: Lease | undefined): void {
    if (!lease || this.lease !== lease) return;
    this.lease = undefined;
    this.leaseId = undefined;
    lease.release();
  }

  private onLost(lease: Lease, err: Error): void {
    if (this.lease !== lease || this.closed) return;
    this.drop(lease);
    if (this.services.size === 0) return;
    this.host.onError(new DiscoveryError('unavailable', `etcd lease lost (${oneLine(err.message)}); registering ${this.services.size} service(s) again`));
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => this.runRestore(), backoffMs(this.attempt++, 50, 1000));
    this.timer.unref();
  }

  /** Runs a pending restore now instead of after its backoff. */
  kick(): void {
    if (!this.timer || this.closed) return;
    clearTimeout(this.timer);
    this.runRestore();
  }

  private runRestore(): void {
    this.timer = undefined;
    this.serial(() => this.restore()).then(
      () => {
        this.attempt = 0;
      },
      () => this.schedule(),
    );
  }

  /** Puts every service again under the current (new) lease. */
  private async restore(): Promise<void> {
    if (this.closed) return;
    for (const [key, desc] of [...this.services]) {
      try {
        await this.put(key, desc);
      } catch (err) {
        if (!(err instanceof RegistrationConflict)) throw err;
        // Taken by another process while our lease was gone: give it up and restore the rest.
        if (this.services.get(key) === desc) this.services.delete(key);
        this.host.onConflict(err, desc);
      }
    }
  }
}
