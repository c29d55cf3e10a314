/**
 * An options object without its undefined entries, so that spreading it over
 * defaults (`{ ...DEFAULTS, ...definedOnly(opts) }`) keeps a default where the
 * caller passed `undefined`. Used by every layer that takes options.
 */
export function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
