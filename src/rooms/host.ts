import { randomBytes } from 'node:crypto';
import type { ClientContext, ClientInfo, ClientRef, GatewayBackend } from '../gateway/backend.js';
import { C } from '../gateway/messages.js';
import { RpcError } from '../service/errors.js';
import type { ServiceNode } from '../service/node.js';
import type { Init } from '../service/rpc.js';
import type { MessageType } from '../wire/registry.js';
import { ROOM_LISTING_META, encodeListing, type ListedRoom } from './listing.js';
import { Matchmaker } from './matchmaker.js';
import { R, type SeatReq, type SeatResp } from './messages.js';
import { Member, Room, type LeaveReason, type RoomHostHooks, type RoomMember, type RoomOptions, type RoomTypeDef } from './room.js';
import { RoomError, type RoomErrorCode } from './errors.js';

/** Bytes of JSON options a join may carry. */
export const MAX_OPTIONS_BYTES = 4096;
/** A seated client that never says RoomReady is put in the room's group after this. */
const READY_TIMEOUT_MS = 10_000;
const LISTING_DEBOUNCE_MS = 100;

/** Handles a client message in the room its sender is in. */
export type RoomMessageHandler<T> = (room: Room<unknown>, member: RoomMember, msg: T, client: ClientContext) => void | Promise<void>;

/** Options of a RoomHost. */
export interface RoomHostOptions {
  /** Calls to another instance (seat requests) time out after this. Default 10000. */
  seatTimeoutMs?: number;
}

/**
 * Rooms on a GatewayBackend (docs/rooms.md): room types with their hooks,
 * the rooms this node hosts and their seats, and this node's part of
 * matchmaking. Seats are granted only here, by the room's host, one check
 * and increment with no await in between: so no room is ever overfull,
 * whichever instance or agent a join came through.
 */
export class RoomHost {
  readonly node: ServiceNode;
  readonly matchmaker: Matchmaker;
  private readonly types = new Map<string, RoomTypeDef<unknown>>();
  private readonly roomsById = new Map<string, Room<unknown>>();
  /** Client (agent/id) -> its seat on this host. */
  private readonly byRef = new Map<string, { room: Room<unknown>; member: Member }>();
  private readonly byToken = new Map<string, { room: Room<unknown>; member: Member }>();
  private readonly handled = new Set<number>();
  private readonly hooks: RoomHostHooks;
  private listingTimer: NodeJS.Timeout | undefined;
  private nextRoom = 1;

  constructor(
    readonly backend: GatewayBackend,
    options: RoomHostOptions = {},
  ) {
    this.node = backend.node;
    this.hooks = {
      send: (m, msgId, body) => this.sendRaw(m.ref, msgId, body),
      kick: (room, m, reason) => this.removeMember(room, m, 'kicked', reason),
      dispose: (room) => this.dispose(room),
      changed: () => this.listingChanged(),
    };
    this.matchmaker = new Matchmaker(this, options.seatTimeoutMs ?? 10_000);
    backend.handle(R.JoinRoom, undefined, (req, ctx) => this.matchmaker.join(req, ctx));
    backend.handle(R.LeaveRoom, undefined, (req, ctx) => this.onLeaveRoom(req.room_id, ctx));
    backend.handle(R.RoomReady, undefined, (req, ctx) => {
      const seat = this.byRef.get(refKey(ctx));
      if (seat && seat.room.id === req.room_id) this.ready(seat.room, seat.member);
    });
    this.node.handle(R.SeatReq, R.SeatResp, (req) => this.seat(req));
    backend.onClientClosed((client, reason) => this.onClosed(client, reason));
    this.node.on('peerDown', (peer) => {
      if (peer.name !== backend.agentService) return;
      // The agent forgot this backend's groups with the link; its members are dropped like closed clients.
      for (const [key, seat] of [...this.byRef]) if (key.startsWith(`${peer.id}/`)) this.drop(seat.room, seat.member, `the link to ${peer.id} went down`);
    });
    // A retiring host (a newer version is live) stays up while its rooms hold seats (DOMI's rollout).
    this.node.addHold(() => {
      let seats = 0;
      for (const room of this.roomsById.values()) seats += room.size;
      return seats;
    });
    this.node.on('stopping', () => {
      for (const room of [...this.roomsById.values()]) this.dispose(room);
    });
  }

  /** Registers a room type. */
  define<S>(type: string, def: RoomTypeDef<S>): this {
    if (this.types.has(type)) throw new TypeError(`room type "${type}" is already defined`);
    this.types.set(type, def as RoomTypeDef<unknown>);
    return this;
  }

