/**
 * Operator-set state of one node (service instance), kept apart from its
 * registration so that it survives the node's re-registrations and
 * restarts: the KV key `config/nodes/<service id>` holds a JSON object of
 * flags, and a flag that is absent has its default. `gamemesh sd disable`
 * and `enable` write `available`; later flags (export, retiring, ...) are
 * new fields of the same object (docs/protocol.md, "Node state").
 */
import { DiscoveryError, type Discovery, type KeyValue } from './types.js';
import { asString } from './values.js';

/** Where the KV keeps each node's state (config/nodes/<id>). */
export const NODE_STATE_PREFIX = 'config/nodes/';

/** What an operator says about a node: whether it gets new work. */
export interface NodeState {
  /** False: selection, login's agent choice and lookups by type give it no new work; its links and clients keep working. */
  readonly available: boolean;
  /**
   * True: a request that the node retire (`gamemesh drain ID` without an
   * admin port). The node clears it as it starts retiring; its registration
   * then says `state: retiring` (docs/operations.md).
   */
  readonly drain: boolean;
}

/** The state of a node with no KV entry: available, not asked to drain. */
export const DEFAULT_NODE_STATE: NodeState = { available: true, drain: false };

/** The KV key of a node's state. */
export function nodeStateKey(id: string): string {
  return NODE_STATE_PREFIX + id;
}

/** The service id a node-state key is about. */
export function nodeStateId(key: string): string | undefined {
  return key.startsWith(NODE_STATE_PREFIX) ? key.slice(NODE_STATE_PREFIX.length) : undefined;
}

/** The flags of a stored record over the defaults. A record that is not a JSON object counts as no record. */
export function parseNodeState(kv: KeyValue | undefined): NodeState {
  return stateOf(rawState(kv));
}

function stateOf(raw: Record<string, unknown>): NodeState {
  return { available: raw['available'] !== false, drain: raw['drain'] === true };
}

function rawState(kv: KeyValue | undefined): Record<string, unknown> {
  if (!kv || kv.value.length === 0) return {};
  try {
    const v = JSON.parse(asString(kv)) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * Sets flags of one node by compare-and-set, keeping the fields it does not
 * name (other tools' flags included). A flag set to its default is removed;
 * an empty record is deleted. Returns the new state.
 */
export async function updateNodeState(d: Discovery, id: string, patch: Partial<NodeState>): Promise<NodeState> {
  const key = nodeStateKey(id);
  for (let attempt = 0; attempt < 20; attempt++) {
    const kv = await d.get(key);
    const next: Record<string, unknown> = { ...rawState(kv) };
    for (const [flag, value] of Object.entries(patch)) {
      if (value === (DEFAULT_NODE_STATE as unknown as Record<string, unknown>)[flag]) delete next[flag];
      else next[flag] = value;
    }
    const ops = Object.keys(next).length === 0 ? [{ type: 'delete' as const, key }] : [{ type: 'put' as const, key, value: JSON.stringify(next) }];
    if ((await d.txn([{ key, modRev: kv?.modRev ?? 0 }], ops)).succeeded) return stateOf(next);
  }
  throw new DiscoveryError('unavailable', `${key} kept changing; try again`);
}
