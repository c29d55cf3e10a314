// A game node of one game cluster, behind its cluster's agent: finds an
// exported battle by type for its players, and carries whispers to players
// of game nodes in other clusters, by logical address, through the harbors.
//   node dist/examples/clusters/game.js --sdaddr ADDR --cluster 1 --svcindex 1 --token T
import { GatewayBackend, RpcError, ServiceNode, serviceMain, type ClientRef } from '../../src/index.js';
import { BATTLE_TYPE, GAME_TYPE, M } from './messages.js';

process.exitCode = await serviceMain({
  program: 'clusters-game',
  summary: 'a game: puts players in a battle of the shared cluster, and relays whispers to other clusters',
  run: async ({ config }) => {
    const node = new ServiceNode({ name: 'game', type: GAME_TYPE, config });
    const backend = new GatewayBackend(node);
    const players = new Map<string, ClientRef>();
    backend.handle(M.FindBattleReq, M.Roster, async (req, client) => {
      // Lookups by type see this cluster and the exported nodes of the others;
      // the same match key picks the same battle in every cluster.
      const battle = await node.pickAddr(BATTLE_TYPE, req.match);
      if (!battle) throw new RpcError('unavailable', 'no battle is visible from this cluster yet');
      await client.bind({ uid: req.player });
      players.set(req.player, { agent: client.agent, id: client.id });
      return node.call({ addr: battle }, M.Enter, M.Roster, { player: req.player, game: node.logicalAddress });
    });
    backend.handle(M.WhisperReq, M.Ack, async (req, client) => {
      await node.send({ addr: req.to }, M.Whisper, { from: client.session['uid'] ?? '?', text: req.text, to_player: req.to_player });
      return { ok: true };
    });
    // From another cluster's game, through the harbors: pushed to the player through the agent.
    node.onMessage(M.Whisper, (msg) => {
      const to = players.get(msg.to_player);
      if (to) backend.send(to, M.Whispered, { from: msg.from, text: msg.text });
    });
    backend.onClientClosed((client) => {
      const uid = client.session['uid'];
      if (uid && players.get(uid)?.id === client.id) players.delete(uid);
    });
    await node.start();
    process.stdout.write(`game ${node.logicalAddress} ready\n`);
    return node;
  },
});
