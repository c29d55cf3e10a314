// The demo social service process: `node dist/demo/social.js [service flags]`.
import { serviceMain } from '../src/index.js';
import { startSocial } from './social/service.js';

process.exitCode = await serviceMain({
  program: 'demo-social',
  summary: 'the demo chat: world chat and whispers through the hub',
  flags: {
    'jwt-secret': { type: 'string', default: '', description: 'JWT key (else GAMEMESH_JWT_SECRET, else the KV)' },
  },
  run: async ({ config, values }) => {
    const social = await startSocial({ config, jwtSecret: values['jwt-secret'] });
    process.stdout.write(`social ${social.node.id} ready\n`);
    return social;
  },
});
