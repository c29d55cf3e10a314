// A battle node (the shared battle cluster; start it with --export to let other clusters find it).
//   node dist/examples/clusters/battle.js --sdaddr ADDR --cluster 3 --svcindex 1 --export --token T
import { ServiceNode, serviceMain } from '../../src/index.js';
import { BATTLE_TYPE, M } from './messages.js';

process.exitCode = await serviceMain({
  program: 'clusters-battle',
  summary: 'a battle: players of any cluster enter it and get its roster',
  run: async ({ config }) => {
    const node = new ServiceNode({ name: 'battle', type: BATTLE_TYPE, config });
    const players: string[] = [];
    node.handle(M.Enter, M.Roster, (req) => {
      if (!players.includes(req.player)) players.push(req.player);
      node.log.info({ player: req.player, game: req.game }, 'a player entered');
      return { battle: node.logicalAddress, players };
    });
    await node.start();
    process.stdout.write(`battle ${node.logicalAddress} ready${config.export ? ' (exported)' : ''}\n`);
    return node;
  },
});
