import type { Logger } from '../log/index.js';
import { claimKeys, conflict, decodeClaim, encodeClaim, type Claim } from './claims.js';
import { RequestError } from './request-error.js';
import { decodeServiceDesc, encodeServiceDesc } from './service-desc.js';
import type { KvStore, Mutation } from './store.js';
import { SERVICE_PREFIX, serviceKey, type ServiceDesc } from './types.js';

/** A connection that registers services. */
export interface RegistryOwner {
  /** Stable across the reconnects of one client (its Hello `instance`), so a reconnect takes its own names back. */
  readonly instance: string;
  readonly services: Set<string>;
}

export interface RegistryHost {
  readonly store: KvStore;
  readonly log: Logger;
  readonly graceMs: number;
  /** Applies mutations as one revision (journaled, watchers told). */
  commit(mutations: Mutation[]): void;
  /** False once the server stops or its journal failed: timers must not commit then. */
  canCommit(): boolean;
}

/**
 * The built-in server's service registry: which connection owns which
 * registration, the grace period of registrations whose owner dropped, and
 * the claims that keep service ids and logical addresses unique. Every
 * registration, with its claims, is one commit; so is every removal.
 */
export class ServerRegistry {
  private readonly owners = new Map<string, RegistryOwner>();
  private readonly graceTimers = new Map<string, { timer: NodeJS.Timeout; ends: number }>();

  constructor(private readonly host: RegistryHost) {}

  /** Registers or updates `desc` for `owner`; throws RegistrationConflict when another owner holds its id or address. */
  register(owner: RegistryOwner, desc: ServiceDesc): void {
    const { store } = this.host;
    const key = serviceKey(desc.name, desc.id);
    const claims = claimKeys(desc);
    for (const c of claims) {
      const held = this.holder(c.key);
      // The same owner may hold its own names again, but not one address for two of its services.
      if (held && (held.owner !== owner.instance || held.id !== desc.id)) throw conflict(c, held, this.retryAfter(held));
    }
    // A registration made before claims existed is still only its live owner's.
    const liveOwner = this.owners.get(key);
    if (liveOwner && liveOwner !== owner && liveOwner.instance !== owner.instance) {
      const existing = decodeServiceDesc(store.get(key)?.value ?? new Uint8Array());
      throw conflict(claims[0] as (typeof claims)[0], { id: desc.id, name: desc.name, host: existing?.host ?? '?', port: existing?.port ?? 0, owner: liveOwner.instance }, undefined);
    }
    liveOwner?.services.delete(key);
    this.owners.set(key, owner);
    owner.services.add(key);
    this.cancelGrace(key);

    const mutations: Mutation[] = [];
    const put = (k: string, value: Buffer) => {
      const current = store.get(k);
      // An identical re-registration (after a reconnect) is not a change.
      if (!current || !Buffer.from(current.value).equals(value)) mutations.push({ key: k, value });
    };
    const stored = store.get(key);
    const previous = stored && decodeServiceDesc(stored.value);
    put(key, encodeServiceDesc(desc));
    for (const c of claims) put(c.key, encodeClaim(desc, owner.instance));
    // The address changed: release the old one.
    if (previous) for (const old of this.ownClaims(previous)) if (!claims.some((c) => c.key === old)) mutations.push({ key: old, delete: true });
    if (mutations.length > 0) this.host.commit(mutations);
  }

  deregister(owner: RegistryOwner, name: string, id: string): void {
    const key = serviceKey(name, id);
    const current = this.owners.get(key);
    if (current && current !== owner) throw new RequestError('bad_request', `service ${id} is registered by another live client`);
    this.owners.delete(key);
    owner.services.delete(key);
    this.cancelGrace(key);
    this.host.commit(this.removal(key));
  }

  /**
   * A registration key was deleted by a request other than its owner's own
   * deregistration (e.g. `gamemesh sd clearsvc`): the owner, if live, loses
   * it and is returned, to be told so that it registers again.
   */
  deletedByOther(key: string): RegistryOwner | undefined {
    const owner = this.owners.get(key);
    if (!owner) return undefined;
    this.owners.delete(key);
    owner.services.delete(key);
    return owner;
  }

  /** The owner's connection closed: its registrations stay for the grace period, unless it registers them again. */
  ownerGone(owner: RegistryOwner): void {
    for (const key of owner.services) {
      if (this.owners.get(key) === owner) {
        this.owners.delete(key);
        this.startGrace(key);
      }
    }
  }

  /** After a start: registrations that outlived their owners' connections get the same grace as a dropped client. */
  recover(): void {
    for (const key of this.host.store.keys(SERVICE_PREFIX)) this.startGrace(key);
  }

  /** On shutdown registrations stay in the store: the next start grants them a new grace. */
  stop(): void {
    for (const g of this.graceTimers.values()) clearTimeout(g.timer);
    this.graceTimers.clear();
  }

  /** The claim's holder, unless the claim is stale (its registration is gone, e.g. deleted by hand). */
  private holder(claimKey: string): Claim | undefined {
    const kv = this.host.store.get(claimKey);
    const claim = kv && decodeClaim(kv.value);
    if (!claim || !this.host.store.get(serviceKey(claim.name, claim.id))) return undefined;
    return claim;
  }

  /** Undefined while the holder's connection is up; else the ms left of its grace. */
  private retryAfter(holder: Claim): number | undefined {
    const key = serviceKey(holder.name, holder.id);
    if (this.owners.has(key)) return undefined;
    const grace = this.graceTimers.get(key);
    return Math.max(1, grace ? grace.ends - Date.now() : this.host.graceMs);
  }

  /** Claim keys that name this registration. */
  private ownClaims(desc: ServiceDesc): string[] {
    const out: string[] = [];
    for (const c of claimKeys(desc)) {
      const kv = this.host.store.get(c.key);
      if (kv && decodeClaim(kv.value)?.id === desc.id) out.push(c.key);
    }
    return out;
  }

  private removal(key: string): Mutation[] {
    const stored = this.host.store.get(key);
    const desc = stored && decodeServiceDesc(stored.value);
    const claims = desc ? this.ownClaims(desc) : [];
    return [key, ...claims].map((k) => ({ key: k, delete: true }));
  }

  private startGrace(key: string): void {
    this.cancelGrace(key);
    if (!this.host.canCommit()) return;
    const timer = setTimeout(() => {
      this.graceTimers.delete(key);
      // Checked again here: the server may have stopped (or its journal failed) since.
      if (!this.host.canCommit() || this.owners.has(key)) return;
      this.host.log.info({ key }, 'service owner gone; removing registration');
      this.host.commit(this.removal(key));
    }, this.host.graceMs);
    timer.unref();
    this.graceTimers.set(key, { timer, ends: Date.now() + this.host.graceMs });
  }

  private cancelGrace(key: string): void {
    const g = this.graceTimers.get(key);
    if (g) {
      clearTimeout(g.timer);
      this.graceTimers.delete(key);
    }
  }
}
