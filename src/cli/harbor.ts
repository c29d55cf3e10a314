import { Harbor } from '../harbor/harbor.js';
import { ConfigError } from '../service/config.js';
import { serviceMain } from '../service/main.js';

const FLAGS = {
  center: { type: 'string', default: '', description: "the harbors' center: another discovery (host:port or etcd://...) that every cluster's harbors join" },
  'center-token': { type: 'string', default: '', description: 'secret of the center and of harbor-to-harbor links (default: --token)' },
  'center-listen': { type: 'string', default: '', description: "host:port other harbors dial (default: --listen's host, a free port)" },
  'max-queue': { type: 'size', default: 2 * 1024 * 1024, description: 'bytes queued toward one next hop before its frames are refused with busy' },
} as const;

export function main(argv: string[]): Promise<number> {
  return serviceMain({
    program: 'gamemesh harbor',
    summary: "a harbor: routes messages and calls between this cluster and the others through the harbors' center (docs/clusters.md)",
    flags: FLAGS,
    argv,
    run: async ({ config, values }) => {
      if (!values.center) throw new ConfigError('--center is required: the discovery address the harbors of every cluster join', 'center');
      const harbor = new Harbor({ config, center: values.center, centerToken: values['center-token'] || undefined, centerListen: values['center-listen'] || undefined, maxQueueBytes: values['max-queue'] });
      await harbor.start();
      const { host, port } = harbor.local.address;
      const c = harbor.center.address;
      process.stdout.write(`harbor ${harbor.local.logicalAddress} listening ${host}:${port} center ${c.host}:${c.port}\n`);
      return harbor;
    },
  });
}
