import { admission, admitted, newestVersions } from '../discovery/admission.js';
import { memoryRatio, memoryRefusal } from '../discovery/memory.js';
import type { ServiceDesc, ServiceWatch } from '../discovery/types.js';
import type { ClientContext } from '../gateway/backend.js';
import { RpcError } from '../service/errors.js';
import { RoomError, type RoomErrorCode } from './errors.js';
import { parseOptions, type RoomHost } from './host.js';
import { decodeListing, ROOM_LISTING_META, type ListedRoom } from './listing.js';
import { R, type JoinRoom, type SeatReq, type SeatResp } from './messages.js';
import type { RoomOptions } from './room.js';

/** What a seat answer taught about a room, trusted over the hosts' listings for this long. */
const NOTE_MS = 2000;
/** A room that said full (or locked, or gone) is not tried again for this long. */
const FULL_MS = 1000;
/** Rounds of (try the rooms, wait for or make a new one) before a join gives up. */
const MAX_ROUNDS = 8;
/** Rooms tried per round before looking for one being made. */
const MAX_TRIES = 16;

interface Note {
  readonly room: ListedRoom;
  readonly addr: string;
  readonly at: number;
}

interface Creation {
  readonly key: string;
  readonly max: number;
  /** Joins waiting for this room instead of making their own. */
  waiters: number;
  readonly done: Promise<void>;
}

interface Candidate {
  readonly room: ListedRoom;
  readonly addr: string;
}

/**
 * This node's part of matchmaking. The agents send every JoinRoom of one
 * room type to the same instance (a consistent hash over the instances), so
 * one matchmaker usually sees all of a type's joins: it counts the seats it
 * is asking for, and joins that find no free seat wait for a room being made
 * instead of each making one. Which rooms exist comes from the hosts'
 * listings (registration meta) and from the hosts' own answers; seats are
 * granted by the host alone (RoomHost.seat), so a stale view costs a retry,
 * never an overfull room. With several matchmakers at once (instances coming
 * and going, agents that see them differently) rooms may fill less densely,
 * but never past maxClients.
 */
export class Matchmaker {
  private watch: Promise<ServiceWatch> | undefined;
  private readonly pending = new Map<string, number>();
  private readonly notes = new Map<string, Note>();
  private readonly fullUntil = new Map<string, number>();
  private readonly creating = new Map<string, Creation[]>();
  private readonly listings = new Map<string, { text: string; rooms: ListedRoom[] }>();
  /** The service's instances in this node's group, this one included, as of the last others(). */
  private group: ServiceDesc[] = [];

  constructor(
    private readonly host: RoomHost,
    private readonly seatTimeoutMs: number,
  ) {}

  /** The backend's handler of JoinRoom: the host answers the client with RoomJoined; a failure is answered here. */
  async join(req: JoinRoom, ctx: ClientContext): Promise<void> {
    try {
      await this.joinOrThrow(req, ctx);
    } catch (err) {
      const code: RoomErrorCode | string = err instanceof RoomError || err instanceof RpcError ? err.code : 'application';
      if (!(err instanceof RoomError)) this.host.node.log.warn({ err, method: req.method }, 'a room join failed');
      this.host.replyError(ctx, ctx.seq, code, (err as Error).message);
    }
  }

  private async joinOrThrow(req: JoinRoom, ctx: ClientContext): Promise<void> {
    const base: SeatReq = {
      method: req.method,
      room_type: req.room_type,
      room_id: req.room_id,
      create: false,
      options: req.options,
      token: req.token,
      client_agent: ctx.agent,
      client_id: ctx.id,
      seq: ctx.seq,
      session: { ...ctx.session },
    };
    const options = parseOptions(req.options);
    switch (req.method) {
      case 'create':
        return void (await this.create(base, req.room_type));
      case 'join_by_id':
      case 'reconnect': {
        const res = await this.seatAt(hostOf(req.room_id), base);
        if (!res.ok) throw new RoomError(res.code as RoomErrorCode, res.error);
        return;
      }
      case 'join_or_create':
        return this.joinOrCreate(base, req.room_type, options);
      default:
        throw new RoomError('bad_request', `unknown join method "${req.method.slice(0, 32)}" (join_or_create, create, join_by_id, reconnect)`);
    }
  }