  /**
   * Handles a client message for the room the sender is in on this host
   * (route it "auth" to this service: joining binds the client here).
   */
  onMessage<T>(type: MessageType<T>, fn: RoomMessageHandler<T>): this {
    if (this.handled.has(type.id)) throw new TypeError(`${type.name} already has a room handler`);
    this.handled.add(type.id);
    this.backend.handle(type, undefined, (msg, ctx) => {
      const seat = this.byRef.get(refKey(ctx));
      if (!seat) throw new RpcError('bad_request', `${type.name}: the client is in no room on ${this.node.id}`);
      return fn(seat.room, seat.member, msg, ctx);
    });
    return this;
  }

  /** @internal */
  typeDef(type: string): RoomTypeDef<unknown> | undefined {
    return this.types.get(type);
  }

  room(id: string): Room<unknown> | undefined {
    return this.roomsById.get(id);
  }

  rooms(type?: string): Room<unknown>[] {
    const all = [...this.roomsById.values()];
    return type === undefined ? all : all.filter((r) => r.type === type);
  }

  // ---- seats --------------------------------------------------------------

  /**
   * Seats a client (the matchmaker's SeatReq, local or over a link): reserve
   * a seat, bind the client here, run onJoin, then tell the client itself
   * (RoomJoined with its request's seq) before answering the matchmaker.
   */
  async seat(req: SeatReq): Promise<SeatResp> {
    try {
      return await this.seatOrThrow(req);
    } catch (err) {
      if (err instanceof RoomError) return refusal(err.code, err.message, req.room_id);
      throw err;
    }
  }

  private async seatOrThrow(req: SeatReq): Promise<SeatResp> {
    if (this.node.stopping) throw new RoomError('unavailable', `${this.node.id} is shutting down`);
    const ref: ClientInfo = { agent: req.client_agent, id: req.client_id, session: req.session };
    if (req.method === 'reconnect') return this.reconnect(req, ref);
    // Retiring: members it has may come back (above), new ones go to the newer version.
    if (this.node.retiring) return refusal('unavailable', `${this.node.id} is retiring: it takes no new members`, req.room_id);
    const options = parseOptions(req.options);
    let room: Room<unknown>;
    if (req.create) {
      const def = this.types.get(req.room_type);
      if (!def) throw new RoomError('unknown_room_type', `no room type "${req.room_type.slice(0, 64)}" on ${this.node.id}`);
      const memory = this.node.memory.refusal(this.node.id);
      if (memory !== undefined) throw new RoomError('overloaded', memory);
      // The host's logical address leads the id: any instance can find the host of a room id.
      const id = `${this.node.logicalAddress}~${(this.nextRoom++).toString(36)}${randomBytes(3).toString('hex')}`;
      room = new Room(id, req.room_type, options, def, this.backend.group(`room:${id}`, { keep: true }), this.hooks);
      room.reserved++;
      this.roomsById.set(room.id, room);
      try {
        await def.onCreate?.(room, options);
      } catch (err) {
        room.reserved--;
        this.dispose(room);
        throw new RoomError('join_refused', `onCreate refused: ${(err as Error).message}`);
      }
      room.creating = false;
      this.startClock(room);
    } else {
      const found = this.roomsById.get(req.room_id);
      // Refusals a matchmaker meets often are answered without an Error (its stack costs more than the check).
      if (!found || found.disposed || found.creating) return refusal('room_not_found', `no room ${req.room_id.slice(0, 80)} on ${this.node.id}`, req.room_id);
      room = found;
      if (room.locked) return refusal('room_locked', `room ${room.id} is locked`, room.id);
      if (room.size >= room.maxClients) return refusal('room_full', `room ${room.id} is full (${room.maxClients})`, room.id);
      // The seat is reserved here, before anything awaits: two joins never get the last seat.
      room.reserved++;
      clearTimeout(room.disposeTimer);
      room.disposeTimer = undefined;
    }
    this.listingChanged();
    const def = room.def;
    const previous = this.byRef.get(refKey(ref));
    if (previous) this.removeMember(previous.room, previous.member, 'left', 'joined another room');
    const member = new Member(randomBytes(6).toString('hex'), { agent: ref.agent, id: ref.id }, ref.session, randomBytes(16).toString('base64url'));
    try {
      await this.backend.bind(member.ref);
      await def.onJoin?.(room, member, options);
    } catch (err) {
      room.reserved--;
      this.listingChanged();
      this.maybeDispose(room);
      throw new RoomError('join_refused', (err as Error).message);
    }
    room.reserved--;
    if (room.disposed) throw new RoomError('room_not_found', `room ${room.id} was disposed while joining`);
    room.members.set(member.seat, member);
    this.byRef.set(refKey(member.ref), { room, member });
    this.byToken.set(member.token, { room, member });
    this.tellJoined(room, member, req.seq);
    return this.answer(room);
  }

