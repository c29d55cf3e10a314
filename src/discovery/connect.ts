import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { DiscoveryClient, parseAddr, type DiscoveryClientEvents } from './client.js';
import type { EtcdDiscoveryOptions, EtcdTlsOptions } from './etcd.js';
import { DiscoveryError, type Discovery } from './types.js';

/** Events both backends emit: 'connected', 'disconnected' (with a reason) and 'error'. */
export type DiscoveryEvents = DiscoveryClientEvents;

/** A connected backend, whichever it is. */
export type DiscoveryConnection = Discovery & Pick<EventEmitter<DiscoveryEvents>, 'on' | 'once' | 'off'>;

/** Options of connectDiscovery, for either backend. */
export interface ConnectDiscoveryOptions {
  /** Built-in server only: the shared token. */
  token?: string | undefined;
  /** Client name, shown in the built-in server's logs. */
  name?: string | undefined;
  /** Reject on the first failed attempt instead of retrying until connectTimeoutMs (CLI use). */
  failFast?: boolean;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** etcd only: options over what the address and the GAMEMESH_ETCD_* variables say. */
  etcd?: Partial<Omit<EtcdDiscoveryOptions, 'endpoints'>>;
  /** Where GAMEMESH_ETCD_* are read from; process.env by default. */
  env?: NodeJS.ProcessEnv;
}

/** An etcd:// discovery address, parsed: endpoints, key prefix and lease TTL. */
export interface EtcdAddr {
  endpoints: string[];
  /** From the URL's path, with a trailing `/`; undefined means the default prefix. */
  prefix: string | undefined;
  /** `etcds://`: TLS to the members. */
  tls: boolean;
  leaseTtlSec: number | undefined;
}

/** True for `etcd://...` and `etcds://...` addresses. */
export function isEtcdAddr(addr: string): boolean {
  return /^etcds?:\/\//i.test(addr.trim());
}

/**
 * Parses `etcd://host:2379[,host:2379...][/prefix][?ttl=SECONDS]`; `etcds://`
 * is the same over TLS.
 */
export function parseEtcdAddr(addr: string): EtcdAddr {
  const m = /^(etcds?):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(addr.trim());
  if (!m) throw new DiscoveryError('bad_request', `bad etcd address ${JSON.stringify(addr)}: expected etcd://host:port[,host:port...][/prefix]`);
  const endpoints = (m[2] ?? '').split(',').filter((h) => h.length > 0);
  if (endpoints.length === 0) throw new DiscoveryError('bad_request', `bad etcd address ${JSON.stringify(addr)}: no host:port`);
  for (const e of endpoints) parseAddr(e);
  const path = decodeURIComponent((m[3] ?? '').replace(/^\/+/, ''));
  const prefix = path === '' ? undefined : path.endsWith('/') ? path : `${path}/`;
  let leaseTtlSec: number | undefined;
  for (const [k, v] of new URLSearchParams(m[4] ?? '')) {
    if (k !== 'ttl') throw new DiscoveryError('bad_request', `bad etcd address ${JSON.stringify(addr)}: unknown parameter ${k} (known: ttl)`);
    leaseTtlSec = Number(v);
    if (!Number.isInteger(leaseTtlSec) || leaseTtlSec < 1) throw new DiscoveryError('bad_request', `bad etcd address ${JSON.stringify(addr)}: ttl must be whole seconds >= 1`);
  }
  return { endpoints, prefix, tls: m[1]?.toLowerCase() === 'etcds', leaseTtlSec };
}

/**
 * etcd settings from the environment:
 * GAMEMESH_ETCD_USER / GAMEMESH_ETCD_PASSWORD (etcd auth),
 * GAMEMESH_ETCD_CA / GAMEMESH_ETCD_CERT / GAMEMESH_ETCD_KEY (PEM file paths; any of them turns TLS on),
 * GAMEMESH_ETCD_LEASE_TTL (seconds).
 */
export function etcdOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<EtcdDiscoveryOptions> {
  const out: { -readonly [K in keyof EtcdDiscoveryOptions]?: EtcdDiscoveryOptions[K] } = {};
  const user = env['GAMEMESH_ETCD_USER'];
  if (user) out.auth = { username: user, password: env['GAMEMESH_ETCD_PASSWORD'] ?? '' };
  const read = (name: string): Buffer | undefined => {
    const file = env[name];
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new DiscoveryError('bad_request', `cannot read ${name}=${file}: ${(err as Error).message}`);
    }
  };
  const tls: EtcdTlsOptions = { ca: read('GAMEMESH_ETCD_CA'), cert: read('GAMEMESH_ETCD_CERT'), key: read('GAMEMESH_ETCD_KEY') };
  if (tls.ca || tls.cert || tls.key) out.tls = tls;
  const ttl = env['GAMEMESH_ETCD_LEASE_TTL'];
  if (ttl) {
    const n = Number(ttl);
    if (!Number.isInteger(n) || n < 1) throw new DiscoveryError('bad_request', `GAMEMESH_ETCD_LEASE_TTL must be whole seconds >= 1, got ${ttl}`);
    out.leaseTtlSec = n;
  }
  return out;
}

/**
 * Connects to discovery by address: `etcd://host:2379[,host:2379...][/prefix]`
 * (or `etcds://` for TLS) selects the etcd backend, a plain `host:port` the
 * built-in server. For etcd, `opts.etcd` wins over the address, and the
 * address over the GAMEMESH_ETCD_* environment variables.
 */
export async function connectDiscovery(addr: string, opts: ConnectDiscoveryOptions = {}): Promise<DiscoveryConnection> {
  const common = {
    name: opts.name,
    ...(opts.failFast !== undefined ? { failFast: opts.failFast } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
  };
  if (!isEtcdAddr(addr)) return DiscoveryClient.connect({ addr, token: opts.token, ...common, name: opts.name ?? `pid${process.pid}` });
  const parsed = parseEtcdAddr(addr);
  const env = etcdOptionsFromEnv(opts.env ?? process.env);
  const fromAddr: Partial<EtcdDiscoveryOptions> = {
    ...(parsed.prefix !== undefined ? { prefix: parsed.prefix } : {}),
    ...(parsed.leaseTtlSec !== undefined ? { leaseTtlSec: parsed.leaseTtlSec } : {}),
    // etcds:// with no CA from the environment: TLS with the system roots.
    ...(parsed.tls && !env.tls ? { tls: true } : {}),
  };
  const options: EtcdDiscoveryOptions = { ...env, ...fromAddr, ...common, ...opts.etcd, endpoints: parsed.endpoints };
  if (options.name === undefined) delete options.name;
  // Loaded on demand: etcd3 and gRPC cost ~200 ms at startup, which built-in users (and the CLI) need not pay.
  const { EtcdDiscovery } = await import('./etcd.js');
  return EtcdDiscovery.connect(options);
}
