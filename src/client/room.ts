import type { MessageType } from '../wire/message-type.js';
import type { GameClient, RequestOptions } from './client.js';
import { ClientError } from './errors.js';
import { RoomMessages as RM, type JoinMethod, type RoomJoined, type RoomLeft } from './room-messages.js';

/** Why the client is out of a room: `code` is left, kicked, disposed, closed, or a join error's code (reconnect_expired...). */
export interface RoomLeaveInfo {
  readonly code: string;
  readonly reason: string;
}

/** Options of joinOrCreate, create, joinById and reconnectRoom. */
export interface JoinOptions extends RequestOptions {
  /** The service that hosts the room type. Default "rooms". */
  service?: string;
}

/**
 * A seat in a room, on the client. Messages to the room are ordinary client
 * messages (routed "auth" to the room's service); the room's pushes arrive
 * through onMessage. When the connection drops, the GameClient reconnects by
 * its own policy, and the room takes its seat back with its reconnection
 * token (on whichever agent the client reached) if the room keeps seats.
 */
export class Room {
  readonly service: string;
  readonly id: string;
  readonly type: string;
  /** The node hosting the room. */
  readonly host: string;
  /** The seat's id, the same after a reconnect. */
  readonly seat: string;
  /** Presented to take the seat back after a drop (`client.reconnectRoom`), also from another connection. */
  readonly reconnectToken: string;
  readonly reconnectSec: number;
  private readonly client: GameClient;
  private readonly offs: Array<() => void> = [];
  private readonly leaveFns: Array<(info: RoomLeaveInfo) => void> = [];
  private leftInfo: RoomLeaveInfo | undefined;

  /** @internal Made by joinRoom. */
  constructor(client: GameClient, service: string, joined: RoomJoined) {
    this.client = client;
    this.service = service;
    this.id = joined.room_id;
    this.type = joined.room_type;
    this.host = joined.host;
    this.seat = joined.seat;
    this.reconnectToken = joined.reconnect_token;
    this.reconnectSec = joined.reconnect_sec;
    this.offs.push(
      client.on(RM.RoomLeft, (msg) => {
        if (msg.room_id === this.id) this.finish({ code: msg.code, reason: msg.reason });
      }),
      client.onReconnecting((info) => {
        if (this.reconnectSec <= 0) this.finish({ code: 'closed', reason: `connection lost: ${info.reason}` });
      }),
      client.onReconnected(() => void this.rejoin()),
      client.onClose((info) => this.finish({ code: 'closed', reason: info.reason })),
    );
  }

  /** Out of the room (for whatever reason). */
  get left(): boolean {
    return this.leftInfo !== undefined;
  }

  /** A one-way message to the room. False when not connected or out of the room. */
  send<T>(type: MessageType<T>, msg: Partial<T>): boolean {
    return !this.left && this.client.send(type, msg);
  }

  /** A request to the room, answered by its handler. */
  request<Req, Res>(reqType: MessageType<Req>, resType: MessageType<Res>, msg: Partial<Req>, options?: RequestOptions): Promise<Res> {
    if (this.left) return Promise.reject(new ClientError('closed', `out of room ${this.id}`));
    return this.client.request(reqType, resType, msg, options);
  }

  /** The room's pushes of this type, until the room is left. Returns the function that unsubscribes. */
  onMessage<T>(type: MessageType<T>, fn: (msg: T) => void): () => void {
    const off = this.client.on(type, (msg) => {
      if (!this.left) fn(msg);
    });
    this.offs.push(off);
    return off;
  }

  /** Once, when the client is out of the room, with why. */
  onLeave(fn: (info: RoomLeaveInfo) => void): () => void {
    if (this.leftInfo) {
      const info = this.leftInfo;
      queueMicrotask(() => fn(info));
      return () => undefined;
    }
    this.leaveFns.push(fn);
    return () => {
      const i = this.leaveFns.indexOf(fn);
      if (i >= 0) this.leaveFns.splice(i, 1);
    };
  }

  /** Leaves the room (onLeave runs with code "left"). */
  async leave(options?: RequestOptions): Promise<void> {
    if (this.left) return;
    const res = await this.client.request(RM.LeaveRoom, RM.RoomLeft, { service: this.service, room_id: this.id }, options);
    this.finish({ code: res.code || 'left', reason: res.reason });
  }

  /** After a reconnect: the seat back with the token, or out of the room. */
  private async rejoin(): Promise<void> {
    if (this.left || this.reconnectSec <= 0) return;
    try {
      await this.client.request(RM.JoinRoom, RM.RoomJoined, { service: this.service, method: 'reconnect', room_type: this.type, room_id: this.id, token: this.reconnectToken });
      setTimeout(() => this.client.send(RM.RoomReady, { service: this.service, room_id: this.id }), 0);
    } catch (err) {
      const e = err as ClientError;
      this.finish({ code: e.code ?? 'closed', reason: e.message });
    }
  }

  private finish(info: RoomLeaveInfo): void {
    if (this.leftInfo) return;
    this.leftInfo = info;
    for (const off of this.offs.splice(0)) off();
    for (const fn of this.leaveFns.splice(0)) {
      try {
        fn(info);
      } catch {
        // A listener's bug must not keep the others from hearing.
      }
    }
  }
}

/**
 * Asks the room service for a seat (JoinRoom) and resolves with the Room once
 * the host has seated the client. Handlers attached right after the await
 * see every push: the client says RoomReady only after that, and the host
 * holds the room's messages for it until then.
 */
export async function joinRoom(
  client: GameClient,
  method: JoinMethod,
  fields: { roomType?: string; roomId?: string; options?: Readonly<Record<string, unknown>>; token?: string },
  opts: JoinOptions = {},
): Promise<Room> {
  const service = opts.service ?? 'rooms';
  const joined = await client.request(
    RM.JoinRoom,
    RM.RoomJoined,
    { service, method, room_type: fields.roomType ?? '', room_id: fields.roomId ?? '', options: fields.options ? JSON.stringify(fields.options) : '', token: fields.token ?? '' },
    opts,
  );
  const room = new Room(client, service, joined);
  // After the caller's continuation has run (and attached its handlers).
  setTimeout(() => client.send(RM.RoomReady, { service, room_id: room.id }), 0);
  return room;
}

export type { RoomLeft };
