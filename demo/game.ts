// The demo game service process: `node dist/demo/game.js [service flags] [--db PATH]`.
import { serviceMain } from '../src/index.js';
import { startGame } from './game/service.js';

process.exitCode = await serviceMain({
  program: 'demo-game',
  summary: 'the demo game: players, gold and levels, saved in SQLite or PostgreSQL',
  flags: {
    db: { type: 'string', default: 'data/demo/game.sqlite', description: 'players: a SQLite file, or postgres://user@host:port/db (password in PGPASSWORD)' },
    'jwt-secret': { type: 'string', default: '', description: 'JWT key (else GAMEMESH_JWT_SECRET, else the KV)' },
  },
  run: async ({ config, values }) => {
    const game = await startGame({ config, db: values.db, jwtSecret: values['jwt-secret'] });
    process.stdout.write(`game ${game.node.id} ready\n`);
    return game;
  },
});
