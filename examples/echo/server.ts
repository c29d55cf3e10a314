// The echo server: registers the echo RPC and serves until SIGTERM/SIGINT.
//   node dist/examples/echo/server.js --sdaddr 127.0.0.1:8900
import { ServiceNode, serviceMain } from '../../src/index.js';
import { Echo } from './gen/index.js';

process.exitCode = await serviceMain({
  program: 'echo-server',
  summary: 'answers echo.Echo/Say',
  run: async ({ config }) => {
    const node = new ServiceNode({ name: 'echo', config });
    Echo.register({ say: (req) => ({ text: req.text, n: req.n, server: node.id }) }, node);
    await node.start();
    process.stdout.write(`echo server ${node.id} ready on ${node.address.host}:${node.address.port}\n`);
    return node;
  },
});