  private async reconnect(req: SeatReq, ref: ClientInfo): Promise<SeatResp> {
    const seat = this.byToken.get(req.token);
    if (!seat || seat.room.id !== req.room_id || seat.room.disposed) throw new RoomError('reconnect_expired', 'no seat is kept for this token (the window passed, or the room is gone)');
    const { room, member } = seat;
    const old = member.ref;
    if (member.connected) {
      // The server has not seen the old connection drop yet (or another connection takes the seat over).
      this.byRef.delete(refKey(old));
      room.group.remove(old);
      if (old.agent !== ref.agent || old.id !== ref.id) this.backend.unbind([old], 'the seat was taken over by a reconnect');
    }
    member.clearTimers();
    member.ref = { agent: ref.agent, id: ref.id };
    member.session = ref.session;
    member.connected = true;
    member.ready = false;
    member.queue = [];
    this.byRef.set(refKey(member.ref), { room, member });
    try {
      await this.backend.bind(member.ref);
    } catch (err) {
      this.drop(room, member, `rebinding failed: ${(err as Error).message}`);
      throw new RoomError('unavailable', `cannot bind the client: ${(err as Error).message}`);
    }
    this.call(() => room.def.onReconnect?.(room, member), 'onReconnect');
    this.tellJoined(room, member, req.seq);
    return this.answer(room);
  }

  private tellJoined(room: Room<unknown>, member: Member, seq: number): void {
    this.backend.send(member.ref, R.RoomJoined, { room_id: room.id, room_type: room.type, host: this.node.id, seat: member.seat, reconnect_token: member.token, reconnect_sec: room.reconnectSec }, seq);
    member.readyTimer = setTimeout(() => this.ready(room, member), READY_TIMEOUT_MS);
    member.readyTimer.unref();
    this.listingChanged();
  }

  private answer(room: Room<unknown>): SeatResp {
    return { ok: true, code: '', error: '', room_id: room.id, clients: room.size, max_clients: room.maxClients, locked: room.locked };
  }

  /** The client listens now: into the room's group, and what waited for it is sent. */
  private ready(room: Room<unknown>, member: Member): void {
    if (member.ready || !member.connected || room.members.get(member.seat) !== member) return;
    clearTimeout(member.readyTimer);
    member.readyTimer = undefined;
    member.ready = true;
    room.group.add(member.ref);
    for (const [msgId, body] of member.queue.splice(0)) this.sendRaw(member.ref, msgId, body);
  }

  // ---- leaving ------------------------------------------------------------

  private onLeaveRoom(roomId: string, ctx: ClientContext): void {
    const seat = this.byRef.get(refKey(ctx));
    if (!seat || seat.room.id !== roomId) {
      this.backend.send(ctx, C.Error, { code: 'room_not_found', message: `not in room ${roomId.slice(0, 80)}` }, ctx.seq);
      return;
    }
    this.removeMember(seat.room, seat.member, 'left', 'left the room', ctx.seq);
  }

  private onClosed(client: ClientRef, reason: string): void {
    const seat = this.byRef.get(refKey(client));
    if (seat) this.drop(seat.room, seat.member, reason);
  }

  /** The member's connection is gone: keep its seat for reconnectSec, or free it. */
  private drop(room: Room<unknown>, member: Member, reason: string): void {
    if (!member.connected) return;
    this.byRef.delete(refKey(member.ref));
    if (room.group.has(member.ref)) room.group.remove(member.ref);
    member.connected = false;
    if (room.reconnectSec <= 0 || room.disposed) return this.removeMember(room, member, 'closed', reason);
    member.ready = false;
    member.queue = [];
    member.clearTimers();
    member.expiryTimer = setTimeout(() => this.removeMember(room, member, 'expired', `no reconnect within ${room.reconnectSec} s`), room.reconnectSec * 1000);
    member.expiryTimer.unref();
    this.call(() => room.def.onDrop?.(room, member), 'onDrop');
  }

  /** Frees the seat for good and runs onLeave; a connected client is told (RoomLeft) and unbound. */
  private removeMember(room: Room<unknown>, member: Member, reason: LeaveReason, text: string, seq = 0): void {
    if (room.members.get(member.seat) !== member) return;
    room.members.delete(member.seat);
    member.clearTimers();
    this.byToken.delete(member.token);
    if (member.connected) {
      const key = refKey(member.ref);
      if (this.byRef.get(key)?.member === member) this.byRef.delete(key);
      if (room.group.has(member.ref)) room.group.remove(member.ref);
      this.backend.send(member.ref, R.RoomLeft, { room_id: room.id, code: reason, reason: text }, seq);
      if (reason !== 'closed') this.backend.unbind([member.ref], text);
      member.connected = false;
    }
    this.call(() => room.def.onLeave?.(room, member, reason), 'onLeave');
    this.listingChanged();
    this.maybeDispose(room);
  }

