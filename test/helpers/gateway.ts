/**
 * An in-process gateway setup for client tests: a discovery server, an echo
 * backend behind GatewayBackend, and an Agent routing to it, all on
 * 127.0.0.1 and stopped after the test.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, type AgentOptions } from '../../src/gateway/agent.js';
import { GatewayBackend, type ClientRef } from '../../src/gateway/backend.js';
import { RouteTable } from '../../src/gateway/routes.js';
import { ServiceNode } from '../../src/service/node.js';
import type { MessageType } from '../../src/wire/message-type.js';
import { EchoReq, EchoResp } from './echo.js';
import { startDiscoveryServer, silent, type Defer } from './mesh.js';
import { waitFor } from './proc.js';

/** Routed to the backend ("pass") but with no handler there. */
export const NO_HANDLER_ID = 1003;
/** In no route: the agent kicks a client that sends it. */
export const UNROUTED_ID = 1999;

/** A message type with an empty body and any id, for ids the echo .proto lacks. */
export function emptyType(id: number, name: string): MessageType<Record<string, never>> {
  return { id, name, options: {}, encode: () => new Uint8Array(0), decode: () => ({}) };
}

export const ROUTES = RouteTable.parse({
  version: 1,
  routes: [
    { msgId: EchoReq.id, name: 'echo.EchoReq', service: 'echo', rule: 'pass' },
    // EchoResp doubles as the request of an "auth" route: only a client bound by `login:NAME` may send it.
    { msgId: EchoResp.id, name: 'echo.EchoResp', service: 'echo', rule: 'auth' },
    { msgId: NO_HANDLER_ID, name: 'nohandler', service: 'echo', rule: 'pass' },
  ],
});

export interface GatewayMesh {
  sdaddr: string;
  backendNode: ServiceNode;
  backend: GatewayBackend;
  agent: Agent;
  /** The client behind each `whoami:KEY` request, for pushes. */
  clients: Map<string, ClientRef>;
  /** Stops the agent (kicking its clients with code 1) and starts a new one on the same ports. */
  restartAgent(betweenMs?: number): Promise<Agent>;
}

function agentOptions(sdaddr: string, extra: AgentOptions = {}): AgentOptions {
  return { node: { config: { sdaddr }, logger: silent, shutdownTimeoutMs: 500 }, routes: ROUTES, heartbeatSec: 1, ...extra };
}

/** Waits until the agent and the backend are linked both ways. */
async function linked(agent: Agent, backendNode: ServiceNode): Promise<void> {
  await waitFor(() => agent.node.instances('echo').length > 0 && backendNode.instances('agent').length > 0, 5000, 'agent and backend linked');
}

/**
 * The backend answers EchoReq by its text: `login:NAME` binds the client
 * with {user: NAME}; `whoami:KEY` records the client under KEY; `throw:MSG`
 * fails with MSG; `sleep:N` answers after N ms; anything else is echoed.
 * EchoResp (auth) answers "hello USER".
 */
export async function startGatewayMesh(defer: Defer): Promise<GatewayMesh> {
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  const backendNode = new ServiceNode({ name: 'echo', config: { sdaddr, listen: '127.0.0.1:0' }, logger: silent, shutdownTimeoutMs: 500 });
  defer(() => backendNode.stop());
  const backend = new GatewayBackend(backendNode);
  const clients = new Map<string, ClientRef>();
  backend.handle(EchoReq, EchoResp, async (req, ctx) => {
    const [verb, arg = ''] = req.text.split(/:(.*)/s);
    if (verb === 'login') await ctx.bind({ user: arg });
    if (verb === 'whoami') clients.set(arg, { agent: ctx.agent, id: ctx.id });
    if (verb === 'throw') throw new Error(arg);
    if (verb === 'sleep') await sleep(Number(arg));
    return { text: req.text, n: req.n, server: backendNode.id };
  });
  backend.handle(EchoResp, EchoResp, (_req, ctx) => ({ text: `hello ${ctx.session['user'] ?? '?'}`, server: backendNode.id }));
  await backendNode.start();

  let agent = await new Agent(agentOptions(sdaddr)).start();
  let stopped = false;
  defer(() => {
    stopped = true;
    return agent.stop();
  });
  await linked(agent, backendNode);

  const mesh: GatewayMesh = {
    sdaddr,
    backendNode,
    backend,
    get agent() {
      return agent;
    },
    clients,
    async restartAgent(betweenMs = 0) {
      const [host, port] = (agent.tcpAddress ?? '').split(':');
      const wsPort = Number(new URL(agent.wsUrl ?? '').port);
      await agent.stop();
      if (betweenMs > 0) await sleep(betweenMs);
      // A test that failed meanwhile has run its cleanup: an agent started now would never be stopped.
      if (stopped) throw new Error('the mesh was stopped during restartAgent');
      agent = await new Agent(agentOptions(sdaddr, { host, tcpPort: Number(port), wsPort })).start();
      await linked(agent, backendNode);
      return agent;
    },
  };
  return mesh;
}
