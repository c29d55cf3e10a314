// The game-client SDK for Node: everything in src/client, plus transports
// that need Node (TCP through node:net; KCP over UDP through node:dgram;
// WebSocket through the `ws` package, since Node 20 has no global WebSocket).
import { WebSocket } from 'ws';
import type { Transport } from '../client/transport.js';
import { wsTransport } from '../client/ws-transport.js';

export * from '../client/index.js';
export { kcpTransport, type KcpTransportOptions } from './kcp-transport.js';
export { tcpTransport, type TcpTransportOptions } from './tcp-transport.js';

/** wsTransport with the `ws` package's WebSocket. */
export function wsTransportNode(url: string): Transport {
  return wsTransport(url, { WebSocket });
}
