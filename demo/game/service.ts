import { createHub, GatewayBackend, RpcError, ServiceNode, type ServiceConfig } from '../../src/index.js';
import { loadJwtKey } from '../../src/login/index.js';
import { EarnGoldReq, EarnGoldResp, EnterGameReq, EnterGameResp, LevelUpReq, LevelUpResp, StatsReq, StatsResp } from '../gen/index.js';
import { PlayerSessions } from '../shared/sessions.js';
import { earn, levelUp, RuleError, type PlayerState } from './rules.js';
import { openStore } from './store.js';

export interface GameOptions {
  config: Partial<ServiceConfig>;
  /** A SQLite file, or postgres://user@host:port/db. */
  db: string;
  jwtSecret?: string;
}

/**
 * The demo's game service: verifies the login JWT on a client's first
 * message, binds the client, and applies the growth rules to its player.
 * Every answer is sent after the new state is committed.
 *
 * The handlers read, change and save a player without a lock: the
 * GatewayBackend runs one client's messages one at a time, in order, each
 * after the previous one's promise settled, and a player plays on one
 * connection only (a second sign-in kicks the first, see PlayerSessions).
 */
export async function startGame(options: GameOptions): Promise<{ node: ServiceNode; stop(): Promise<void> }> {
  const node = new ServiceNode({ name: 'game', config: options.config });
  const backend = new GatewayBackend(node);
  const store = await openStore(options.db);
  // The key is read from the KV once the node is up; a client that is faster waits for it.
  let resolveKey: (key: Uint8Array) => void = () => {};
  const jwtKey = new Promise<Uint8Array>((resolve) => (resolveKey = resolve));
  const players = new PlayerSessions(backend, createHub(node), jwtKey, 'not in the game: send EnterGameReq first');

  backend.handle(EnterGameReq, EnterGameResp, async (req, client) => {
    const name = await players.signIn(client, req.token);
    // Another game instance may have served this player since we cached it (a failover, a partition).
    store.forget(name);
    return { player: await store.load(name) };
  });

  backend.handle(EarnGoldReq, EarnGoldResp, async (_req, client) => {
    const { next, earned } = earn(await store.load(players.uidOf(client)));
    await store.save(next);
    return { player: next, earned };
  });

  backend.handle(LevelUpReq, LevelUpResp, async (_req, client) => {
    let result: { next: PlayerState; cost: number };
    try {
      result = levelUp(await store.load(players.uidOf(client)));
    } catch (err) {
      if (err instanceof RuleError) throw new RpcError('application', err.message);
      throw err;
    }
    await store.save(result.next);
    return { player: result.next, cost: result.cost };
  });

  // Read-only, but in the queue all the same: after an earn it must not report gold that is not on disk yet.
  backend.handle(StatsReq, StatsResp, async (_req, client) => ({ player: await store.load(players.uidOf(client)) }));

  await node.start();
  resolveKey(await loadJwtKey(node.discovery, { secret: options.jwtSecret }));
  return {
    node,
    stop: async () => {
      await node.stop();
      await store.close();
    },
  };
}
