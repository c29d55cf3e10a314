import { Agent } from '../gateway/agent.js';
import { serviceMain } from '../service/main.js';

const FLAGS = {
  host: { type: 'string', default: '127.0.0.1', description: 'interface the client ports listen on' },
  'tcp-port': { type: 'integer', default: 0, description: 'client TCP port (0: the OS picks; -1: off)' },
  'ws-port': { type: 'integer', default: 0, description: 'client WebSocket port (0: the OS picks; -1: off)' },
  'kcp-port': { type: 'integer', default: -1, description: 'client KCP (UDP) port (0: the OS picks; -1: off)' },
  'ws-path': { type: 'string', default: '/', description: 'WebSocket path' },
  'pomelo-ws-port': { type: 'integer', default: -1, description: 'pomelo WebSocket port for pomelo/pinus clients (0: the OS picks; -1: off)' },
  'pomelo-tcp-port': { type: 'integer', default: -1, description: 'pomelo raw TCP ("hybrid") port for pomelo/pinus clients (0: the OS picks; -1: off)' },
  'pomelo-protobuf': { type: 'boolean', default: false, description: 'offer pomelo-protobuf protos in the pomelo handshake' },
  'max-frame': { type: 'size', default: 64 * 1024, description: 'largest client frame accepted' },
  'max-msgs-per-sec': { type: 'integer', default: 100, description: 'messages per second per client before a kick' },
  'max-outbound': { type: 'size', default: 1024 * 1024, description: 'bytes queued to one client before it is cut off' },
  'max-clients': { type: 'integer', default: 100_000, description: 'connections accepted at once' },
  capacity: { type: 'integer', default: 10_000, description: 'players login may send here' },
  'heartbeat-sec': { type: 'integer', default: 20, description: 'heartbeat period until config/agent/heartbeat_sec says otherwise' },
  'unknown-msg': { type: 'string', default: 'kick', description: "unknown message ids: 'kick' or 'drop'" },
  'backend-gone': { type: 'string', default: 'keep', description: "clients bound to a backend gone for good: 'keep', 'unbind' or 'disconnect'" },
} as const;

export function main(argv: string[]): Promise<number> {
  return serviceMain({
    program: 'gamemesh agent',
    summary: 'the gateway: holds client connections and routes their messages to backends',
    flags: FLAGS,
    argv,
    run: async ({ config, values }) => {
      const unknown = values['unknown-msg'];
      const gone = values['backend-gone'];
      if (unknown !== 'kick' && unknown !== 'drop') throw new TypeError(`--unknown-msg must be kick or drop, got ${unknown}`);
      if (gone !== 'keep' && gone !== 'unbind' && gone !== 'disconnect') throw new TypeError(`--backend-gone must be keep, unbind or disconnect, got ${gone}`);
      const port = (p: number) => (p < 0 ? null : p);
      const agent = new Agent({
        node: { config },
        host: values.host,
        tcpPort: port(values['tcp-port']),
        wsPort: port(values['ws-port']),
        kcpPort: port(values['kcp-port']),
        wsPath: values['ws-path'],
        pomeloWsPort: port(values['pomelo-ws-port']),
        pomeloTcpPort: port(values['pomelo-tcp-port']),
        pomeloProtobuf: values['pomelo-protobuf'],
        maxFrame: values['max-frame'],
        maxMsgsPerSec: values['max-msgs-per-sec'],
        maxOutbound: values['max-outbound'],
        maxClients: values['max-clients'],
        capacity: values.capacity,
        heartbeatSec: values['heartbeat-sec'],
        unknownMessage: unknown,
        backendGone: gone,
      });
      await agent.start();
      const kcp = agent.kcpAddress ? ` kcp=${agent.kcpAddress}` : '';
      const pomelo = agent.pomeloWsUrl || agent.pomeloTcpAddress ? ` pomelo-ws=${agent.pomeloWsUrl ?? '-'} pomelo-tcp=${agent.pomeloTcpAddress ?? '-'}` : '';
      process.stdout.write(`agent ${agent.node.id} listening tcp=${agent.tcpAddress ?? '-'} ws=${agent.wsUrl ?? '-'}${kcp}${pomelo}\n`);
      return agent;
    },
  });
}
