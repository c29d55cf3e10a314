// The stream gate (clustergo's gateway): a TCP server that opens one stream
// to a game node for each client connection and pipes the two together, so
// each client's bytes travel unchanged and the game sees one stream per client.
//   node dist/examples/stream-gate/gate.js --sdaddr 127.0.0.1:8900 [--port 0]
import net from 'node:net';
import { pipeline } from 'node:stream/promises';
import { ServiceNode, serviceMain } from '../../src/index.js';

process.exitCode = await serviceMain({
  program: 'stream-gate',
  summary: 'a TCP gate: one stream to a game node per client connection',
  flags: {
    host: { type: 'string', default: '127.0.0.1', description: 'address the clients connect to' },
    port: { type: 'integer', default: 0, description: 'port the clients connect to (0: any free port)' },
    'max-clients': { type: 'integer', default: 10_000, description: 'connections beyond this are refused' },
  },
  run: async ({ config, values }) => {
    const node = new ServiceNode({ name: 'gate', config, dependencies: ['game'], streams: { maxStreamsPerLink: values['max-clients'] } });
    await node.start();
    const clients = new Set<net.Socket>();
    // Half-open: a client that ends its side still gets the rest of the game's answer.
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.setNoDelay(true);
      clients.add(socket);
      const client = `${socket.remoteAddress}:${socket.remotePort}`;
      const stream = node.openStream('game', { meta: { client }, waitForInstance: true, timeoutMs: 5000 });
      // When either side fails (the game node died, the client vanished) pipeline destroys both.
      pipeline(socket, stream, socket)
        .catch((err: Error) => node.log.debug({ client, err: err.message }, 'client connection ended'))
        .finally(() => clients.delete(socket));
    });
    server.maxConnections = values['max-clients'];
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(values.port, values.host, () => resolve());
    });
    const addr = server.address() as net.AddressInfo;
    process.stdout.write(`gate listening on ${addr.address}:${addr.port}\n`);
    return {
      async stop() {
        server.close();
        for (const c of clients) c.destroy();
        await node.stop();
      },
    };
  },
});
