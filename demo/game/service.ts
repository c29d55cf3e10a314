import { GatewayBackend, RpcError, ServiceNode, type ClientContext, type ClientRef, type ServiceConfig } from '../../src/index.js';
import { loadJwtKey, TokenError, verifyToken } from '../../src/login/index.js';
import { EarnGoldReq, EarnGoldResp, EnterGameReq, EnterGameResp, LevelUpReq, LevelUpResp, StatsReq, StatsResp } from '../gen/index.js';
import { earn, levelUp, RuleError, type PlayerState } from './rules.js';
import { PlayerStore } from './store.js';

export interface GameOptions {
  config: Partial<ServiceConfig>;
  db: string;
  jwtSecret?: string;
}

/**
 * The demo's game service: verifies the login JWT on a client's first
 * message, binds the client, and applies the growth rules to its player.
 * Every answer is sent after the new state is committed.
 */
export async function startGame(options: GameOptions): Promise<{ node: ServiceNode; stop(): Promise<void> }> {
  const node = new ServiceNode({ name: 'game', config: options.config });
  const backend = new GatewayBackend(node);
  const store = new PlayerStore(options.db);
  const online = new Map<string, ClientRef>();
  // The key is read from the KV once the node is up; a client that is faster waits for it.
  let resolveKey: (key: Uint8Array) => void = () => {};
  const jwtKey = new Promise<Uint8Array>((resolve) => (resolveKey = resolve));

  const nameOf = (client: ClientContext): string => {
    const name = client.session['name'];
    if (!name) throw new RpcError('bad_request', 'not in the game: send EnterGameReq first');
    return name;
  };

  backend.handle(EnterGameReq, EnterGameResp, async (req, client) => {
    let name: string;
    try {
      name = (await verifyToken(req.token, await jwtKey)).sub;
    } catch (err) {
      throw new RpcError('bad_request', err instanceof TokenError ? `login again: ${err.message}` : 'invalid token');
    }
    const previous = online.get(name);
    if (previous && (previous.agent !== client.agent || previous.id !== client.id)) backend.kick([previous], 'logged in from another client');
    online.set(name, { agent: client.agent, id: client.id });
    await client.bind({ name });
    node.setLoad(online.size);
    return { player: await store.load(name) };
  });

  backend.handle(EarnGoldReq, EarnGoldResp, async (_req, client) => {
    const { next, earned } = earn(await store.load(nameOf(client)));
    await store.save(next);
    return { player: next, earned };
  });

  backend.handle(LevelUpReq, LevelUpResp, async (_req, client) => {
    let result: { next: PlayerState; cost: number };
    try {
      result = levelUp(await store.load(nameOf(client)));
    } catch (err) {
      if (err instanceof RuleError) throw new RpcError('application', err.message);
      throw err;
    }
    await store.save(result.next);
    return { player: result.next, cost: result.cost };
  });

  backend.handle(StatsReq, StatsResp, async (_req, client) => ({ player: await store.load(nameOf(client)) }));

  backend.onClientClosed((client) => {
    const name = client.session['name'];
    const current = name ? online.get(name) : undefined;
    if (name && current?.agent === client.agent && current.id === client.id) online.delete(name);
    node.setLoad(online.size);
  });

  await node.start();
  resolveKey(await loadJwtKey(node.discovery, { secret: options.jwtSecret }));
  return {
    node,
    stop: async () => {
      await node.stop();
      store.close();
    },
  };
}
