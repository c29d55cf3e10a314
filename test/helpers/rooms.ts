/** A rooms cluster of processes for the rooms tests: discovery, agents, room-backend fixtures, and SDK clients. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { ClientError, GameClient, tcpTransport, wsTransportNode } from '../../src/client-node/index.js';
import type { Transport } from '../../src/client/transport.js';
import { pushRoutes, spawnAgent, type AgentProc } from './gateway.js';
import { GW, routeTable } from './gw-proto.js';
import { FIXTURES, spawnNode, startDiscovery, tempDir, waitFor, type Cleanup, type Proc } from './proc.js';

export interface RoomCluster {
  sdaddr: string;
  agents: AgentProc[];
  backends: Proc[];
}

export async function startRoomCluster(t: Cleanup, options: { backends?: number; agents?: number; backendArgs?: readonly string[][]; agentArgs?: readonly string[][] } = {}): Promise<RoomCluster> {
  const disco = await startDiscovery(t);
  await pushRoutes(disco.addr, tempDir(t, 'gamemesh-rooms-'), routeTable([[GW.EchoReq, 'rooms', 'pass'], [GW.PushReq, 'rooms', 'auth']]));
  const backends = Array.from({ length: options.backends ?? 2 }, (_, i) =>
    spawnNode(t, path.join(FIXTURES, 'room-backend.js'), ['--sdaddr', disco.addr, '--svcindex', String(i), '--loglevel', 'warn', ...(options.backendArgs?.[i] ?? [])], `room-backend#${i}`),
  );
  const agents = await Promise.all(Array.from({ length: options.agents ?? 2 }, (_, i) => spawnAgent(t, disco.addr, ['--svcindex', String(i), ...(options.agentArgs?.[i] ?? [])])));
  await Promise.all(backends.map((b) => b.waitForStdout(/room-backend (\S+) ready\n/, 10_000)));
  return { sdaddr: disco.addr, agents, backends };
}

/** An SDK client of `agent`; with `transport`, connections (and reconnects) go where it says. */
export function roomClient(t: Cleanup, agent: AgentProc, opts: { ws?: boolean; reconnect?: boolean; transport?: () => Transport } = {}): { c: GameClient; notices: string[] } {
  const notices: string[] = [];
  const c = new GameClient({
    transport: opts.transport ?? (() => (opts.ws ? wsTransportNode(agent.wsUrl) : tcpTransport(agent.host, agent.tcpPort))),
    reconnect: opts.reconnect ? { retries: 20, minDelayMs: 50, maxDelayMs: 200 } : false,
    requestTimeoutMs: 10_000,
  });
  c.on(GW.Notice, (n) => notices.push(n.text));
  t.after(() => c.close());
  return { c, notices };
}

/** Until both agents are linked to both backends: an echo through each agent answered by each backend is not checkable, so wait on a join. */
export async function whenLinked(clients: readonly GameClient[]): Promise<void> {
  for (const c of clients) {
    await waitFor(
      async () => {
        try {
          await c.request(GW.EchoReq, GW.EchoResp, { text: 'hello' }, { timeoutMs: 1000 });
          return true;
        } catch {
          return false;
        }
      },
      10_000,
      'a backend reachable through the agent',
      100,
    );
  }
}

export async function expectCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<ClientError> {
  try {
    const v = await p;
    assert.fail(`expected ${code}, got ${JSON.stringify(v)}`);
  } catch (err) {
    assert.ok(err instanceof ClientError, `expected a ClientError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
}

