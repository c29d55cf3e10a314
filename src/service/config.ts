/**
 * A service process's configuration: cellmesh's flags, read from the command
 * line, GAMEMESH_* environment variables and a flagfile, in that order of
 * precedence, over defaults. Applications declare their own flags the same way.
 */
import { readFileSync } from 'node:fs';
import { parseLevelSpec } from '../log/levels.js';
import { parseSize } from '../log/size.js';
import { HARBOR_TYPE, MAX_CLUSTER, MAX_INDEX, MAX_TYPE } from './identity.js';

/** The kinds of value a service flag takes. */
export type FlagType = 'string' | 'number' | 'integer' | 'boolean' | 'size' | 'list';

/** What each flag type parses to; `size` is bytes, `list` splits on '|' or ','. */
export interface FlagTypeMap {
  string: string;
  number: number;
  integer: number;
  boolean: boolean;
  size: number;
  list: string[];
}

/** One flag: its type, default, description and check. */
export type FlagSpec = {
  [T in FlagType]: {
    readonly type: T;
    /** Without one: '', 0, false or []. */
    readonly default?: T extends 'list' ? readonly string[] : FlagTypeMap[T];
    readonly description?: string;
    /** Returns why a parsed value is unacceptable, or undefined. */
    readonly validate?: (value: FlagTypeMap[T]) => string | undefined;
  };
}[FlagType];

/** A program's flags by name. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** The parsed values of a set of flags, typed by their specs. */
export type FlagValues<F extends FlagSpecs> = { -readonly [K in keyof F]: FlagTypeMap[F[K]['type']] };

/** The standard flags, parsed. */
export interface ServiceConfig {
  /** Discovery address: host:port of the built-in server, or etcd://... */
  readonly sdaddr: string;
  readonly svcgroup: string;
  readonly svcindex: number;
  /** Logical-address type number; -1: this service's number in the KV table config/types (assigned on first use). */
  readonly svctype: number;
  /** Address announced to clients; '' when the service has no public face. */
  readonly wanip: string;
  /** A level, or rules `regex|level,...` (see src/log/levels.ts). */
  readonly loglevel: string;
  /** '' means stderr. */
  readonly logfile: string;
  /** Bytes. */
  readonly logfilesize: number;
  readonly logcolor: boolean;
  /** Message names whose message logs are muted. */
  readonly mutemsglog: readonly string[];
  readonly flagfile: string;
  /** The cluster secret, presented to discovery and to peers. */
  readonly token: string;
  /** Cluster number of the logical addresses. */
  readonly cluster: number;
  /** host:port of the service's own port; port 0 picks a free one. */
  readonly listen: string;
  /** host:port of the admin HTTP port (/metrics, /status); '' = off; port 0 picks a free one. */
  readonly admin: string;
  /** This instance's version of its service (>= 1): a live higher version of the same service and group retires it (docs/operations.md). */
  readonly svcversion: number;
  /** Seconds a retiring instance waits for its clients to leave before it kicks them with "reconnect" and exits. */
  readonly 'drain-max': number;
  /** Seconds a graceful stop (SIGTERM, Ctrl+C, POST /stop) lets work in flight finish before the process exits anyway. */
  readonly 'stop-timeout': number;
  /** Pub/sub backend: '' is the hub service; `nats://host:port[,host:port]` is NATS (src/hub/nats). */
  readonly hub: string;
  /** NATS auth for --hub: a token, or a user and password. */
  readonly hubtoken: string;
  readonly hubuser: string;
  readonly hubpass: string;
  /** Visible to other clusters' lookups by type and selection by name (docs/clusters.md). */
  readonly export: boolean;
  /** Memory limit in bytes for placement by memory; 0: the cgroup's limit, else the machine's RAM. */
  readonly memlimit: number;
  /** Above this fraction of its memory limit the node takes no new clients or rooms. */
  readonly memthreshold: number;
}

