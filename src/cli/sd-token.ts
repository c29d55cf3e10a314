/**
 * Where `gamemesh sd` finds the cluster token when none is given: a
 * `--tokenfile` (or GAMEMESH_TOKEN_FILE), else, when the server asks for a
 * token, the one `gamemesh up` generated in a cluster's data folder
 * (`data/<cluster>/cluster.token`, as the demo's cluster file keeps it).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from './args.js';
import { connectDiscovery, type ConnectDiscoveryOptions, type DiscoveryConnection } from '../discovery/connect.js';
import { DiscoveryError } from '../discovery/types.js';

export const TOKEN_FILE_NAME = 'cluster.token';

export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the token file ${file}: ${(err as Error).message}`);
  }
  const token = text.trim();
  if (token === '') throw new UsageError(`the token file ${file} is empty`);
  return token;
}

/** Token files of the clusters started from `cwd` by `gamemesh up` (data/<cluster>/cluster.token), and ./cluster.token. */
export function findTokenFiles(cwd = process.cwd()): string[] {
  const found: string[] = [];
  const here = path.join(cwd, TOKEN_FILE_NAME);
  if (readable(here)) found.push(TOKEN_FILE_NAME);
  let clusters: string[] = [];
  try {
    clusters = readdirSync(path.join(cwd, 'data'));
  } catch {
    // no data folder here
  }
  for (const c of clusters.sort()) {
    const rel = path.join('data', c, TOKEN_FILE_NAME);
    if (readable(path.join(cwd, rel))) found.push(rel);
  }
  return found;
}

function readable(file: string): boolean {
  try {
    readFileSync(file);
    return true;
  } catch {
    return false;
  }
}

export function tokenHint(found: readonly string[]): string {
  const where = found.length > 1 ? ` (found ${found.join(', ')}: say which)` : '';
  return `pass --token, set GAMEMESH_TOKEN, or --tokenfile FILE; gamemesh up keeps a generated token in the cluster's data folder, e.g. data/demo/${TOKEN_FILE_NAME}${where}`;
}

/**
 * `etcd://host:2379[,...][/prefix]` selects the etcd backend, `host:port` the
 * built-in server. A server that wants a token nobody gave gets the one a
 * local `gamemesh up` generated, when there is exactly one. Returns the
 * token it used as well (the admin ports want it too).
 */
export async function connectWithToken(addr: string, options: ConnectDiscoveryOptions, program: string): Promise<{ client: DiscoveryConnection; token: string | undefined }> {
  try {
    return { client: await connectDiscovery(addr, options), token: options.token };
  } catch (err) {
    if (!(err instanceof DiscoveryError) || err.code !== 'unauthorized' || options.token !== undefined) throw err;
    const found = findTokenFiles();
    if (found.length !== 1) throw new DiscoveryError('unauthorized', `${err.message}: ${tokenHint(found)}`);
    process.stderr.write(`${program}: using the cluster token in ${found[0]}\n`);
    const token = readTokenFile(found[0] as string);
    return { client: await connectDiscovery(addr, { ...options, token }), token };
  }
}
