// The game service as a process: `node dist/src/main.js [service flags]`
// (`--help` lists them). `npm start` runs it through cluster.json.
import { serviceMain } from 'gamemesh';
import { startGame } from './game.js';

process.exitCode = await serviceMain({
  program: 'game',
  summary: 'the game service',
  run: async ({ config }) => {
    const node = await startGame({ config });
    process.stdout.write(`game ${node.id} ready\n`);
    return node;
  },
});
