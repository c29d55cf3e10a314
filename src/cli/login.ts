import { parseAddr } from '../discovery/client.js';
import { startLogin } from '../login/server.js';
import { staticRoot } from '../login/static.js';
import { serviceMain } from '../service/main.js';
import { ServiceNode } from '../service/node.js';

const FLAGS = {
  http: { type: 'string', default: '127.0.0.1:8080', description: 'host:port of the HTTP endpoint and web page (port 0: the OS picks)', validate: checkHttp },
  static: { type: 'string', default: '', description: "directory of static files served over HTTP ('' serves none)" },
  demo: { type: 'boolean', default: false, description: 'register unknown accounts on their first login' },
  'jwt-secret': { type: 'string', default: '', description: 'JWT signing secret, >= 32 bytes (default: config/login/jwt_secret in the KV, made if missing)' },
  'token-ttl-sec': { type: 'integer', default: 3600, description: 'lifetime of issued tokens', validate: (v: number) => (v >= 1 && v <= 30 * 24 * 3600 ? undefined : 'expected 1..2592000') },
  'rate-burst': { type: 'integer', default: 20, description: 'login attempts one IP may make at once', validate: (v: number) => (v >= 1 ? undefined : 'expected >= 1') },
  'agent-strategy': { type: 'string', default: 'least-loaded', description: 'how agents are ranked: least-loaded or least-memory (an agent above its memory threshold gets no players either way)', validate: (v: string) => (v === 'least-loaded' || v === 'least-memory' ? undefined : 'expected least-loaded or least-memory') },
  'rate-per-sec': { type: 'number', default: 5, description: 'login attempts per second one IP regains', validate: (v: number) => (v > 0 ? undefined : 'expected > 0') },
} as const;

export function main(argv: string[]): Promise<number> {
  return serviceMain({
    program: 'gamemesh login',
    summary: 'the login service: checks accounts over HTTP, hands out JWTs and the least-loaded gateway, serves the web page',
    flags: FLAGS,
    argv,
    run: async ({ config, values }) => {
      const { host, port } = parseAddr(values.http);
      // Checked before anything is started, so a typo fails at once.
      if (values.static) await staticRoot(values.static);
      const node = new ServiceNode({ name: 'login', config });
      try {
        await node.start();
        const login = await startLogin({
          node,
          host,
          port,
          staticDir: values.static || undefined,
          demo: values.demo,
          ttlSec: values['token-ttl-sec'],
          jwtSecret: values['jwt-secret'] || undefined,
          agentStrategy: values['agent-strategy'] as 'least-loaded' | 'least-memory',
          rateLimit: { burst: values['rate-burst'], perSec: values['rate-per-sec'] },
        });
        process.stdout.write(`login listening on ${login.url}\n`);
        return {
          stop: async () => {
            await login.stop();
            await node.stop();
          },
        };
      } catch (err) {
        // Also after a failed node.start(): its port may already be open, and would keep the process alive.
        await node.stop().catch(() => {});
        throw err;
      }
    },
  });
}

function checkHttp(v: string): string | undefined {
  try {
    parseAddr(v);
    return undefined;
  } catch {
    return 'expected host:port';
  }
}
