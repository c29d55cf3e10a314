/**
 * Registrations with claims on etcd (claims.ts): the registration key and
 * its id and address claims are read, then written in one transaction
 * under the client's lease, with compares that pin every key read, so two
 * clients racing for one name cannot both win. A claim names its owner, a
 * random instance id per client that outlives the client's leases (a client
 * whose lease was lost takes its own claims back under the new one); a
 * claim of another instance is someone else's, and its key's lease's
 * remaining time says how long it may still be held if that owner is gone.
 */
import { CompareResult, CompareTarget, type ICompare, type IKeyValue, type IRequestOp, type ITxnRequest, type ITxnResponse } from 'etcd3';
import { claimKeys, conflict, decodeClaim, encodeClaim, type ClaimKey } from './claims.js';
import { decodeServiceDesc, encodeServiceDesc } from './service-desc.js';
import { DiscoveryError, serviceKey, type ServiceDesc } from './types.js';

/** What claims need from the etcd backend; keys are the caller's, without the etcd prefix. */
export interface ClaimsHost {
  txn(req: ITxnRequest): Promise<ITxnResponse>;
  /** Remaining seconds of a lease (etcd's TTL: it expires within TTL + 1 s); -1 when it is gone. */
  leaseTtl(leaseId: string): Promise<number>;
  fullKey(key: string): Buffer;
}

/** Who registers: the client's instance (in the claims) and its current lease (on every key). */
export interface ClaimOwner {
  readonly instance: string;
  readonly lease: string;
}

/** Rounds of read-then-write when other writers keep changing the same keys. */
const MAX_ROUNDS = 10;

/** Puts the registration and its claims under the owner's lease, or throws RegistrationConflict. */
export async function registerClaimed(h: ClaimsHost, desc: ServiceDesc, owner: ClaimOwner): Promise<void> {
  const leaseId = owner.lease;
  const regKey = serviceKey(desc.name, desc.id);
  const claims = claimKeys(desc);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const [reg, ...held] = await read(h, [regKey, ...claims.map((c) => c.key)]);
    const pinned = new Map<string, IKeyValue | undefined>([[regKey, reg], ...claims.map((c, i) => [c.key, held[i]] as const)]);
    for (const [i, c] of claims.entries()) {
      const kv = held[i];
      const holder = kv && decodeClaim(kv.value);
      if (!kv || !holder) continue;
      const mine = holder.owner === owner.instance;
      if (mine && holder.id === desc.id) continue;
      // One address for two services of this very client: refused, and no expiry to wait for.
      if (mine) throw conflict(c, holder, undefined);
      // A claim whose registration was deleted by hand holds nothing; the compare keeps that registration absent.
      const holderKey = serviceKey(holder.name, holder.id);
      const holderReg = holderKey === regKey ? reg : (await read(h, [holderKey]))[0];
      if (!holderReg) {
        pinned.set(holderKey, undefined);
        continue;
      }
      throw conflict(c, holder, await retryAfter(h, kv.lease));
    }
    // Keys that already hold this value under this lease are left as they are (an agent's meta update rewrites only its registration).
    const ops: IRequestOp[] = [];
    const put = (key: string, kv: IKeyValue | undefined, value: Buffer) => {
      if (!kv || kv.lease !== leaseId || !value.equals(kv.value)) ops.push({ request_put: { key: h.fullKey(key), value, lease: leaseId } });
    };
    put(regKey, reg, encodeServiceDesc(desc));
    for (const [i, c] of claims.entries()) put(c.key, held[i], encodeClaim(desc, owner.instance));
    // The address changed: release the old claim, if it is still ours.
    const previous = reg && decodeServiceDesc(reg.value);
    const stale = previous ? claimKeys(previous).filter((old) => !claims.some((c) => c.key === old.key)) : [];
    for (const [i, kv] of (await read(h, stale.map((c) => c.key))).entries()) {
      const c = stale[i] as ClaimKey;
      pinned.set(c.key, kv);
      if (kv && isMine(kv, owner.instance, desc.id)) ops.push({ request_delete_range: { key: h.fullKey(c.key) } });
    }
    if (ops.length === 0) return;
    const res = await h.txn({ compare: pins(h, pinned), success: ops, failure: [] });
    if (res.succeeded) return;
  }
  throw new DiscoveryError('unavailable', `registering ${desc.id}: its keys kept changing under ${MAX_ROUNDS} attempts`);
}

/**
 * Deletes the registration and its claims, if they are this owner's (another
 * process's are left alone). `lease` recognizes a registration made before
 * claims existed.
 */
export async function deregisterClaimed(h: ClaimsHost, name: string, id: string, instance: string, lease: string | undefined): Promise<void> {
  const regKey = serviceKey(name, id);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const [reg] = await read(h, [regKey]);
    const desc = reg && decodeServiceDesc(reg.value);
    const claims = desc ? claimKeys(desc) : [];
    const held = await read(h, claims.map((c) => c.key));
    const pinned = new Map<string, IKeyValue | undefined>([[regKey, reg], ...claims.map((c, i) => [c.key, held[i]] as const)]);
    const ops: IRequestOp[] = [];
    const idClaim = held[0];
    const ours = idClaim ? isMine(idClaim, instance, id) : reg !== undefined && lease !== undefined && reg.lease === lease;
    if (reg && ours) ops.push({ request_delete_range: { key: h.fullKey(regKey) } });
    for (const [i, kv] of held.entries()) {
      if (kv && isMine(kv, instance, id)) ops.push({ request_delete_range: { key: h.fullKey((claims[i] as ClaimKey).key) } });
    }
    if (ops.length === 0) return;
    const res = await h.txn({ compare: pins(h, pinned), success: ops, failure: [] });
    if (res.succeeded) return;
  }
  throw new DiscoveryError('unavailable', `deregistering ${id}: its keys kept changing under ${MAX_ROUNDS} attempts`);
}

function isMine(kv: IKeyValue, instance: string, id: string): boolean {
  const claim = decodeClaim(kv.value);
  return claim?.owner === instance && claim.id === id;
}

/** Every key at one revision (a read-only transaction), undefined for absent ones. */
async function read(h: ClaimsHost, keys: readonly string[]): Promise<Array<IKeyValue | undefined>> {
  if (keys.length === 0) return [];
  const res = await h.txn({ compare: [], success: keys.map((k) => ({ request_range: { key: h.fullKey(k) } })), failure: [] });
  return res.responses.map((r) => r.response_range?.kvs[0]);
}

/** Each key must still be as read: same mod revision, or still absent (0). */
function pins(h: ClaimsHost, pinned: ReadonlyMap<string, IKeyValue | undefined>): ICompare[] {
  return [...pinned].map(([key, kv]) => ({ key: h.fullKey(key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: kv?.mod_revision ?? 0 }));
}

/** A claim without a lease (written by hand) never expires: treated as live. */
async function retryAfter(h: ClaimsHost, lease: string): Promise<number | undefined> {
  if (!lease || lease === '0') return undefined;
  const ttl = await h.leaseTtl(lease);
  return ttl < 0 ? 1 : (ttl + 1) * 1000;
}
