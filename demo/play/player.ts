/** Connecting a logged-in player to its agent and into the game and the chat; shared by the terminal client and the bots. */
import { GameClient, type GameClientOptions, type TransportFactory } from '../../src/client/index.js';
import { kcpTransport, tcpTransport, wsTransportNode } from '../../src/client-node/index.js';
import { EnterGameReq, EnterGameResp, JoinChatReq, JoinChatResp, type Player } from '../gen/index.js';
import type { LoginResult } from './login.js';

export type TransportKind = 'ws' | 'tcp' | 'kcp';

/** The agent address login gave, as a transport factory; throws when the agent does not offer that transport. */
export function agentTransport(agent: LoginResult['agent'], kind: TransportKind): TransportFactory {
  if (kind === 'ws') {
    const url = agent.ws;
    if (!url) throw new Error('the agent login picked has no WebSocket port; try --tcp');
    return () => wsTransportNode(url);
  }
  const addr = kind === 'kcp' ? agent.kcp : agent.tcp;
  const colon = addr ? addr.lastIndexOf(':') : -1;
  if (!addr || colon <= 0) throw new Error(kind === 'kcp' ? 'the agent login picked has no KCP port; leave out --kcp' : 'the agent login picked has no TCP port; leave out --tcp');
  // An IPv6 host comes as [::1]:port.
  const host = addr.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(addr.slice(colon + 1));
  return kind === 'kcp' ? () => kcpTransport(host, port) : () => tcpTransport(host, port);
}

export interface Entered {
  readonly player: Player;
  /** Players in chat, this one included. */
  readonly online: number;
}

/**
 * EnterGameReq, then JoinChatReq: each service checks the token and binds
 * the connection, which is what makes the "auth" messages pass the agent.
 */
export async function enterWorld(client: GameClient, token: string): Promise<Entered> {
  const game = await client.request(EnterGameReq, EnterGameResp, { token });
  const chat = await client.request(JoinChatReq, JoinChatResp, { token });
  return { player: playerOf(game.player, chat.name), online: chat.online };
}

/** Decoded messages leave out zero values and may lack the player; this fills them in. */
export function playerOf(p: Partial<Player> | null | undefined, name = ''): Player {
  return { name: p?.name || name, level: p?.level ?? 0, gold: p?.gold ?? 0 };
}

export type PlayerClientOptions = Omit<GameClientOptions, 'transport' | 'token' | 'onReconnect'> & {
  /** Called after a reconnect has entered the game and the chat again. */
  onReentered?: (entered: Entered) => void;
  /**
   * Logs in again when the connection is lost. The agent may have been
   * restarted on another port (the demo's agents take any free port), or
   * be gone, and login knows where to go instead; the token is fresh, too.
   */
  relogin?: () => Promise<LoginResult>;
};

/**
 * A GameClient for a logged-in player. A new connection starts without
 * bindings, so after a reconnect it enters the game and the chat again
 * before requests go on.
 */
export function playerClient(login: LoginResult, kind: TransportKind, options: PlayerClientOptions = {}): GameClient {
  const { onReentered, relogin, ...rest } = options;
  let current = login;
  // Checked now, so a login answer without this transport fails here and not at each reconnect.
  agentTransport(login.agent, kind);
  const client = new GameClient({
    ...rest,
    transport: () => agentTransport(current.agent, kind)(),
    token: login.token,
    onReconnect: async (c) => {
      const entered = await enterWorld(c, current.token);
      onReentered?.(entered);
    },
  });
  if (relogin) {
    let asking = false;
    client.onReconnecting(() => {
      if (asking) return;
      asking = true;
      // If login cannot answer either, the attempts go on with what we have.
      relogin()
        .then((fresh) => (current = fresh))
        .catch(() => undefined)
        .finally(() => (asking = false));
    });
  }
  return client;
}
