import { GatewayBackend, ServiceNode, type ServiceConfig } from '../../src/index.js';
import { loadJwtKey, TokenError, verifyToken } from '../../src/login/index.js';
import { RoomHost, type Room } from '../../src/rooms/index.js';
import { ArenaInput, ArenaState, ArenaWelcome } from '../gen/index.js';
import { FIELD, spawn, steer, step, type ArenaBody } from './field.js';
import { JitterRecorder } from './jitter.js';

export interface ArenaOptions {
  config: Partial<ServiceConfig>;
  jwtSecret?: string;
  /** Ticks a second (default 20). */
  tickHz?: number;
}

/** One arena room's state: its players by seat. */
interface ArenaRoom {
  readonly bodies: Map<string, ArenaBody>;
  tick: number;
  /** Joins so far, for spreading the spawn spots. */
  joined: number;
}

export const ARENA_TYPE = 'arena';
export const ARENA_SEATS = 8;

/**
 * The demo's real-time arena: a room type on its own service. The login
 * token in the join's options names the player (checked here, so a client
 * need not enter the game first); the server moves every player by the
 * direction it holds, each tick, and broadcasts the room's state.
 */
export async function startArena(options: ArenaOptions): Promise<{ node: ServiceNode; rooms: RoomHost; stop(): Promise<void> }> {
  const tickHz = options.tickHz ?? 20;
  const node = new ServiceNode({ name: 'arena', config: options.config });
  const backend = new GatewayBackend(node);
  const rooms = new RoomHost(backend);
  const jitter = new JitterRecorder(1000 / tickHz);
  let resolveKey: (key: Uint8Array) => void = () => {};
  const jwtKey = new Promise<Uint8Array>((resolve) => (resolveKey = resolve));

  rooms.define<ArenaRoom>(ARENA_TYPE, {
    maxClients: ARENA_SEATS,
    tickHz,
    // A page that reloads or a connection that drops gets its player back.
    reconnectSec: 10,
    // Any arena will do: the options carry the token, which must not be matched on (or listed).
    filterBy: [],
    state: () => ({ bodies: new Map(), tick: 0, joined: 0 }),
    async onJoin(room, member, opts) {
      const token = opts['token'];
      if (typeof token !== 'string' || token === '') throw new Error('join the arena with { token }: the login token');
      let name: string;
      try {
        name = (await verifyToken(token, await jwtKey)).sub;
      } catch (err) {
        throw new Error(err instanceof TokenError ? `login again: ${err.message}` : 'invalid token');
      }
      room.state.bodies.set(member.seat, spawn(name, room.state.joined++));
      room.send(member, ArenaWelcome, { seat: member.seat, width: FIELD.width, height: FIELD.height, tick_hz: tickHz, room_id: room.id });
    },
    // A dropped player waits for its reconnect where it is, rather than walking on into a wall.
    onDrop(room, member) {
      const body = room.state.bodies.get(member.seat);
      if (body) steer(body, 0, 0, body.ack);
    },
    onLeave(room, member) {
      room.state.bodies.delete(member.seat);
    },
    onTick(room, dtMs) {
      jitter.record(dtMs);
      const s = room.state;
      s.tick++;
      const players = [];
      for (const [seat, b] of s.bodies) {
        step(b, dtMs);
        players.push({ seat, name: b.name, x: b.x, y: b.y, ack: b.ack, color: b.color });
      }
      room.broadcast(ArenaState, { tick: s.tick, players });
    },
  });

  rooms.onMessage(ArenaInput, (room, member, msg) => {
    const body = (room as Room<ArenaRoom>).state.bodies.get(member.seat);
    if (body) steer(body, msg.dx, msg.dy, msg.seq);
  });

  node.addStatus(() => {
    const all = rooms.rooms(ARENA_TYPE);
    return { arena: { rooms: all.length, players: all.reduce((n, r) => n + r.size, 0), tickHz, jitter: jitter.summary() } };
  });

  await node.start();
  resolveKey(await loadJwtKey(node.discovery, { secret: options.jwtSecret }));
  return { node, rooms, stop: () => node.stop() };
}
