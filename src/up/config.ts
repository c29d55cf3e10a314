/**
 * The cluster file of `gamemesh up` (docs/cluster-file.md): read, and checked
 * field by field so that a mistake is reported with the field's path
 * (`services[2].run`) instead of surfacing later as a process that will not
 * start. Variables are substituted later, by resolve.ts.
 */
import { readFileSync } from 'node:fs';

/** One service of a cluster file, as written (variables not yet substituted). */
export interface ServiceDef {
  readonly name: string;
  /** Command and arguments; `gamemesh` and `node` as the command are special (see resolve.ts). */
  readonly run: readonly string[];
  /** Regex source: the service is ready once a stdout line matches it. */
  readonly ready?: string;
  /** Runs to completion during start (exit 0 = ready); never restarted. */
  readonly oneshot: boolean;
  /** `discovery`: not started when sdaddr points at etcd; `hub`: not started when the `hub` variable is set (NATS). */
  readonly role?: 'discovery' | 'hub';
  readonly env: Readonly<Record<string, string>>;
  /** --svcversion of its instances (a positive integer); `gamemesh up --roll` starts the next one. */
  readonly version?: number;
}

/** A cluster file (docs/cluster-file.md), checked field by field. */
export interface ClusterFile {
  readonly name: string;
  readonly vars: Readonly<Record<string, string>>;
  readonly env: Readonly<Record<string, string>>;
  /** Environment variable -> file: generated at random on the first start, read back later (secrets.ts). */
  readonly secrets: Readonly<Record<string, string>>;
  readonly services: readonly ServiceDef[];
  readonly urls: readonly string[];
  /** Where it was read from, for messages. */
  readonly source: string;
}

/** A cluster file that cannot be used; `field` names the field at fault. */
export class ClusterFileError extends Error {
  override name = 'ClusterFileError';
  constructor(
    readonly source: string,
    /** Path of the field at fault (`services[1].run`); '' for the file as a whole. */
    readonly field: string,
    problem: string,
  ) {
    super(`${source}: ${field ? `${field}: ` : ''}${problem}`);
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by gamemesh up itself, per cluster and per service. */
export const RESERVED_VARS = ['name', 'service'] as const;
const TOP_FIELDS = ['name', 'vars', 'env', 'secrets', 'services', 'urls', 'description'];
const SERVICE_FIELDS = ['name', 'run', 'ready', 'oneshot', 'role', 'env', 'version', 'description'];
const ROLES = ['discovery', 'hub'];

/** Reads and checks a cluster file; throws ClusterFileError naming the field at fault. */
export function loadClusterFile(file: string): ClusterFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ClusterFileError(file, '', `cannot read the cluster file: ${(err as Error).message}`);
  }
  return parseClusterFile(text, file);
}

/** Checks a cluster file's text; throws ClusterFileError naming the field at fault. */
export function parseClusterFile(text: string, source = 'cluster file'): ClusterFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ClusterFileError(source, '', `not valid JSON: ${(err as Error).message}${where(text, err as Error)}`);
  }
  const bad = (field: string, problem: string) => new ClusterFileError(source, field, problem);
  const top = object(json, '', bad, 'the file must hold a JSON object');
  checkFields(top, TOP_FIELDS, (key) => key, bad);

  const name = top['name'];
  if (typeof name !== 'string' || !NAME.test(name)) throw bad('name', `must be a name of letters, digits, '.', '_' or '-' (up to 32), got ${show(name)}`);
  const vars = strings(top['vars'], 'vars', bad);
  for (const key of Object.keys(vars)) {
    if (!VAR_NAME.test(key)) throw bad(`vars.${key}`, 'a variable name is letters, digits and _, not starting with a digit');
    if ((RESERVED_VARS as readonly string[]).includes(key)) throw bad(`vars.${key}`, `\${${key}} is set by gamemesh up; pick another name`);
  }
  const env = strings(top['env'], 'env', bad);
  const secrets = strings(top['secrets'], 'secrets', bad);
  for (const [key, file] of Object.entries(secrets)) {
    if (!VAR_NAME.test(key)) throw bad(`secrets.${key}`, 'an environment variable name is letters, digits and _, not starting with a digit');
    if (Object.hasOwn(env, key)) throw bad(`secrets.${key}`, 'is also set in env; a secret must come from one place');
    if (file === '') throw bad(`secrets.${key}`, 'must be the path of the file that keeps it');
  }
  const urls = top['urls'] === undefined ? [] : stringList(top['urls'], 'urls', bad, false);

  if (!Array.isArray(top['services']) || top['services'].length === 0) throw bad('services', `must be a non-empty array of services, got ${show(top['services'])}`);
  const seen = new Set<string>();
  const services = top['services'].map((raw: unknown, i: number) => {
    const svc = parseService(raw, `services[${i}]`, bad);
    if (seen.has(svc.name)) throw bad(`services[${i}].name`, `${JSON.stringify(svc.name)} is used by an earlier service; names must be unique`);
    seen.add(svc.name);
    return svc;
  });
  return { name, vars, env, secrets, services, urls, source };
}