/** A flag that cannot be used, with where its bad value came from. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    /** The flag at fault, when there is one. */
    readonly flag?: string,
    /** Where the bad text came from: `flag --x`, `env GAMEMESH_X`, `flagfile path:line`. */
    readonly source?: string,
  ) {
    super(message);
  }
}

/** The prefix of the environment variables that set flags (GAMEMESH_SDADDR sets --sdaddr). */
export const ENV_PREFIX = 'GAMEMESH_';

/** The flags every service takes (cellmesh's, plus the token, cluster, type, listen and admin). */
export const STANDARD_FLAGS = {
  sdaddr: { type: 'string', default: '127.0.0.1:8900', description: 'discovery address: host:port, or etcd://host:port[,host:port]', validate: checkSdaddr },
  svcgroup: { type: 'string', default: 'dev', description: 'service group; instances of one group see each other', validate: checkGroup },
  svcindex: { type: 'integer', default: 0, description: `index of this instance among its service's (0..${MAX_INDEX})`, validate: inRange(0, MAX_INDEX) },
  svctype: {
    type: 'integer',
    default: -1,
    description: `logical-address type of this service (0..${MAX_TYPE}; ${HARBOR_TYPE} is the harbor's); -1 takes its number from config/types, assigned on first use`,
    validate: inRange(-1, HARBOR_TYPE),
  },
  wanip: { type: 'string', default: '', description: 'address announced to clients (WAN)' },
  loglevel: { type: 'string', default: 'info', description: "log level, or rules 'regex|level,...' (a bare level sets the default)", validate: checkLevel },
  logfile: { type: 'string', default: '', description: "log file, rotated by size; '' logs to stderr" },
  logfilesize: { type: 'size', default: 100 * 1024 * 1024, description: 'rotate the log file past this size (bytes, or 10k/10m/1g)' },
  logcolor: { type: 'boolean', default: false, description: 'pretty, colored logs on stderr' },
  mutemsglog: { type: 'list', default: [], description: "message names, separated by '|' or ',', whose message logs are muted" },
  flagfile: { type: 'string', default: '', description: 'file of name=value lines, read under flags and env vars' },
  token: { type: 'string', default: '', description: 'cluster secret' },
  cluster: { type: 'integer', default: 1, description: `cluster number of logical addresses (0..${MAX_CLUSTER})`, validate: inRange(0, MAX_CLUSTER) },
  listen: { type: 'string', default: '127.0.0.1:0', description: "host:port of the service's own port", validate: checkHostPort },
  admin: { type: 'string', default: '', description: "host:port of the admin HTTP port (/metrics, /status, /drain, /stop; needs the token as a bearer token); '' = off", validate: (v: string) => (v === '' ? undefined : checkHostPort(v)) },
  svcversion: { type: 'integer', default: 1, description: 'version of this instance; a live higher version of the same service retires it', validate: inRange(1, 2 ** 31 - 1) },
  'drain-max': { type: 'number', default: 600, description: 'seconds a retiring instance waits for its clients to leave, then kicks them to reconnect elsewhere', validate: positiveUpTo(7 * 24 * 3600) },
  'stop-timeout': { type: 'number', default: 8, description: 'seconds a graceful stop waits for work in flight before exiting anyway', validate: positiveUpTo(3600) },
  hub: { type: 'string', default: '', description: "pub/sub backend: '' = the hub service, nats://host:port[,host:port] = NATS", validate: checkHub },
  hubtoken: { type: 'string', default: '', description: 'NATS token for --hub nats://' },
  hubuser: { type: 'string', default: '', description: 'NATS user for --hub nats:// (with --hubpass)' },
  hubpass: { type: 'string', default: '', description: 'NATS password for --hubuser' },
  export: { type: 'boolean', default: false, description: "let other clusters' nodes find, dial and select this node (docs/clusters.md)" },
  memlimit: { type: 'size', default: 0, description: "memory limit for placement by memory (bytes, or 512m/2g); 0 = the cgroup's limit, else the machine's RAM" },
  memthreshold: { type: 'number', default: 0.9, description: 'above this fraction of its memory limit the node takes no new clients or rooms', validate: (v: number) => (v > 0 && v <= 1 ? undefined : 'must be above 0 and at most 1') },
} as const satisfies Record<keyof ServiceConfig, FlagSpec>;

