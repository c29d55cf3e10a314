import { messageTypesFromJSON, type MessageType } from '../wire/message-type.js';

// The rooms' client messages (proto/gamemesh/room.proto, ids 310-314) for
// the client SDK, as a protobufjs JSON descriptor: a page cannot read the
// .proto. test/rooms-process.test.ts checks both encode byte for byte alike.

/** How JoinRoom picks its room: matchmaking, a new room, a room by id, or the seat back after a drop. */
export type JoinMethod = 'join_or_create' | 'create' | 'join_by_id' | 'reconnect';

/** A client's request for a seat in a room (docs/rooms.md). */
export interface JoinRoom {
  service: string;
  method: string;
  room_type: string;
  room_id: string;
  /** JSON object. */
  options: string;
  token: string;
}

/** The answer to JoinRoom: the room, the seat, and the token to take the seat back after a drop. */
export interface RoomJoined {
  room_id: string;
  room_type: string;
  host: string;
  seat: string;
  reconnect_token: string;
  reconnect_sec: number;
}

/** A client leaving its room. */
export interface LeaveRoom {
  service: string;
  room_id: string;
}

/** The client is out of a room: the answer to LeaveRoom, or pushed on a kick or a dispose. */
export interface RoomLeft {
  room_id: string;
  /** left, kicked, disposed. */
  code: string;
  reason: string;
}

/** Sent once the client listens to the room's pushes; the room then counts it among its members. */
export interface RoomReady {
  service: string;
  room_id: string;
}

const ID = '(gamemesh.id)';
const str = (id: number) => ({ type: 'string', id });

/** The client-facing part of proto/gamemesh/room.proto as a protobufjs JSON descriptor. */
export const ROOM_DESCRIPTOR = {
  nested: {
    gamemesh: {
      nested: {
        room: {
          nested: {
            JoinRoom: { options: { [ID]: 310 }, fields: { service: str(1), method: str(2), room_type: str(3), room_id: str(4), options: str(5), token: str(6) } },
            RoomJoined: {
              options: { [ID]: 311 },
              fields: { room_id: str(1), room_type: str(2), host: str(3), seat: str(4), reconnect_token: str(5), reconnect_sec: { type: 'uint32', id: 6 } },
            },
            LeaveRoom: { options: { [ID]: 312 }, fields: { service: str(1), room_id: str(2) } },
            RoomLeft: { options: { [ID]: 313 }, fields: { room_id: str(1), code: str(2), reason: str(3) } },
            RoomReady: { options: { [ID]: 314 }, fields: { service: str(1), room_id: str(2) } },
          },
        },
      },
    },
  },
};

const mt = messageTypesFromJSON(ROOM_DESCRIPTOR);

/** The room protocol's message types (ids 310-319). */
export const RoomMessages: {
  readonly JoinRoom: MessageType<JoinRoom>;
  readonly RoomJoined: MessageType<RoomJoined>;
  readonly LeaveRoom: MessageType<LeaveRoom>;
  readonly RoomLeft: MessageType<RoomLeft>;
  readonly RoomReady: MessageType<RoomReady>;
} = {
  JoinRoom: mt<JoinRoom>('gamemesh.room.JoinRoom', 310),
  RoomJoined: mt<RoomJoined>('gamemesh.room.RoomJoined', 311),
  LeaveRoom: mt<LeaveRoom>('gamemesh.room.LeaveRoom', 312),
  RoomLeft: mt<RoomLeft>('gamemesh.room.RoomLeft', 313),
  RoomReady: mt<RoomReady>('gamemesh.room.RoomReady', 314),
};
