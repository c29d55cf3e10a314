import { MessageRegistry } from '../wire/registry.js';
import type { JoinRoom, LeaveRoom, RoomJoined, RoomLeft, RoomReady } from '../client/room-messages.js';

export type { JoinRoom, LeaveRoom, RoomJoined, RoomLeft, RoomReady };

export interface SeatReq {
  method: string;
  room_type: string;
  room_id: string;
  create: boolean;
  options: string;
  token: string;
  client_agent: string;
  client_id: number;
  seq: number;
  session: Record<string, string>;
}

export interface SeatResp {
  ok: boolean;
  code: string;
  error: string;
  room_id: string;
  clients: number;
  max_clients: number;
  locked: boolean;
}

const registry = new MessageRegistry().load('gamemesh/room.proto');
const r = <T>(name: string) => registry.type<T>(`gamemesh.room.${name}`);

/** proto/gamemesh/room.proto. */
export const R = {
  JoinRoom: r<JoinRoom>('JoinRoom'),
  RoomJoined: r<RoomJoined>('RoomJoined'),
  LeaveRoom: r<LeaveRoom>('LeaveRoom'),
  RoomLeft: r<RoomLeft>('RoomLeft'),
  RoomReady: r<RoomReady>('RoomReady'),
  SeatReq: r<SeatReq>('SeatReq'),
  SeatResp: r<SeatResp>('SeatResp'),
} as const;

/** Client message ids the agent handles itself for rooms (docs/protocol.md). */
export const ROOM_CLIENT_IDS = { join: 310, leave: 312, ready: 314 } as const;