type Bad = (field: string, problem: string) => ClusterFileError;

function parseService(raw: unknown, at: string, bad: Bad): ServiceDef {
  const svc = object(raw, at, bad, `must be an object with name and run, got ${show(raw)}`);
  const name = svc['name'];
  if (typeof name !== 'string' || !NAME.test(name)) throw bad(`${at}.name`, `must be a name of letters, digits, '.', '_' or '-' (up to 32), got ${show(name)}`);
  // From here on the service's name helps find it in a long file.
  const field = (f: string) => `${at}.${f} (${name})`;
  checkFields(svc, SERVICE_FIELDS, field, bad);
  const tag = ` (${name})`;
  const run = stringList(svc['run'], `${at}.run`, bad, true, tag);
  const oneshot = svc['oneshot'] ?? false;
  if (typeof oneshot !== 'boolean') throw bad(field('oneshot'), `must be true or false, got ${show(oneshot)}`);
  const ready = svc['ready'];
  if (ready !== undefined) {
    if (typeof ready !== 'string' || ready === '') throw bad(field('ready'), `must be a regular expression (a string), got ${show(ready)}`);
    if (oneshot) throw bad(field('ready'), 'a oneshot service is ready when it exits with code 0; remove ready');
    try {
      new RegExp(ready);
    } catch (err) {
      throw bad(field('ready'), `not a valid regular expression: ${(err as Error).message}`);
    }
  }
  const role = svc['role'];
  if (role !== undefined && (typeof role !== 'string' || !ROLES.includes(role))) throw bad(field('role'), `must be one of ${ROLES.join(', ')}, got ${show(role)}`);
  if (role === 'discovery' && oneshot) throw bad(field('role'), 'the discovery service cannot be a oneshot');
  const version = svc['version'];
  if (version !== undefined && (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)) throw bad(field('version'), `must be a positive integer (its --svcversion), got ${show(version)}`);
  return { name, run, ready, oneshot, role: role as 'discovery' | 'hub' | undefined, env: strings(svc['env'], `${at}.env`, bad, tag), ...(version !== undefined ? { version } : {}) };
}

function object(value: unknown, at: string, bad: Bad, problem: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(at, problem);
  return value as Record<string, unknown>;
}

/** Unknown fields are errors: a misspelt `raedy` would otherwise be silently ignored. */
function checkFields(obj: Record<string, unknown>, known: readonly string[], field: (key: string) => string, bad: Bad): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) throw bad(field(key), `unknown field (known: ${known.join(', ')})`);
  }
}

/** An object of string values; numbers and booleans are taken as their text, since `"port": 8080` is natural to write. */
function strings(value: unknown, at: string, bad: Bad, tag = ''): Record<string, string> {
  if (value === undefined) return {};
  const obj = object(value, at + tag, bad, `must be an object of strings, got ${show(value)}`);
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(obj)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw bad(`${at}.${key}${tag}`, `must be a string, got ${show(v)}`);
    out[key] = String(v);
  }
  return out;
}

/** `tag` (the service's name) goes after the whole field path. */
function stringList(value: unknown, at: string, bad: Bad, nonEmpty: boolean, tag = ''): string[] {
  const what = nonEmpty ? 'a non-empty array of strings' : 'an array of strings';
  if (!Array.isArray(value) || (nonEmpty && value.length === 0)) throw bad(at + tag, `must be ${what}, got ${show(value)}`);
  return value.map((v: unknown, i) => {
    if (typeof v !== 'string') throw bad(`${at}[${i}]${tag}`, `must be a string, got ${show(v)}`);
    return v;
  });
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Line and column of a JSON syntax error, when the message gives a position. */
function where(text: string, err: Error): string {
  const m = /position (\d+)/.exec(err.message);
  if (!m) return '';
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return ` (line ${line}, column ${column})`;
}
