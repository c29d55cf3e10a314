/**
 * Pieces of the etcd backend that do not need its state: the etcd3 client
 * options, key ranges, and the mapping of etcd3 and gRPC errors onto
 * DiscoveryError codes.
 */
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  isRecoverableError,
  Range,
  type IOptions,
} from 'etcd3';
import { DiscoveryError } from './types.js';

/** TLS material as PEM contents. `true` means TLS with the system's CA roots. */
export interface EtcdTlsOptions {
  /** CA bundle that signed the etcd members' certificates; the system roots when absent. */
  ca?: Buffer | string;
  /** Client certificate and key, for etcd's --client-cert-auth. */
  cert?: Buffer | string;
  key?: Buffer | string;
}

export interface EtcdClientSettings {
  endpoints: readonly string[];
  tls?: EtcdTlsOptions | boolean | undefined;
  auth?: { username: string; password: string } | undefined;
  requestTimeoutMs: number;
  /** Merged last, over everything built here. */
  etcd?: Partial<IOptions> | undefined;
}

/** Builds the etcd3 client options: endpoints, TLS, auth, deadlines, retries. */
export function etcdClientOptions(s: EtcdClientSettings): IOptions {
  if (s.endpoints.length === 0) throw new DiscoveryError('bad_request', 'etcd needs at least one endpoint');
  const secure = s.tls !== undefined && s.tls !== false ? true : s.endpoints.some((e) => /^https:\/\//i.test(e));
  const hosts = s.endpoints.map((e) => {
    const hostPort = e.trim().replace(/^https?:\/\//i, '');
    if (!/^(?:\[[^\]]+\]|[^:/\s]+):\d{1,5}$/.test(hostPort)) throw new DiscoveryError('bad_request', `bad etcd endpoint ${JSON.stringify(e)}: expected host:port`);
    return `${secure ? 'https' : 'http'}://${hostPort}`;
  });
  const tls = typeof s.tls === 'object' ? s.tls : undefined;
  const options: IOptions = {
    hosts,
    // With no CA given, gRPC falls back to the system roots (a null root certificate).
    credentials:
      tls && (tls.ca || tls.cert || tls.key)
        ? { rootCertificate: (tls.ca ? Buffer.from(tls.ca) : null) as Buffer, certChain: tls.cert ? Buffer.from(tls.cert) : undefined, privateKey: tls.key ? Buffer.from(tls.key) : undefined }
        : undefined,
    auth: s.auth,
    grpcOptions: {
      // Come back quickly after a member restarts instead of gRPC's default minutes-long backoff.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.use_local_subchannel_pool': 1,
      // Notice a dead connection that sends no RST (etcd allows pings every 5 s).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
    },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + s.requestTimeoutMs }),
    faultHandling: {
      // A member that failed three calls in a row is skipped for a second.
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      // Another member gets the call when one is unreachable; calls that may have been applied are not repeated.
      global: retry(handleWhen(neverSent), { maxAttempts: Math.max(2, hosts.length), backoff: new ExponentialBackoff({ initialDelay: 20, maxDelay: 200 }) }),
    },
  };
  return { ...options, ...s.etcd, grpcOptions: { ...options.grpcOptions, ...s.etcd?.grpcOptions } };
}

/**
 * True when the request cannot have been applied: no connection to the
 * member, its circuit is open, or etcd refused it for want of a leader. A
 * dropped connection or etcd's own "request timed out" may have been applied.
 */
export function neverSent(err: unknown): boolean {
  if (isBrokenCircuitError(err)) return true;
  return err instanceof GRPCUnavailableError && /No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|etcdserver: no leader|(Name|DNS) resolution failed/.test(err.message);
}

/** The [start, end) range of every key under `prefix` (all keys when it is empty). */
export function prefixRange(prefix: Buffer): { key: Buffer; range_end: Buffer } {
  const r = Range.prefix(prefix);
  return { key: r.start, range_end: r.end };
}

export function toBuffer(value: Uint8Array | string): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Maps whatever etcd3, gRPC or cockatiel threw onto the Discovery error codes. */
export function toDiscoveryError(err: unknown): DiscoveryError {
  if (err instanceof DiscoveryError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const msg = oneLine(e.message).replace(/\s*Resolution note:\s*$/, '');
  if (e instanceof ClientClosedError) return new DiscoveryError('closed', 'discovery client is closed');
  if (
    e instanceof EtcdAuthenticationFailedError ||
    e instanceof EtcdPermissionDeniedError ||
    e instanceof EtcdInvalidAuthTokenError ||
    e instanceof GRPCUnauthenticatedError ||
    /etcdserver: (user name is empty|authentication is not enabled|invalid auth|permission denied)/.test(msg)
  ) {
    return new DiscoveryError('unauthorized', `etcd refused the credentials: ${msg}`);
  }
  if (/request is too large|too many operations in txn|larger than max|exceeds? (the )?max/i.test(msg) || e instanceof GRPCResourceExhastedError) {
    return new DiscoveryError('too_large', `etcd: ${msg}`);
  }
  if (e instanceof GRPCDeadlineExceededError) return new DiscoveryError('timeout', `etcd request timed out: ${msg}`);
  if (e instanceof GRPCUnavailableError || isBrokenCircuitError(e) || isRecoverableError(e)) {
    return new DiscoveryError('unavailable', `etcd is unavailable: ${msg}`);
  }
  if (e instanceof GRPCInvalidArgumentError || /duplicate key given in txn|key is not provided/.test(msg)) return new DiscoveryError('bad_request', `etcd: ${msg}`);
  return new DiscoveryError('internal', `etcd: ${msg}`);
}

export function isLeaseNotFound(err: unknown): boolean {
  return err instanceof Error && /requested lease not found|lease .* is expired or revoked/i.test(err.message);
}

/** Exponential backoff with jitter, for the reconnect loops. */
export function backoffMs(attempt: number, minMs = 50, maxMs = 1000): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 10));
  return base / 2 + Math.random() * (base / 2);
}