// Fails to compile when a flag's type and its ServiceConfig field drift apart (`satisfies` above keeps the keys in step).
const _inStep: FlagValues<typeof STANDARD_FLAGS> extends ServiceConfig ? true : never = true;

/** Options of loadConfig: the argv, the environment, the program's own flags, and defaults. */
export interface LoadConfigOptions<F extends FlagSpecs> {
  /** Default: process.argv.slice(2). */
  argv?: readonly string[];
  /** Default: process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The application's own flags. */
  flags?: F;
  /** This service's own defaults for standard flags, e.g. a gateway's listen address. */
  defaults?: Partial<ServiceConfig>;
}

/** What loadConfig parsed: the standard config, the program's own values, the other arguments, --help, and where each value came from. */
export interface LoadedConfig<F extends FlagSpecs> {
  config: ServiceConfig;
  values: FlagValues<F>;
  /** Arguments that are not flags. */
  args: string[];
  /** `--help` or `-h` was given: print helpText() and exit. */
  help: boolean;
  /** Where each flag's value came from: 'default', `flag --x`, `env GAMEMESH_X`, `flagfile path:line`. */
  sources: Record<string, string>;
}

interface Raw {
  readonly text: string;
  readonly source: string;
}

/** Throws ConfigError on an unknown flag, a bad value or a bad flagfile. */
export function loadConfig<const F extends FlagSpecs = Record<never, FlagSpec>>(options: LoadConfigOptions<F> = {}): LoadedConfig<F> {
  const specs = allSpecs(options.flags ?? {});
  const env = options.env ?? process.env;
  const { raw: argvRaw, args, help } = parseArgv(options.argv ?? process.argv.slice(2), specs);
  // --help must work even when a variable or the flagfile holds a bad value: it shows defaults only.
  const fromArgv = help ? new Map<string, Raw>() : argvRaw;
  const fromEnv = help ? new Map<string, Raw>() : readEnv(env, specs);
  const flagfile = fromArgv.get('flagfile') ?? fromEnv.get('flagfile');
  const fromFile = flagfile && flagfile.text !== '' ? readFlagfile(flagfile, specs) : new Map<string, Raw>();

  const all: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  const defaults: Record<string, unknown> = { ...options.defaults };
  for (const [name, spec] of specs) {
    const raw = fromArgv.get(name) ?? fromEnv.get(name) ?? fromFile.get(name);
    sources[name] = raw?.source ?? 'default';
    all[name] = raw ? parseValue(name, spec, raw) : (defaults[name] ?? defaultOf(spec));
  }
  const config = {} as Record<string, unknown>;
  const values = {} as Record<string, unknown>;
  for (const name of Object.keys(all)) (name in STANDARD_FLAGS ? config : values)[name] = all[name];
  return { config: config as unknown as ServiceConfig, values: values as FlagValues<F>, args, help, sources };
}

/** The GAMEMESH_* variable read for a flag: `tcp-port` -> GAMEMESH_TCP_PORT. */
export function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replace(/[-.]/g, '_');
}

export interface HelpOptions {
  /** Shown in the usage line. */
  program?: string;
  /** One line under the usage line. */
  summary?: string;
  flags?: FlagSpecs;
  defaults?: Partial<ServiceConfig>;
}

