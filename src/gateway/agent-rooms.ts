import { R, ROOM_CLIENT_IDS } from '../rooms/messages.js';
import type { ClientConn } from './client-conn.js';

/** Where the agent sends a room message (docs/rooms.md), or the Error to answer instead. */
export type RoomTarget = { readonly backend: string } | { readonly code: string; readonly message: string } | undefined;

export function isRoomMessage(msgId: number): boolean {
  return msgId === ROOM_CLIENT_IDS.join || msgId === ROOM_CLIENT_IDS.leave || msgId === ROOM_CLIENT_IDS.ready;
}

/**
 * JoinRoom goes to one instance of the room service, the same for the same
 * room type (a consistent hash over the instances), so one matchmaker sees
 * a type's joins at once; LeaveRoom and RoomReady go to the room's host,
 * the instance that bound the client. The service must be one the route
 * table names: a client cannot make the agent watch any name it likes.
 */
export function roomTarget(
  client: ClientConn,
  msgId: number,
  body: Uint8Array,
  routed: (service: string) => boolean,
  pickByKey: (service: string, key: string) => string | undefined,
): RoomTarget {
  let service: string;
  let key = '';
  try {
    if (msgId === ROOM_CLIENT_IDS.join) {
      const req = R.JoinRoom.decode(body);
      service = req.service;
      key = req.room_type || req.room_id;
    } else {
      service = (msgId === ROOM_CLIENT_IDS.leave ? R.LeaveRoom : R.RoomReady).decode(body).service;
    }
  } catch {
    return { code: 'bad_request', message: `undecodable room message ${msgId}` };
  }
  if (!routed(service)) return { code: 'bad_request', message: `no room service "${service.slice(0, 64)}" is routed by this agent` };
  if (msgId === ROOM_CLIENT_IDS.join) {
    if (!key) return { code: 'bad_request', message: 'JoinRoom needs a room_type or a room_id' };
    const backend = pickByKey(service, key);
    return backend ? { backend } : { code: 'unavailable', message: `no instance of ${service} is available` };
  }
  const backend = client.bound?.get(service);
  if (backend) return { backend };
  // A RoomReady that no room waits for needs no answer.
  return msgId === ROOM_CLIENT_IDS.ready ? undefined : { code: 'unauthenticated', message: `not in a room of ${service}` };
}
