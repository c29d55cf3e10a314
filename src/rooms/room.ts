import type { ClientRef } from '../gateway/backend.js';
import type { BroadcastOptions, Group } from '../gateway/groups.js';
import type { Init } from '../service/rpc.js';
import type { MessageType } from '../wire/registry.js';

/** Why a member left its room. */
export type LeaveReason =
  /** It asked to (LeaveRoom). */
  | 'left'
  /** Its connection closed and the room keeps no seat for it. */
  | 'closed'
  /** Its connection closed and it did not come back within the reconnection window. */
  | 'expired'
  /** The room kicked it. */
  | 'kicked'
  /** The room was disposed. */
  | 'disposed';

/** A room's creation options (the JSON a join sends), which joinOrCreate's filter matches. */
export type RoomOptions = Readonly<Record<string, unknown>>;

/** A client holding a seat in a room, as the room's hooks see it. */
export interface RoomMember {
  /** The seat's id in the room; the same after a reconnect. */
  readonly seat: string;
  /** The client's current agent and id there (they change on a reconnect). */
  readonly agent: string;
  readonly id: number;
  readonly session: Readonly<Record<string, string>>;
  /** False while the seat is kept for a reconnect. */
  readonly connected: boolean;
  /** Anything the room keeps per member (a player's position...). */
  data: unknown;
}

/** What a room type is: limits and hooks. */
export interface RoomTypeDef<S = unknown> {
  /** Seats per room (default 64). */
  maxClients?: number;
  /** Calls onTick this many times a second; 0 (default): no clock. */
  tickHz?: number;
  /** Seconds a dropped member's seat is kept for it to reconnect; 0 (default): its seat is freed at once. */
  reconnectSec?: number;
  /** After the last member left, wait this long before disposing (a join meanwhile keeps the room). Default 0. */
  disposeDelayMs?: number;
  /** The creation options joinOrCreate's filter is compared on; default: every key the filter has. */
  filterBy?: readonly string[];
  /** The room's state, made when it is created. */
  state?: (options: RoomOptions) => S;
  /** The room is created (its first seat is reserved); throw to refuse the creation. */
  onCreate?: (room: Room<S>, options: RoomOptions) => void | Promise<void>;
  /** A client takes a seat; throw to refuse it (its seat is freed). Messages sent to it here arrive after its RoomJoined. */
  onJoin?: (room: Room<S>, member: RoomMember, options: RoomOptions) => void | Promise<void>;
  /** A member is gone for good. */
  onLeave?: (room: Room<S>, member: RoomMember, reason: LeaveReason) => void;
  /** A member's connection dropped; its seat is kept for reconnectSec. */
  onDrop?: (room: Room<S>, member: RoomMember) => void;
  /** A dropped member is back, on any agent. */
  onReconnect?: (room: Room<S>, member: RoomMember) => void;
  /** The room's clock: `dtMs` since the previous tick. */
  onTick?: (room: Room<S>, dtMs: number) => void;
  onDispose?: (room: Room<S>) => void;
}

/** What a Room needs from its host (host.ts). */
export interface RoomHostHooks {
  send(member: Member, msgId: number, body: Uint8Array): void;
  kick(room: Room<unknown>, member: Member, reason: string): void;
  dispose(room: Room<unknown>): void;
  changed(room: Room<unknown>): void;
}

/** @internal A seat's state on its host. */
export class Member implements RoomMember {
  connected = true;
  /** In the room's group (after RoomReady, or its timeout). */
  ready = false;
  /** Messages for it before it was ready, sent once it is. */
  queue: Array<[number, Uint8Array]> = [];
  readyTimer: NodeJS.Timeout | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  data: unknown = undefined;

  constructor(
    readonly seat: string,
    public ref: ClientRef,
    public session: Readonly<Record<string, string>>,
    readonly token: string,
  ) {}

  get agent(): string {
    return this.ref.agent;
  }

  get id(): number {
    return this.ref.id;
  }

