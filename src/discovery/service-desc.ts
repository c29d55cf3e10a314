import type { ServiceDesc } from './types.js';

const NAME_RE = /^[A-Za-z0-9_.:@#-]{1,128}$/;

/** Returns the normalized description, or a sentence saying what is wrong. */
export function validateServiceDesc(input: unknown): ServiceDesc | string {
  if (typeof input !== 'object' || input === null) return 'service description is missing';
  const d = input as Record<string, unknown>;
  const { name, id, host, port } = d;
  if (typeof name !== 'string' || !NAME_RE.test(name)) return `service name ${JSON.stringify(name)} must be 1-128 characters of A-Z a-z 0-9 _ . : @ # -`;
  if (typeof id !== 'string' || !NAME_RE.test(id)) return `service id ${JSON.stringify(id)} must be 1-128 characters of A-Z a-z 0-9 _ . : @ # -`;
  if (typeof host !== 'string' || host.length > 255) return 'service host must be a string of at most 255 characters';
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) return `service port ${String(port)} is not in 0..65535`;
  const meta: Record<string, string> = {};
  const rawMeta = d['meta'] ?? {};
  if (typeof rawMeta !== 'object' || rawMeta === null) return 'service meta must be a map of strings';
  let bytes = 0;
  for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
    if (typeof v !== 'string') return `service meta ${k} must be a string`;
    bytes += k.length + v.length;
    meta[k] = v;
  }
  if (bytes > 64 * 1024) return 'service meta is over 64 KiB';
  return { name, id, host, port, meta };
}

/** Registry values are JSON, so they read well in `gamemesh sd viewsvc` and in etcd. */
export function encodeServiceDesc(desc: ServiceDesc): Buffer {
  const meta = Object.fromEntries(Object.entries(desc.meta).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return Buffer.from(JSON.stringify({ name: desc.name, id: desc.id, host: desc.host, port: desc.port, meta }));
}

/** A registration's value back into a ServiceDesc; undefined when it is not one. */
export function decodeServiceDesc(value: Uint8Array): ServiceDesc | undefined {
  try {
    const parsed = validateServiceDesc(JSON.parse(Buffer.from(value).toString('utf8')));
    return typeof parsed === 'string' ? undefined : parsed;
  } catch {
    return undefined;
  }
}
