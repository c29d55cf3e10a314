/**
 * Claims make a registration's names unique: one key per service id and one
 * per logical address, written in the same commit (etcd: the same
 * transaction, under the same lease) as the registration itself, and
 * deleted with it. A registration whose id or address is claimed by another
 * owner is refused. Claims live under their own prefix, so that registry
 * watchers never see them; `clearsvc` deletes them with the registrations
 * (clearServices), and `clearvalue` keeps both.
 */
import { CLAIM_PREFIX, RegistrationConflict, SERVICE_PREFIX, type Discovery, type ServiceDesc } from './types.js';

const ID_PREFIX = `${CLAIM_PREFIX}id/`;
const ADDR_PREFIX = `${CLAIM_PREFIX}addr/`;

export type ClaimKind = 'id' | 'addr';

/** What a claim key holds: who holds the name, and the owner that may renew it. */
export interface Claim {
  readonly id: string;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The built-in server: the registering client's instance; etcd: the lease id. */
  readonly owner: string;
}

export interface ClaimKey {
  readonly kind: ClaimKind;
  readonly key: string;
  /** The id or the address. */
  readonly value: string;
}

/** `gamemesh sd clearsvc`: every registration and every claim, in one transaction. Live services register again by themselves. */
export async function clearServices(d: Discovery): Promise<void> {
  await d.txn([], [
    { type: 'delete', key: SERVICE_PREFIX, prefix: true },
    { type: 'delete', key: CLAIM_PREFIX, prefix: true },
  ]);
}

/** The claims a registration needs: its id, and its logical address when meta.addr has one. */
export function claimKeys(desc: ServiceDesc): ClaimKey[] {
  const keys: ClaimKey[] = [{ kind: 'id', key: ID_PREFIX + desc.id, value: desc.id }];
  const addr = desc.meta['addr'];
  if (addr) keys.push({ kind: 'addr', key: ADDR_PREFIX + addr, value: addr });
  return keys;
}

export function encodeClaim(desc: ServiceDesc, owner: string): Buffer {
  return Buffer.from(JSON.stringify({ id: desc.id, name: desc.name, host: desc.host, port: desc.port, owner }));
}

export function decodeClaim(value: Uint8Array): Claim | undefined {
  try {
    const c = JSON.parse(Buffer.from(value).toString('utf8')) as Partial<Claim>;
    if (typeof c.id !== 'string' || typeof c.name !== 'string' || typeof c.owner !== 'string') return undefined;
    return { id: c.id, name: c.name, host: String(c.host ?? ''), port: Number(c.port ?? 0), owner: c.owner };
  } catch {
    return undefined;
  }
}

/** The one line a refused newcomer prints. */
export function conflictMessage(claim: ClaimKey, holder: Claim): string {
  const at = `${holder.host}:${holder.port}`;
  return claim.kind === 'addr' ? `logical address ${claim.value} is held by ${holder.id} (${at})` : `service id ${claim.value} is held by another process (${at})`;
}

export function conflict(claim: ClaimKey, holder: Claim, retryAfterMs: number | undefined): RegistrationConflict {
  return new RegistrationConflict(conflictMessage(claim, holder), retryAfterMs);
}
