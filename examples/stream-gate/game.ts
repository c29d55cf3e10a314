// The game node behind the stream gate: every stream is one client.
//   node dist/examples/stream-gate/game.js --sdaddr 127.0.0.1:8900 [--mode echo|lines]
// `echo` sends every byte back unchanged; `lines` runs the line protocol of lines.ts.
import { pipeline } from 'node:stream/promises';
import { ServiceNode, serviceMain } from '../../src/index.js';
import { serveLines } from './lines.js';

process.exitCode = await serviceMain({
  program: 'stream-game',
  summary: 'accepts one stream per gate client: echoes it, or runs a line protocol',
  flags: {
    mode: { type: 'string', default: 'echo', description: 'echo (bytes back unchanged) or lines (a tiny line protocol)', validate: (v) => (v === 'echo' || v === 'lines' ? undefined : 'must be echo or lines') },
  },
  run: async ({ config, values }) => {
    const node = new ServiceNode({ name: 'game', config });
    let online = 0;
    node.onStream((stream, info) => {
      online++;
      stream.once('close', () => online--);
      if (values.mode === 'lines') serveLines(stream, info, node.id, () => online);
      else pipeline(stream, stream).catch((err: Error) => node.log.debug({ client: info.meta['client'], err: err.message }, 'client stream failed'));
    });
    await node.start();
    process.stdout.write(`game ${node.id} ready (${values.mode})\n`);
    return node;
  },
});