  private async joinOrCreate(base: SeatReq, type: string, filter: RoomOptions): Promise<void> {
    const def = this.host.typeDef(type);
    if (!def) throw new RoomError('unknown_room_type', `no room type "${type.slice(0, 64)}" on ${this.host.node.id}`);
    const key = `${type}\n${canonical(filter, def.filterBy)}`;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // One room at a time, chosen afresh: while a seat request is out, other joins fill rooms too.
      for (let tries = 0; tries < MAX_TRIES; tries++) {
        const others = await this.others(true);
        // Picked and counted in one synchronous step: concurrent joins see each other's pending seats.
        const c = this.best(type, filter, def.filterBy, others);
        if (!c) break;
        const id = c.room.id;
        this.pending.set(id, (this.pending.get(id) ?? 0) + 1);
        let res: SeatResp;
        try {
          res = await this.seatAt(c.addr, { ...base, room_id: id });
        } finally {
          const n = (this.pending.get(id) ?? 1) - 1;
          if (n > 0) this.pending.set(id, n);
          else this.pending.delete(id);
        }
        if (res.ok) return this.note(res, c.addr, type, c.room.options);
        if (res.code === 'join_refused' || res.code === 'bad_request') throw new RoomError(res.code, res.error);
        // Full, locked, gone or unreachable: not tried again for a moment.
        this.fullUntil.set(id, Date.now() + FULL_MS);
      }
      // No free seat: wait for a room already being made, if it has a seat to spare.
      const waiting = this.creating.get(key)?.find((c) => c.waiters < c.max - 1);
      if (waiting) {
        waiting.waiters++;
        await waiting.done;
        continue;
      }
      let finish!: () => void;
      const creation: Creation = { key, max: def.maxClients ?? 64, waiters: 0, done: new Promise<void>((resolve) => (finish = resolve)) };
      const list = this.creating.get(key) ?? [];
      list.push(creation);
      this.creating.set(key, list);
      try {
        await this.create(base, type);
        return;
      } finally {
        const left = (this.creating.get(key) ?? []).filter((c) => c !== creation);
        if (left.length > 0) this.creating.set(key, left);
        else this.creating.delete(key);
        finish();
      }
    }
    throw new RoomError('room_full', `no free seat in a room of type ${type} after ${MAX_ROUNDS} rounds`);
  }

  /** Makes a room on the instance with the most memory headroom (skipping any above its threshold) and seats the client. */
  private async create(base: SeatReq, type: string): Promise<SeatResp> {
    if (!this.host.typeDef(type)) throw new RoomError('unknown_room_type', `no room type "${type.slice(0, 64)}" on ${this.host.node.id}`);
    const { hosts, refusals } = await this.placement();
    for (const addr of hosts) {
      const res = await this.seatAt(addr, { ...base, create: true, room_id: '' });
      if (res.ok) {
        this.note(res, addr, type, filterOf(base.options, this.host.typeDef(type)?.filterBy));
        return res;
      }
      if (res.code === 'overloaded' || res.code === 'unavailable') {
        refusals.push(res.error);
        continue;
      }
      throw new RoomError(res.code as RoomErrorCode, res.error);
    }
    throw new RoomError('overloaded', `no instance of ${this.host.node.name} can take a new room: ${refusals.join('; ') || 'none is up'}`);
  }

  /** Instances that may host a new room, least memory used first, and why the others may not. */
  async placement(): Promise<{ hosts: string[]; refusals: string[] }> {
    const node = this.host.node;
    const refusals: string[] = [];
    const scored: Array<{ addr: string; ratio: number; rooms: number; tie: number }> = [];
    const self = node.memory.sample();
    const mine = node.memory.refusal(node.id);
    if (mine === undefined && !node.stopping && !node.retiring) scored.push({ addr: node.logicalAddress, ratio: self.ratio, rooms: this.host.rooms().length, tie: Math.random() });
    else if (mine !== undefined) refusals.push(mine);
    else if (node.retiring) refusals.push(`${node.id} is retiring`);
    const others = await this.others();
    // Versions are compared over every instance, this one included: a newer one here makes the others outdated.
    const newest = newestVersions(this.group, (id) => node.nodeState(id).available);
    for (const desc of others) {
      // The cluster's one admission rule (available, not retiring, newest version), then memory.
      const admit = admission(desc, { state: node.nodeState(desc.id), newest: newest(desc) });
      const why = admit.admit ? memoryRefusal(desc) : admit.reason;
      if (why !== undefined) {
        refusals.push(why);
        continue;
      }
      const addr = desc.meta['addr'];
      if (!addr) continue;
      scored.push({ addr, ratio: memoryRatio(desc.meta), rooms: this.listingOf(desc).length, tie: Math.random() });
    }
    // Memory in whole percents first; among nodes within a percent, the one with fewer rooms.
    scored.sort((a, b) => Math.round(a.ratio * 100) - Math.round(b.ratio * 100) || a.rooms - b.rooms || a.tie - b.tie);
    return { hosts: scored.map((s) => s.addr), refusals };
  }

  /** The fullest joinable room of the type matching the filter (rooms fill before new ones open); synchronous. */
  private best(type: string, filter: RoomOptions, filterBy: readonly string[] | undefined, others: readonly ServiceDesc[]): Candidate | undefined {
    const now = Date.now();
    let best: Candidate | undefined;
    let bestTaken = -1;
    const seen = new Set<string>();
    const consider = (room: ListedRoom, addr: string, exact: boolean) => {
      seen.add(room.id);
      if (room.type !== type) return;
      const note = this.notes.get(room.id);
      const fresh = note !== undefined && now - note.at < NOTE_MS;
      const clients = !exact && fresh ? Math.max(note.room.clients, room.clients) : room.clients;
      const taken = clients + (this.pending.get(room.id) ?? 0);
      if (taken >= room.max || taken < bestTaken || (taken === bestTaken && best !== undefined && room.id > best.room.id)) return;
      if ((this.fullUntil.get(room.id) ?? 0) > now || !matches(room.options, filter, filterBy)) return;
      best = { room, addr };
      bestTaken = taken;
    };
    const self = this.host.node.logicalAddress;
    // A retiring instance (a newer version is live, or it is drained) seats no one new (docs/operations.md).
    if (!this.host.node.retiring) for (const room of this.host.listing()) consider(room, self, true);
    for (const desc of others) {
      const addr = desc.meta['addr'];
      if (addr) for (const room of this.listingOf(desc)) consider(room, addr, false);
    }
    // Rooms a host has just answered for, before its listing shows them.
    for (const [id, n] of this.notes) {
      if (now - n.at >= NOTE_MS) this.notes.delete(id);
      else if (!seen.has(id) && n.addr !== self) consider(n.room, n.addr, false);
    }
    for (const [id, until] of this.fullUntil) if (until <= now) this.fullUntil.delete(id);
    return best;
  }

  /** A host's listing, decoded once per version of its registration. */
  private listingOf(desc: ServiceDesc): ListedRoom[] {
    const text = desc.meta[ROOM_LISTING_META] ?? '';
    const cached = this.listings.get(desc.id);
    if (cached?.text === text) return cached.rooms;
    const rooms = decodeListing(text);
    this.listings.set(desc.id, { text, rooms });
    return rooms;
  }

  private note(res: SeatResp, addr: string, type: string, options: RoomOptions): void {
    const previous = this.notes.get(res.room_id)?.room.options;
    this.notes.set(res.room_id, { room: { id: res.room_id, type, clients: res.clients, max: res.max_clients, options: previous ?? options }, addr, at: Date.now() });
    if (res.clients >= res.max_clients || res.locked) this.fullUntil.set(res.room_id, Date.now() + FULL_MS);
  }

  /** Asks the room's host (this node, or another instance by logical address) for a seat. */
  private async seatAt(addr: string, req: SeatReq): Promise<SeatResp> {
    if (addr === this.host.node.logicalAddress) return this.host.seat(req);
    try {
      return await this.host.node.call({ addr }, R.SeatReq, R.SeatResp, req, { timeoutMs: this.seatTimeoutMs });
    } catch (err) {
      const e = err as Error;
      return { ok: false, code: 'unavailable', error: `the host ${addr} did not answer: ${e.message}`, room_id: req.room_id, clients: 0, max_clients: 0, locked: false };
    }
  }

  /** The other live instances of this service in this node's group; with `admittedOnly`, those admission admits (not retiring, newest version). */
  private async others(admittedOnly = false): Promise<ServiceDesc[]> {
    const node = this.host.node;
    if (!this.watch) {
      const opening = node.discovery.watchServices(node.name);
      this.watch = opening;
      node.once('stopping', () => void opening.then((w) => w.stop(), () => undefined));
      // A failed open is tried again by the next join.
      opening.catch(() => {
        if (this.watch === opening) this.watch = undefined;
      });
    }
    const watch = await this.watch;
    // Only hosts this node may see: its cluster's, or exported ones (docs/clusters.md).
    this.group = watch.list().filter((d) => (d.meta['group'] ?? '') === node.config.svcgroup && node.canSee(d));
    const live = admittedOnly ? admitted(this.group, (id) => node.nodeState(id)) : this.group;
    return live.filter((d) => d.id !== node.id);
  }
}

/** The host's logical address, which leads every room id. */
function hostOf(roomId: string): string {
  const addr = roomId.split('~')[0] ?? '';
  if (!/^\d+\.\d+\.\d+$/.test(addr)) throw new RoomError('room_not_found', `"${roomId.slice(0, 80)}" is not a room id`);
  return addr;
}

function matches(options: RoomOptions, filter: RoomOptions, filterBy: readonly string[] | undefined): boolean {
  for (const [k, v] of Object.entries(filter)) {
    if (filterBy && !filterBy.includes(k)) continue;
    if (JSON.stringify(options[k]) !== JSON.stringify(v)) return false;
  }
  return true;
}

function canonical(filter: RoomOptions, filterBy: readonly string[] | undefined): string {
  const keys = Object.keys(filter)
    .filter((k) => !filterBy || filterBy.includes(k))
    .sort();
  return JSON.stringify(keys.map((k) => [k, filter[k]]));
}

/** The filterable part of a new room's options, as its host lists them. */
function filterOf(text: string, filterBy: readonly string[] | undefined): RoomOptions {
  const options = parseOptions(text);
  if (!filterBy) return options;
  const out: Record<string, unknown> = {};
  for (const k of filterBy) if (k in options) out[k] = options[k];
  return out;
}
