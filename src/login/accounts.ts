/**
 * Accounts kept in the discovery KV, one JSON record per account under
 * login/accounts/<name>, with a salted scrypt hash of the password.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Discovery } from '../discovery/types.js';
import { asString } from '../discovery/values.js';

/** Where the KV keeps accounts (login/accounts/<name>). */
export const ACCOUNT_PREFIX = 'login/accounts/';
/** What an account name may be: 1 to 32 letters, digits, _ or -. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/** The shortest password accepted, in characters. */
export const PASSWORD_MIN = 6;
/** scrypt's cost hardly depends on length; the cap only keeps records and requests small. */
export const PASSWORD_MAX = 128;

/** N=2^14, r=8, p=1: about 16 MiB and tens of ms per hash (the OWASP minimum for scrypt). */
const SCRYPT_PARAMS = { N: 16384, r: 8, p: 1 } as const;
const HASH_BYTES = 64;
const SALT_BYTES = 16;
/** A record asking for more than this is refused rather than allowed to exhaust memory. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;

/** An account as the KV keeps it: the scrypt hash of its password and the hash's parameters. */
export interface AccountRecord {
  readonly name: string;
  /** Base64. */
  readonly salt: string;
  /** Base64 scrypt output. */
  readonly hash: string;
  /** Milliseconds since the epoch. */
  readonly created: number;
  /** The parameters the hash was made with, so they can be raised later without breaking old accounts. */
  readonly kdf: { readonly alg: 'scrypt'; readonly N: number; readonly r: number; readonly p: number };
}

/** The outcome of a login attempt. */
export type AuthResult =
  | { readonly ok: true; readonly account: string; readonly created: boolean }
  | { readonly ok: false; readonly reason: 'unknown_account' | 'wrong_password' };

/** Why a name or password is unacceptable, or undefined when both are fine. */
export function checkCredentials(name: unknown, password: unknown): string | undefined {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) return 'account must be 1-32 characters: letters, digits, _ or -';
  if (typeof password !== 'string') return 'password must be a string';
  const length = [...password].length;
  if (length < PASSWORD_MIN || length > PASSWORD_MAX) return `password must be ${PASSWORD_MIN}-${PASSWORD_MAX} characters`;
  return undefined;
}

/** The KV key of an account. */
export function accountKey(name: string): string {
  return ACCOUNT_PREFIX + name;
}

/** Options of the AccountStore. */
export interface AccountStoreOptions {
  /** Register unknown accounts on their first login instead of refusing them. */
  demo: boolean;
}

/** Accounts in the cluster's KV, with scrypt-hashed passwords; in demo mode a new name is registered on its first login. */
export class AccountStore {
  constructor(
    private readonly discovery: Discovery,
    private readonly options: AccountStoreOptions,
  ) {}

  async get(name: string): Promise<AccountRecord | undefined> {
    const kv = await this.discovery.get(accountKey(name));
    return kv ? parseRecord(asString(kv), name) : undefined;
  }

  /** Creates the account if no account of that name exists; false if one does. */
  async register(name: string, password: string): Promise<boolean> {
    const record = await makeRecord(name, password);
    const key = accountKey(name);
    // modRev 0: "must not exist", so two first logins at once cannot both create (and overwrite) it.
    const res = await this.discovery.txn([{ key, modRev: 0 }], [{ type: 'put', key, value: JSON.stringify(record) }]);
    return res.succeeded;
  }

  /** Names and passwords must have passed checkCredentials. */
  async authenticate(name: string, password: string): Promise<AuthResult> {
    const existing = await this.get(name);
    if (existing) return this.check(existing, password);
    if (!this.options.demo) {
      // Spend the same time as a real check, so response times do not tell which accounts exist.
      await hashPassword(password, DUMMY_SALT, SCRYPT_PARAMS);
      return { ok: false, reason: 'unknown_account' };
    }
    if (await this.register(name, password)) return { ok: true, account: name, created: true };
    // Another login created it first: this attempt is a login against that account.
    const winner = await this.get(name);
    return winner ? this.check(winner, password) : { ok: false, reason: 'unknown_account' };
  }

  private async check(record: AccountRecord, password: string): Promise<AuthResult> {
    const expected = Buffer.from(record.hash, 'base64');
    const actual = await hashPassword(password, Buffer.from(record.salt, 'base64'), record.kdf, expected.length);
    const ok = actual.length === expected.length && timingSafeEqual(actual, expected);
    return ok ? { ok: true, account: record.name, created: false } : { ok: false, reason: 'wrong_password' };
  }
}

const DUMMY_SALT = randomBytes(SALT_BYTES);

async function makeRecord(name: string, password: string): Promise<AccountRecord> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await hashPassword(password, salt, SCRYPT_PARAMS);
  return { name, salt: salt.toString('base64'), hash: hash.toString('base64'), created: Date.now(), kdf: { alg: 'scrypt', ...SCRYPT_PARAMS } };
}

function hashPassword(password: string, salt: Buffer, params: { N: number; r: number; p: number }, bytes = HASH_BYTES): Promise<Buffer> {
  // NFC: the same password typed on different systems can arrive composed or decomposed.
  const input = password.normalize('NFC');
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r * params.p };
  return hashSlots.run(() => new Promise<Buffer>((resolve, reject) => scrypt(input, salt, bytes, options, (err, key) => (err ? reject(err) : resolve(key)))));
}

/**
 * At most one hash per core at a time. scrypt runs on libuv's shared pool,
 * first come first served: under a burst, a login's token signing and file
 * reads would otherwise wait behind every queued hash, and all logins of the
 * burst would finish together at its end.
 */
class Slots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

const hashSlots = new Slots(Math.max(1, availableParallelism()));

function parseRecord(text: string, name: string): AccountRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`account record ${accountKey(name)} is not JSON`);
  }
  const r = value as Partial<AccountRecord> | null;
  const kdf = r?.kdf;
  const sane = (n: unknown, max: number): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) <= max;
  if (
    typeof r?.salt !== 'string' ||
    typeof r.hash !== 'string' ||
    kdf?.alg !== 'scrypt' ||
    !sane(kdf.N, 1 << 20) ||
    !sane(kdf.r, 32) ||
    !sane(kdf.p, 16) ||
    128 * kdf.N * kdf.r * kdf.p > MAX_SCRYPT_MEMORY ||
    Buffer.from(r.hash, 'base64').length < 16
  ) {
    throw new Error(`account record ${accountKey(name)} is malformed`);
  }
  return { name, salt: r.salt, hash: r.hash, created: typeof r.created === 'number' ? r.created : 0, kdf: { alg: 'scrypt', N: kdf.N, r: kdf.r, p: kdf.p } };
}