/** `--help` text: every flag with its type, meaning, default and variable. */
export function helpText(options: HelpOptions = {}): string {
  const specs = allSpecs(options.flags ?? {});
  const defaults: Record<string, unknown> = { ...options.defaults };
  const rows = [...specs].map(([name, spec]) => {
    const head = `  --${name}${spec.type === 'boolean' ? '' : ` <${spec.type}>`}`;
    const def = defaults[name] ?? defaultOf(spec);
    const shown = Array.isArray(def) ? def.join('|') : spec.type === 'size' ? formatSize(Number(def)) : String(def);
    const tail = `${spec.description ?? ''} (default ${JSON.stringify(shown)}; env ${envName(name)})`.trim();
    return [head, tail] as const;
  });
  const width = Math.max(...rows.map(([h]) => h.length)) + 2;
  const lines = [`Usage: ${options.program ?? 'service'} [flags]`];
  if (options.summary) lines.push(options.summary);
  lines.push('', 'Flags (precedence: flag > env var > flagfile > default; --flag value or --flag=value):');
  for (const [head, tail] of rows) lines.push(head.padEnd(width) + tail);
  lines.push(`  --help`.padEnd(width) + 'show this text');
  return lines.join('\n') + '\n';
}

function formatSize(bytes: number): string {
  for (const [unit, mult] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${unit}`;
  }
  return String(bytes);
}

function allSpecs(appFlags: FlagSpecs): Map<string, FlagSpec> {
  const specs = new Map<string, FlagSpec>(Object.entries(STANDARD_FLAGS) as [string, FlagSpec][]);
  for (const [name, spec] of Object.entries(appFlags)) {
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name)) throw new ConfigError(`bad flag name ${JSON.stringify(name)}: letters, digits, '_', '.', '-'`, name);
    if (specs.has(name) || name === 'help' || name === 'h') throw new ConfigError(`flag --${name} is already defined by gamemesh`, name);
    specs.set(name, spec);
  }
  return specs;
}

function parseArgv(argv: readonly string[], specs: ReadonlyMap<string, FlagSpec>): { raw: Map<string, Raw>; args: string[]; help: boolean } {
  const raw = new Map<string, Raw>();
  const args: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      args.push(arg);
      continue;
    }
    // Go's flag package, which cellmesh operators are used to, takes -flag as well as --flag.
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    if (name === 'help' || name === 'h') {
      help = true;
      continue;
    }
    const spec = specs.get(name);
    if (!spec) throw new ConfigError(`unknown flag --${name}`, name, `flag --${name}`);
    const source = `flag --${name}`;
    if (eq >= 0) raw.set(name, { text: body.slice(eq + 1), source });
    // A boolean never takes the next argument, as in Go: `--logcolor file` keeps `file`.
    else if (spec.type === 'boolean') raw.set(name, { text: 'true', source });
    else if (i + 1 < argv.length) raw.set(name, { text: argv[++i] as string, source });
    else throw new ConfigError(`flag --${name} needs a value`, name, source);
  }
  return { raw, args, help };
}

function readEnv(env: Readonly<Record<string, string | undefined>>, specs: ReadonlyMap<string, FlagSpec>): Map<string, Raw> {
  const raw = new Map<string, Raw>();
  for (const name of specs.keys()) {
    const key = envName(name);
    const text = env[key];
    // Empty counts as unset: `FOO=${FOO}` in a compose file yields '' for an unset FOO.
    if (text !== undefined && text !== '') raw.set(name, { text, source: `env ${key}` });
  }
  return raw;
}

function readFlagfile(file: Raw, specs: ReadonlyMap<string, FlagSpec>): Map<string, Raw> {
  const path = file.text;
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read flagfile ${path}: ${(err as Error).message}`, 'flagfile', file.source);
  }
  const raw = new Map<string, Raw>();
  content.split(/\r?\n/).forEach((line, i) => {
    const source = `flagfile ${path}:${i + 1}`;
    const text = line.trim();
    if (text === '' || text.startsWith('#')) return;
    const eq = text.indexOf('=');
    const name = (eq < 0 ? text : text.slice(0, eq)).trim().replace(/^--?/, '');
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name)) throw new ConfigError(`${source}: expected name=value, got ${JSON.stringify(text)}`, undefined, source);
    const spec = specs.get(name);
    if (!spec || name === 'flagfile') throw new ConfigError(`${source}: unknown flag ${JSON.stringify(name)}`, name, source);
    if (eq < 0 && spec.type !== 'boolean') throw new ConfigError(`${source}: expected ${name}=value`, name, source);
    raw.set(name, { text: eq < 0 ? 'true' : unquote(text.slice(eq + 1).trim()), source });
  });
  return raw;
}

