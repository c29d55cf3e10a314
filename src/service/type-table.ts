/**
 * One logical-address type number per service name and cluster, kept in the
 * KV at `config/types` as a JSON object (name -> number). A name without a
 * number gets one on first use, by compare-and-set, so services starting at
 * once never pick the same one; `--svctype N` asks for a fixed number.
 */
import { DiscoveryError, type Discovery, type KeyValue } from '../discovery/types.js';
import { asString } from '../discovery/values.js';
import { HARBOR_TYPE, MAX_TYPE } from './identity.js';

/** The KV key of the cluster's service type numbers. */
export const TYPES_KEY = 'config/types';

/** gamemesh's own services get these numbers when they are free; harbors (cross-cluster routers) are always 255. */
export const WELL_KNOWN_TYPES: Readonly<Record<string, number>> = { agent: 1, hub: 2, login: 3, harbor: HARBOR_TYPE };

/** Numbers handed out to other names start here; 1..15 are kept for gamemesh's own services. */
export const FIRST_APP_TYPE = 16;

/** A service type number that cannot be had: taken by another service, out of range, or the table is full. */
export class ServiceTypeError extends Error {
  override name = 'ServiceTypeError';
}

type Table = Record<string, number>;

/**
 * The type number of service `name`: its entry in config/types, written
 * there first if it has none. `fixed` (from --svctype) must agree with the
 * table and not be another name's number; anything else is refused with
 * an error that says what to change.
 */
export async function resolveServiceType(d: Discovery, name: string, fixed: number | undefined): Promise<number> {
  if (fixed !== undefined) checkFixed(name, fixed);
  if (name === 'harbor') fixed = HARBOR_TYPE;
  for (let attempt = 0; attempt < 50; attempt++) {
    const kv = await d.get(TYPES_KEY);
    const table = parseTable(kv);
    const mine = table[name];
    if (mine !== undefined) {
      if (fixed !== undefined && fixed !== mine) {
        throw new ServiceTypeError(`service ${name} has type ${mine} in ${TYPES_KEY}, but --svctype says ${fixed}: drop --svctype, or change ${TYPES_KEY} (gamemesh sd setvalue) while no ${name} runs`);
      }
      return mine;
    }
    const owner = (n: number) => Object.keys(table).find((k) => table[k] === n);
    let type: number;
    if (fixed !== undefined) {
      const taken = owner(fixed);
      if (taken !== undefined) throw new ServiceTypeError(`type ${fixed} is service ${taken}'s in ${TYPES_KEY}; service ${name} cannot have it too (pick another --svctype, or drop it)`);
      type = fixed;
    } else {
      type = pickFree(name, new Set(Object.values(table)));
    }
    const res = await d.txn([{ key: TYPES_KEY, modRev: kv?.modRev ?? 0 }], [{ type: 'put', key: TYPES_KEY, value: JSON.stringify(sorted({ ...table, [name]: type })) }]);
    if (res.succeeded) return type;
    // Someone else assigned a number at the same time: read again.
    await new Promise((r) => setTimeout(r, Math.random() * 20));
  }
  throw new DiscoveryError('unavailable', `could not assign a type to service ${name}: ${TYPES_KEY} kept changing`);
}

function checkFixed(name: string, fixed: number): void {
  if (!Number.isInteger(fixed) || fixed < 0 || fixed > HARBOR_TYPE) throw new ServiceTypeError(`service type ${fixed} is not in 0..${MAX_TYPE}`);
  if (fixed === HARBOR_TYPE && name !== 'harbor') throw new ServiceTypeError(`type ${HARBOR_TYPE} is reserved for harbors; service ${name} cannot have it`);
}

function pickFree(name: string, used: ReadonlySet<number>): number {
  const known = WELL_KNOWN_TYPES[name];
  if (known !== undefined && !used.has(known)) return known;
  for (let n = FIRST_APP_TYPE; n <= MAX_TYPE; n++) if (!used.has(n)) return n;
  for (let n = 1; n < FIRST_APP_TYPE; n++) if (!used.has(n)) return n;
  throw new ServiceTypeError(`every type number 1..${MAX_TYPE} is taken in ${TYPES_KEY}; service ${name} gets none`);
}

/** The table, checked: a hand-edited table that breaks the rules is refused rather than guessed at. */
export function parseTable(kv: KeyValue | undefined): Table {
  if (!kv || kv.value.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(asString(kv));
  } catch {
    throw new ServiceTypeError(`${TYPES_KEY} is not JSON; fix it or delete it (gamemesh sd deletevalue ${TYPES_KEY}) while no service runs`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ServiceTypeError(`${TYPES_KEY} must be a JSON object of service name -> type number`);
  const table: Table = {};
  const byNumber = new Map<number, string>();
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > HARBOR_TYPE) throw new ServiceTypeError(`${TYPES_KEY}: ${k} has ${JSON.stringify(v)}, not a type number 0..${HARBOR_TYPE}`);
    const other = byNumber.get(v);
    if (other !== undefined) throw new ServiceTypeError(`${TYPES_KEY} gives type ${v} to both ${other} and ${k}; fix it so each number names one service`);
    byNumber.set(v, k);
    table[k] = v;
  }
  return table;
}

function sorted(table: Table): Table {
  return Object.fromEntries(Object.entries(table).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
