/**
 * Each host lists its joinable rooms in its registration meta (key
 * "rooms"), so every instance's matchmaker sees them without a KV write per
 * join, and a dead host's rooms vanish with its registration. The listing
 * only guides the choice: seats are granted by the host itself.
 */
import type { RoomOptions } from './room.js';

export const ROOM_LISTING_META = 'rooms';
/** Past this many bytes the listing is cut (the host still grants seats in rooms left out). */
const MAX_LISTING_BYTES = 16 * 1024;

export interface ListedRoom {
  readonly id: string;
  readonly type: string;
  /** Seats taken (members and joins in progress). */
  readonly clients: number;
  readonly max: number;
  /** The creation options joinOrCreate filters on. */
  readonly options: RoomOptions;
}

export function encodeListing(rooms: readonly ListedRoom[]): string {
  const rows: string[] = [];
  let bytes = 2;
  for (const r of rooms) {
    const row = JSON.stringify([r.id, r.type, r.clients, r.max, r.options]);
    if (bytes + row.length + 1 > MAX_LISTING_BYTES) break;
    rows.push(row);
    bytes += row.length + 1;
  }
  return `[${rows.join(',')}]`;
}

/** A host's listing; anything malformed is skipped (the meta is another process's). */
export function decodeListing(text: string | undefined): ListedRoom[] {
  if (!text) return [];
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(v)) return [];
  const out: ListedRoom[] = [];
  for (const row of v as unknown[]) {
    if (!Array.isArray(row) || row.length !== 5) continue;
    const [id, type, clients, max, options] = row as unknown[];
    if (typeof id !== 'string' || typeof type !== 'string' || typeof clients !== 'number' || typeof max !== 'number') continue;
    if (typeof options !== 'object' || options === null || Array.isArray(options)) continue;
    out.push({ id, type, clients, max, options: options as RoomOptions });
  }
  return out;
}
