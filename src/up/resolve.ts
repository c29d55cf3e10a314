/**
 * From a checked cluster file to what is actually run: variables substituted
 * (file defaults, then overrides from the command line), commands mapped to
 * executables, each service's environment assembled, and the discovery
 * service dropped when sdaddr points at etcd.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClusterFileError, RESERVED_VARS, VAR_NAME, type ClusterFile } from './config.js';

/** This package's CLI (this file runs as dist/src/up/resolve.js). */
export const GAMEMESH_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'gamemesh.js');

/** Variables every cluster has, whether or not its file declares them. */
export const DEFAULT_VARS: Readonly<Record<string, string>> = { sdaddr: '127.0.0.1:8900', http: '127.0.0.1:8080', hub: '' };

export interface ResolvedService {
  readonly name: string;
  /** As written in the file, variables substituted: for messages. */
  readonly run: readonly string[];
  readonly command: string;
  readonly args: readonly string[];
  /** Added to the supervisor's environment: GAMEMESH_SDADDR, the file's env, the service's env. */
  readonly env: Readonly<Record<string, string>>;
  readonly ready: RegExp | undefined;
  readonly oneshot: boolean;
  /** Why it is not started, when it is not. */
  readonly skip: string | undefined;
  readonly role?: 'discovery' | 'hub';
}

export interface ResolvedCluster {
  readonly name: string;
  readonly source: string;
  readonly vars: Readonly<Record<string, string>>;
  readonly urls: readonly string[];
  /** Environment variable -> file, variables substituted. */
  readonly secrets: Readonly<Record<string, string>>;
  readonly services: readonly ResolvedService[];
}

export const isEtcdAddr = (addr: string) => /^etcds?:\/\//.test(addr);

/** `${var}` from vars; `$$` is a literal `$`. Throws naming `field` on an unknown variable. */
export function substitute(text: string, vars: Readonly<Record<string, string>>, field: string, source: string): string {
  return text.replace(/\$\$|\$\{([^}]*)\}/g, (match, name: string | undefined) => {
    if (name === undefined) return '$';
    if (!Object.hasOwn(vars, name)) {
      throw new ClusterFileError(source, field, `unknown variable \${${name}} (known: ${Object.keys(vars).sort().join(', ')})`);
    }
    return vars[name] as string;
  });
}

/**
 * Overrides may set the default variables and those the file declares; any
 * other name is most likely a typo, so it is an error rather than ignored.
 */
export function resolveCluster(file: ClusterFile, overrides: Readonly<Record<string, string>> = {}): ResolvedCluster {
  const { source } = file;
  for (const key of Object.keys(overrides)) {
    if (!VAR_NAME.test(key) || (RESERVED_VARS as readonly string[]).includes(key) || !(key in DEFAULT_VARS || Object.hasOwn(file.vars, key))) {
      const known = [...new Set([...Object.keys(DEFAULT_VARS), ...Object.keys(file.vars)])].sort().join(', ');
      throw new ClusterFileError(source, `--var ${key}`, `the cluster file has no variable ${JSON.stringify(key)} (it has: ${known})`);
    }
  }
  // Variables are not expanded inside variables: one level keeps the meaning of each value obvious.
  const vars: Record<string, string> = { ...DEFAULT_VARS, ...file.vars, ...overrides, name: file.name };
  const sdaddr = vars['sdaddr'] as string;
  // '' keeps the hub service; nats://... is given to every service as --hub, and the hub service is not started.
  const hub = vars['hub'] as string;
  const hubEnv: Record<string, string> = hub === '' ? {} : { GAMEMESH_HUB: hub };
  const env = (obj: Readonly<Record<string, string>>, at: string, tag: string, scope: Record<string, string>) =>
    Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, substitute(v, scope, `${at}.${k}${tag}`, source)]));
  const services = file.services.map((svc, i): ResolvedService => {
    const at = `services[${i}]`;
    const scope = { ...vars, service: svc.name };
    const run = svc.run.map((arg, j) => substitute(arg, scope, `${at}.run[${j}] (${svc.name})`, source));
    const [command, args] = executable(run);
    return {
      name: svc.name,
      run,
      command,
      args,
      env: { GAMEMESH_SDADDR: sdaddr, ...hubEnv, ...env(file.env, 'env', '', scope), ...env(svc.env, `${at}.env`, ` (${svc.name})`, scope), ...(svc.version !== undefined ? { GAMEMESH_SVCVERSION: String(svc.version) } : {}) },
      ready: svc.ready === undefined ? undefined : new RegExp(svc.ready),
      oneshot: svc.oneshot,
      skip: svc.role === 'discovery' && isEtcdAddr(sdaddr) ? `discovery is etcd (${sdaddr})` : svc.role === 'hub' && hub !== '' ? `the hub is ${hub}` : undefined,
      ...(svc.role ? { role: svc.role } : {}),
    };
  });
  const urls = file.urls.map((url, i) => substitute(url, vars, `urls[${i}]`, source));
  const secrets = Object.fromEntries(Object.entries(file.secrets).map(([k, v]) => [k, substitute(v, vars, `secrets.${k}`, source)]));
  return { name: file.name, source, vars, urls, secrets, services };
}

/** `gamemesh` is this package's CLI and `node` this very node, so a cluster runs the same code as the supervisor. */
function executable(run: readonly string[]): [string, string[]] {
  const [first, ...rest] = run as [string, ...string[]];
  if (first === 'gamemesh') return [process.execPath, [GAMEMESH_BIN, ...rest]];
  if (first === 'node') return [process.execPath, rest];
  return [first, rest];
}
