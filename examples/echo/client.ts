// The echo client: finds the echo service through discovery, calls it 10
// times, prints the replies, and exits.
//   node dist/examples/echo/client.js --sdaddr 127.0.0.1:8900
import { loadConfig, ServiceNode, setupLogging } from '../../src/index.js';
import { Echo } from './gen/index.js';

const { config } = loadConfig();
setupLogging({ ...config, loglevel: config.loglevel === 'info' ? 'warn' : config.loglevel });
const node = new ServiceNode({ name: 'echo-client', config, dependencies: ['echo'] });
await node.start();
try {
  await Promise.race([node.whenReady(), new Promise((_, reject) => setTimeout(() => reject(new Error('no echo server found within 10 s')), 10_000).unref())]);
  for (let i = 1; i <= 10; i++) {
    const res = await Echo.call('echo', { text: `hello ${i}`, n: i }, { timeoutMs: 3000 });
    process.stdout.write(`reply ${res.n} from ${res.server}: ${res.text}\n`);
  }
} finally {
  await node.stop();
}
