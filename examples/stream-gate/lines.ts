// The game's tiny line protocol: one command per line, one answer per line.
//   PING        -> PONG
//   WHO         -> the client's address (from the gate's meta), the gate and this game node
//   ECHO <text> -> <text>
//   ONLINE      -> how many clients this game node has
//   QUIT        -> BYE, and the game ends the stream
// Anything else gets `ERR unknown command`; a line over 4 KiB ends the stream.
import type { Duplex } from 'node:stream';
import type { StreamInfo } from '../../src/index.js';

const MAX_LINE = 4096;

export function serveLines(stream: Duplex, info: StreamInfo, self: string, online: () => number): void {
  let pending = '';
  const answer = (line: string): boolean => {
    const [cmd = '', ...rest] = line.split(' ');
    switch (cmd.toUpperCase()) {
      case 'PING':
        stream.write('PONG\n');
        return true;
      case 'WHO':
        stream.write(`you are ${info.meta['client'] ?? '?'} via ${info.peer.id}, on ${self}\n`);
        return true;
      case 'ECHO':
        stream.write(`${rest.join(' ')}\n`);
        return true;
      case 'ONLINE':
        stream.write(`${online()}\n`);
        return true;
      case 'QUIT':
        stream.end('BYE\n');
        return false;
      default:
        stream.write('ERR unknown command\n');
        return true;
    }
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    let i: number;
    while ((i = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, i).replace(/\r$/, '');
      pending = pending.slice(i + 1);
      if (!answer(line)) {
        stream.removeAllListeners('data');
        stream.resume();
        return;
      }
    }
    if (pending.length > MAX_LINE) stream.end('ERR line too long\n');
  });
  stream.on('end', () => {
    if (!stream.writableEnded) stream.end();
  });
}
