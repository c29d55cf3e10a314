/**
 * The game service: one handler (HelloReq) and one room type (lobby).
 *
 * A player logs in over HTTP (the login service, POST /api/login), gets a
 * token and the address of a gateway (agent), and connects to it with the
 * token. The agent forwards HelloReq here with the connection's session,
 * where the token is; the game checks it and binds the connection to the
 * player. Then the client joins a lobby room (`client.joinOrCreate`), whose
 * members hear each other come and go.
 */
import { GatewayBackend, loadJwtKey, RoomHost, RpcError, SESSION_UID, ServiceNode, verifyToken, type Room, type ServiceConfig } from 'gamemesh';
import { HelloReq, HelloResp, LobbyChanged } from './gen/index.js';

export interface GameOptions {
  /** The service flags (`serviceMain` parses them; the test harness passes its own). */
  config: Partial<ServiceConfig>;
}

/** Everyone in the room, sorted. */
const players = (room: Room) => room.clients.map((m) => m.session[SESSION_UID] ?? '?').sort();

export async function startGame(options: GameOptions): Promise<ServiceNode> {
  const node = new ServiceNode({ name: 'game', config: options.config });
  const backend = new GatewayBackend(node);
  // The login's signing key is in the cluster's KV, readable once the node is up.
  const key = node.start().then(() => loadJwtKey(node.discovery));

  backend.handle(HelloReq, HelloResp, async (_req, client) => {
    const token = client.session['token'];
    if (!token) throw new RpcError('bad_request', 'log in first: connect with the token from /api/login');
    let name: string;
    try {
      name = (await verifyToken(token, await key)).sub;
    } catch {
      throw new RpcError('bad_request', 'the login token is not valid; log in again');
    }
    // From now on the agent lets this client send "auth" messages, and every service sees its uid.
    if (client.session[SESSION_UID] !== name) await client.bind({ [SESSION_UID]: name });
    return { name };
  });

  const rooms = new RoomHost(backend);
  rooms.define('lobby', {
    maxClients: 16,
    // The joiner takes its seat once onJoin returns: the others hear the broadcast, the joiner its own copy.
    onJoin: (room, member) => {
      const name = member.session[SESSION_UID];
      if (!name) throw new RpcError('bad_request', 'say HelloReq first');
      const change = { players: [...players(room), name].sort(), joined: name };
      room.broadcast(LobbyChanged, change);
      room.send(member, LobbyChanged, change);
    },
    onLeave: (room, member) => room.broadcast(LobbyChanged, { players: players(room).filter((p) => p !== member.session[SESSION_UID]), left: member.session[SESSION_UID] ?? '?' }),
  });

  // More handlers and room messages go here (docs/tutorial.md adds a chat).

  await key;
  return node;
}
