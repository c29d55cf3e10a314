import type { Discovery, KeyValue } from './types.js';

/** Values are bytes; these read and write them as UTF-8 text and JSON. */
export function asString(kv: KeyValue): string {
  return Buffer.from(kv.value.buffer, kv.value.byteOffset, kv.value.length).toString('utf8');
}

/** A KV value parsed as JSON. */
export function asJSON<T = unknown>(kv: KeyValue): T {
  return JSON.parse(asString(kv)) as T;
}

/** A key's value as UTF-8 text; undefined when the key is not set. */
export async function getString(d: Discovery, key: string): Promise<string | undefined> {
  const kv = await d.get(key);
  return kv ? asString(kv) : undefined;
}

/** A key's value parsed as JSON; undefined when the key is not set. */
export async function getJSON<T = unknown>(d: Discovery, key: string): Promise<T | undefined> {
  const kv = await d.get(key);
  return kv ? asJSON<T>(kv) : undefined;
}

/** Stores a value as JSON; resolves with the new revision. */
export function putJSON(d: Discovery, key: string, value: unknown): Promise<number> {
  return d.put(key, JSON.stringify(value));
}
