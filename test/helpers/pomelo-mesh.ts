/**
 * An in-process gateway with its pomelo ports for the pomelo tests: a
 * discovery server, the "pm" backend (test/fixtures/proto-pomelo) behind a
 * GatewayBackend, and an Agent whose route table (with its pomelo section)
 * comes from `gamemesh gen` of that directory. Everything on 127.0.0.1,
 * stopped after the test.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generate } from '../../src/codegen/index.js';
import { Agent, type AgentOptions } from '../../src/gateway/agent.js';
import { GatewayBackend, type ClientRef } from '../../src/gateway/backend.js';
import { RouteTable } from '../../src/gateway/routes.js';
import { ServiceNode } from '../../src/service/node.js';
import { GAMEMESH_PROTO_DIR, MessageRegistry } from '../../src/wire/registry.js';
import { startDiscoveryServer, silent, type Defer } from './mesh.js';
import { ROOT, waitFor } from './proc.js';

export const PM_PROTO_DIR = path.join(ROOT, 'test', 'fixtures', 'proto-pomelo');

/** The route table `gamemesh gen` writes for the fixture. */
export function pmRoutes(): RouteTable {
  return RouteTable.parse(generate({ protoDir: PM_PROTO_DIR }).routes);
}

export const pmRegistry = new MessageRegistry([PM_PROTO_DIR, GAMEMESH_PROTO_DIR]).load('pomelo.proto');
const t = <T>(name: string) => pmRegistry.type<T>(`pmtest.${name}`);

export type Json = Record<string, unknown>;
export const PM = {
  EchoReq: t<Json & { sleep_ms: number }>('EchoReq'),
  EchoResp: t<Json>('EchoResp'),
  BlobReq: t<{ data: Uint8Array; counts: Record<string, number>; a?: string | null; b?: number | null }>('BlobReq'),
  BlobResp: t<{ data: Uint8Array; counts: Record<string, number>; picked: string }>('BlobResp'),
  LoginReq: t<{ user: string }>('LoginReq'),
  LoginResp: t<{ user: string }>('LoginResp'),
  SecretReq: t<{ text: string }>('SecretReq'),
  SecretResp: t<{ user: string; text: string }>('SecretResp'),
  GrantReq: t<{ amount: number }>('GrantReq'),
  PushReq: t<{ text: string; count: number; to: string; kick: boolean }>('PushReq'),
  PushResp: t<{ sent: number }>('PushResp'),
  Notice: t<{ text: string; n: number }>('Notice'),
  Plain: t<{ text: string }>('Plain'),
} as const;

export interface PomeloMesh {
  sdaddr: string;
  agent: Agent;
  backend: GatewayBackend;
  backendNode: ServiceNode;
  /** Every request the backend handled: message name, seq, decoded body. */
  calls: Array<{ name: string; seq: number; req: unknown }>;
  /** Clients that sent PushReq, for pushes to many. */
  pushers: ClientRef[];
}

export async function startPomeloMesh(defer: Defer, agentOptions: AgentOptions = {}): Promise<PomeloMesh> {
  const { addr: sdaddr } = await startDiscoveryServer(defer);
  const backendNode = new ServiceNode({ name: 'pm', config: { sdaddr, listen: '127.0.0.1:0' }, logger: silent, shutdownTimeoutMs: 500 });
  defer(() => backendNode.stop());
  const backend = new GatewayBackend(backendNode);
  const calls: PomeloMesh['calls'] = [];
  const pushers: ClientRef[] = [];
  const record = (name: string, seq: number, req: unknown) => calls.push({ name, seq, req });

  // Concurrent, so that one client's answers can come back out of order (the pomelo port must match them by id).
  backend.handle(
    PM.EchoReq,
    PM.EchoResp,
    async (req, ctx) => {
      record('EchoReq', ctx.seq, req);
      if (req.sleep_ms > 0) await sleep(req.sleep_ms);
      return { echo: req, server: backendNode.id };
    },
    { concurrent: true },
  );
  backend.handle(PM.BlobReq, PM.BlobResp, (req, ctx) => {
    record('BlobReq', ctx.seq, req);
    // `pick` is protobufjs's virtual oneof property: the name of the member that is set.
    const pick = (req as { pick?: string }).pick;
    return { data: req.data, counts: req.counts, picked: pick === 'a' ? (req.a ?? '') : pick === 'b' ? String(req.b) : '' };
  });
  backend.handle(PM.LoginReq, PM.LoginResp, async (req, ctx) => {
    record('LoginReq', ctx.seq, req);
    await ctx.bind({ user: req.user });
    return { user: req.user };
  });
  backend.handle(PM.SecretReq, PM.SecretResp, (req, ctx) => {
    record('SecretReq', ctx.seq, req);
    return { user: ctx.session['user'] ?? '', text: req.text };
  });
  backend.handle(PM.GrantReq, PM.PushResp, (req, ctx) => {
    record('GrantReq', ctx.seq, req);
    return { sent: 0 };
  });
  backend.handle(PM.PushReq, PM.PushResp, (req, ctx) => {
    record('PushReq', ctx.seq, req);
    const me: ClientRef = { agent: ctx.agent, id: ctx.id };
    if (!pushers.some((c) => c.agent === me.agent && c.id === me.id)) pushers.push(me);
    if (req.kick) {
      ctx.kick(req.text || 'kicked by the test backend');
      return { sent: 0 };
    }
    for (let n = 0; n < req.count; n++) {
      if (req.to === 'all') backend.broadcast(PM.Notice, { text: req.text, n });
      else if (req.to === 'many') backend.sendMany(pushers, PM.Notice, { text: req.text, n });
      else if (req.to === 'plain') backend.send(me, PM.Plain, { text: req.text });
      else backend.send(me, PM.Notice, { text: req.text, n });
    }
    return { sent: req.count };
  });
  await backendNode.start();

  const agent = await new Agent({
    node: { config: { sdaddr }, logger: silent, shutdownTimeoutMs: 500 },
    routes: pmRoutes(),
    heartbeatSec: 1,
    pomeloWsPort: 0,
    pomeloTcpPort: 0,
    ...agentOptions,
  }).start();
  defer(() => agent.stop());
  await waitFor(() => agent.node.instances('pm').length > 0 && backendNode.instances('agent').length > 0, 5000, 'agent and backend linked');
  return { sdaddr, agent, backend, backendNode, calls, pushers };
}
