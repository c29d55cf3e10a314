/**
 * Login tokens: HS256 JWTs made and checked with jose. The game service
 * imports `verifyToken` to check the token a client presents on its first
 * message, so this file holds no HTTP code.
 */
import { randomBytes } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import type { Discovery } from '../discovery/types.js';
import { asString } from '../discovery/values.js';

/** The only algorithm made or accepted: pinning it defeats "alg: none" and algorithm-swap forgeries. */
export const TOKEN_ALGORITHM = 'HS256';
/** The `iss` of every token the login issues, checked on verification. */
export const TOKEN_ISSUER = 'gamemesh';
/** The `aud` of every token the login issues, checked on verification. */
export const TOKEN_AUDIENCE = 'gamemesh';
/** HS256 keys shorter than the hash output are easier to brute-force (RFC 7518 3.2). */
export const MIN_KEY_BYTES = 32;
/** KV key of the shared secret when neither the flag nor the variable gives one. */
export const JWT_SECRET_KEY = 'config/login/jwt_secret';
/** The environment variable that may hold the JWT secret. */
export const JWT_SECRET_ENV = 'GAMEMESH_JWT_SECRET';
/** Tolerated clock difference between the login host and the hosts that verify. */
const CLOCK_TOLERANCE_SEC = 5;
/** The longest lifetime a token may have: issuing refuses more, and so does verifying. */
export const MAX_TTL_SEC = 30 * 24 * 3600;

/** What a login token says: the account (`sub`) and its display name. */
export interface TokenClaims {
  /** The account's stable id (its name). */
  readonly sub: string;
  readonly name: string;
}

/** A signed token and when it expires. */
export interface IssuedToken {
  readonly token: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

/** A token that verified: its claims and expiry. */
export interface VerifiedToken extends TokenClaims {
  /** Seconds since the epoch, as in the JWT. */
  readonly iat: number;
  readonly exp: number;
}

/** Why a token was refused. */
export type TokenErrorCode = 'expired' | 'invalid';

/** Why a token was refused; `expired` lets a client know to log in again rather than report an attack. */
export class TokenError extends Error {
  override name = 'TokenError';
  constructor(
    readonly code: TokenErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Options of issueToken: the token's lifetime, and the clock (tests). */
export interface IssueOptions {
  ttlSec: number;
  /** Issue time in ms since the epoch (default now); tests use it to make expired tokens. */
  now?: number;
}

/** Signs a login token (HS256) for these claims. */
export async function issueToken(claims: TokenClaims, key: Uint8Array, options: IssueOptions): Promise<IssuedToken> {
  checkKey(key);
  const { ttlSec } = options;
  if (!Number.isInteger(ttlSec) || ttlSec < 1 || ttlSec > MAX_TTL_SEC) throw new RangeError(`token ttl must be 1..${MAX_TTL_SEC} seconds, got ${ttlSec}`);
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  const exp = iat + ttlSec;
  const token = await new SignJWT({ name: claims.name })
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(key);
  return { token, expiresAt: exp * 1000 };
}

/** Resolves with the claims of a genuine, unexpired token; otherwise rejects with a TokenError. */
export async function verifyToken(token: string, key: Uint8Array): Promise<VerifiedToken> {
  checkKey(key);
  let payload;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: [TOKEN_ALGORITHM],
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      requiredClaims: ['sub', 'exp', 'iat'],
      clockTolerance: CLOCK_TOLERANCE_SEC,
      // Issued no longer ago than a token may live, and not in the future.
      maxTokenAge: MAX_TTL_SEC,
    }));
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new TokenError('expired', 'the token has expired');
    if (err instanceof errors.JOSEError) throw new TokenError('invalid', `the token is not valid: ${err.message}`);
    throw new TokenError('invalid', 'the token is not valid');
  }
  const { sub, name, iat, exp } = payload;
  if (typeof sub !== 'string' || typeof name !== 'string' || typeof iat !== 'number' || typeof exp !== 'number') {
    throw new TokenError('invalid', 'the token lacks the account claims');
  }
  // What issueToken would never make: a lifetime over the maximum, however recent the iat.
  if (exp - iat > MAX_TTL_SEC || exp > Date.now() / 1000 + MAX_TTL_SEC + CLOCK_TOLERANCE_SEC) {
    throw new TokenError('invalid', `the token is not valid: it lives longer than the maximum of ${MAX_TTL_SEC} s`);
  }
  return { sub, name, iat, exp };
}

/** The key as bytes from a secret's text; at least MIN_KEY_BYTES of UTF-8. */
export function keyFromSecret(secret: string): Uint8Array {
  const key = new TextEncoder().encode(secret);
  checkKey(key);
  return key;
}

/** Where loadJwtKey looks first: a given secret, else the environment (GAMEMESH_JWT_SECRET); else the key comes from the KV. */
export interface LoadKeyOptions {
  /** The --jwt-secret flag; '' or undefined falls through to the variable, then the KV. */
  secret?: string;
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The signing key: the flag, else GAMEMESH_JWT_SECRET, else the KV key
 * config/login/jwt_secret. A missing KV key gets a random secret, written
 * only if still absent, so every login instance and the game service that
 * start at once end up sharing the one that won.
 */
export async function loadJwtKey(discovery: Discovery, options: LoadKeyOptions = {}): Promise<Uint8Array> {
  const given = options.secret || (options.env ?? process.env)[JWT_SECRET_ENV];
  if (given) return keyFromSecret(given);
  const existing = await discovery.get(JWT_SECRET_KEY);
  if (!existing) {
    const fresh = randomBytes(MIN_KEY_BYTES).toString('base64url');
    await discovery.txn([{ key: JWT_SECRET_KEY, modRev: 0 }], [{ type: 'put', key: JWT_SECRET_KEY, value: fresh }]);
  }
  // Read back rather than trust our own write: another instance may have won the race.
  const stored = existing ?? (await discovery.get(JWT_SECRET_KEY));
  if (!stored) throw new Error(`${JWT_SECRET_KEY} vanished while it was being created`);
  // An empty value can come back from the client's protobuf decoding as no bytes object at all.
  const text = (stored.value as Uint8Array | undefined)?.length ? asString(stored) : '';
  if (new TextEncoder().encode(text).length < MIN_KEY_BYTES) {
    throw new RangeError(`${JWT_SECRET_KEY} holds a secret shorter than ${MIN_KEY_BYTES} bytes; set a longer one or delete the key to generate one`);
  }
  return keyFromSecret(text);
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES) {
    throw new RangeError(`the JWT key must be at least ${MIN_KEY_BYTES} bytes`);
  }
}