/** Quotes keep leading or trailing spaces, or an empty value, visible. */
function unquote(text: string): string {
  const m = /^(["'])(.*)\1$/.exec(text);
  return m ? (m[2] as string) : text;
}

function parseValue(name: string, spec: FlagSpec, raw: Raw): unknown {
  const fail = (why: string): never => {
    throw new ConfigError(`bad value ${JSON.stringify(raw.text)} for --${name} (from ${raw.source}): ${why}`, name, raw.source);
  };
  const text = raw.text.trim();
  let value: unknown;
  switch (spec.type) {
    case 'string':
      value = raw.text;
      break;
    case 'number':
      if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text)) fail('expected a number');
      value = Number(text);
      break;
    case 'integer':
      if (!/^[+-]?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) fail('expected an integer');
      value = Number(text);
      break;
    case 'boolean':
      value = parseBool(text) ?? fail('expected true or false');
      break;
    case 'size':
      try {
        value = parseSize(text);
      } catch {
        fail('expected a size in bytes, or with k, m or g');
      }
      break;
    case 'list':
      value = text.split(/[|,]/).map((s) => s.trim()).filter((s) => s !== '');
      break;
  }
  const why = (spec.validate as ((v: unknown) => string | undefined) | undefined)?.(value);
  if (why !== undefined) fail(why);
  return value;
}

function parseBool(text: string): boolean | undefined {
  const t = text.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(t)) return true;
  if (['false', '0', 'no', 'off'].includes(t)) return false;
  return undefined;
}

function defaultOf(spec: FlagSpec): unknown {
  if (spec.default !== undefined) return Array.isArray(spec.default) ? [...spec.default] : spec.default;
  return { string: '', number: 0, integer: 0, boolean: false, size: 0, list: [] }[spec.type];
}

function inRange(min: number, max: number): (v: number) => string | undefined {
  return (v) => (v < min || v > max ? `expected ${min}..${max}` : undefined);
}

function positiveUpTo(max: number): (v: number) => string | undefined {
  return (v) => (v > 0 && v <= max ? undefined : `expected a number of seconds over 0, at most ${max}`);
}

function checkHostPort(v: string): string | undefined {
  const m = /^(?:\[[^\]]+\]|[^:\s]*):(\d{1,5})$/.exec(v);
  return m && Number(m[1]) <= 65535 ? undefined : 'expected host:port';
}

function checkSdaddr(v: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(v)) return undefined;
  return checkHostPort(v) && 'expected host:port or etcd://host:port';
}

function checkHub(v: string): string | undefined {
  // Credentials in the URL would show in logs and `ps`: they have flags of their own.
  if (v === '' || /^nats:\/\/[^,@\s/]+:\d+(,(nats:\/\/)?[^,@\s/]+:\d+)*$/.test(v)) return undefined;
  return "expected '' (the hub service) or nats://host:port[,host:port] (credentials go in --hubtoken or --hubuser/--hubpass)";
}

function checkGroup(v: string): string | undefined {
  // The group ends a service id, name#index@group.
  return /^[^#@\s]+$/.test(v) ? undefined : "expected a name without spaces, '#' or '@'";
}

function checkLevel(v: string): string | undefined {
  try {
    parseLevelSpec(v);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