  clearTimers(): void {
    clearTimeout(this.readyTimer);
    clearTimeout(this.expiryTimer);
    this.readyTimer = this.expiryTimer = undefined;
  }
}

const MAX_QUEUED = 256;

/**
 * One live room on its host: its members and seats, its state, its clock.
 * The room is the group of its members: a broadcast is encoded once and
 * sent as one message per agent.
 */
export class Room<S = unknown> {
  state: S;
  readonly maxClients: number;
  readonly createdAt = Date.now();
  /** Seconds a dropped member's seat is kept; starts as the type's, may be changed per room. */
  reconnectSec: number;
  /** @internal */
  readonly members = new Map<string, Member>();
  /** @internal Seats reserved for joins whose onJoin has not finished. */
  reserved = 0;
  /** @internal */
  disposed = false;
  /** @internal True until onCreate has finished: not listed, not joinable. */
  creating = true;
  /** @internal */
  disposeTimer: NodeJS.Timeout | undefined;
  /** @internal */
  ticker: NodeJS.Timeout | undefined;
  private isLocked = false;

  /** @internal Made by the RoomHost. */
  constructor(
    readonly id: string,
    readonly type: string,
    readonly options: RoomOptions,
    /** @internal */
    readonly def: RoomTypeDef<S>,
    /** @internal */
    readonly group: Group,
    private readonly host: RoomHostHooks,
  ) {
    this.maxClients = Math.max(1, def.maxClients ?? 64);
    this.reconnectSec = Math.max(0, def.reconnectSec ?? 0);
    this.state = (def.state ? def.state(options) : undefined) as S;
  }

  /** Seats taken: members (connected or kept for a reconnect) and joins in progress. */
  get size(): number {
    return this.members.size + this.reserved;
  }

  get clients(): RoomMember[] {
    return [...this.members.values()];
  }

  get locked(): boolean {
    return this.isLocked;
  }

  /** A locked room takes no new members (reconnects still come back). */
  lock(): void {
    this.isLocked = true;
    this.host.changed(this as Room<unknown>);
  }

  unlock(): void {
    this.isLocked = false;
    this.host.changed(this as Room<unknown>);
  }

  /** To every connected member: encoded once, one message per agent. */
  broadcast<T>(type: MessageType<T>, msg: Init<T>, options: { except?: RoomMember | readonly RoomMember[] } = {}): void {
    const body = type.encode(msg);
    const except = options.except === undefined ? [] : Array.isArray(options.except) ? (options.except as readonly RoomMember[]) : [options.except as RoomMember];
    const opts: BroadcastOptions = { except: except.map((m) => ({ agent: m.agent, id: m.id })) };
    this.group.broadcastEncoded(type.id, body, opts);
    // Members not yet listening get it once they are.
    for (const m of this.members.values()) if (m.connected && !m.ready && !except.includes(m)) queue(m, type.id, body);
  }

  /** To one member. */
  send<T>(member: RoomMember, type: MessageType<T>, msg: Init<T>): void {
    // A member still in onJoin is not in `members` yet: what it is sent waits for its RoomReady.
    const m = member instanceof Member ? member : this.members.get(member.seat);
    if (!m?.connected) return;
    const body = type.encode(msg);
    if (!m.ready) queue(m, type.id, body);
    else this.host.send(m, type.id, body);
  }

  /** Removes a member (onLeave with 'kicked'); the client is told with RoomLeft. */
  kick(member: RoomMember, reason = 'kicked by the room'): void {
    const m = this.members.get(member.seat);
    if (m) this.host.kick(this as Room<unknown>, m, reason);
  }

  /** Ends the room: every member leaves with 'disposed', then onDispose. */
  dispose(): void {
    this.host.dispose(this as Room<unknown>);
  }
}

function queue(m: Member, msgId: number, body: Uint8Array): void {
  if (m.queue.length < MAX_QUEUED) m.queue.push([msgId, body]);
}
