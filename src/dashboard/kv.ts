/**
 * The KV as a tree for the page: the children of one prefix ('/' separates
 * levels), folders with their key counts, keys with their values, and
 * secrets masked. A value is a secret when any segment of its key names one
 * (secret, token, password, credential, private key, jwt), or when it is an
 * account record of the login service (password hashes): the page shows
 * its size, never its bytes, and may still overwrite it.
 */
import { ACCOUNT_PREFIX } from '../login/accounts.js';
import type { KeyValue } from '../discovery/types.js';

export interface KvFolder {
  readonly name: string;
  /** The prefix to list it: parent prefix + name + '/'. */
  readonly prefix: string;
  readonly keys: number;
}

export interface KvLeaf {
  readonly key: string;
  readonly name: string;
  /** UTF-8 text, '' when secret or binary. */
  readonly value: string;
  readonly size: number;
  readonly secret: boolean;
  /** Not valid UTF-8 text: shown as its size only. */
  readonly binary: boolean;
  readonly modRev: number;
}

export interface KvListing {
  readonly prefix: string;
  readonly folders: readonly KvFolder[];
  readonly keys: readonly KvLeaf[];
  /** Leaves left out past the cap (the folders are always complete). */
  readonly more: number;
}

const SECRET_SEGMENT = /secret|token|passw|credential|private|jwt|apikey|api_key/i;
/** Values longer than this are cut for display. */
const MAX_SHOWN = 4096;
const MAX_LEAVES = 500;

export function isSecretKey(key: string): boolean {
  return key.startsWith(ACCOUNT_PREFIX) || key.split('/').some((seg) => SECRET_SEGMENT.test(seg));
}

const decoder = new TextDecoder('utf-8', { fatal: true });

export function listKv(all: readonly KeyValue[], prefix: string): KvListing {
  const folders = new Map<string, number>();
  const keys: KvLeaf[] = [];
  let more = 0;
  for (const kv of all) {
    if (!kv.key.startsWith(prefix)) continue;
    const rest = kv.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash >= 0) {
      const name = rest.slice(0, slash);
      folders.set(name, (folders.get(name) ?? 0) + 1);
      continue;
    }
    if (keys.length >= MAX_LEAVES) {
      more++;
      continue;
    }
    const secret = isSecretKey(kv.key);
    let value = '';
    let binary = false;
    if (!secret) {
      try {
        value = decoder.decode(kv.value);
        if (value.length > MAX_SHOWN) value = `${value.slice(0, MAX_SHOWN)}…`;
      } catch {
        binary = true;
      }
    }
    keys.push({ key: kv.key, name: rest, value, size: kv.value.length, secret, binary, modRev: kv.modRev });
  }
  return {
    prefix,
    folders: [...folders].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, n]) => ({ name, prefix: `${prefix}${name}/`, keys: n })),
    keys,
    more,
  };
}
