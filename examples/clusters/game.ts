// A game node of one game cluster: finds an exported battle by type for its
// players, and sends whispers to game nodes of other clusters by address.
//   node dist/examples/clusters/game.js --sdaddr ADDR --cluster 1 --svcindex 1 --token T
import { RpcError, ServiceNode, serviceMain } from '../../src/index.js';
import { BATTLE_TYPE, GAME_TYPE, M } from './messages.js';

process.exitCode = await serviceMain({
  program: 'clusters-game',
  summary: 'a game: puts players in a battle of the shared cluster, and relays whispers to other clusters',
  run: async ({ config }) => {
    const node = new ServiceNode({ name: 'game', type: GAME_TYPE, config });
    const inbox: string[] = [];
    node.handle(M.Join, M.Roster, async (req) => {
      // Lookups by type see this cluster and the exported nodes of the others;
      // the same match key picks the same battle in every cluster.
      const battle = await node.pickAddr(BATTLE_TYPE, req.match);
      if (!battle) throw new RpcError('unavailable', 'no battle is visible from this cluster');
      return node.call({ addr: battle }, M.Enter, M.Roster, { player: req.player, game: node.logicalAddress });
    });
    node.handle(M.Tell, M.Ack, async (req) => {
      await node.send({ addr: req.to }, M.Whisper, { from: node.logicalAddress, text: req.text });
      return { ok: true };
    });
    node.onMessage(M.Whisper, (msg) => {
      inbox.push(`${msg.from}: ${msg.text}`);
    });
    node.handle(M.Inbox, M.InboxList, () => ({ texts: inbox }));
    await node.start();
    process.stdout.write(`game ${node.logicalAddress} ready\n`);
    return node;
  },
});
