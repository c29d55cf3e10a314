// The demo arena service process: `node dist/demo/arena.js [service flags]`.
import { serviceMain } from '../src/index.js';
import { startArena } from './arena/service.js';

process.exitCode = await serviceMain({
  program: 'demo-arena',
  summary: 'the demo arena: real-time rooms of up to 8 players moving on a 2D field',
  flags: {
    'jwt-secret': { type: 'string', default: '', description: 'JWT key (else GAMEMESH_JWT_SECRET, else the KV)' },
    'tick-hz': { type: 'string', default: '20', description: 'simulation ticks a second (1-60)' },
  },
  run: async ({ config, values }) => {
    const hz = Number(values['tick-hz']);
    if (!Number.isInteger(hz) || hz < 1 || hz > 60) throw new Error(`--tick-hz must be an integer from 1 to 60, got ${JSON.stringify(values['tick-hz'])}`);
    const arena = await startArena({ config, jwtSecret: values['jwt-secret'], tickHz: hz });
    const admin = arena.node.admin ? ` admin=${arena.node.admin.address}` : '';
    process.stdout.write(`arena ${arena.node.id} ready${admin}\n`);
    return arena;
  },
});
