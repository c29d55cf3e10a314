/**
 * The game service: one handler (JoinReq) and one room (the lobby).
 *
 * A player logs in over HTTP (the login service, POST /api/login), gets a
 * token and the address of a gateway (agent), and connects to it with the
 * token. The agent forwards JoinReq here with the connection's session,
 * where the token is; the game checks it, binds the connection to the
 * player, and from then on the agent lets that client send "auth" messages.
 */
import { GatewayBackend, loadJwtKey, RpcError, SESSION_UID, ServiceNode, verifyToken, type ClientRef, type ServiceConfig } from 'gamemesh';
import { JoinReq, JoinResp, LobbyChanged } from './gen/index.js';

export interface GameOptions {
  /** The service flags (`serviceMain` parses them; the test harness passes its own). */
  config: Partial<ServiceConfig>;
}

export async function startGame(options: GameOptions): Promise<ServiceNode> {
  const node = new ServiceNode({ name: 'game', config: options.config });
  const backend = new GatewayBackend(node);
  /** Who is in the lobby, and on which connection. */
  const lobby = new Map<string, ClientRef>();

  // The login's signing key is in the cluster's KV, readable once the node is up.
  const key = node.start().then(() => loadJwtKey(node.discovery));

  backend.handle(JoinReq, JoinResp, async (_req, client) => {
    const token = client.session['token'];
    if (!token) throw new RpcError('bad_request', 'log in first: connect with the token from /api/login');
    const name = (await verifyToken(token, await key).catch(() => {
      throw new RpcError('bad_request', 'the login token is not valid; log in again');
    })).sub;
    if (!client.session[SESSION_UID]) await client.bind({ [SESSION_UID]: name });
    const others = [...lobby.entries()].filter(([player]) => player !== name).map(([, ref]) => ref);
    lobby.set(name, { agent: client.agent, id: client.id });
    backend.sendMany(others, LobbyChanged, { name, joined: true });
    return { name, players: [...lobby.keys()].sort() };
  });

  backend.onClientClosed((client) => {
    const name = client.session[SESSION_UID];
    const ref = name === undefined ? undefined : lobby.get(name);
    if (!name || !ref || ref.agent !== client.agent || ref.id !== client.id) return;
    lobby.delete(name);
    backend.sendMany([...lobby.values()], LobbyChanged, { name, joined: false });
  });

  await key;
  return node;
}
