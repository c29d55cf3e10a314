import protobuf from 'protobufjs';
import { FIRST_USER_MSG_ID } from '../wire/registry.js';
import { CodegenError, displayPath } from './errors.js';
import type { LoadedProtos } from './load.js';
import { protoName } from './names.js';

const MAX_ID = 0xffff;

export interface AssignedId {
  readonly id: number;
  /** True when derived from the name because the message declares no (gamemesh.id). */
  readonly auto: boolean;
}

/**
 * Stable automatic id for a message used on the wire without (gamemesh.id):
 * FNV-1a (32-bit) of its UTF-8 full name, folded into 1000..65535. It only
 * changes if the message is renamed or moved to another package.
 */
export function autoId(fullName: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(fullName, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return FIRST_USER_MSG_ID + (h % (MAX_ID + 1 - FIRST_USER_MSG_ID));
}

/**
 * Ids of every message that travels on the wire: the explicit (gamemesh.id)
 * wins; messages in `wireUsed` (RPC requests/responses, routed messages) get
 * an automatic one. Messages with neither get none. Any collision is an error.
 */
export function assignIds(loaded: LoadedProtos, wireUsed: ReadonlySet<string>): Map<string, AssignedId> {
  const ids = new Map<string, AssignedId>();
  const owners = new Map<number, string>();
  for (const file of loaded.files) {
    for (const decl of file.decls) {
      if (!(decl instanceof protobuf.Type)) continue;
      const name = protoName(decl);
      const explicit = explicitId(decl, file.abs);
      if (explicit === undefined && !wireUsed.has(name)) continue;
      const assigned: AssignedId = explicit === undefined ? { id: autoId(name), auto: true } : { id: explicit, auto: false };
      const other = owners.get(assigned.id);
      if (other !== undefined) {
        const how = (n: string) => ((ids.get(n) ?? assigned).auto ? `${n} (automatic id)` : n);
        const hint = assigned.auto || ids.get(other)?.auto ? '; give one of them an explicit (gamemesh.id)' : '';
        throw new CodegenError(`${displayPath(file.abs)}: message id ${assigned.id} is used by both ${how(other)} and ${how(name)}${hint}`);
      }
      owners.set(assigned.id, name);
      ids.set(name, assigned);
    }
  }
  return ids;
}

function explicitId(type: protobuf.Type, file: string): number | undefined {
  const raw = type.options?.['(gamemesh.id)'] as unknown;
  if (raw === undefined) return undefined;
  const id = typeof raw === 'number' ? raw : Number.NaN;
  const where = `${displayPath(file)}: ${protoName(type)}`;
  if (!Number.isInteger(id)) throw new CodegenError(`${where}: (gamemesh.id) must be an integer, got ${JSON.stringify(raw)}`);
  if (id < FIRST_USER_MSG_ID) throw new CodegenError(`${where}: (gamemesh.id) ${id} is below ${FIRST_USER_MSG_ID}; ids below ${FIRST_USER_MSG_ID} are reserved for gamemesh`);
  if (id > MAX_ID) throw new CodegenError(`${where}: (gamemesh.id) ${id} is above ${MAX_ID}`);
  return id;
}
