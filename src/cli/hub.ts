import { startHub } from '../hub/server.js';
import { ConfigError } from '../service/config.js';
import { serviceMain } from '../service/main.js';
import { ServiceNode } from '../service/node.js';

const FLAGS = {
  'max-channels': { type: 'integer', default: 10_000, description: 'channels one subscriber may hold', validate: (v: number) => (v >= 1 ? undefined : 'must be at least 1') },
  'max-channel-length': { type: 'integer', default: 256, description: 'longest channel name, in UTF-8 bytes', validate: (v: number) => (v >= 1 ? undefined : 'must be at least 1') },
  'max-body': { type: 'size', default: 1024 * 1024, description: 'largest published message relayed' },
} as const;

export function main(argv: string[]): Promise<number> {
  return serviceMain({
    program: 'gamemesh hub',
    summary: 'the pub/sub hub: relays what services publish to a channel to every subscriber of it',
    flags: FLAGS,
    argv,
    run: async ({ config, values }) => {
      // Exits with a usage error: with --hub nats:// the NATS servers relay, and a hub service would sit idle.
      if (config.hub !== '') throw new ConfigError(`--hub is ${config.hub}: the NATS servers are the hub, so this service is not needed (run nats-server instead)`, 'hub');
      const node = new ServiceNode({ name: 'hub', config });
      startHub(node, { maxChannelsPerSubscriber: values['max-channels'], maxChannelLength: values['max-channel-length'], maxBody: values['max-body'] });
      await node.start();
      process.stdout.write(`hub ${node.id} listening ${node.address.host}:${node.address.port}\n`);
      return node;
    },
  });
}