  private maybeDispose(room: Room<unknown>): void {
    if (room.disposed || room.size > 0 || room.disposeTimer) return;
    const delay = room.def.disposeDelayMs ?? 0;
    if (delay <= 0) return this.dispose(room);
    room.disposeTimer = setTimeout(() => {
      room.disposeTimer = undefined;
      if (room.size === 0) this.dispose(room);
    }, delay);
    room.disposeTimer.unref();
  }

  private dispose(room: Room<unknown>): void {
    if (room.disposed) return;
    room.disposed = true;
    clearInterval(room.ticker);
    clearTimeout(room.disposeTimer);
    for (const m of [...room.members.values()]) this.removeMember(room, m, 'disposed', `room ${room.id} was disposed`);
    room.group.drop();
    this.roomsById.delete(room.id);
    this.call(() => room.def.onDispose?.(room), 'onDispose');
    this.listingChanged();
  }

  private startClock(room: Room<unknown>): void {
    const hz = room.def.tickHz ?? 0;
    if (!(hz > 0) || !room.def.onTick) return;
    let last = performance.now();
    room.ticker = setInterval(() => {
      const now = performance.now();
      const dt = now - last;
      last = now;
      this.call(() => room.def.onTick?.(room, dt), 'onTick');
    }, 1000 / Math.min(hz, 1000));
  }

  // ---- plumbing -----------------------------------------------------------

  private sendRaw(ref: ClientRef, msgId: number, body: Uint8Array): void {
    const raw: MessageType<Uint8Array> = RAW[msgId] ?? (RAW[msgId] = rawType(msgId));
    this.backend.send(ref, raw, body as Init<Uint8Array>);
  }

  private call(fn: () => unknown, hook: string): void {
    try {
      const r = fn();
      if (r instanceof Promise) r.catch((err: unknown) => this.node.log.warn({ err, hook }, 'a room hook failed'));
    } catch (err) {
      this.node.log.warn({ err, hook }, 'a room hook failed');
    }
  }

  /** The listing other instances' matchmakers read (registration meta), a little after a change. */
  private listingChanged(): void {
    this.listingTimer ??= setTimeout(() => {
      this.listingTimer = undefined;
      if (this.node.stopping) return;
      this.node.setMeta({ [ROOM_LISTING_META]: encodeListing(this.listing()) });
    }, LISTING_DEBOUNCE_MS);
    this.listingTimer.unref();
  }

  /** Joinable rooms: unlocked, with a free seat. */
  listing(): ListedRoom[] {
    const out: ListedRoom[] = [];
    for (const r of this.roomsById.values()) {
      if (r.disposed || r.creating || r.locked || r.size >= r.maxClients) continue;
      out.push({ id: r.id, type: r.type, clients: r.size, max: r.maxClients, options: filterOptions(r.options, r.def.filterBy) });
    }
    return out;
  }

  /** Errors as the client sees them: Error {code, message} with the request's seq. */
  replyError(client: ClientRef, seq: number, code: RoomErrorCode | string, message: string): void {
    this.backend.send(client, C.Error, { code, message }, seq);
  }
}

function refusal(code: RoomErrorCode, error: string, roomId: string): SeatResp {
  return { ok: false, code, error, room_id: roomId, clients: 0, max_clients: 0, locked: false };
}

const RAW: Record<number, MessageType<Uint8Array>> = {};

/** A message type whose "message" is its encoded body, for bodies encoded once and sent later. */
function rawType(id: number): MessageType<Uint8Array> {
  return { id, name: `#${id}`, options: {}, encode: (b) => b as Uint8Array, decode: (b) => b };
}

export function refKey(c: { readonly agent: string; readonly id: number }): string {
  return `${c.agent}/${c.id}`;
}

/** Join options: a JSON object of at most MAX_OPTIONS_BYTES; '' is {}. */
export function parseOptions(text: string): RoomOptions {
  if (text === '') return {};
  if (text.length > MAX_OPTIONS_BYTES) throw new RoomError('bad_request', `room options are over ${MAX_OPTIONS_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new RoomError('bad_request', 'room options are not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RoomError('bad_request', 'room options must be a JSON object');
  return v as RoomOptions;
}

/** The options joinOrCreate filters on: the type's filterBy keys, or all of them. */
function filterOptions(options: RoomOptions, filterBy: readonly string[] | undefined): RoomOptions {
  if (!filterBy) return options;
  const out: Record<string, unknown> = {};
  for (const k of filterBy) if (k in options) out[k] = options[k];
  return out;
}
