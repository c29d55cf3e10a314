import { usage } from './usage.js';

/** Commands load their modules lazily, so `gamemesh sd` never pays for the server. */
const commands: Record<string, () => Promise<{ main(argv: string[]): Promise<number> }>> = {
  discovery: () => import('./discovery.js'),
  sd: () => import('./sd.js'),
  gen: () => import('./gen.js'),
  agent: () => import('./agent.js'),
  routes: () => import('./routes.js'),
  hub: () => import('./hub.js'),
  harbor: () => import('./harbor.js'),
  login: () => import('./login.js'),
  up: () => import('./up.js'),
  client: () => import('./client.js'),
  bot: () => import('./bot.js'),
  dashboard: () => import('./dashboard.js'),
  status: async () => ({ main: (await import('./rollout.js')).status }),
  drain: async () => ({ main: (await import('./rollout.js')).drain }),
  init: () => import('./init.js'),
};

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage);
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`gamemesh: unknown command ${JSON.stringify(name)}\n${usage}`);
    return 2;
  }
  return (await load()).main(rest);
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`gamemesh: ${err.message}\n`);
    process.exitCode = 1;
  },
);
